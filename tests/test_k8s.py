"""The Kubernetes manifests (docker/k8s), as ``kubectl kustomize`` renders them.

What each overlay must be, from the agreed deployment design: which pods hold
the database credentials, the SMTP URL and the token-minting key (only the
data holders; only the mail worker; the edge none), that every Deployment has
its three probes, resources, a PodDisruptionBudget and an autoscaler, that
every pod (Deployments, Jobs, CronJobs) is hardened, that every internal
Service is headless, that the network rules let each tier reach only the next
and only the data holders reach MySQL, that each overlay migrates, prunes
the mail queue nightly and recovers a dead worker's tasks every 5 minutes
where the queue lives, that only Prometheus reaches the metrics ports, and that
the rendered objects are valid for the Kubernetes versions scripts/k8s_check.sh
names. kubectl is part of the machine image: without it these tests fail
rather than skip (an artifact nobody can render is broken).
"""

import base64
import functools
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured
from kubernetes_validate import utils as kubernetes_validate  # type: ignore[import-untyped]

from arcana.modes import Mode as Mode_
from arcana.modes import Service, Tier, deployment_from_env

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "docker" / "k8s"
CHECK = ROOT / "scripts" / "k8s_check.sh"
OVERLAYS = ("monolithic", "layered", "microservices")

Obj = dict[str, Any]


# --- what each mode must be (/work/notes/modes-design.md, README "Kubernetes") ---------


@dataclass(frozen=True)
class Mode:
    deployments: frozenset[str]
    jobs: frozenset[str]
    cronjobs: frozenset[str]
    # Workloads (Deployments, Jobs, CronJobs) that hold DATABASE_URL, and so reach MySQL.
    database: frozenset[str]
    # The mail worker, beside whose data the queue is pruned and recovered (PRUNE, RECOVER).
    worker: str
    # Workloads holding the key that mints tokens: JWT_PRIVATE_KEY's file, or HS256's key.
    private_key: frozenset[str]
    signing_key: frozenset[str]
    # Pods the ingress controller may reach.
    edge: frozenset[str]
    # Inside the namespace: workload -> the workloads it may open connections to.
    reaches: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Groups that must not share a database (microservices: one per service).
    own_databases: tuple[frozenset[str], ...] = ()


def _set(*names: str) -> frozenset[str]:
    return frozenset(names)


# The nightly prune of the mail queue's finished tasks (docker/entrypoint.sh prune),
# and the recovery of a dead worker's tasks every 5 minutes (... recover).
PRUNE = "prune-tasks"
RECOVER = "recover-tasks"
USERS = _set("users-rest", "users-grpc", "users-internal", "users-worker")
AUTH = _set("auth-rest", "auth-grpc", "auth-internal")
MODES: dict[str, Mode] = {
    "monolithic": Mode(
        deployments=_set("rest", "grpc", "worker"),
        jobs=_set("migrate"),
        cronjobs=_set(PRUNE, RECOVER),
        database=_set("rest", "grpc", "migrate", "worker", PRUNE, RECOVER),
        worker="worker",
        private_key=_set(),
        signing_key=_set("rest", "grpc", "migrate", "worker", PRUNE, RECOVER),
        edge=_set("rest", "grpc"),
    ),
    "layered": Mode(
        deployments=_set("rest", "grpc", "service", "repository", "admin", "worker"),
        jobs=_set("migrate"),
        cronjobs=_set(PRUNE, RECOVER),
        database=_set("repository", "admin", "migrate", "worker", PRUNE, RECOVER),
        worker="worker",
        private_key=_set("service"),
        signing_key=_set(),
        edge=_set("rest", "grpc"),
        reaches={
            "rest": _set("service"),
            "grpc": _set("service"),
            "service": _set("repository"),
        },
    ),
    "microservices": Mode(
        deployments=_set("gateway") | USERS | AUTH,
        jobs=_set("migrate-users", "migrate-auth"),
        cronjobs=_set(PRUNE, RECOVER),
        database=USERS | AUTH | _set("migrate-users", "migrate-auth", PRUNE, RECOVER),
        worker="users-worker",
        # migrate-auth too: the auth service's settings refuse to load without it.
        private_key=AUTH | _set("migrate-auth"),
        signing_key=_set(),
        edge=_set("gateway"),
        reaches={
            "gateway": _set("users-rest", "users-grpc", "auth-rest", "auth-grpc"),
            # The mail worker calls no other service: the network lets it not.
            **{name: _set("auth-internal") for name in USERS - {"users-worker"}},
            **{name: _set("users-internal") for name in AUTH},
        },
        own_databases=(
            USERS | _set("migrate-users", PRUNE, RECOVER),
            AUTH | _set("migrate-auth"),
        ),
    ),
}
PRIVATE_KEY_FILE = "jwt-private.pem"


# --- rendering ----------------------------------------------------------------------------


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not installed: docker/k8s cannot be rendered (kubectl kustomize)")
    return path


def render(directory: Path) -> list[Obj]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def base_name(name: str) -> str:
    """A generated ConfigMap's or Secret's name without kustomize's hash suffix."""
    return re.sub(r"-[a-z0-9]{10}$", "", name)


@dataclass
class Workload:
    kind: str
    name: str
    obj: Obj

    @property
    def template(self) -> Obj:
        """The pod template (a CronJob's is in its Job template)."""
        spec = self.obj["spec"]
        if self.kind == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        template: Obj = spec["template"]
        return template

    @property
    def pod(self) -> Obj:
        pod: Obj = self.template["spec"]
        return pod

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.template["metadata"]["labels"]
        return labels

    @property
    def containers(self) -> list[Obj]:
        containers: list[Obj] = self.pod["containers"]
        return containers + list(self.pod.get("initContainers", []))


