"""Process-wide logging: one JSON object per line in a container, readable text in a terminal.

Code logs constant messages and puts variables in `extra=` (flow, namespace, step, uid, ...);
both formats show those extras, so a JSON line is queryable and a text line is still readable.
`configure()` is called once by the CLI entry of `zen-flow serve`; libraries never configure
logging themselves. uvicorn's loggers are routed through the same handler (its access log is off:
the admission metrics and our own request log carry what matters).
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import IO, Any

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class JSONFormatter(logging.Formatter):
    """`{"ts": ..., "level": ..., "logger": ..., "msg": ..., <extras>}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """`12:00:01 INFO  webhook.routes  review denied  uid=... operation=CREATE`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s  %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            text += "  " + " ".join(f"{k}={v}" for k, v in extras.items())
        return text


def configure(*, level: str = "INFO", fmt: str = "auto", stream: IO[str] | None = None) -> None:
    """Install one handler on the root logger (replacing earlier ones) and route uvicorn to it."""
    out = sys.stderr if stream is None else stream
    use_json = fmt == "json" or (fmt == "auto" and not (hasattr(out, "isatty") and out.isatty()))
    handler = logging.StreamHandler(out)
    handler.setFormatter(JSONFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
