"""kubesim calls admission webhooks as kube-apiserver does, through its real HTTPS API.

Covers, with tiny real HTTPS webhook servers (http.server + ssl in a thread, certificates from a
throw-away CA made by kubesim.tls, as kubesim's own):
- a validating webhook that denies: the Python client gets 403 with
  `admission webhook "<name>" denied the request: <message>`; real kubectl prints it;
- the AdmissionReview v1 request the webhook receives (uid, kind, resource, name, namespace,
  operation, userInfo, object, oldObject on UPDATE, dryRun, options);
- a mutating webhook whose base64 JSONPatch is applied before the object is stored, and whose
  warnings reach kubectl as `Warning:` lines;
- failurePolicy Fail (500 `failed calling webhook`) versus Ignore on an unreachable webhook;
  timeoutSeconds; a caBundle of another CA fails verification;
- a `service` reference resolved through Admission.service_resolver (certificate checked for
  `<name>.<namespace>.svc`) and the unresolved default;
- namespaceSelector and objectSelector;
- matchPolicy Equivalent (a rule for another served version of a CRD matches; the webhook sees
  the rule's version in kind/resource and the request's in requestKind/requestResource) vs Exact;
- identities: each kubeconfig context (start(users=...)) is its own user in request.userInfo
  (username, uid, groups + system:authenticated) through real kubectl and the official client;
  an unknown token is 401; `python -m kubesim --token-auth-file` (the apiserver's CSV) and its
  errors.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

import kubesim
from kubesim import tls
from tests.fixtures import kubesim as kubesim_fixtures
from tests.waiting import eventually

SERVICE_HOST = "hook.webhooks.svc"

Reply = Callable[[dict[str, Any]], dict[str, Any]]


# ------------------------------------------------------------------ certificates
# kubesim's own throw-away PKI serves the webhooks too: SANs 127.0.0.1 and SERVICE_HOST

Pki = tls.Pki


def make_pki() -> Pki:
    return tls.make_pki([SERVICE_HOST])


def ca_bundle(pki: Pki) -> str:
    """The caBundle of a webhook clientConfig: the CA certificate PEM, base64."""
    return base64.b64encode(pki.ca_pem).decode()


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


# ------------------------------------------------------------------ webhook server


@dataclass
class Hook:
    """A running HTTPS webhook: ``url`` and the AdmissionReviews it received."""

    url: str
    port: int
    reviews: list[dict[str, Any]] = field(default_factory=list)


def allow(review: dict[str, Any]) -> dict[str, Any]:
    return {"uid": review["request"]["uid"], "allowed": True}


@pytest.fixture
def start_hook(pki: Pki, tmp_path: Path) -> Iterator[Callable[..., Hook]]:
    servers: list[http.server.ThreadingHTTPServer] = []
    threads: list[threading.Thread] = []
    cert_file = tmp_path / "tls.crt"
    key_file = tmp_path / "tls.key"
    cert_file.write_bytes(pki.cert_pem)
    key_file.write_bytes(pki.key_pem)

    def start(reply: Reply = allow, *, delay: float = 0.0) -> Hook:
        hook = Hook(url="", port=0)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                review = json.loads(body)
                review["_path"] = self.path
                hook.reviews.append(review)
                if delay:
                    time.sleep(delay)
                out = json.dumps(
                    {
                        "apiVersion": "admission.k8s.io/v1",
                        "kind": "AdmissionReview",
                        "response": reply(review),
                    }
                ).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # the caller gave up (timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append(server)
        threads.append(thread)
        hook.port = server.server_address[1]
        hook.url = f"https://127.0.0.1:{hook.port}/hook"
        return hook

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ cluster helpers


@pytest.fixture
def cluster(kubesim_server: Any) -> Any:
    return kubesim_server


@pytest.fixture
def api(kube_api_client: client.ApiClient) -> client.ApiClient:
    return kube_api_client


def webhook(name: str, client_config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    hook: dict[str, Any] = {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": client_config,
        "rules": [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["configmaps"],
                "scope": "Namespaced",
            }
        ],
    }
    hook.update(extra)
    return hook


def register(api: client.ApiClient, kind: str, *hooks: dict[str, Any], name: str = "test") -> None:
    body = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": list(hooks),
    }
    reg = client.AdmissionregistrationV1Api(api)
    if kind == "ValidatingWebhookConfiguration":
        reg.create_validating_webhook_configuration(body)
    else:
        reg.create_mutating_webhook_configuration(body)


def configmap(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": {"k": "v"},
    }


def status_of(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


def kubectl(
    cluster: Any, tmp_path: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return kubesim_fixtures.kubectl(cluster, *args, cache_dir=tmp_path / "kube-cache", input=stdin)


def deny_named_bad(review: dict[str, Any]) -> dict[str, Any]:
    req = review["request"]
    if req["name"].startswith("bad"):
        return {
            "uid": req["uid"],
            "allowed": False,
            "status": {
                "code": 403,
                "reason": "Forbidden",
                "message": f"configmap {req['name']} is not allowed",
                "details": {"causes": [{"field": "metadata.name", "message": "starts with bad"}]},
            },
        }
    return {"uid": req["uid"], "allowed": True}


# ------------------------------------------------------------------ tests


def test_denial_reaches_the_python_client(
    start_hook: Callable[..., Hook], pki: Pki, api: client.ApiClient
) -> None:
    hook = start_hook(deny_named_bad)
    register(
        api,
        "ValidatingWebhookConfiguration",
        webhook("deny.kubesim.test", {"url": hook.url, "caBundle": ca_bundle(pki)}),
    )
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("default", configmap("bad-one"))
    assert info.value.status == 403
    body = status_of(info.value)
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'admission webhook "deny.kubesim.test" denied the request: configmap bad-one is not allowed'
    )
    assert body["details"]["causes"] == [{"field": "metadata.name", "message": "starts with bad"}]
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("bad-one", "default")  # nothing was stored
    core.create_namespaced_config_map("default", configmap("good"))
    assert core.read_namespaced_config_map("good", "default").data == {"k": "v"}


def test_review_request_as_kube_apiserver_sends_it(
    start_hook: Callable[..., Hook], pki: Pki, api: client.ApiClient
) -> None:
    hook = start_hook()
    register(
        api,
        "ValidatingWebhookConfiguration",
        webhook(
            "record.kubesim.test", {"url": hook.url, "caBundle": ca_bundle(pki)}, timeoutSeconds=7
        ),
    )
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", configmap("cm1"))
    core.patch_namespaced_config_map("cm1", "default", {"data": {"k": "w"}})
    core.create_namespaced_config_map("default", configmap("cm2"), dry_run="All")
    assert len(hook.reviews) == 3
    create, update, dry = hook.reviews
    assert create["apiVersion"] == "admission.k8s.io/v1"
    assert create["_path"] == "/hook?timeout=7s"
    req = create["request"]
    assert req["uid"]
    assert req["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert req["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert req["requestKind"] == req["kind"]
    assert req["requestResource"] == req["resource"]
    assert (req["name"], req["namespace"], req["operation"]) == ("cm1", "default", "CREATE")
    assert req["userInfo"]["username"]
    assert req["object"]["data"] == {"k": "v"}
    assert req["oldObject"] is None
    assert req["dryRun"] is False
    assert req["options"]["kind"] == "CreateOptions"
    ureq = update["request"]
    assert ureq["operation"] == "UPDATE"
    assert ureq["object"]["data"] == {"k": "w"}  # the patched object, not the patch
    assert ureq["oldObject"]["data"] == {"k": "v"}
    assert ureq["options"]["kind"] == "UpdateOptions"
    assert ureq["uid"] != req["uid"]
    assert dry["request"]["dryRun"] is True


def test_mutating_patch_is_applied_and_warnings_reach_kubectl(
    start_hook: Callable[..., Hook],
    pki: Pki,
    api: client.ApiClient,
    cluster: Any,
    tmp_path: Path,
) -> None:
    ops = [
        {"op": "add", "path": "/metadata/labels/mutated", "value": "yes"},
        {"op": "replace", "path": "/data/k", "value": "patched"},
    ]

    def patch(review: dict[str, Any]) -> dict[str, Any]:
        return {
            "uid": review["request"]["uid"],
            "allowed": True,
            "patchType": "JSONPatch",
            "patch": base64.b64encode(json.dumps(ops).encode()).decode(),
            "warnings": ["data.k was rewritten"],
        }

    hook = start_hook(patch)
    register(
        api,
        "MutatingWebhookConfiguration",
        webhook("mutate.kubesim.test", {"url": hook.url, "caBundle": ca_bundle(pki)}),
    )
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map("default", configmap("m1", {"a": "b"}))
    assert created.metadata.labels == {"a": "b", "mutated": "yes"}
    assert created.data == {"k": "patched"}
    stored = core.read_namespaced_config_map("m1", "default")
    assert stored.data == {"k": "patched"}
    result = kubectl(cluster, tmp_path, "create", "-f", "-", stdin=json.dumps(configmap("m2")))
    assert result.returncode == 0, result.stderr
    assert "Warning: data.k was rewritten" in result.stderr


def test_denial_printed_by_kubectl(
    start_hook: Callable[..., Hook], pki: Pki, api: client.ApiClient, cluster: Any, tmp_path: Path
) -> None:
    hook = start_hook(deny_named_bad)
    register(
        api,
        "ValidatingWebhookConfiguration",
        webhook("deny.kubesim.test", {"url": hook.url, "caBundle": ca_bundle(pki)}),
    )
    expected = (
        'admission webhook "deny.kubesim.test" denied the request: '
        "configmap bad-kubectl is not allowed"
    )
    result = kubectl(cluster, tmp_path, "create", "configmap", "bad-kubectl", "--from-literal=k=v")
    assert result.returncode != 0
    assert expected in result.stderr
    result = kubectl(
        cluster, tmp_path, "create", "-f", "-", stdin=json.dumps(configmap("bad-kubectl"))
    )
    assert result.returncode != 0
    assert f'Error from server (Forbidden): error when creating "STDIN": {expected}' in (
        result.stderr
    )


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
def test_unreachable_webhook_follows_failure_policy(
    policy: str, pki: Pki, api: client.ApiClient
) -> None:
    url = f"https://127.0.0.1:{free_port()}/nothing-listens"
    register(
        api,
        "ValidatingWebhookConfiguration",
        webhook(
            "down.kubesim.test", {"url": url, "caBundle": ca_bundle(pki)}, failurePolicy=policy
        ),
    )
    core = client.CoreV1Api(api)
    if policy == "Ignore":
        core.create_namespaced_config_map("default", configmap("through"))
        assert core.read_namespaced_config_map("through", "default").data == {"k": "v"}
        return
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("default", configmap("blocked"))
    assert info.value.status == 500
    body = status_of(info.value)
    assert body["reason"] == "InternalError"
    assert body["message"].startswith(
        'Internal error occurred: failed calling webhook "down.kubesim.test": '
        f'failed to call webhook: Post "{url}?timeout=10s": '
    )
    assert "connection refused" in body["message"]


def test_timeout_and_untrusted_certificate_fail(
    start_hook: Callable[..., Hook], pki: Pki, api: client.ApiClient
) -> None:
    slow = start_hook(delay=3.0)
    other_ca = ca_bundle(make_pki())
    trusted = start_hook()
    register(
        api,
        "ValidatingWebhookConfiguration",
        webhook(
            "slow.kubesim.test",
            {"url": slow.url, "caBundle": ca_bundle(pki)},
            timeoutSeconds=1,
            objectSelector={"matchLabels": {"hook": "slow"}},
        ),
        webhook(
            "untrusted.kubesim.test",
            {"url": trusted.url, "caBundle": other_ca},
            objectSelector={"matchLabels": {"hook": "untrusted"}},
        ),
    )
    core = client.CoreV1Api(api)
    started = time.monotonic()
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("default", configmap("s", {"hook": "slow"}))
    assert time.monotonic() - started < 2.9
    assert "context deadline exceeded" in status_of(info.value)["message"]
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("default", configmap("u", {"hook": "untrusted"}))
    message = status_of(info.value)["message"]
    assert 'failed calling webhook "untrusted.kubesim.test"' in message
    assert "certificate" in message
    assert trusted.reviews == []  # the TLS handshake failed before any request
    core.create_namespaced_config_map("default", configmap("neither"))  # no selector matched


def test_service_reference_through_the_resolver(
    start_hook: Callable[..., Hook], pki: Pki, api: client.ApiClient, cluster: Any
) -> None:
    hook = start_hook(deny_named_bad)
    service = {"namespace": "webhooks", "name": "hook", "port": 8443, "path": "/validate"}
    register(
        api,
        "ValidatingWebhookConfiguration",
        webhook("svc.kubesim.test", {"service": service, "caBundle": ca_bundle(pki)}),
    )
    core = client.CoreV1Api(api)
    # no resolver entry: https://hook.webhooks.svc:8443 does not resolve -> Fail
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("default", configmap("bad-1"))
    assert info.value.status == 500
    assert "hook.webhooks.svc" in status_of(info.value)["message"]
    cluster.admission.service_resolver = {
        ("webhooks", "hook", 8443): f"https://127.0.0.1:{hook.port}"
    }
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("default", configmap("bad-2"))
    assert info.value.status == 403
    assert "denied the request: configmap bad-2 is not allowed" in status_of(info.value)["message"]
    assert hook.reviews[-1]["_path"] == "/validate?timeout=10s"


def test_namespace_selector(
    start_hook: Callable[..., Hook], pki: Pki, api: client.ApiClient
) -> None:
    hook = start_hook(deny_named_bad)
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "guarded", "labels": {"guard": "on"}}})
    core.create_namespace({"metadata": {"name": "open"}})
    register(
        api,
        "ValidatingWebhookConfiguration",
        webhook(
            "ns.kubesim.test",
            {"url": hook.url, "caBundle": ca_bundle(pki)},
            namespaceSelector={"matchLabels": {"guard": "on"}},
        ),
    )
    core.create_namespaced_config_map("open", configmap("bad-but-open"))
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("guarded", configmap("bad-guarded"))
    assert info.value.status == 403
    assert [r["request"]["namespace"] for r in hook.reviews] == ["guarded"]


def two_version_crd() -> dict[str, Any]:
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "listKind": "WidgetList",
            },
            "versions": [
                {"name": "v1alpha1", "served": True, "storage": True, "schema": schema},
                {"name": "v1", "served": True, "storage": False, "schema": schema},
            ],
        },
    }


@pytest.mark.parametrize("policy", ["Equivalent", "Exact"])
def test_match_policy_for_another_version(
    policy: str, start_hook: Callable[..., Hook], pki: Pki, api: client.ApiClient
) -> None:
    client.ApiextensionsV1Api(api).create_custom_resource_definition(two_version_crd())
    hook = start_hook()
    rule = {
        "operations": ["CREATE"],
        "apiGroups": ["example.com"],
        "apiVersions": ["v1"],
        "resources": ["widgets"],
    }
    register(
        api,
        "ValidatingWebhookConfiguration",
        webhook(
            "eq.kubesim.test",
            {"url": hook.url, "caBundle": ca_bundle(pki)},
            rules=[rule],
            matchPolicy=policy,
        ),
    )
    custom = client.CustomObjectsApi(api)

    def create() -> None:
        custom.create_namespaced_custom_object(
            "example.com",
            "v1alpha1",
            "default",
            "widgets",
            {
                "apiVersion": "example.com/v1alpha1",
                "kind": "Widget",
                "metadata": {"name": "w1"},
                "spec": {"size": 1},
            },
        )

    eventually(lambda: create() is None, 10)  # the CRD is served as soon as it is created
    if policy == "Exact":
        assert hook.reviews == []
        return
    (review,) = hook.reviews
    req = review["request"]
    assert req["kind"] == {"group": "example.com", "version": "v1", "kind": "Widget"}
    assert req["resource"]["version"] == "v1"
    assert req["requestKind"]["version"] == "v1alpha1"
    assert req["requestResource"]["version"] == "v1alpha1"
    assert req["object"]["apiVersion"] == "example.com/v1"


# ------------------------------------------------------------------ identities (userInfo)

USERS = (
    kubesim.User("alice", groups=("approvers",), uid="uid-alice"),
    kubesim.User("bob", token="bob-static-token"),
)


@pytest.fixture
def team() -> Iterator[Any]:
    with kubesim.start(runner=False, users=USERS) as handle:
        yield handle


def test_user_info_is_the_requesting_users_per_kubectl_context(
    team: Any, start_hook: Callable[..., Hook], pki: Pki, tmp_path: Path
) -> None:
    """Each kubeconfig context is its own identity; the webhook sees it as the API server
    sends it: username, uid when set, groups ending with system:authenticated."""
    hook = start_hook()
    with contextlib.closing(kubesim_fixtures.api_client(team)) as admin:
        register(
            admin,
            "ValidatingWebhookConfiguration",
            webhook("v.test", {"url": hook.url, "caBundle": ca_bundle(pki)}),
        )
    for ctx, name in (("alice", "by-alice"), ("bob", "by-bob"), ("kubesim", "by-admin")):
        done = kubectl(team, tmp_path, "--context", ctx, "create", "configmap", name)
        assert done.returncode == 0, done.stderr
    seen = {r["request"]["name"]: r["request"]["userInfo"] for r in hook.reviews}
    assert seen == {
        "by-alice": {
            "username": "alice",
            "uid": "uid-alice",
            "groups": ["approvers", "system:authenticated"],
        },
        "by-bob": {"username": "bob", "groups": ["system:authenticated"]},
        "by-admin": {
            "username": "kubesim-admin",
            "groups": ["system:masters", "system:authenticated"],
        },
    }
    assert team.users["bob"] == "bob-static-token" and team.users["alice"]
    # the official client with a user's context is that user too
    alice = config.new_client_from_config(config_file=team.kubeconfig, context="alice")
    with contextlib.closing(alice):
        client.CoreV1Api(alice).patch_namespaced_config_map(
            "by-bob", "default", {"data": {"k": "alice"}}
        )
    assert hook.reviews[-1]["request"]["userInfo"]["username"] == "alice"
    assert hook.reviews[-1]["request"]["operation"] == "UPDATE"


def test_an_unknown_token_is_401_and_users_are_checked(team: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(Path(team.kubeconfig).read_text().replace(team.users["bob"], "not-a-token"))
    done = subprocess.run(
        [
            kubesim_fixtures.KUBECTL,
            "--kubeconfig",
            str(bad),
            "--context",
            "bob",
            "get",
            "cm",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 1
    assert "You must be logged in to the server" in done.stderr  # kubectl's words for a 401
    with pytest.raises(kubesim.UsersError, match="already used"):
        kubesim.start(users=[kubesim.User("kubesim-admin")])
    with pytest.raises(kubesim.UsersError, match="already another user's"):
        kubesim.start(users=[kubesim.User("a", token="t"), kubesim.User("b", token="t")])


def test_token_auth_file_on_the_command_line(tmp_path: Path) -> None:
    """`python -m kubesim --token-auth-file` reads the API server's CSV format."""
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('# token,user,uid,groups\ncarol-token,carol,c-1,"ops,audit"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubesim", "--no-runner", "--token-auth-file", str(tokens)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        kubeconfig = proc.stdout.readline().strip()
        doc = yaml.safe_load(Path(kubeconfig).read_text())
        assert {"name": "carol", "user": {"token": "carol-token"}} in doc["users"]
        carol = config.new_client_from_config(config_file=kubeconfig, context="carol")
        with contextlib.closing(carol):
            client.CoreV1Api(carol).list_namespace()
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    tokens.write_text("just-a-token\n")
    bad = subprocess.run(
        [sys.executable, "-m", "kubesim", "--token-auth-file", str(tokens)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert f"{tokens}:1: expected token,user,uid" in bad.stderr
    assert "Traceback" not in bad.stderr
