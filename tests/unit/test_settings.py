"""app.settings: defaults, precedence (default < ZEN_FLOW_* env < flags), and one-line errors.

Covers: documented defaults (ports, controller knobs, lease); env and flag parsing incl. booleans
and --no-leader-elect; lease namespace from POD_NAMESPACE; every bad value is one line naming
its source; flags generated for every field.
"""

from __future__ import annotations

import argparse

import pytest

from app import settings


def test_defaults() -> None:
    s = settings.load({}, environ={})
    assert (s.webhook_port, s.metrics_port) == (9443, 8080)
    assert (s.workers, s.kube_qps, s.kube_burst, s.resync_period) == (4, 50.0, 100, 300.0)
    assert s.leader_elect is True
    assert s.lease_name == "zen-flow-leader"
    assert s.max_request_bytes == 3 * 1024 * 1024
    assert s.webhook_only is False
    assert s.tls_cert_file.name == "tls.crt"


def test_env_then_flags_take_precedence() -> None:
    env = {
        "ZEN_FLOW_WORKERS": "8",
        "ZEN_FLOW_LEADER_ELECT": "false",
        "POD_NAMESPACE": "ops",
        "ZEN_FLOW_WEBHOOK_PORT": "10443",
    }
    s = settings.load({"workers": "2"}, environ=env)
    assert s.workers == 2
    assert s.leader_elect is False
    assert s.lease_namespace == "ops"
    assert s.webhook_port == 10443


def test_flags_parse_from_the_command_line() -> None:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    args = parser.parse_args(
        [
            "--no-leader-elect",
            "--kube-qps",
            "20",
            "--kube-burst",
            "40",
            "--webhook-only",
            "--lease-namespace",
            "zen",
        ]
    )
    s = settings.load(args, environ={"ZEN_FLOW_LEADER_ELECT": "true"})
    assert (s.leader_elect, s.kube_qps, s.kube_burst, s.webhook_only) == (False, 20.0, 40, True)
    assert s.lease_namespace == "zen"


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ({"workers": "0"}, {}, "--workers '0': must be greater than or equal to 1"),
        ({}, {"ZEN_FLOW_WORKERS": "many"}, "ZEN_FLOW_WORKERS='many': must be a valid integer"),
        (
            {},
            {"ZEN_FLOW_WEBHOOK_ONLY": "maybe"},
            "ZEN_FLOW_WEBHOOK_ONLY='maybe': must be true or false",
        ),
        ({"kube_burst": "10"}, {}, "--kube-burst '10': must be at least kube_qps"),
        ({"log_level": "LOUD"}, {}, "--log-level 'LOUD': must be DEBUG, INFO, WARNING or ERROR"),
        ({"log_format": "xml"}, {}, "--log-format 'xml': must be 'auto', 'json' or 'text'"),
        (
            {"kubeconfig": "/nonexistent/kc"},
            {},
            "--kubeconfig '/nonexistent/kc': /nonexistent/kc does not exist",
        ),
        (
            {"renew_deadline": "20"},
            {},
            "--renew-deadline '20': must be shorter than lease_duration",
        ),
        (
            {"webhook_port": "70000"},
            {},
            "--webhook-port '70000': must be less than or equal to 65535",
        ),
    ],
)
def test_bad_values_are_one_line(flags: dict[str, str], env: dict[str, str], expected: str) -> None:
    with pytest.raises(settings.SettingsError) as info:
        settings.load(flags, environ=env)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_every_field_has_a_flag() -> None:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    dests = {a.dest for a in parser._actions}
    assert set(settings.Settings.model_fields) <= dests


def test_settings_are_frozen() -> None:
    s = settings.load({}, environ={})
    with pytest.raises(ValueError, match="frozen"):
        s.workers = 9  # type: ignore[misc]
