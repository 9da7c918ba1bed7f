"""The Store's ``data_dir`` snapshot: ``<data_dir>/store.json`` holds every object, the
resourceVersion counter and the pod logs, so a restarted server keeps its objects.

It is written atomically (a temporary file, then ``os.replace``) by a background thread at most
once per ``PERSIST_INTERVAL`` while the Store is dirty (and never for more than about a third of
the time), and once more on ``close()``. Only the collection of references happens under the
Store's lock (``take``): stored dicts are never changed after their commit, so serialising them
outside it is safe and keeps a large store from stalling every request while it is written.
Watch history does not survive a restart: watches from an older resourceVersion then get 410.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PERSIST_INTERVAL = 0.5  # seconds between snapshots while dirty (bounded write amplification)
FILE = "store.json"

# take(force) -> the snapshot to write (under the Store's lock), or None when nothing changed
Take = Callable[[bool], dict[str, Any] | None]


class Snapshots:
    """Reads and writes one data_dir's snapshot (see the module docstring)."""

    def __init__(self, data_dir: Path, take: Take) -> None:
        self._data_dir = data_dir
        self._take = take
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._io = threading.Lock()  # one snapshot writer at a time (the thread and close())

    def read(self) -> dict[str, Any] | None:
        """The stored snapshot, or None when there is none yet."""
        path = self._data_dir / FILE
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kubesim-persist", daemon=True)
        self._thread.start()

    def flush(self, *, force: bool = True) -> bool:
        """Write the snapshot now (``force=False``: only if something changed); whether it did."""
        with self._io:
            snapshot = self._take(force)
            if snapshot is None:
                return False
            data = json.dumps(snapshot, separators=(",", ":"))
            self._data_dir.mkdir(parents=True, exist_ok=True)
            tmp = self._data_dir / (FILE + ".tmp")
            tmp.write_text(data)
            os.replace(tmp, self._data_dir / FILE)
            return True

    def _loop(self) -> None:
        interval = PERSIST_INTERVAL
        while not self._closed.wait(interval):
            started = time.monotonic()
            try:
                if not self.flush(force=False):
                    continue
            except OSError:
                log.exception(
                    "kubesim could not persist its store", extra={"data_dir": str(self._data_dir)}
                )
            # never spend more than about a third of the time writing snapshots
            interval = max(PERSIST_INTERVAL, 2 * (time.monotonic() - started))

    def close(self) -> None:
        """Stop the thread after a final snapshot."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush()
