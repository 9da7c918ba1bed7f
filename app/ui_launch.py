"""`zen-flow run --ui`: `zen-flow ui` for the run's cluster and first flow, in a process of its
own that lives as long as the run (it prints the address to open on stderr). A process rather
than a thread: the ui's server and watches do not share the run's interpreter, and `run` need
not import the ui (which imports the commands that import `run`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Final

STOP_TIMEOUT: Final = 5.0


class UiProcess:
    def __init__(
        self, kubeconfig: str | Path | None, context: str | None, namespace: str, flow: str
    ) -> None:
        argv = [sys.executable, "-m", "app.cli", "ui", "-n", namespace, "--flow", flow]
        if kubeconfig:
            argv += ["--kubeconfig", str(kubeconfig)]
        if context:
            argv += ["--context", context]
        # Its address goes to stderr: the run's stdout stays the run's (-o json).
        self.process = subprocess.Popen(argv, stdout=sys.stderr, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
