"""`zen-flow run` stopped by a signal ends as cleanly as Ctrl-C (issue 13, item 7).

Covers, for SIGTERM (CI cancelling a job, `timeout`) and SIGINT (Ctrl-C), sent to a real
`zen-flow run` subprocess while a flow runs on its embedded cluster: the exit code (143 for
SIGTERM, 130 for SIGINT), the one line on stderr saying the flow did not finish, no traceback,
and that none of the temporary directories the run created (`kubesim-*`, holding a token and
a TLS key, and `zen-flow-embedded-*`, holding the webhook's CA key) is left in its TMPDIR.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_run_examples import SLOW_FLOW
from tests.fixtures.embedded import REPO, ZEN_FLOW, cli_env
from tests.waiting import eventually

TEMP_PREFIXES = ("kubesim-", "zen-flow-embedded-")


def _temp_dirs(tmpdir: Path) -> list[str]:
    return sorted(p.name for p in tmpdir.iterdir() if p.name.startswith(TEMP_PREFIXES))


@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted")],
    ids=["SIGTERM", "SIGINT"],
)
def test_signal_stops_run_cleanly_and_removes_its_temp_dirs(
    tmp_path: Path, sig: signal.Signals, code: int, said: str
) -> None:
    flow = tmp_path / "slow.yaml"
    flow.write_text(SLOW_FLOW)
    tmpdir = tmp_path / "tmp"  # the run's TMPDIR: only its own directories land here
    tmpdir.mkdir()
    out_file = tmp_path / "out.txt"
    with out_file.open("w") as out:
        proc = subprocess.Popen(
            [ZEN_FLOW, "run", str(flow)],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            # faulthandler: a run that does not end is made to print every thread's stack
            env={**cli_env(), "TMPDIR": str(tmpdir), "PYTHONFAULTHANDLER": "1"},
        )
        try:
            eventually(
                lambda: "slow/wait: Running" in out_file.read_text(), 60, message="step running"
            )
            # The run's own directories exist, so their absence afterwards means removed.
            assert [name.split("-")[0] for name in _temp_dirs(tmpdir)] == ["kubesim", "zen"]
            proc.send_signal(sig)
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)  # faulthandler dumps the threads' stacks
                _, stacks = proc.communicate(timeout=30)
                pytest.fail(f"zen-flow run did not end 30 s after {sig.name}:\n{stacks}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    assert proc.returncode == code, err
    assert err.strip().splitlines() == [
        "zen-flow run: cluster: embedded, steps simulated",
        f"zen-flow run: {said}; JobFlow default/slow did not finish (the embedded cluster "
        "stopped with this command)",
    ]
    assert _temp_dirs(tmpdir) == []