class Rendered:
    """One overlay's objects, and what its pods hold and may reach."""

    def __init__(self, objects: list[Obj]) -> None:
        self.objects = objects

    def of_kind(self, kind: str) -> list[Obj]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def named(self, kind: str) -> dict[str, Obj]:
        return {obj["metadata"]["name"]: obj for obj in self.of_kind(kind)}

    @functools.cached_property
    def workloads(self) -> dict[str, Workload]:
        return {
            obj["metadata"]["name"]: Workload(obj["kind"], obj["metadata"]["name"], obj)
            for obj in self.objects
            if obj["kind"] in ("Deployment", "Job", "CronJob")
        }

    def deployments(self) -> list[Workload]:
        return [w for w in self.workloads.values() if w.kind == "Deployment"]

    def secret_keys(self, name: str) -> set[str]:
        secret = self.named("Secret")[name]
        return set(secret.get("data", {})) | set(secret.get("stringData", {}))

    def configmap_keys(self, name: str) -> set[str]:
        return set(self.named("ConfigMap")[name].get("data", {}))

    def secrets_referenced(self, workload: Workload) -> dict[str, set[str]]:
        """Secret name -> the keys of it this pod can read, however it refers to it."""
        held: dict[str, set[str]] = {}
        for container in workload.containers:
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    name = source["secretRef"]["name"]
                    held.setdefault(name, set()).update(self.secret_keys(name))
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    held.setdefault(ref["name"], set()).add(ref["key"])
        for volume in workload.pod.get("volumes", []):
            sources = [volume] + [
                source for source in volume.get("projected", {}).get("sources", [])
            ]
            for source in sources:
                secret = source.get("secret")
                if secret:
                    name = secret.get("secretName") or secret["name"]
                    items = {item["key"] for item in secret.get("items", [])}
                    held.setdefault(name, set()).update(items or self.secret_keys(name))
        return held

    def holds(self, workload: Workload, key: str) -> bool:
        return any(key in keys for keys in self.secrets_referenced(workload).values())

    def configmap_data(self, name: str) -> dict[str, str]:
        return dict(self.named("ConfigMap")[name].get("data", {}))

    def env_names(self, workload: Workload) -> set[str]:
        names: set[str] = set()
        for container in workload.containers:
            names |= {variable["name"] for variable in container.get("env", [])}
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    names |= self.secret_keys(source["secretRef"]["name"])
                if "configMapRef" in source:
                    names |= self.configmap_keys(source["configMapRef"]["name"])
        return names


