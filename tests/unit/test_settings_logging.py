"""app.logging: JSON lines off a TTY, readable text in a terminal, extras in both.

Covers: auto picks JSON for a non-TTY stream and text for a TTY; `extra=` fields appear as JSON
keys and as key=value in text; exceptions are one JSON value; uvicorn loggers route to our
handler.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from app import logging as app_logging


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_when_not_a_tty() -> None:
    stream = io.StringIO()
    app_logging.configure(level="INFO", fmt="auto", stream=stream)
    logging.getLogger("webhook.routes").info("review denied", extra={"uid": "u1", "code": 422})
    entry = json.loads(stream.getvalue())
    assert entry["msg"] == "review denied"
    assert entry["level"] == "info"
    assert entry["logger"] == "webhook.routes"
    assert (entry["uid"], entry["code"]) == ("u1", 422)


def test_text_in_a_terminal() -> None:
    stream = TTY()
    app_logging.configure(level="DEBUG", fmt="auto", stream=stream)
    logging.getLogger("x").debug("serving", extra={"webhook_port": 9443})
    line = stream.getvalue().strip()
    assert "DEBUG" in line
    assert line.endswith("serving  webhook_port=9443")


def test_exceptions_stay_one_json_line() -> None:
    stream = io.StringIO()
    app_logging.configure(fmt="json", stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("review failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "ValueError: boom" in json.loads(lines[0])["exc"]


def test_uvicorn_goes_through_our_handler() -> None:
    stream = io.StringIO()
    app_logging.configure(fmt="json", stream=stream)
    logging.getLogger("uvicorn.error").warning("from uvicorn")
    assert json.loads(stream.getvalue())["msg"] == "from uvicorn"
