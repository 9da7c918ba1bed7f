"""The Helm chart, rendered and linted by the real Helm library (helm-python-sdk, Helm v4's Go SDK).

Covers, in both certificate modes and with HA on:
- `helm lint` (strict) reports no warning or error; values.schema.json refuses typos and bad values;
  impossible combinations fail with one clear message;
- the chart's CRD is byte-identical to crds/jobflows.yaml;
- every built-in object survives a round trip through the official client's models (no unknown
  or misplaced field);
- RBAC grants exactly controller.kube.REQUIRED_PERMISSIONS: no wildcard, no Secrets, the Lease only
  through a namespaced Role limited to the Lease the process uses;
- the Deployment's environment is accepted by the real app.settings loader, names only existing
  settings, and agrees with the ports, probes, certificate mount and Lease the chart wires up;
- pod security: non-root, read-only root filesystem, no privilege escalation, all capabilities
  dropped, seccomp RuntimeDefault, a writable /tmp;
- webhook configurations equal webhook/configuration.py's, and their CA wiring per mode:
  cert-manager (Issuer, Certificate for the Service's DNS names, inject-ca-from, no caBundle) and
  self-signed (Secret whose certificate chains to the caBundle and passes a TLS handshake for the
  Service's DNS name);
- the optional objects: PodDisruptionBudget, ServiceMonitor, NetworkPolicy, PrometheusRule;
- every `helm install`/`helm upgrade` in docs/install.md renders with its --set values;
- names stay consistent across objects (Service, certificate names, Secret, Lease, binding) for
  any release name and namespace.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import tempfile
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.fixtures import helm

SELF_SIGNED = {"certificates": {"mode": "self-signed"}}
HA = {
    "replicaCount": 3,
    "podDisruptionBudget": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "networkPolicy": {"enabled": True},
}
MODES = {"cert-manager": {}, "self-signed": SELF_SIGNED}
SERVICE_DNS = [
    "zen-flow",
    "zen-flow.zen-flow-system",
    "zen-flow.zen-flow-system.svc",
]


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = _merge(out[key], value)
            else:
                out[key] = value
    return out


def _container(rendered: helm.Rendered) -> dict[str, Any]:
    containers = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


# ------------------------------------------------------------------------------------------
# lint and schema
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values",
    [{}, SELF_SIGNED, HA, _merge(SELF_SIGNED, HA)],
    ids=["cert-manager", "self-signed", "ha-cert-manager", "ha-self-signed"],
)
def test_lint_is_clean(values: dict[str, Any]) -> None:
    report = helm_python.lint(
        helm.CHART_DIR, values, strict=True, namespace=helm.NAMESPACE, kube_version="v1.31.0"
    )
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and serious == [], report


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"replicas": 2}, "additional properties 'replicas'"),
        ({"webhook": {"failurePolicy": "Sometimes"}}, "/webhook/failurePolicy"),
        ({"webhook": {"timeoutSeconds": 31}}, "/webhook/timeoutSeconds"),
        ({"replicaCount": 0}, "/replicaCount"),
        ({"certificates": {"mode": "vault"}}, "/certificates/mode"),
        ({"podSecurityContext": {"runAsUser": 0}}, "/podSecurityContext/runAsUser"),
        ({"controller": {"maxActiveJobs": -1}}, "/controller/maxActiveJobs"),
    ],
)
def test_schema_refuses_bad_values(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=where):
        helm.render(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"replicaCount": 2, "leaderElection": {"enabled": False}},
            "leaderElection.enabled=false needs replicaCount=1",
        ),
        ({"podDisruptionBudget": {"enabled": True}}, "podDisruptionBudget.enabled needs"),
    ],
)
def test_impossible_combinations_fail_with_one_clear_line(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=message):
        helm.render(values)


def test_chart_crd_is_the_generated_crd() -> None:
    generated = helm.ROOT / "crds" / "jobflows.yaml"
    copy = helm.CHART_DIR / "crds" / "jobflows.yaml"
    assert generated.is_file(), "crds/jobflows.yaml is missing (generate it with `zen-flow crd`)"
    assert copy.read_bytes() == generated.read_bytes(), (
        "helm/zen-flow/crds/jobflows.yaml differs from crds/jobflows.yaml: "
        "cp crds/jobflows.yaml helm/zen-flow/crds/"
    )
    with helm_python.Chart.load(helm.CHART_DIR) as chart:
        [crd] = chart.crds
    assert yaml.safe_load(crd["data"])["metadata"]["name"] == "jobflows.workflow.kube-zen.io"


# The official client's models are generated from Kubernetes' OpenAPI: a field they drop on a
# round trip is a field the API server would prune or reject.
BUILTIN_MODELS = {
    "ServiceAccount": "V1ServiceAccount",
    "Secret": "V1Secret",
    "Service": "V1Service",
    "Deployment": "V1Deployment",
    "ClusterRole": "V1ClusterRole",
    "ClusterRoleBinding": "V1ClusterRoleBinding",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
    "NetworkPolicy": "V1NetworkPolicy",
    "MutatingWebhookConfiguration": "V1MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration": "V1ValidatingWebhookConfiguration",
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_builtin_objects_round_trip_through_the_kubernetes_models(mode: str) -> None:
    from kubernetes import client

    rendered = helm.render(_merge(MODES[mode], HA))
    checked = set()
    with client.ApiClient() as api:
        for obj in rendered.objects:
            model = BUILTIN_MODELS.get(obj["kind"])
            if model is None:
                assert obj["kind"] in {"Issuer", "Certificate", "ServiceMonitor", "PrometheusRule"}
                continue
            typed = api.deserialize(json.dumps(obj), model, "application/json")
            assert api.sanitize_for_serialization(typed) == obj, f"{obj['kind']} lost fields"
            checked.add(obj["kind"])
    assert checked >= set(BUILTIN_MODELS) - {"Secret" if mode == "cert-manager" else ""}


# ------------------------------------------------------------------------------------------
# RBAC
# ------------------------------------------------------------------------------------------
def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("ha", [False, True], ids=["single", "ha"])
def test_rbac_grants_exactly_what_the_controller_calls(ha: bool) -> None:
    from controller import kube

    rendered = helm.render(HA if ha else {})
    required = {
        (group, resource, verb)
        for group, resource, verbs in kube.REQUIRED_PERMISSIONS
        for verb in verbs
    }
    lease_grants = {g for g in required if g[:2] == ("coordination.k8s.io", "leases")}
    cluster_rules = rendered.one("ClusterRole")["rules"]

    for rule in cluster_rules + [r for role in rendered.all("Role") for r in role["rules"]]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], f"wildcard in {rule}"
        assert "secrets" not in rule["resources"]
    # Cluster-wide: everything but the Lease.
    assert _grants(cluster_rules) == required - lease_grants

    binding = rendered.one("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == rendered.one("ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "zen-flow", "namespace": helm.NAMESPACE}
    ]
    assert rendered.one("ServiceAccount")["metadata"]["name"] == "zen-flow"
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "zen-flow"

    if not ha:  # no leader election: no Lease rights at all
        assert rendered.all("Role") == [] and rendered.all("RoleBinding") == []
        return
    role = rendered.one("Role")
    assert role["metadata"]["namespace"] == helm.NAMESPACE
    assert _grants(role["rules"]) == lease_grants
    lease_name = helm.env_of(_container(rendered))["ZEN_FLOW_LEASE_NAME"]
    for rule in role["rules"]:
        if rule["verbs"] != ["create"]:  # create cannot be narrowed by name
            assert rule["resourceNames"] == [lease_name]
    role_binding = rendered.one("RoleBinding")
    assert role_binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert role_binding["subjects"] == binding["subjects"]


@pytest.mark.parametrize(("cap", "expected"), [(None, 0), (250, 250)], ids=["default", "set"])
def test_max_active_jobs_reaches_the_process(cap: int | None, expected: int) -> None:
    from app import settings as settings_mod

    values = {} if cap is None else {"controller": {"maxActiveJobs": cap}}
    env = helm.env_of(_container(helm.render(values)))
    assert settings_mod.load({}, environ=env).max_active_jobs == expected


# ------------------------------------------------------------------------------------------
# The Deployment against the real settings
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "leader"),
    [({}, False), ({"leaderElection": {"enabled": True}}, True), (HA, True)],
    ids=["single", "single-forced-election", "ha"],
)
def test_deployment_env_is_accepted_by_the_real_settings(
    values: dict[str, Any], leader: bool
) -> None:
    from app import settings as settings_mod

    rendered = helm.render(values)
    container = _container(rendered)
    env = helm.env_of(container)
    known = {settings_mod.ENV_PREFIX + name.upper() for name in settings_mod.Settings.model_fields}
    unknown = {k for k in env if k.startswith(settings_mod.ENV_PREFIX)} - known
    assert not unknown, f"the chart sets env vars the process ignores: {sorted(unknown)}"

    loaded = settings_mod.load({}, environ=env)
    assert loaded.leader_elect is leader
    assert loaded.lease_namespace == helm.NAMESPACE  # from POD_NAMESPACE (downward API)
    assert not loaded.webhook_only and not loaded.embedded and loaded.kubeconfig is None
    assert container["args"] == ["serve"]

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"webhook": loaded.webhook_port, "metrics": loaded.metrics_port}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert Path(mounts["webhook-tls"]["mountPath"]) == loaded.cert_dir
    assert "subPath" not in mounts["webhook-tls"]  # subPath mounts never see a renewed Secret
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    # SIGTERM gives the process shutdown_timeout; the kubelet must not kill it earlier.
    assert pod["terminationGracePeriodSeconds"] > loaded.shutdown_timeout


def test_deployment_replicas_and_spread_with_ha() -> None:
    single = helm.render({}).one("Deployment")["spec"]
    ha = helm.render(HA).one("Deployment")["spec"]
    assert single["replicas"] == 1 and ha["replicas"] == 3
    assert "topologySpreadConstraints" not in single["template"]["spec"]
    [spread] = ha["template"]["spec"]["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == ha["selector"]["matchLabels"]
    # Rolling updates never take a webhook replica away before its successor is ready.
    assert ha["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("values", [{}, HA], ids=["single", "ha"])
def test_probes_use_the_plain_http_port(values: dict[str, Any]) -> None:
    container = _container(helm.render(values))
    by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
    probes = {
        k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert {k: (by_name[v["port"]], v["path"]) for k, v in probes.items()} == {
        "startupProbe": (8080, "/healthz"),
        "livenessProbe": (8080, "/healthz"),
        "readinessProbe": (8080, "/readyz"),
    }
    assert all(p.get("scheme", "HTTP") == "HTTP" for p in probes.values())


def test_service_routes_webhook_443_and_metrics_8080() -> None:
    rendered = helm.render({})
    service = rendered.one("Service")
    container_ports = {p["name"]: p["containerPort"] for p in _container(rendered)["ports"]}
    routes = {
        p["name"]: (p["port"], container_ports[p["targetPort"]]) for p in service["spec"]["ports"]
    }
    assert routes == {"webhook": (443, 9443), "metrics": (8080, 8080)}
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


@pytest.mark.parametrize("mode", sorted(MODES))
def test_pod_is_hardened(mode: str) -> None:
    rendered = helm.render(MODES[mode])
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["tmp"] == "/tmp" and "emptyDir" in volumes["tmp"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_platform_assigned_uids_keep_run_as_non_root() -> None:
    values = {"podSecurityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None}}
    pod = helm.render(values).one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# ------------------------------------------------------------------------------------------
# Webhook configurations and certificates
# ------------------------------------------------------------------------------------------
def _without_ca(hook: dict[str, Any]) -> dict[str, Any]:
    hook = dict(hook)
    hook["clientConfig"] = {k: v for k, v in hook["clientConfig"].items() if k != "caBundle"}
    return hook


@pytest.mark.parametrize("mode", sorted(MODES))
def test_webhook_configurations_match_the_apps_own(mode: str) -> None:
    from webhook import configuration

    rendered = helm.render(MODES[mode])
    expected = configuration.configurations(
        ca_bundle=b"unused", service_name="zen-flow", service_namespace=helm.NAMESPACE
    )
    for want in expected:
        got = rendered.one(want["kind"])
        assert got["metadata"]["name"] == want["metadata"]["name"]
        assert [_without_ca(h) for h in got["webhooks"]] == [
            _without_ca(h) for h in want["webhooks"]
        ]


def test_failure_policy_and_timeout_are_configurable() -> None:
    rendered = helm.render({"webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 3}})
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        [hook] = rendered.one(kind)["webhooks"]
        assert (hook["failurePolicy"], hook["timeoutSeconds"]) == ("Ignore", 3)


def _tls_volume_secret(rendered: helm.Rendered) -> str:
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "webhook-tls"]
    return str(volume["secret"]["secretName"])


@pytest.mark.parametrize("ha", [False, True], ids=["single", "ha"])
def test_cert_manager_mode_wiring(ha: bool) -> None:
    rendered = helm.render(HA if ha else {})
    issuer = rendered.one("Issuer")
    certificate = rendered.one("Certificate")
    assert issuer["spec"] == {"selfSigned": {}}
    assert certificate["metadata"]["namespace"] == helm.NAMESPACE
    assert certificate["spec"]["dnsNames"] == SERVICE_DNS
    assert certificate["spec"]["issuerRef"] == {
        "name": issuer["metadata"]["name"],
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    assert certificate["spec"]["secretName"] == _tls_volume_secret(rendered)
    assert rendered.all("Secret") == []  # cert-manager writes it
    inject = f"{helm.NAMESPACE}/{certificate['metadata']['name']}"
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        config = rendered.one(kind)
        assert config["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": inject}
        assert all("caBundle" not in h["clientConfig"] for h in config["webhooks"])


def test_cert_manager_mode_with_an_existing_issuer() -> None:
    ref = {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    rendered = helm.render({"certificates": {"certManager": {"issuerRef": ref}}})
    assert rendered.all("Issuer") == []
    assert rendered.one("Certificate")["spec"]["issuerRef"] == ref


def _handshake(*, ca: bytes, cert: bytes, key: bytes, server_name: str) -> str:
    """A TLS handshake in memory: the server presents cert/key, the client trusts only ca."""
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cadata=ca.decode())
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for side, obj, out, peer_in in (
            ("client", client, c_out, s_in),
            ("server", server, s_out, c_in),
        ):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            return str(client.version())
    raise AssertionError("TLS handshake did not complete")


@pytest.mark.parametrize("ha", [False, True], ids=["single", "ha"])
def test_self_signed_mode_wiring(ha: bool) -> None:
    rendered = helm.render(_merge(SELF_SIGNED, HA) if ha else SELF_SIGNED)
    assert not {"Issuer", "Certificate"} & set(rendered.kinds())
    secret = rendered.one("Secret")
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["name"] == _tls_volume_secret(rendered)
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        config = rendered.one(kind)
        assert "cert-manager.io/inject-ca-from" not in config["metadata"].get("annotations", {})
        [hook] = config["webhooks"]
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == data["ca.crt"]
    # The API server dials <service>.<namespace>.svc and trusts only the caBundle.
    for name in SERVICE_DNS:
        assert _handshake(
            ca=data["ca.crt"], cert=data["tls.crt"], key=data["tls.key"], server_name=name
        ).startswith("TLS")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(
            ca=data["ca.crt"],
            cert=data["tls.crt"],
            key=data["tls.key"],
            server_name="zen-flow.other-namespace.svc",
        )


def test_self_signed_certificate_validity_follows_values() -> None:
    from cryptography import x509

    rendered = helm.render(
        _merge(SELF_SIGNED, {"certificates": {"selfSigned": {"validityDays": 30}}})
    )
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(rendered.one("Secret")["data"]["tls.crt"])
    )
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 29 <= lifetime.days <= 31


# ------------------------------------------------------------------------------------------
# Optional objects
# ------------------------------------------------------------------------------------------
def test_optional_objects_are_off_by_default() -> None:
    kinds = set(helm.render({}).kinds())
    assert not kinds & {"PodDisruptionBudget", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"}


def test_pod_disruption_budget_and_service_monitor_select_the_pods() -> None:
    rendered = helm.render(HA)
    selector = rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    monitor = rendered.one("ServiceMonitor")
    service_labels = rendered.one("Service")["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")


def test_network_policy_opens_only_the_two_ports_and_api_server_dns() -> None:
    rendered = helm.render(HA)
    policy = rendered.one("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert sorted(p["port"] for rule in policy["ingress"] for p in rule["ports"]) == [
        "metrics",
        "webhook",
    ]
    egress_ports = sorted(
        (p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]
    )
    assert egress_ports == [("TCP", 53), ("TCP", 443), ("TCP", 6443), ("UDP", 53)]

    narrowed = helm.render(
        _merge(
            HA,
            {
                "networkPolicy": {
                    "apiServer": {"cidrs": ["10.0.0.1/32"]},
                    "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
                }
            },
        )
    ).one("NetworkPolicy")["spec"]
    api_rule = narrowed["egress"][1]
    assert api_rule["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    metrics_rule = narrowed["ingress"][1]
    assert metrics_rule["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]


def test_prometheus_rule_alerts_on_the_four_failure_kinds() -> None:
    rule = helm.render(HA).one("PrometheusRule")
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "zenflow_flows" in alerts["ZenFlowFlowsFailed"]
    assert "zenflow_step_transitions_total" in alerts["ZenFlowFlowsStuck"]
    assert "zenflow_reconcile_errors_total" in alerts["ZenFlowReconcileErrors"]
    assert "zenflow_admission_reviews_total" in alerts["ZenFlowWebhookErrors"]


def test_every_namespaced_object_lands_in_the_release_namespace() -> None:
    cluster_scoped = {
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    }
    for values in (_merge(HA), _merge(SELF_SIGNED, HA)):
        for obj in helm.render(values).objects:
            meta = obj["metadata"]
            assert len(meta["name"]) <= 63, meta["name"]
            if obj["kind"] in cluster_scoped:
                assert "namespace" not in meta
            else:
                assert meta["namespace"] == helm.NAMESPACE, obj["kind"]


def test_notes_tell_the_mode_and_leader_election() -> None:
    notes = helm.render(_merge(SELF_SIGNED, HA)).notes
    assert "Webhook certificate: self-signed" in notes
    assert "leader election on, Lease zen-flow-system/zen-flow-leader" in notes
    assert "leader election off" in helm.render({}).notes


def _doc_helm_commands() -> list[str]:
    text = (helm.ROOT / "docs" / "install.md").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip().startswith("helm ")]


def test_every_helm_command_in_the_install_guide_renders() -> None:
    commands = [c for c in _doc_helm_commands() if c.split()[1] in {"install", "upgrade"}]
    assert len(commands) >= 4
    for command in commands:
        values: dict[str, Any] = {}
        for expression in re.findall(r"--set (\S+)", command):
            values = _merge(values, helm_python.parse_set_string(expression))
        helm.render(values)  # raises on a key the schema does not know


def test_chart_app_version_is_the_package_version() -> None:
    import tomllib

    pyproject = tomllib.loads((helm.ROOT / "pyproject.toml").read_text())
    chart = yaml.safe_load((helm.CHART_DIR / "Chart.yaml").read_text())
    # The default image tag is the appVersion: it must name the code this chart was tested with.
    assert chart["appVersion"] == pyproject["project"]["version"]
    image = _container(helm.render({}))["image"]
    assert image == f"ghcr.io/kube-zen/zen-flow:{chart['appVersion']}"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_names_stay_consistent_for_another_release_and_namespace(mode: str) -> None:
    rendered = helm.render(_merge(MODES[mode], HA), name="team-a", namespace="ops")
    service = rendered.one("Service")["metadata"]["name"]
    assert service == "team-a-zen-flow"
    dns = [service, f"{service}.ops", f"{service}.ops.svc"]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        [hook] = rendered.one(kind)["webhooks"]
        assert hook["clientConfig"]["service"]["name"] == service
        assert hook["clientConfig"]["service"]["namespace"] == "ops"
    secret_name = _tls_volume_secret(rendered)
    if mode == "cert-manager":
        certificate = rendered.one("Certificate")
        assert certificate["spec"]["dnsNames"] == dns
        assert certificate["spec"]["secretName"] == secret_name
    else:
        from cryptography import x509

        secret = rendered.one("Secret")
        assert secret["metadata"]["name"] == secret_name
        cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == dns
    env = helm.env_of(_container(rendered))
    role = rendered.one("Role")
    assert role["rules"][1]["resourceNames"] == [env["ZEN_FLOW_LEASE_NAME"]]
    assert env["ZEN_FLOW_LEASE_NAME"] == "team-a-zen-flow-leader"
    subjects = rendered.one("ClusterRoleBinding")["subjects"]
    assert subjects == [{"kind": "ServiceAccount", "name": service, "namespace": "ops"}]


def test_key_file_mode_needs_the_fs_group() -> None:
    def tls_volume(values: dict[str, Any]) -> dict[str, Any]:
        pod = helm.render(values).one("Deployment")["spec"]["template"]["spec"]
        [volume] = [v for v in pod["volumes"] if v["name"] == "webhook-tls"]
        return dict(volume["secret"])

    assert tls_volume({})["defaultMode"] == 0o440  # group-readable; fsGroup owns the files
    # Without an fsGroup the files stay root-owned: keep the kubelet's default (0644) or the
    # non-root process could not read its own key.
    assert "defaultMode" not in tls_volume({"podSecurityContext": {"fsGroup": None}})