@pytest.fixture(scope="module")
def overlays() -> dict[str, Rendered]:
    return {name: Rendered(render(K8S / "overlays" / name)) for name in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def mode(request: pytest.FixtureRequest, overlays: dict[str, Rendered]) -> tuple[Mode, Rendered]:
    return MODES[request.param], overlays[request.param]


# --- label selectors and network policies --------------------------------------------------


def selects(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (an empty selector selects everything)."""
    if selector is None:
        return False
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = set(expression.get("values", []))
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


def _policies_for(rendered: Rendered, workload: Workload, direction: str) -> list[Obj]:
    return [
        policy
        for policy in rendered.of_kind("NetworkPolicy")
        if direction in policy["spec"].get("policyTypes", [])
        and selects(policy["spec"]["podSelector"], workload.labels)
    ]


def _ports(rule: Obj) -> set[int] | None:
    """The TCP ports a rule allows (None: every port)."""
    if "ports" not in rule:
        return None
    return {port["port"] for port in rule["ports"] if port.get("protocol", "TCP") == "TCP"}


def _port_allowed(rule: Obj, port: int) -> bool:
    allowed = _ports(rule)
    return allowed is None or port in allowed


def _allows(rule_peers: list[Obj] | None, peer: Workload | None) -> bool:
    """Whether a rule's peer list admits ``peer`` (a pod of this namespace) or, for
    None, something outside the namespace."""
    if not rule_peers:
        return True  # no "from"/"to": every peer
    for entry in rule_peers:
        if peer is None and ("ipBlock" in entry or "namespaceSelector" in entry):
            return True
        # Only a bare podSelector means this namespace's pods.
        bare = set(entry) == {"podSelector"}
        if bare and peer is not None and selects(entry["podSelector"], peer.labels):
            return True
    return False


def can_connect(rendered: Rendered, source: Workload, target: Workload, port: int) -> bool:
    """Both ends' policies must allow it: egress at the source, ingress at the target."""
    egress = any(
        _allows(rule.get("to"), target) and _port_allowed(rule, port)
        for policy in _policies_for(rendered, source, "Egress")
        for rule in policy["spec"].get("egress", [])
    )
    ingress = any(
        _allows(rule.get("from"), source) and _port_allowed(rule, port)
        for policy in _policies_for(rendered, target, "Ingress")
        for rule in policy["spec"].get("ingress", [])
    )
    return egress and ingress


_PEERS = {"Egress": ("egress", "to"), "Ingress": ("ingress", "from")}


def outside_ports(rendered: Rendered, workload: Workload, direction: str) -> set[int]:
    """TCP ports this pod may reach (Egress) or be reached on (Ingress) from
    outside the namespace (0: any port)."""
    rules, peers = _PEERS[direction]
    ports: set[int] = set()
    for policy in _policies_for(rendered, workload, direction):
        for rule in policy["spec"].get(rules, []):
            if _allows(rule.get(peers), None):
                allowed = _ports(rule)
                ports |= {0} if allowed is None else allowed
    return ports


def container_ports(workload: Workload) -> set[int]:
    return {
        port["containerPort"]
        for container in workload.containers
        for port in container.get("ports", [])
    }


# --- the workloads and their secrets ---------------------------------------------------------


def test_each_overlay_runs_the_workloads_of_its_mode(mode: tuple[Mode, Rendered]) -> None:
    expected, rendered = mode
    assert {w.name for w in rendered.deployments()} == expected.deployments
    assert set(rendered.named("Job")) == expected.jobs
    assert set(rendered.named("CronJob")) == expected.cronjobs
    assert all(
        obj["metadata"].get("namespace") == "arcana"
        for obj in rendered.objects
        if obj["kind"] != "Namespace"
    )


def test_only_the_data_holders_get_database_url(mode: tuple[Mode, Rendered]) -> None:
    expected, rendered = mode
    with_url = {
        w.name for w in rendered.workloads.values() if "DATABASE_URL" in rendered.env_names(w)
    }
    assert with_url == expected.database
    # Nowhere but in a Secret: no literal, no ConfigMap.
    for configmap in rendered.of_kind("ConfigMap"):
        assert "DATABASE_URL" not in configmap.get("data", {}), configmap["metadata"]["name"]
    for workload in rendered.workloads.values():
        for container in workload.containers:
            for variable in container.get("env", []):
                assert variable["name"] != "DATABASE_URL" or "valueFrom" in variable


def test_no_other_pod_references_a_database_secret(mode: tuple[Mode, Rendered]) -> None:
    """The edge (controller tier, gateway) and the middle tiers cannot read a
    Secret holding DATABASE_URL by any route: env, envFrom or a mounted volume."""
    expected, rendered = mode
    for workload in rendered.workloads.values():
        if workload.name in expected.database:
            continue
        for name, keys in rendered.secrets_referenced(workload).items():
            assert "DATABASE_URL" not in rendered.secret_keys(name), (workload.name, name)
            assert "DATABASE_URL" not in keys


def test_the_edge_holds_no_database_secret(mode: tuple[Mode, Rendered]) -> None:
    expected, rendered = mode
    for name in expected.edge - expected.database:  # monolithic: the edge holds everything
        workload = rendered.workloads[name]
        assert not rendered.holds(workload, "DATABASE_URL"), name
        assert workload.labels.get("arcana.cloud/database") != "true", name


def test_each_service_has_its_own_database(mode: tuple[Mode, Rendered]) -> None:
    expected, rendered = mode
    databases: list[set[str]] = []
    for group in expected.own_databases:
        secrets_of_group = {
            base_name(name)
            for member in group
            for name in rendered.secrets_referenced(rendered.workloads[member])
            if "DATABASE_URL" in rendered.secret_keys(name)
        }
        assert len(secrets_of_group) == 1, (sorted(group), secrets_of_group)
        databases.append(secrets_of_group)
    assert len({frozenset(db) for db in databases}) == len(databases)


def test_only_the_minting_pods_hold_the_private_key(mode: tuple[Mode, Rendered]) -> None:
    expected, rendered = mode
    workloads = rendered.workloads.values()
    assert {
        w.name for w in workloads if rendered.holds(w, PRIVATE_KEY_FILE)
    } == expected.private_key
    assert {w.name for w in workloads if "JWT_PRIVATE_KEY" in rendered.env_names(w)} == (
        expected.private_key
    )
    assert {w.name for w in workloads if rendered.holds(w, "JWT_SIGNING_KEY")} == (
        expected.signing_key
    )


def test_every_pod_has_what_its_settings_refuse_to_start_without(
    mode: tuple[Mode, Rendered],
) -> None:
    """The deployment variables each pod's settings parse (arcana.modes) and the
    JWT key its role needs (arcana.settings.base: the minting process the private
    key, the verifying one the public key), for every Deployment, Job and
    CronJob: a migrate Job short of a peer's address never gets to migrate."""
    _, rendered = mode
    for workload in rendered.workloads.values():
        if workload.name == "gateway":
            continue  # nginx: no Django settings
        names = rendered.env_names(workload)
        env = {
            variable["name"]: variable.get("value", "x")
            for container in workload.containers
            for variable in container.get("env", [])
        }
        env |= {name: "x" for name in names - set(env)}
        for container in workload.containers:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    env |= rendered.configmap_data(source["configMapRef"]["name"])
        try:
            deployment = deployment_from_env(env)
        except ImproperlyConfigured as exc:
            raise AssertionError(f"{workload.kind} {workload.name}: {exc}") from None
        if deployment.mode is Mode_.MONOLITHIC:
            assert "JWT_SIGNING_KEY" in names or "JWT_PRIVATE_KEY" in names, workload.name
            continue
        mints = deployment.tier is Tier.SERVICE or deployment.service is Service.AUTH
        verifies = deployment.tier is Tier.CONTROLLER or deployment.service is Service.USERS
        assert ("JWT_PRIVATE_KEY" in names) == mints, workload.name
        if verifies:
            assert "JWT_PUBLIC_KEY" in names, workload.name


def test_secrets_are_mounted_where_they_are_read(mode: tuple[Mode, Rendered]) -> None:
    """A Secret volume is mounted by the container, and the env names its files."""
    _, rendered = mode
    for workload in rendered.workloads.values():
        mounts = {
            mount["name"]: mount["mountPath"]
            for container in workload.containers
            for mount in container.get("volumeMounts", [])
        }
        values = {
            variable.get("value", "")
            for container in workload.containers
            for variable in container.get("env", [])
        }
        for volume in workload.pod.get("volumes", []):
            if "secret" not in volume:
                continue
            assert volume["name"] in mounts, (workload.name, volume["name"])
            path = mounts[volume["name"]]
            assert any(value.startswith(path + "/") for value in values), (workload.name, path)


def test_committed_secrets_are_placeholders(mode: tuple[Mode, Rendered]) -> None:
    """Nothing real is committed: every value is marked as an example, and
    production settings refuse the keys ("change-me")."""
    _, rendered = mode
    generated = rendered.of_kind("Secret") + [
        configmap
        for configmap in rendered.of_kind("ConfigMap")
        if base_name(configmap["metadata"]["name"]) == "arcana-jwt-public"
    ]
    assert generated
    for obj in generated:
        for key, value in obj.get("data", {}).items():
            text = base64.b64decode(value).decode() if obj["kind"] == "Secret" else value
            assert "EXAMPLE ONLY" in text or "change-me" in text or ".example.invalid" in text, (
                obj["metadata"]["name"],
                key,
            )
            if key.endswith("_KEY"):
                assert "change-me" in text


# --- pods: probes, resources, hardening, budgets, autoscalers --------------------------------


def test_every_deployment_has_three_probes_and_resources(mode: tuple[Mode, Rendered]) -> None:
    _, rendered = mode
    for workload in rendered.deployments():
        for container in workload.containers:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, (workload.name, probe)
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert set(resources.get(bound, {})) >= {"cpu", "memory"}, (workload.name, bound)


def test_probes_fit_each_role(mode: tuple[Mode, Rendered]) -> None:
    """REST: HTTP /healthz and /readyz. Public gRPC: native grpc readiness.
    Internal tiers (mutual TLS, which the kubelet cannot speak): the exec
    probe with the pod's certificate. Liveness never follows a dependency."""
    _, rendered = mode
    roles = {w.name: w.labels.get("arcana.cloud/role") for w in rendered.deployments()}
    for workload in rendered.deployments():
        (container,) = workload.pod["containers"]
        role = roles[workload.name]
        ready, live, start = (
            container[probe] for probe in ("readinessProbe", "livenessProbe", "startupProbe")
        )
        if role in ("rest", "gateway"):
            assert live["httpGet"]["path"] == start["httpGet"]["path"] == "/healthz"
        if role == "rest":
            assert ready["httpGet"]["path"] == "/readyz"
            assert {"name": "Host", "value": "localhost"} in ready["httpGet"]["httpHeaders"]
        elif role == "grpc":
            assert ready["grpc"]["port"] == 50051
            for probe in (live, start):
                assert probe["exec"]["command"][1:] == [
                    "/app/docker/healthcheck.py",
                    "grpc",
                    "--alive",
                ]
        elif role == "tier":
            assert "grpc" not in ready
            assert "grpc" not in live
            assert ready["exec"]["command"][1:] == ["/app/docker/healthcheck.py", "tier"]
            for probe in (live, start):
                assert probe["exec"]["command"][1:] == [
                    "/app/docker/healthcheck.py",
                    "tier",
                    "--alive",
                ]
            env = {variable["name"]: variable.get("value") for variable in container["env"]}
            assert int(env["TIER_PORT"]) in container_ports(workload)
            assert {
                "ARCANA_INTERNAL_TLS_CERT",
                "ARCANA_INTERNAL_TLS_KEY",
                "ARCANA_INTERNAL_TLS_CA",
            } <= set(env)
        elif role == "worker":  # no port: the exec check, while it runs
            for probe in (ready, live, start):
                assert probe["exec"]["command"][1:] == ["/app/docker/healthcheck.py", "worker"]
            assert not container_ports(workload)
        else:
            assert role == "gateway", (workload.name, role)


def test_containers_are_non_root_and_read_only(mode: tuple[Mode, Rendered]) -> None:
    _, rendered = mode
    for workload in rendered.workloads.values():
        pod_security = workload.pod.get("securityContext", {})
        assert workload.pod.get("automountServiceAccountToken") is False, workload.name
        for container in workload.containers:
            security = {**pod_security, **container.get("securityContext", {})}
            assert security.get("runAsNonRoot") is True, workload.name
            assert security.get("readOnlyRootFilesystem") is True, workload.name
            assert security.get("allowPrivilegeEscalation") is False, workload.name
            assert security.get("capabilities", {}).get("drop") == ["ALL"], workload.name
            assert set(container.get("resources", {}).get("limits", {})) >= {"cpu", "memory"}
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]  # noqa: S108
            assert len(tmp) == 1, workload.name
            (volume,) = [v for v in workload.pod["volumes"] if v["name"] == tmp[0]["name"]]
            assert "emptyDir" in volume


def test_every_deployment_has_a_budget_and_an_autoscaler(mode: tuple[Mode, Rendered]) -> None:
    _, rendered = mode
    deployments = rendered.deployments()
    budgets = rendered.of_kind("PodDisruptionBudget")
    scalers = rendered.of_kind("HorizontalPodAutoscaler")
    assert all(obj["apiVersion"] == "autoscaling/v2" for obj in scalers)
    for workload in deployments:
        mine = [b for b in budgets if selects(b["spec"]["selector"], workload.labels)]
        assert len(mine) == 1, workload.name
        # The budget selects this Deployment's pods and no other's.
        others = [w for w in deployments if w is not workload]
        assert not any(selects(mine[0]["spec"]["selector"], w.labels) for w in others)
        assert "replicas" not in workload.obj["spec"], f"{workload.name}: the autoscaler owns it"
        (scaler,) = [s for s in scalers if s["spec"]["scaleTargetRef"]["name"] == workload.name]
        assert scaler["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        # One unavailable at a time: a single-replica workload can still be drained.
        assert mine[0]["spec"].get("maxUnavailable") == 1


def test_migration_jobs_run_migrate_with_their_database(mode: tuple[Mode, Rendered]) -> None:
    expected, rendered = mode
    for name in expected.jobs:
        job = rendered.workloads[name]
        (container,) = job.pod["containers"]
        assert container["args"] == ["migrate"]
        assert job.pod["restartPolicy"] in ("Never", "OnFailure")
        assert rendered.holds(job, "DATABASE_URL")


def test_only_the_mail_worker_holds_the_smtp_url(mode: tuple[Mode, Rendered]) -> None:
    """EMAIL_URL may carry the SMTP password: the worker sends, nothing else does
    (not the prune or the recovery, which run beside it)."""
    expected, rendered = mode
    assert {
        w.name for w in rendered.workloads.values() if "EMAIL_URL" in rendered.env_names(w)
    } == {expected.worker}


def _daily(schedule: str) -> bool:
    """A five-field cron schedule that fires once a day, at a fixed minute and hour."""
    fields = schedule.split()
    return (
        len(fields) == 5
        and all(field.isdigit() for field in fields[:2])
        and int(fields[0]) < 60
        and int(fields[1]) < 24
        and fields[2:] == ["*", "*", "*"]
    )


def _deployment_env(workload: Workload) -> dict[str, str]:
    """The variables that say which process of which mode this is."""
    (container,) = workload.pod["containers"]
    names = ("ARCANA_MODE", "ARCANA_TIER", "ARCANA_SERVICE", "ARCANA_AUTH_ADDR", "JWT_PUBLIC_KEY")
    return {v["name"]: v["value"] for v in container.get("env", []) if v["name"] in names}


def _database_secrets(rendered: Rendered, workload: Workload) -> set[str]:
    return {
        name
        for name in rendered.secrets_referenced(workload)
        if "DATABASE_URL" in rendered.secret_keys(name)
    }


def _runs_beside_the_worker(
    expected: Mode, rendered: Rendered, name: str, role: str
) -> tuple[Obj, dict[str, str | None]]:
    """CronJob ``name`` runs docker/entrypoint.sh ``role``, one run at a time and
    bounded, as the same process of the same mode as the mail worker, on the
    worker's database (where the queue table is); its spec and its env."""
    cronjob = rendered.workloads[name]
    spec: Obj = cronjob.obj["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 1 <= spec["successfulJobsHistoryLimit"] <= 3
    assert 1 <= spec["failedJobsHistoryLimit"] <= 3
    job = spec["jobTemplate"]["spec"]
    assert 0 < job["activeDeadlineSeconds"] <= 3600
    assert 0 <= job["backoffLimit"] <= 3
    assert cronjob.pod["restartPolicy"] == "Never"

    (container,) = cronjob.pod["containers"]
    assert container["command"] == ["/app/docker/entrypoint.sh"]
    assert container["args"] == [role]
    assert cronjob.labels["arcana.cloud/role"] == role

    worker = rendered.workloads[expected.worker]
    assert cronjob.labels["arcana.cloud/tier"] == worker.labels["arcana.cloud/tier"]
    assert _deployment_env(cronjob) == _deployment_env(worker)
    held = _database_secrets(rendered, cronjob)
    assert held
    assert held == _database_secrets(rendered, worker)
    # The same pod as the other queue job: secrets, mounts, resources.
    other = rendered.workloads[RECOVER if name == PRUNE else PRUNE]
    assert rendered.secrets_referenced(cronjob) == rendered.secrets_referenced(other)
    assert cronjob.pod.get("volumes") == other.pod.get("volumes")
    (theirs,) = other.pod["containers"]
    for key in ("envFrom", "volumeMounts", "resources", "securityContext"):
        assert container.get(key) == theirs.get(key), key
    return spec, {v["name"]: v.get("value") for v in container.get("env", [])}


def test_the_mail_queue_is_pruned_nightly_beside_the_worker(
    mode: tuple[Mode, Rendered],
) -> None:
    spec, env = _runs_beside_the_worker(*mode, PRUNE, "prune")
    assert _daily(spec["schedule"]), spec["schedule"]
    assert re.fullmatch(r"[0-9]+", env.get("TASK_RESULTS_KEEP_DAYS") or ""), env


def test_a_dead_workers_tasks_are_recovered_every_five_minutes(
    mode: tuple[Mode, Rendered],
) -> None:
    """CronJob recover-tasks (docker/entrypoint.sh recover): every 5 minutes,
    a run never outliving the next, with the thresholds of a stuck task."""
    spec, env = _runs_beside_the_worker(*mode, RECOVER, "recover")
    assert spec["schedule"] == "*/5 * * * *"
    assert spec["startingDeadlineSeconds"] < 300
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] < 300
    for name in ("TASK_STUCK_AFTER_SECONDS", "TASK_STUCK_MAX_RUNS"):
        assert re.fullmatch(r"[1-9][0-9]*", env.get(name) or ""), env
    # A stuck task is one claimed longer ago than any mail takes (EMAIL_TIMEOUT: 10 s).
    assert int(env["TASK_STUCK_AFTER_SECONDS"] or 0) >= 300


def test_cronjobs_get_the_same_pod_defaults_as_deployments() -> None:
    """components/workload patches a CronJob's pod template (one level deeper)
    with a copy of pod-defaults.yaml: the two must not drift apart."""
    component = K8S / "components" / "workload"
    deployment = yaml.safe_load((component / "pod-defaults.yaml").read_text())
    cronjob = yaml.safe_load((component / "pod-defaults-cronjob.yaml").read_text())
    assert cronjob["kind"] == "CronJob"
    assert cronjob["spec"]["jobTemplate"]["spec"]["template"] == deployment["spec"]["template"]
    kustomization = yaml.safe_load((component / "kustomization.yaml").read_text())
    kinds: dict[str, set[str]] = {}  # patch file -> the kinds it is applied to
    for patch in kustomization["patches"]:
        kinds.setdefault(patch["path"], set()).add(patch["target"]["kind"])
    assert kinds["pod-defaults.yaml"] == {"Deployment", "Job"}
    assert kinds["pod-defaults-cronjob.yaml"] == {"CronJob"}


def test_processes_run_their_role(mode: tuple[Mode, Rendered]) -> None:
    """docker/entrypoint.sh ROLE with the role its label (and probes) say."""
    _, rendered = mode
    for workload in rendered.deployments():
        role = workload.labels["arcana.cloud/role"]
        (container,) = workload.pod["containers"]
        if role == "gateway":
            assert container["command"][0] == "nginx"
            assert rendered.secrets_referenced(workload) == {}
            continue
        assert container["command"] == ["/app/docker/entrypoint.sh"]
        assert container["args"] == [role]


METRICS_PORT = 9100


def test_rest_grpc_and_tier_pods_serve_metrics_and_say_where(mode: tuple[Mode, Rendered]) -> None:
    """Port 9100 named "metrics", GRPC_METRICS_* (gRPC and tier processes) or
    REST_METRICS_* (the REST server's master) set to it, prometheus.io annotations."""
    _, rendered = mode
    metered = set()
    for workload in rendered.deployments():
        role = workload.labels["arcana.cloud/role"]
        annotations = workload.template["metadata"].get("annotations", {})
        variable = {"grpc": "GRPC", "tier": "GRPC", "rest": "REST"}.get(role)
        if variable is None:
            assert "prometheus.io/scrape" not in annotations, workload.name
            continue
        metered.add(role)
        (container,) = workload.pod["containers"]
        env = {item["name"]: item.get("value") for item in container.get("env", [])}
        assert env[f"{variable}_METRICS_HOST"] == "0.0.0.0"  # noqa: S104  (the pod's own address)
        assert env[f"{variable}_METRICS_PORT"] == str(METRICS_PORT)
        assert {"name": "metrics", "containerPort": METRICS_PORT} in container["ports"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == "9100"
        assert annotations["prometheus.io/path"] == "/metrics"
    assert {"rest", "grpc"} <= metered


# --- Services, Ingress, network rules --------------------------------------------------------


def test_internal_services_are_headless(mode: tuple[Mode, Rendered]) -> None:
    """Every Service but the Ingress backends is headless: gRPC callers resolve
    each replica (dns:///name:port) and balance per call."""
    expected, rendered = mode
    backends = {
        path["backend"]["service"]["name"]
        for ingress in rendered.of_kind("Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"rest", "grpc"}
    services = rendered.named("Service")
    for name, service in services.items():
        selected = [
            w
            for w in rendered.deployments()
            if selects({"matchLabels": service["spec"]["selector"]}, w.labels)
        ]
        assert selected, f"Service {name} selects no pods"
        for workload in selected:
            names = {p.get("name") for c in workload.containers for p in c.get("ports", [])}
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in names | container_ports(workload), (name, port)
        if name in backends:
            assert {w.name for w in selected} <= expected.edge
        else:
            assert service["spec"].get("clusterIP") == "None", f"Service {name} is not headless"


def test_peer_addresses_name_headless_services(mode: tuple[Mode, Rendered]) -> None:
    _, rendered = mode
    services = rendered.named("Service")
    for workload in rendered.workloads.values():
        for container in workload.containers:
            for variable in container.get("env", []):
                if not variable["name"].endswith("_ADDR"):
                    continue
                match = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", variable["value"])
                assert match, (workload.name, variable)
                service = services[match.group(1)]
                assert service["spec"]["clusterIP"] == "None"
                assert int(match.group(2)) in {port["port"] for port in service["spec"]["ports"]}


def test_everything_is_denied_unless_allowed(mode: tuple[Mode, Rendered]) -> None:
    _, rendered = mode
    deny = [
        policy
        for policy in rendered.of_kind("NetworkPolicy")
        if policy["spec"]["podSelector"] == {}
        and set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
    ]
    assert len(deny) == 1


def test_each_tier_reaches_only_the_next(mode: tuple[Mode, Rendered]) -> None:
    expected, rendered = mode
    workloads = rendered.workloads.values()
    for source in workloads:
        reached = {
            target.name
            for target in workloads
            if target is not source
            and any(can_connect(rendered, source, target, port) for port in container_ports(target))
        }
        assert reached == expected.reaches.get(source.name, frozenset()), source.name


def test_only_the_data_holders_reach_mysql(mode: tuple[Mode, Rendered]) -> None:
    expected, rendered = mode
    for workload in rendered.workloads.values():
        outside = outside_ports(rendered, workload, "Egress")
        assert 0 not in outside, f"{workload.name} may reach any port outside"
        assert (3306 in outside) == (workload.name in expected.database), workload.name
        assert workload.labels.get("arcana.cloud/database") == (
            "true" if workload.name in expected.database else None
        )
        # DNS, Redis (and its Sentinels), for data holders MySQL, and for the
        # mail worker alone SMTP: nothing else.
        smtp = {25, 465, 587}
        mails = workload.labels.get("arcana.cloud/role") == "worker"
        assert bool(outside & smtp) == mails, workload.name
        assert outside <= {53, 6379, 26379, 3306} | (smtp if mails else set()), workload.name


def _metered(workload: Workload) -> bool:
    return workload.labels.get("arcana.cloud/metrics") == "true"


def test_only_the_edge_and_the_scraper_are_reached_from_outside(
    mode: tuple[Mode, Rendered],
) -> None:
    expected, rendered = mode
    for workload in rendered.workloads.values():
        inbound = outside_ports(rendered, workload, "Ingress")
        # The metrics port is Prometheus's (test below), never the public's.
        assert (METRICS_PORT in inbound) == _metered(workload), workload.name
        inbound -= {METRICS_PORT}
        if workload.name in expected.edge:
            assert container_ports(workload) - {METRICS_PORT} <= inbound <= {8000, 50051}, (
                workload.name
            )
        else:
            assert inbound == set(), workload.name


METRICS_POLICY = "metrics-from-prometheus"
PROMETHEUS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}


def _metrics_ports(workload: Workload) -> set[int]:
    return {
        port["containerPort"]
        for container in workload.containers
        for port in container.get("ports", [])
        if port.get("name") == "metrics"
    }


def test_only_prometheus_reaches_the_metrics_ports(mode: tuple[Mode, Rendered]) -> None:
    """NetworkPolicy metrics-from-prometheus selects exactly the pods with a
    metrics port, opens that port and only it, to Prometheus pods of the
    namespace monitoring (one peer entry: both selectors must match), and no
    other policy opens the metrics port to anyone."""
    _, rendered = mode
    policy = rendered.named("NetworkPolicy")[METRICS_POLICY]
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert "egress" not in spec
    (rule,) = spec["ingress"]
    assert rule["from"] == [PROMETHEUS]
    assert rule["ports"] == [{"protocol": "TCP", "port": METRICS_PORT}]

    metered = [w for w in rendered.workloads.values() if _metrics_ports(w)]
    assert {"rest", "grpc"} <= {w.labels["arcana.cloud/role"] for w in metered}
    for workload in rendered.workloads.values():
        ports = _metrics_ports(workload)
        assert selects(spec["podSelector"], workload.labels) == bool(ports), workload.name
        assert _metered(workload) == bool(ports), workload.name
        if ports:
            assert ports == {METRICS_PORT}, workload.name
            annotations = workload.template["metadata"]["annotations"]
            assert annotations["prometheus.io/port"] == str(METRICS_PORT)

    for workload in metered:
        for other in _policies_for(rendered, workload, "Ingress"):
            if other is policy:
                continue
            for other_rule in other["spec"].get("ingress", []):
                assert not _port_allowed(other_rule, METRICS_PORT), (
                    workload.name,
                    other["metadata"]["name"],
                )
        # Nor does any pod of the namespace reach it.
        assert not any(
            can_connect(rendered, source, workload, METRICS_PORT)
            for source in rendered.workloads.values()
        ), workload.name


# --- validity for Kubernetes, the check script, and the production recipe ---------------------


def supported_versions() -> list[str]:
    """The versions scripts/k8s_check.sh validates against (its K8S_VERSIONS default)."""
    match = re.search(r"K8S_VERSIONS:-([0-9. ]+)\}", CHECK.read_text())
    assert match, "scripts/k8s_check.sh names no default K8S_VERSIONS"
    return match.group(1).split()


@pytest.fixture
def cached_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    # kubernetes-validate parses its 1.5 MB definitions file for every object.
    monkeypatch.setattr(
        kubernetes_validate,
        "schema_contents",
        functools.lru_cache(maxsize=None)(kubernetes_validate.schema_contents),
    )


@pytest.mark.usefixtures("cached_schemas")
@pytest.mark.parametrize("version", supported_versions())
def test_rendered_objects_are_valid_kubernetes(overlays: dict[str, Rendered], version: str) -> None:
    for rendered in overlays.values():
        for obj in rendered.objects:
            # Raises on an unknown kind (no schema) and, strict, on an unknown field.
            kubernetes_validate.validate(obj, version, strict=True)


def test_check_script_passes_and_fails(tmp_path: Path) -> None:
    """scripts/k8s_check.sh (what CI runs) passes a valid overlay and fails an
    invalid field and a kind with no schema."""
    kubectl()
    good = tmp_path / "good"
    good.mkdir()
    (good / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (good / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n"
    )
    field = tmp_path / "field"
    shutil.copytree(good, field)
    (field / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\nbogus: 1\n"
    )
    kind = tmp_path / "kind"
    shutil.copytree(good, kind)
    (kind / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMapX\nmetadata: {name: x}\n")
    env = {**os.environ, "K8S_VERSIONS": supported_versions()[0]}
    for directory, status in ((good, 0), (field, 1), (kind, 1)):
        result = subprocess.run(
            ["bash", str(CHECK), str(directory)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert result.returncode == status, (directory.name, result.stdout, result.stderr)


def _secret_names(workload: Workload) -> set[str]:
    names = {
        source["secretRef"]["name"]
        for container in workload.containers
        for source in container.get("envFrom", [])
        if "secretRef" in source
    }
    return names | {
        volume["secret"]["secretName"]
        for volume in workload.pod.get("volumes", [])
        if "secret" in volume
    }


def test_a_production_overlay_replaces_every_example(
    overlays: dict[str, Rendered], tmp_path: Path
) -> None:
    """README "Kubernetes": an overlay of one's own with behavior: replace for
    the generated Secrets (and the public key), and $patch: delete for those made
    elsewhere (the TLS ones, by cert-manager), leaves no example behind."""
    for overlay, shown in overlays.items():
        source = K8S / "overlays" / overlay
        directory = tmp_path / overlay
        directory.mkdir()
        secrets_yaml: list[Obj] = []
        configmaps_yaml: list[Obj] = []
        deleted: list[str] = []
        for obj in shown.of_kind("Secret") + shown.of_kind("ConfigMap"):
            name = base_name(obj["metadata"]["name"])
            if obj["kind"] == "ConfigMap" and name != "arcana-jwt-public":
                continue
            if obj.get("type") == "kubernetes.io/tls":
                # Made elsewhere (cert-manager): the generated one is deleted.
                deleted.append(name)
                continue
            files = []
            for key in obj["data"]:
                (directory / f"{name}.{key}").write_text(f"real-{secrets.token_hex(16)}\n")
                files.append(f"{key}={name}.{key}")
            entry = {"name": name, "behavior": "replace", "files": files}
            (secrets_yaml if obj["kind"] == "Secret" else configmaps_yaml).append(entry)
        (directory / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "resources": [os.path.relpath(source, directory)],
                    "secretGenerator": secrets_yaml,
                    "configMapGenerator": configmaps_yaml,
                    "patches": [
                        {
                            "patch": yaml.safe_dump(
                                {
                                    "apiVersion": "v1",
                                    "kind": "Secret",
                                    "metadata": {"name": name, "namespace": "arcana"},
                                    "$patch": "delete",
                                }
                            )
                        }
                        for name in deleted
                    ],
                    "images": [
                        {"name": "arcana", "newName": "registry.test/arcana", "newTag": "9.9.9"}
                    ],
                }
            )
        )
        replaced = Rendered(render(directory))
        for obj in replaced.of_kind("Secret"):
            for value in obj["data"].values():
                assert base64.b64decode(value).decode().startswith("real-"), obj["metadata"]["name"]
        # Every reference follows the new names, and the image is production's.
        assert {s["metadata"]["name"] for s in replaced.of_kind("Secret")}.isdisjoint(
            {s["metadata"]["name"] for s in shown.of_kind("Secret")}
        )
        assert deleted or overlay == "monolithic"
        for workload in replaced.workloads.values():
            for name in _secret_names(workload):
                # A generated Secret under its new name, or one made elsewhere by its own.
                assert name in replaced.named("Secret") or name in deleted, (workload.name, name)
            (container,) = workload.pod["containers"]
            if workload.name != "gateway":  # nginx's image
                assert container["image"] == "registry.test/arcana:9.9.9", workload.name


# --- sizing: docs/CAPACITY.md ----------------------------------------------------------------

# The overlays docs/CAPACITY.md derives pod counts for (bench/capacity.py measures them):
# every mode, each Deployment of TIERS sized from docs/capacity.json.
SIZED_OVERLAYS = ("monolithic", "layered", "microservices")


def cpu_cores(quantity: str | int | float) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def mebibytes(quantity: str) -> float:
    units = {"Mi": 1.0, "Gi": 1024.0}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_every_mode_is_sized() -> None:
    from bench import capacity

    assert set(SIZED_OVERLAYS) == set(capacity.MODES) == set(OVERLAYS)
    inputs = capacity.load_inputs(capacity.DOC_JSON)
    assert set(inputs["modes"]) == set(capacity.MODES), "docs/capacity.json lacks a mode"


@pytest.mark.parametrize("name", SIZED_OVERLAYS)
def test_sizing_follows_the_capacity_document(overlays: dict[str, Rendered], name: str) -> None:
    """Each sized tier's pod is the document's pod (CPU request = limit), its
    autoscaler the document's target and floor, and its ceiling the one the
    document derives from docs/capacity.json (half again the pods for 10k
    requests per second: ``capacity.max_replicas``); its memory request covers
    what such a pod was measured to hold."""
    from bench import capacity

    assumptions = capacity.Assumptions()
    inputs = capacity.load_inputs(capacity.DOC_JSON)
    pods = capacity.derive(inputs, assumptions, name, capacity.LOADS[0]).pods()
    ceilings = capacity.max_replicas(inputs, assumptions, name)
    rendered = overlays[name]
    scalers = {
        scaler["spec"]["scaleTargetRef"]["name"]: scaler["spec"]
        for scaler in rendered.of_kind("HorizontalPodAutoscaler")
    }
    assert set(pods) <= set(scalers), (name, sorted(pods))
    for tier, count in pods.items():
        (container,) = rendered.workloads[tier].pod["containers"]
        resources = container["resources"]
        assert cpu_cores(resources["requests"]["cpu"]) == assumptions.pod_vcpu, tier
        assert cpu_cores(resources["limits"]["cpu"]) == assumptions.pod_vcpu, tier
        spec = scalers[tier]
        (metric,) = spec["metrics"]
        assert metric["resource"]["name"] == "cpu", tier
        target = metric["resource"]["target"]["averageUtilization"]
        assert target == round(assumptions.target_utilisation * 100), tier
        assert spec["minReplicas"] == assumptions.min_pods, tier
        assert spec["maxReplicas"] == ceilings[tier] >= count, (
            f"{name}/{tier}: maxReplicas {spec['maxReplicas']}, docs/CAPACITY.md derives"
            f" {count} pods for 10k req/s: set it to {ceilings[tier]}"
        )
        # The memory a pod was measured to hold is requested, and fits its limit twice.
        resident = inputs["modes"][name]["rss_mib"][tier]
        assert mebibytes(resources["requests"]["memory"]) >= resident, (tier, resident)
        assert mebibytes(resources["limits"]["memory"]) >= 2 * resident, (tier, resident)


@pytest.mark.parametrize("name", SIZED_OVERLAYS)
def test_each_ceiling_says_where_it_comes_from(name: str) -> None:
    """The comment right above each sized maxReplicas states its rule and the
    10k count it is taken from ("1.5 x 19, the pods docs/CAPACITY.md derives
    ..."); kustomize drops comments, so the sources are read."""
    from bench import capacity

    inputs = capacity.load_inputs(capacity.DOC_JSON)
    pods = capacity.derive(inputs, capacity.Assumptions(), name, capacity.LOADS[0]).pods()
    found: set[str] = set()
    heading = re.compile(r"kind: HorizontalPodAutoscaler\nmetadata:\n  name: (\S+)")
    for source in sorted((K8S / "overlays" / name).glob("*.yaml")):
        for document in source.read_text().split("\n---\n"):
            scaler = heading.search(document)
            if scaler is None or scaler[1] not in pods:
                continue
            found.add(scaler[1])
            above = document.partition("maxReplicas:")[0].splitlines()[:-1]
            comment: list[str] = []
            while above and above[-1].strip().startswith("#"):
                comment.insert(0, above.pop().strip().lstrip("# "))
            text = " ".join(comment)
            expected = f"1.5 x {pods[scaler[1]]}, the pods docs/CAPACITY.md derives for 10k"
            assert expected in text, (source.name, scaler[1], text)
    assert found == set(pods), (name, sorted(set(pods) - found))
