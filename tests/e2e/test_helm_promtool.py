"""The chart's PrometheusRule, checked by Prometheus's own promtool.

Covers:
- `promtool check rules` accepts the rendered rule groups (syntax, PromQL, templates);
- `promtool test rules`: each alert fires on a series history that shows its failure (flows newly
  Failed, Running flows with no step progress, flows held 30 minutes by --max-active-jobs,
  failing reconciles, webhook errors, no replica up, no leader) and stays quiet on a healthy one, so the expressions are right, not only valid;
- every zenflow_* metric the rules read is one the controller or the webhook registers.

promtool comes from the `promtool` session fixture (tests/fixtures/helm.py): on PATH, cached, or
extracted from Debian's `prometheus` package; the tests skip with the reason when none works.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures import helm

SEL = 'job="zen-flow",namespace="zen-flow-system"'
PROMTOOL_TIMEOUT = 60.0  # seconds; both commands take well under one
# The first promtool test on a fresh machine may run `apt-get update` and a download in its
# set-up (bounded by tests/fixtures/helm.py's APT_TIMEOUT per command), beyond the default budget.
PROVISIONING_BUDGET = 600


def _rule_groups() -> list[dict[str, Any]]:
    rendered = helm.render({"prometheusRule": {"enabled": True}})
    groups: list[dict[str, Any]] = rendered.one("PrometheusRule")["spec"]["groups"]
    return groups


def _promtool(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT,
        check=False,
    )


@pytest.mark.timeout(PROVISIONING_BUDGET)
def test_promtool_check_rules_accepts_the_rendered_rules(promtool: Path, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": _rule_groups()}))
    done = _promtool(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout, done.stdout


def _case(
    series: dict[str, str],
    alert: str,
    *,
    at: str,
    fires: bool,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    expected = [{"exp_labels": {"severity": "warning", **(labels or {})}}] if fires else []
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}],
    }


CRITICAL = {"severity": "critical"}
# (name, input series, alert, evaluation time, fires?, extra expected labels)
CASES: list[tuple[str, dict[str, str], str, str, bool, dict[str, str]]] = [
    (
        "flows-newly-failed",
        {f'zenflow_flows{{{SEL},pod="a",phase="Failed"}}': "0x20 2x20"},
        "ZenFlowFlowsFailed",
        "25m",
        True,
        {},
    ),
    (
        "failed-count-steady",
        {f'zenflow_flows{{{SEL},pod="a",phase="Failed"}}': "3x40"},
        "ZenFlowFlowsFailed",
        "35m",
        False,
        {},
    ),
    (
        "failover-is-not-a-failure",  # the new leader reports the same count as the old one
        {
            f'zenflow_flows{{{SEL},pod="a",phase="Failed"}}': "3x20 _x20",
            f'zenflow_flows{{{SEL},pod="b",phase="Failed"}}': "0x20 3x20",
        },
        "ZenFlowFlowsFailed",
        "30m",
        False,
        {},
    ),
    (
        "running-without-progress",
        {
            f'zenflow_flows{{{SEL},pod="a",phase="Running"}}': "2x120",
            f'zenflow_step_transitions_total{{{SEL},pod="a",phase="Running"}}': "5x120",
        },
        "ZenFlowFlowsStuck",
        "100m",
        True,
        {},
    ),
    (
        "running-without-any-transition-series",
        {f'zenflow_flows{{{SEL},pod="a",phase="Running"}}': "2x120"},
        "ZenFlowFlowsStuck",
        "100m",
        True,
        {},
    ),
    (
        "running-with-progress",
        {
            f'zenflow_flows{{{SEL},pod="a",phase="Running"}}': "2x120",
            f'zenflow_step_transitions_total{{{SEL},pod="a",phase="Succeeded"}}': "0+1x120",
        },
        "ZenFlowFlowsStuck",
        "100m",
        False,
        {},
    ),
    (
        "flows-held-by-the-cap",
        {f'zenflow_flows_waiting_for_capacity{{{SEL},pod="a"}}': "2x60"},
        "ZenFlowCapacityExhausted",
        "45m",
        True,
        {},
    ),
    (
        "cap-reached-briefly",  # slots free up and the waiting flows start: quiet
        {f'zenflow_flows_waiting_for_capacity{{{SEL},pod="a"}}': "2x10 0x50"},
        "ZenFlowCapacityExhausted",
        "45m",
        False,
        {},
    ),
    (
        "reconciles-failing",
        {
            f'zenflow_reconcile_errors_total{{{SEL},pod="a",error="Transient"}}': "0+1x40",
            f'zenflow_reconcile_duration_seconds_count{{{SEL},pod="a"}}': "0+10x40",
        },
        "ZenFlowReconcileErrors",
        "30m",
        True,
        {},
    ),
    (
        "reconciles-healthy",
        {
            f'zenflow_reconcile_errors_total{{{SEL},pod="a",error="Transient"}}': "0x40",
            f'zenflow_reconcile_duration_seconds_count{{{SEL},pod="a"}}': "0+10x40",
        },
        "ZenFlowReconcileErrors",
        "30m",
        False,
        {},
    ),
    (
        "webhook-errors",
        {
            f'zenflow_admission_reviews_total{{{SEL},pod="a",webhook="validate",'
            'operation="CREATE",result="error"}': "0+1x30"
        },
        "ZenFlowWebhookErrors",
        "20m",
        True,
        {},
    ),
    (
        "webhook-denials-are-not-errors",
        {
            f'zenflow_admission_reviews_total{{{SEL},pod="a",webhook="validate",'
            'operation="CREATE",result="denied"}': "0+5x30"
        },
        "ZenFlowWebhookErrors",
        "20m",
        False,
        {},
    ),
]


def _test_rules_file(groups: list[dict[str, Any]], tmp_path: Path) -> Path:
    # The logic is under test here; annotation texts are checked by `check rules` above.
    bare = [
        {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
        for g in groups
    ]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": bare}))
    tests = [_case(s, a, at=t, fires=f, labels=extra) for _, s, a, t, f, extra in CASES]
    tests.append(  # no replica scraped: critical
        {
            "interval": "1m",
            "input_series": [{"series": f'up{{{SEL},pod="a"}}', "values": "0x20"}],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": "ZenFlowDown",
                    "exp_alerts": [{"exp_labels": CRITICAL}],
                },
                {
                    "eval_time": "10m",
                    "alertname": "ZenFlowNoLeader",
                    "exp_alerts": [{"exp_labels": CRITICAL}],
                },
            ],
        }
    )
    tests.append(  # two replicas up, one leads: quiet
        {
            "interval": "1m",
            "input_series": [
                {"series": f'up{{{SEL},pod="a"}}', "values": "1x20"},
                {"series": f'up{{{SEL},pod="b"}}', "values": "1x20"},
                {"series": f'zenflow_leader{{{SEL},pod="a"}}', "values": "0x20"},
                {"series": f'zenflow_leader{{{SEL},pod="b"}}', "values": "1x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "ZenFlowDown", "exp_alerts": []},
                {"eval_time": "10m", "alertname": "ZenFlowNoLeader", "exp_alerts": []},
            ],
        }
    )
    path = tmp_path / "rules_test.yaml"
    path.write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    return path


@pytest.mark.timeout(PROVISIONING_BUDGET)
def test_promtool_alerts_fire_on_failures_and_stay_quiet_otherwise(
    promtool: Path, tmp_path: Path
) -> None:
    test_file = _test_rules_file(_rule_groups(), tmp_path)
    done = _promtool(promtool, "test", "rules", test_file.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_read_only_metrics_the_process_exports() -> None:
    from prometheus_client import CollectorRegistry

    from controller import metrics as controller_metrics
    from webhook import metrics as webhook_metrics

    registry = CollectorRegistry()
    controller = controller_metrics.ControllerMetrics(registry)
    controller.track_flows(list)  # registers the recounting zenflow_flows gauge
    webhook_metrics.AdmissionMetrics(registry)
    exported: set[str] = set()
    for family in registry.collect():
        exported.update(sample.name for sample in family.samples)
        exported.add(family.name)
    # Counters with labels export no sample before their first increment: add their names.
    exported.update(f"{name}_total" for name in list(exported))
    exported.update(
        f"{name}{suffix}" for name in list(exported) for suffix in ("_count", "_sum", "_bucket")
    )

    used = {
        name
        for group in _rule_groups()
        for rule in group["rules"]
        for name in re.findall(r"\bzenflow_[a-z_]+", rule["expr"])
    }
    assert used, "the rules read no zenflow_ metric"
    assert used <= exported, f"rules read metrics nobody exports: {sorted(used - exported)}"


@pytest.mark.parametrize("stuck_for", ["30m", "2h"])
def test_stuck_window_follows_values(stuck_for: str) -> None:
    rendered = helm.render({"prometheusRule": {"enabled": True, "stuckFor": stuck_for}})
    rules = {
        r["alert"]: r for g in rendered.one("PrometheusRule")["spec"]["groups"] for r in g["rules"]
    }
    assert f"[{stuck_for}]" in rules["ZenFlowFlowsStuck"]["expr"]
