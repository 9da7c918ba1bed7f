"""`zen-flow ui` in a real headless Chromium (tests/fixtures/browser.py) against an embedded
cluster running its steps as local processes: the graph drawn from the spec, live colours from
the watch, a step's logs, approving from the page (through `zen-flow run --ui`), the token.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app import embedded
from app.ui import server
from controller import kube as kube_mod
from tests.fixtures.embedded import EXAMPLES, REPO, cli_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
NS = "default"
SCREENSHOT = Path("/tmp/zen-flow-ui.png")  # outside git; looked at by a person, never committed
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def cluster() -> Iterator[embedded.Cluster]:
    with embedded.start(exec_mode="local") as running:
        yield running


@pytest.fixture(scope="module")
def kube(cluster: embedded.Cluster) -> Iterator[kube_mod.Kube]:
    client = cluster.connect()
    yield client
    client.close()


@pytest.fixture(scope="module")
def ui(kube: kube_mod.Kube) -> Iterator[server.UiServer]:
    running = server.UiServer(kube, server.Place(namespace=NS, cluster="embedded")).start()
    yield running
    running.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())  # the confirmations: "yes"
    yield tab
    context.close()


def _create(kube: kube_mod.Kube, body: dict[str, Any]) -> None:
    body.setdefault("metadata", {})["namespace"] = NS
    kube.create(kube_mod.JOBFLOWS, NS, body)


def _job(command: str) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", command]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }


def _flow(name: str, steps: list[dict[str, Any]], *, suspend: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"steps": steps, **({"suspend": True} if suspend else {})}
    return {
        "apiVersion": "workflow.kube-zen.io/v1alpha1",
        "kind": "JobFlow",
        "metadata": {"name": name},
        "spec": spec,
    }


def _node_colour(page: Any, step: str) -> str:
    return str(
        page.evaluate(
            "s => window.zenflow.graph.cy.getElementById(s).style('background-color')", step
        )
    )


def _click_node(page: Any, step: str) -> None:
    """A real mouse click on the node, where cytoscape drew it on the canvas."""
    box = page.locator("#graph").bounding_box()
    pos = page.evaluate("s => window.zenflow.graph.cy.getElementById(s).renderedPosition()", step)
    page.mouse.click(box["x"] + pos["x"], box["y"] + pos["y"])


def test_dag_graph_has_one_node_per_step_and_the_dependency_edges(
    kube: kube_mod.Kube, ui: server.UiServer, page: Any
) -> None:
    body = yaml.safe_load((EXAMPLES / "dag.yaml").read_text())
    _create(kube, body)
    page.goto(ui.url + "#/flow/default/build-dag")
    page.wait_for_function("() => window.zenflow && window.zenflow.graph", timeout=WAIT_MS)
    nodes = page.evaluate("() => window.zenflow.graph.cy.nodes().map(n => n.id())")
    edges = page.evaluate(
        "() => window.zenflow.graph.cy.edges().map(e => [e.source().id(), e.target().id()])"
    )
    steps = body["spec"]["steps"]
    assert sorted(nodes) == sorted(s["name"] for s in steps)
    expected = {(d, s["name"]) for s in steps for d in s.get("dependencies", [])}
    assert {tuple(e) for e in edges} == expected
    assert len(edges) == len(expected)
    # The flows page lists it with its phase.
    page.goto(ui.url)
    page.wait_for_selector("tr[data-flow=build-dag]", timeout=WAIT_MS)


def test_node_changes_colour_live_and_logs_appear(
    kube: kube_mod.Kube, ui: server.UiServer, page: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "open"
    wait = f"echo waiting for the gate; while [ ! -f {gate} ]; do sleep 0.1; done; echo gate-done"
    steps = [
        {"name": "gate", "template": _job(wait)},
        {"name": "after", "dependencies": ["gate"], "template": _job("echo after")},
    ]
    _create(kube, _flow("live", steps))
    page.goto(ui.url + "#/flow/default/live")
    page.wait_for_function(
        "() => window.zenflow && window.zenflow.graph.cy.getElementById('gate').data('phase') === "
        "'Running'",
        timeout=WAIT_MS,
    )
    running = _node_colour(page, "gate")
    page.evaluate("() => { window.__sameDocument = true; }")
    _click_node(page, "gate")
    # Followed while it runs: the first line shows before the step ends.
    page.wait_for_selector("pre.log >> text=waiting for the gate", timeout=WAIT_MS)
    gate.write_text("")
    page.wait_for_function(
        "() => window.zenflow.graph.cy.getElementById('gate').data('phase') === 'Succeeded'",
        timeout=WAIT_MS,
    )
    assert _node_colour(page, "gate") != running
    assert _node_colour(page, "gate") == "rgb(39,174,96)"  # Succeeded's green
    assert page.evaluate("() => window.__sameDocument") is True  # live, not reloaded
    page.wait_for_selector("pre.log >> text=gate-done", timeout=WAIT_MS)
    page.wait_for_function("() => window.zenflow.view.phase === 'Succeeded'", timeout=WAIT_MS)
    assert page.locator("#attempts td", has_text="Succeeded").count() >= 1
    page.wait_for_selector("#events >> text=FlowSucceeded", timeout=WAIT_MS)
    # A refusal is the command's own words: a finished flow cannot be stopped.
    assert page.locator("button[data-action=stop]").count() == 0  # finished: no stop button
    answer = page.evaluate(
        """async () => { const r = await fetch('/api/flows/default/live/actions/stop',
             {method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{}'});
           return [r.status, (await r.json()).detail]; }"""
    )
    assert answer[0] == 409
    assert "already finished (Succeeded); nothing to stop" in answer[1]


def test_approving_from_the_page_moves_the_flow_on(page: Any) -> None:
    """`zen-flow run --ui` serves the run's flow; approving there lets the run end."""
    run = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "run", "--ui", str(EXAMPLES / "approval.yaml")],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = ""
        deadline = time.monotonic() + 90
        assert run.stderr is not None
        while not url and time.monotonic() < deadline:
            line = run.stderr.readline()
            found = re.search(r"zen-flow ui: open (\S+)", line)
            url = found.group(1) if found else url
            assert line or run.poll() is None, "run ended before it printed the ui's address"
        assert url.endswith("#/flow/default/release"), url
        page.goto(url)
        page.wait_for_function(
            "() => window.zenflow && window.zenflow.graph.cy.getElementById('release-gate')"
            ".data('phase') === 'PendingApproval'",
            timeout=WAIT_MS,
        )
        assert "token" not in page.url  # the token went into a cookie, out of the address bar
        _click_node(page, "build")
        page.wait_for_selector("pre.log >> text=built release candidate rc1", timeout=WAIT_MS)
        _click_node(page, "release-gate")
        page.click("button[data-action=approve]", timeout=WAIT_MS)
        page.wait_for_selector("#notice.ok >> text=approved step release-gate", timeout=WAIT_MS)
        page.wait_for_function(
            "() => window.zenflow.graph.cy.getElementById('deploy').data('phase') === 'Succeeded'",
            timeout=WAIT_MS,
        )
        # The run ends with its flow, and the ui with the run: the page keeps the last view.
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        _out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()


def test_wrong_or_missing_token_gets_401(ui: server.UiServer, page: Any) -> None:
    for address in (f"{ui.base}/", f"{ui.base}/?token=wrong", f"{ui.base}/api/flows?namespace=x"):
        response = page.goto(address)
        assert response.status == 401, address
        assert "401 Unauthorized" in page.content()
    with httpx.Client(base_url=ui.base, cookies={f"zenflow-ui-{ui.port}": "wrong"}) as wrong:
        assert wrong.get("/api/info").status_code == 401
    with httpx.Client(base_url=ui.base) as client:
        assert client.get("/static/app.js").status_code == 401
        entered = client.get(f"/?token={ui.token}")
        assert entered.status_code == 303
        assert "HttpOnly" in entered.headers["set-cookie"]
        assert "SameSite=Strict" in entered.headers["set-cookie"]
        assert client.get("/api/info").json()["namespace"] == NS  # the cookie is enough now
        assert "access-control-allow-origin" not in client.get("/api/info").headers
        action = "/api/flows/default/none/actions/stop"
        # CSRF: no Origin, a foreign Origin, or a form body are refused before anything runs.
        assert client.post(action, json={}).status_code == 403
        foreign = {"Origin": "http://evil.example"}
        assert client.post(action, json={}, headers=foreign).status_code == 403
        same = {"Origin": ui.base}
        assert client.post(action, data={"a": "b"}, headers=same).status_code == 415
        refused = client.post(action, json={}, headers=same)
        assert refused.status_code == 400 and "not found" in refused.json()["detail"]
        rebound = client.get("/api/info", headers={"Host": f"evil.example:{ui.port}"})
        assert rebound.status_code == 403


def test_resume_button_starts_a_suspended_flow(
    kube: kube_mod.Kube, ui: server.UiServer, page: Any
) -> None:
    steps = [
        {"name": "one", "template": _job("echo one")},
        {"name": "two", "dependencies": ["one"], "template": _job("echo two")},
    ]
    _create(kube, _flow("held", steps, suspend=True))
    page.goto(ui.url + "#/flow/default/held")
    page.click("button[data-action=resume]", timeout=WAIT_MS)
    page.wait_for_selector("#notice.ok >> text=resumed JobFlow default/held", timeout=WAIT_MS)
    page.wait_for_function(
        "() => window.zenflow.graph.cy.getElementById('two').data('phase') === 'Succeeded'",
        timeout=WAIT_MS,
    )
    assert kube.get(kube_mod.JOBFLOWS, NS, "held")["spec"].get("suspend") is None


def test_a_flow_of_120_steps_is_laid_out_without_overlaps(
    kube: kube_mod.Kube, ui: server.UiServer, page: Any
) -> None:
    """12 levels of 10 steps, each after two of the level above; suspended, so nothing runs."""
    steps: list[dict[str, Any]] = []
    for level in range(12):
        for i in range(10):
            step: dict[str, Any] = {"name": f"s{level}-{i}", "template": _job("echo x")}
            if level:
                step["dependencies"] = [f"s{level - 1}-{i}", f"s{level - 1}-{(i + 3) % 10}"]
            steps.append(step)
    _create(kube, _flow("wide", steps, suspend=True))
    page.goto(ui.url + "#/flow/default/wide")
    page.wait_for_function("() => window.zenflow && window.zenflow.graph", timeout=WAIT_MS)
    boxes = page.evaluate(
        "() => window.zenflow.graph.cy.nodes().map(n => { const b = n.boundingBox();"
        " return [n.id(), b.x1, b.y1, b.x2, b.y2]; })"
    )
    assert len(boxes) == 120
    for a, (name, ax1, ay1, ax2, ay2) in enumerate(boxes):
        for other, bx1, by1, bx2, by2 in boxes[a + 1 :]:
            apart = ax2 <= bx1 or bx2 <= ax1 or ay2 <= by1 or by2 <= ay1
            assert apart, f"{name} overlaps {other}"
    # Dependencies point one way (top to bottom): the layers are kept apart.
    ranks = page.evaluate(
        "() => window.zenflow.graph.cy.edges().map(e => e.source().position('y') <"
        " e.target().position('y'))"
    )
    assert len(ranks) == 11 * 10 * 2 and all(ranks)
    page.screenshot(path="/tmp/zen-flow-ui-wide.png")


def test_a_failed_step_shows_its_exit_code_and_retry_runs_it_again(
    kube: kube_mod.Kube, ui: server.UiServer, page: Any, tmp_path: Path
) -> None:
    fixed = tmp_path / "fixed"
    check = f"echo checking; [ -f {fixed} ] || exit 3; echo fixed now"
    _create(kube, _flow("flaky", [{"name": "check", "template": _job(check)}]))
    page.goto(ui.url + "#/flow/default/flaky")
    page.wait_for_function("() => window.zenflow && window.zenflow.view.phase === 'Failed'")
    assert "check" in page.inner_text("#reason")
    _click_node(page, "check")
    row = page.locator("#attempts tbody tr").first
    row.locator("td", has_text="Failed").wait_for(timeout=WAIT_MS)
    assert row.locator("td").nth(3).inner_text() == "3"  # the exit code
    fixed.write_text("")
    page.click("button[data-action=retry]", timeout=WAIT_MS)
    page.wait_for_selector("#notice.ok >> text=runs again check (attempt 2)", timeout=WAIT_MS)
    page.wait_for_function("() => window.zenflow.view.phase === 'Succeeded'", timeout=WAIT_MS)
    page.wait_for_selector("pre.log[data-attempt='2'] >> text=fixed now", timeout=WAIT_MS)
    assert page.locator("#attempts tbody tr").count() == 2


def test_flows_page_filters_by_phase_and_label(
    kube: kube_mod.Kube, ui: server.UiServer, page: Any
) -> None:
    for name, team in (("team-a", "a"), ("team-b", "b")):
        flow = _flow(name, [{"name": "x", "template": _job("echo x")}], suspend=True)
        flow["metadata"]["labels"] = {"team": team}
        _create(kube, flow)
    page.goto(ui.url + "#/ns/default?selector=team%3Da")
    page.wait_for_selector("tr[data-flow=team-a]", timeout=WAIT_MS)
    assert page.locator("#flows tbody tr").count() == 1
    assert "team=a" in page.inner_text("tr[data-flow=team-a]")
    # By phase, from the form: the suspended ones only.
    page.goto(ui.url + "#/ns/default")
    page.wait_for_selector("tr[data-flow=team-b]", timeout=WAIT_MS)
    page.select_option("select[aria-label=phase]", "Suspended")
    page.click("form.filters button")
    page.wait_for_function(
        "() => document.querySelectorAll('#flows tbody tr[data-flow]').length > 0 &&"
        " [...document.querySelectorAll('#flows tbody tr[data-flow]')]"
        ".every(r => r.cells[1].innerText === 'Suspended')",
        timeout=WAIT_MS,
    )
    shown = page.eval_on_selector_all(
        "#flows tbody tr[data-flow]", "rows => rows.map(r => r.dataset.flow)"
    )
    assert {"team-a", "team-b"} <= set(shown)
    assert "build-dag" not in shown  # Succeeded: filtered out


def test_a_fan_out_step_lists_its_items_attempts_and_logs(
    kube: kube_mod.Kube, ui: server.UiServer, page: Any, tmp_path: Path
) -> None:
    # item 1 fails once and is retried alone: its two attempts sit under it, named as
    # `zen-flow get` names them, and each item's log is headed by its item
    once = tmp_path / "failed-once"
    shard = (
        f"echo shard {{{{ item }}}}; if [ {{{{ index }}}} = 1 ] && [ ! -f {once} ]; then "
        f"touch {once}; exit 4; fi"
    )
    fan = {
        "name": "shard",
        "withItems": ["eu", "us", "ap"],
        "retryPolicy": {"limit": 1, "backoff": {"type": "Fixed", "duration": "1s"}},
        "template": _job(shard),
    }
    _create(kube, _flow("fanned", [fan]))
    page.goto(ui.url + "#/flow/default/fanned")
    page.wait_for_function(
        "() => window.zenflow && window.zenflow.view.phase === 'Succeeded'", timeout=WAIT_MS
    )
    assert page.evaluate("() => window.zenflow.graph.cy.nodes().map(n => n.id())") == ["shard"]
    _click_node(page, "shard")
    page.locator("#attempts tbody tr").nth(3).wait_for(timeout=WAIT_MS)
    rows = [
        [cell.strip() for cell in row.split("\t")][:3]
        for row in page.locator("#attempts tbody tr").all_inner_texts()
    ]
    assert [(r[0], r[2]) for r in rows] == [
        ("shard[0] #1", "Succeeded"),
        ("shard[1] #1", "Failed"),
        ("shard[1] #2", "Succeeded"),
        ("shard[2] #1", "Succeeded"),
    ]
    assert page.locator("pre.log[data-item='2']").inner_text() == "shard ap\n"
    heads = page.locator("#step .muted", has_text="attempt").all_inner_texts()
    assert [h.split(" \u00b7 ")[:2] for h in heads] == [
        ["shard[0]", "attempt 1"],
        ["shard[1]", "attempt 1"],
        ["shard[1]", "attempt 2"],
        ["shard[2]", "attempt 1"],
    ]
