"""Capacity on paper: measure what one request costs each tier, the database
and Redis, then derive what 10k and 100k requests per second need.

    .venv/bin/python -m bench.capacity [--requests 200] [--modes monolithic,layered]
    .venv/bin/python -m bench.capacity --render docs/capacity.json   # arithmetic only

(``make capacity``; ``make bench CAPACITY=1`` runs it after the bench.)

**Measuring.** Everything runs on servers of this run's own, so every counter
read is this run's and no one else's: a private MariaDB primary and a replica
following it (``tests.support.replication``), a private ``redis-server``, and for each
mode (monolithic, layered, microservices) ``tests.support.stack.live_stack`` with
the deployed settings (the user cache on, ``DATABASE_REPLICA_URLS`` naming the
replica, the REST server and grpcrunserver with two workers each, as a pod runs
them; in layered mode one service and one repository ``tierserver`` behind them,
mutual TLS; in microservices mode the users and the auth service, each its REST
server, grpcrunserver and internal ``tierserver`` on a database of its own with
that database's replica, behind the nginx gateway). From this process, one
request at a time, ``--requests`` of each operation over REST and over gRPC:
get-by-id with the user cache cold (every user read for the first time) and
warm, list-20, login (Argon2id), update (PATCH a name) and create (Argon2id).
Around each batch it reads:

- CPU seconds (``/proc/PID/task/TID/schedstat``) of every thread of every
  process of each tier (the REST server's master and workers, grpcrunserver,
  each tierserver, nginx's master and workers), of both ``mariadbd`` and of
  ``redis-server``;
- the primary's and the replica's ``SHOW GLOBAL STATUS`` (``Questions``,
  ``Com_select`` / ``Com_insert`` / ``Com_update`` / ``Com_delete``): global,
  but the servers are private, so global is this run's alone; in microservices
  mode also each service database's statements (performance_schema's digests,
  by the connection's database);
- Redis ``INFO commandstats`` (calls per command) and ``INFO stats``
  (``keyspace_hits`` / ``keyspace_misses``).

A quiet window first measures what the stack does by itself (the replica
router's health checks, timers); its rate is subtracted from every batch.
The readings' own statements and commands are not counted.

**Deriving.** :func:`derive` turns the measured inputs and the assumptions
(:class:`Assumptions`: the mix, the CPU of a pod and its target utilisation,
the database host, the user cache's hit ratio) into pods per tier, primary
and replica statements per second, Redis operations per second, the load at
which each shared part saturates, and :func:`render` writes that as
``docs/CAPACITY.md`` with the arithmetic shown. The inputs go to
``bench/out/capacity.json`` and ``docs/capacity.json`` (what the committed
document was rendered from; ``tests/test_capacity.py`` checks the two agree).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import importlib
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT_JSON = ROOT / "bench" / "out" / "capacity.json"
DOC_JSON = ROOT / "docs" / "capacity.json"
DOC = ROOT / "docs" / "CAPACITY.md"
SCHEMA = 1

GET = "get-by-id"
GET_COLD = "get-by-id-cold"
LIST = "list-20"
LOGIN = "login"
UPDATE = "update"
CREATE = "create"
OPERATIONS = (GET_COLD, GET, LIST, LOGIN, UPDATE, CREATE)
PROTOCOLS = ("rest", "grpc")
MODES = ("monolithic", "layered", "microservices")
SERVICES = ("users", "auth")  # microservices mode's, each with a database of its own
# The Kubernetes Deployments (docker/k8s/overlays/<mode>) each tier runs as.
TIERS = {
    "monolithic": ("rest", "grpc"),
    "layered": ("rest", "grpc", "service", "repository"),
    "microservices": (
        "gateway",
        *(f"{service}-{kind}" for service in SERVICES for kind in ("rest", "grpc", "internal")),
    ),
}
MYSQL_COUNTERS = ("Questions", "Com_select", "Com_insert", "Com_update", "Com_delete")
LOADS = (10_000, 100_000)
HEADROOM = 1.5  # the overlays' maxReplicas: this times the pods for LOADS[0]


# --- assumptions ------------------------------------------------------------------


@dataclass(frozen=True)
class Assumptions:
    """What the derivation takes as given (each stated in the document)."""

    # Share of requests per operation: 94 % reads, 1 % logins, 5 % writes (the
    # issue's 95 / 5 with the logins counted among the reads' 95).
    mix: Mapping[str, float] = field(
        default_factory=lambda: {GET: 0.76, LIST: 0.18, LOGIN: 0.01, UPDATE: 0.04, CREATE: 0.01}
    )
    rest_share: float = 0.5  # the rest over gRPC
    pod_vcpu: float = 1.0  # CPU request (= limit) of every app pod
    target_utilisation: float = 0.70  # the HPA's averageUtilization
    min_pods: int = 2  # the HPA's minReplicas: one pod may be drained at a time
    min_replicas: int = 2  # database replicas: reads survive losing one
    user_cache_hit_ratio: float = 0.90  # of get-by-id's target lookups
    database_host_vcpu: float = 16.0  # per MariaDB server (the primary, each replica)
    redis_vcpu: float = 1.0  # Redis executes commands on one thread
    shared_utilisation: float = 0.70  # the most of a shared server's CPU to plan for

    def __post_init__(self) -> None:
        if abs(sum(self.mix.values()) - 1.0) > 1e-9:
            raise ValueError(f"the mix must sum to 1, got {sum(self.mix.values())}")
        if unknown := set(self.mix) - {GET, LIST, LOGIN, UPDATE, CREATE}:
            raise ValueError(f"unknown operations in the mix: {sorted(unknown)}")
        for name in ("rest_share", "target_utilisation", "user_cache_hit_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within [0, 1]")


# --- the model --------------------------------------------------------------------


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"capacity inputs: {where} must be a finite number, got {value!r}")
    return float(value)


def _operation(inputs: Mapping[str, Any], mode: str, protocol: str, op: str) -> Mapping[str, Any]:
    try:
        found: Mapping[str, Any] = inputs["modes"][mode][protocol][op]
    except (KeyError, TypeError):
        raise ValueError(f"capacity inputs: no {mode} / {protocol} / {op} measurement") from None
    return found


def per_request(
    inputs: Mapping[str, Any],
    mode: str,
    protocol: str,
    op: str,
    pick: Callable[[Mapping[str, Any]], Any],
    hit_ratio: float,
    where: str,
) -> float:
    """One figure of one mixed-in operation; get-by-id blends the warm and the
    cold measurement by the user cache's hit ratio."""

    def one(measured: str) -> float:
        found = pick(_operation(inputs, mode, protocol, measured))
        return _number(found, f"{mode} {protocol} {measured} {where}")

    if op == GET:
        return hit_ratio * one(GET) + (1 - hit_ratio) * one(GET_COLD)
    return one(op)


def mixed(
    inputs: Mapping[str, Any],
    assumptions: Assumptions,
    mode: str,
    pick: Callable[[Mapping[str, Any]], Any],
    where: str,
    only: Sequence[str] = (),
) -> float:
    """A figure per request of the whole mix (of its ``only`` operations, if
    named), both protocols at their shares."""
    shares = {"rest": assumptions.rest_share, "grpc": 1 - assumptions.rest_share}
    return sum(
        share
        * weight
        * per_request(inputs, mode, protocol, op, pick, assumptions.user_cache_hit_ratio, where)
        for protocol, share in shares.items()
        for op, weight in assumptions.mix.items()
        if not only or op in only
    )


WRITES = (LOGIN, UPDATE, CREATE)


def replica_apply_ms(inputs: Mapping[str, Any], assumptions: Assumptions, mode: str) -> float:
    """Replica CPU per request of the mix spent applying the primary's writes
    (measured one at a time: an upper bound)."""
    pick = _get("cpu_ms", "mariadb_replica")
    return mixed(inputs, assumptions, mode, pick, "cpu_ms.mariadb_replica", only=WRITES)


def _get(*path: str) -> Callable[[Mapping[str, Any]], Any]:
    def pick(measured: Mapping[str, Any]) -> Any:
        value: Any = measured
        for key in path:
            value = value.get(key, 0.0) if isinstance(value, Mapping) else None
        return value

    return pick


def _require(*path: str) -> Callable[[Mapping[str, Any]], Any]:
    """As :func:`_get`, but a figure that is missing is ``None`` (which
    :func:`_number` refuses, naming it), not 0: a tier not measured is not free."""

    def pick(measured: Mapping[str, Any]) -> Any:
        value: Any = measured
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        return value

    return pick


@dataclass(frozen=True)
class TierLoad:
    tier: str
    cpu_ms: float  # per request of the mix (0 for a protocol's other front end's share)
    vcpu: float  # at this load
    pods: int


@dataclass(frozen=True)
class Shared:
    """A server every pod shares: its load, its ceiling, and when it is reached."""

    name: str
    per_request: float  # statements or commands per request of the mix
    rate: float  # per second at this load
    cpu_ms_per_request: float  # its own CPU, measured
    capacity_rps: float  # requests per second at which one server reaches its ceiling
    servers: int  # servers needed at this load


@dataclass(frozen=True)
class Derivation:
    mode: str
    load: int
    tiers: tuple[TierLoad, ...]
    shared: tuple[Shared, ...]

    def pods(self) -> dict[str, int]:
        return {tier.tier: tier.pods for tier in self.tiers}

    def first_to_saturate(self) -> Shared:
        # The replicas scale out by adding replicas; the primary and a single
        # Redis do not, so the first of those two is the wall.
        return min(
            (shared for shared in self.shared if shared.name != "replica"),
            key=lambda shared: shared.capacity_rps,
        )


def _under_load(inputs: Mapping[str, Any], server: str, figure: str) -> float:
    try:
        value = inputs[server][figure]
    except (KeyError, TypeError):
        raise ValueError(f"capacity inputs: no {server}.{figure}") from None
    return _number(value, f"{server}.{figure}")


def replica_us_per_statement(inputs: Mapping[str, Any]) -> float:
    return _under_load(inputs, "replica_under_load", "cpu_us_per_statement")


def redis_us_per_command(inputs: Mapping[str, Any]) -> float:
    return _under_load(inputs, "redis_under_load", "cpu_us_per_command")


def front_end_of(tier: str) -> str:
    """The protocol a tier's front end serves (``rest``, ``users-grpc``), or ""
    for a tier both protocols go through (a tier server, the gateway)."""
    for protocol in PROTOCOLS:
        if tier == protocol or tier.endswith(f"-{protocol}"):
            return protocol
    return ""


def tier_cpu_ms(
    inputs: Mapping[str, Any],
    assumptions: Assumptions,
    mode: str,
    tier: str,
    only: Sequence[str] = (),
) -> float:
    """CPU milliseconds of ``tier``'s processes per request of the mix (of its
    ``only`` operations, if named). A front end (``rest``, ``users-grpc``)
    serves only its protocol's share."""
    shares = {"rest": assumptions.rest_share, "grpc": 1 - assumptions.rest_share}
    total = 0.0
    for protocol, share in shares.items():
        if front_end_of(tier) not in ("", protocol):
            continue
        total += share * sum(
            weight
            * per_request(
                inputs,
                mode,
                protocol,
                op,
                _require("cpu_ms", tier),
                assumptions.user_cache_hit_ratio,
                f"cpu_ms.{tier}",
            )
            for op, weight in assumptions.mix.items()
            if not only or op in only
        )
    return total


def pods_for(cpu_ms: float, load: int, assumptions: Assumptions) -> tuple[float, int]:
    """(vCPU the tier burns at ``load``, pods to run it at the target utilisation)."""
    vcpu = load * cpu_ms / 1000
    pods = math.ceil(vcpu / (assumptions.pod_vcpu * assumptions.target_utilisation) - 1e-9)
    return vcpu, max(assumptions.min_pods, pods)


def derive(inputs: Mapping[str, Any], assumptions: Assumptions, mode: str, load: int) -> Derivation:
    tiers = []
    for tier in TIERS[mode]:
        cpu_ms = tier_cpu_ms(inputs, assumptions, mode, tier)
        vcpu, pods = pods_for(cpu_ms, load, assumptions)
        tiers.append(TierLoad(tier, cpu_ms, vcpu, pods))
    shared = []
    for name, counter, cpu, vcpu in (
        (
            "primary",
            ("db", "primary", "Questions"),
            "mariadb_primary",
            assumptions.database_host_vcpu,
        ),
        (
            "replica",
            ("db", "replica", "Questions"),
            "mariadb_replica",
            assumptions.database_host_vcpu,
        ),
        ("redis", ("redis", "commands"), "redis", assumptions.redis_vcpu),
    ):
        per = mixed(inputs, assumptions, mode, _get(*counter), ".".join(counter))
        if name == "redis":
            # Redis under load (redis-benchmark), not one request at a time: a
            # single client pays for a wake-up per command that many clients share.
            cpu_ms = per * redis_us_per_command(inputs) / 1000
        elif name == "replica":
            # The app's read statements replayed under load (mariadb-slap), and
            # applying what the primary wrote.
            cpu_ms = per * replica_us_per_statement(inputs) / 1000
            cpu_ms += replica_apply_ms(inputs, assumptions, mode)
        else:
            cpu_ms = mixed(inputs, assumptions, mode, _get("cpu_ms", cpu), f"cpu_ms.{cpu}")
        ceiling = vcpu * assumptions.shared_utilisation * 1000
        capacity = ceiling / cpu_ms if cpu_ms > 0 else math.inf
        shared.append(
            Shared(
                name=name,
                per_request=per,
                rate=per * load,
                cpu_ms_per_request=cpu_ms,
                capacity_rps=capacity,
                servers=max(
                    assumptions.min_replicas if name == "replica" else 1,
                    math.ceil(load / capacity - 1e-9),
                ),
            )
        )
    return Derivation(mode, load, tuple(tiers), tuple(shared))


# --- the document -----------------------------------------------------------------

X = "\N{MULTIPLICATION SIGN}"  # the document's multiplication sign

OPERATION_LABELS = {
    GET_COLD: "get-by-id, user cache cold",
    GET: "get-by-id, user cache warm",
    LIST: "list-20 (page 0)",
    LOGIN: "login (Argon2id verify)",
    UPDATE: "update (PATCH name)",
    CREATE: "create (Argon2id hash)",
}


def _fmt(value: float, digits: int = 2) -> str:
    if math.isinf(value):
        return "∞"
    return f"{value:,.{digits}f}".replace(",", " ")


def _inputs_table(inputs: Mapping[str, Any], mode: str) -> list[str]:
    tiers = TIERS[mode]
    head = (
        "| protocol | operation | "
        + " | ".join(f"CPU ms {tier}" for tier in tiers)
        + " | CPU ms MariaDB (primary / replica) | CPU ms Redis"
        " | statements primary (select / insert / update) | statements replica"
        " | Redis commands | Redis hits / misses | p50 ms |"
    )
    lines = [head, "|" + "---|" * (len(tiers) + 9)]
    for protocol in PROTOCOLS:
        for op in OPERATIONS:
            m = _operation(inputs, mode, protocol, op)
            cpu = m["cpu_ms"]
            primary, replica, redis = m["db"]["primary"], m["db"]["replica"], m["redis"]
            lines.append(
                f"| {protocol} | {OPERATION_LABELS[op]} | "
                + " | ".join(_fmt(cpu.get(tier, 0.0)) for tier in tiers)
                + f" | {_fmt(cpu['mariadb_primary'])} / {_fmt(cpu['mariadb_replica'])}"
                f" | {_fmt(cpu['redis'])}"
                f" | {_fmt(primary['Questions'])} ({_fmt(primary['Com_select'])} /"
                f" {_fmt(primary['Com_insert'])} / {_fmt(primary['Com_update'])})"
                f" | {_fmt(replica['Questions'])}"
                f" | {_fmt(redis['commands'])}"
                f" | {_fmt(redis['keyspace_hits'])} / {_fmt(redis['keyspace_misses'])}"
                f" | {_fmt(m['p50_ms'])} |"
            )
    return lines


def _tier_arithmetic(inputs: Mapping[str, Any], a: Assumptions, mode: str, tier: str) -> str:
    shares = {"rest": a.rest_share, "grpc": 1 - a.rest_share}
    parts = []
    for protocol, share in shares.items():
        if front_end_of(tier) not in ("", protocol):
            continue
        terms = " + ".join(
            f"{weight:g}{X}{per_request(inputs, mode, protocol, op, _get('cpu_ms', tier), a.user_cache_hit_ratio, 'cpu'):.2f}"  # noqa: E501
            for op, weight in a.mix.items()
        )
        parts.append(f"{share:g}{X}({terms})")
    return " + ".join(parts)


def validate(inputs: Mapping[str, Any]) -> None:
    """Every figure the document shows is a finite number (ValueError naming it)."""
    modes = inputs.get("modes")
    if not isinstance(modes, Mapping) or not modes or set(modes) - set(MODES):
        raise ValueError(f"capacity inputs: modes must be some of {', '.join(MODES)}")

    def walk(value: Any, where: str) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(inner, f"{where}.{key}")
        else:
            _number(value, where)

    for mode in modes:
        for protocol in PROTOCOLS:
            for op in OPERATIONS:
                walk(_operation(inputs, mode, protocol, op), f"{mode}.{protocol}.{op}")
    redis_us_per_command(inputs)
    replica_us_per_statement(inputs)
    _number(inputs["replica_under_load"].get("statements"), "replica_under_load.statements")
    for key in ("commands", "ops_per_second"):
        _number(inputs["redis_under_load"].get(key), f"redis_under_load.{key}")


def _loads(value: Any) -> str:
    values = value if isinstance(value, list) else [value]
    return " / ".join(f"{v:g}" for v in values if isinstance(v, int | float))


def _summary(inputs: Mapping[str, Any], a: Assumptions) -> list[str]:
    lines = [
        "## Summary",
        "",
        "| mode | req/s | app pods (vCPU) | primary statements/s (primaries) | replicas"
        " | Redis commands/s (servers) | first wall |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for mode in MODES:
        if mode not in inputs["modes"]:
            continue
        for load in LOADS:
            d = derive(inputs, a, mode, load)
            shared = {s.name: s for s in d.shared}
            first = d.first_to_saturate()
            pods = " + ".join(f"{t.pods} {t.tier}" for t in d.tiers)
            lines.append(
                f"| {mode} | {_fmt(load, 0)} | {pods} = {sum(t.pods for t in d.tiers)}"
                f" ({sum(t.vcpu for t in d.tiers):.0f}) | {_fmt(shared['primary'].rate, 0)}"
                f" ({shared['primary'].servers}) | {shared['replica'].servers}"
                f" | {_fmt(shared['redis'].rate, 0)} ({shared['redis'].servers})"
                f" | {first.name} at {_fmt(first.capacity_rps, 0)} req/s |"
            )
    return [*lines, ""]


def _hit_ratio_sensitivity(inputs: Mapping[str, Any], a: Assumptions, mode: str) -> str:
    """What the assumed user cache hit ratio is worth, at the larger load."""
    load = LOADS[-1]
    cells = []
    for ratio in (0.5, a.user_cache_hit_ratio, 0.99):
        d = derive(inputs, replace(a, user_cache_hit_ratio=ratio), mode, load)
        shared = {s.name: s for s in d.shared}
        cells.append(
            f"{ratio:.0%}: {_fmt(shared['replica'].rate, 0)} replica statements/s"
            f" ({shared['replica'].servers} replicas), {sum(t.pods for t in d.tiers)} pods"
        )
    pick = _get("db", "replica", "Questions")
    lists = mixed(inputs, a, mode, pick, "db.replica.Questions", only=(LIST,))
    total = mixed(inputs, a, mode, pick, "db.replica.Questions")
    return (
        f"The user cache's hit ratio at {_fmt(load, 0)} req/s (get-by-id's target): "
        + "; ".join(cells)
        + f". list-20 sends {lists:.2f} of the {total:.2f} replica statements per request:"
        " a cached first page or count would cut the replicas' load more than a better hit"
        " ratio."
    )


def service_statements(
    inputs: Mapping[str, Any], assumptions: Assumptions, server: str, service: str
) -> float:
    """Microservices mode: statements per request of the mix that ``service``'s
    database sends ``server`` (``primary`` or ``replica``)."""
    where = f"statements_by_service.{server}.{service}"
    pick = _require("statements_by_service", server, service)
    return mixed(inputs, assumptions, "microservices", pick, where)


def _per_service_databases(inputs: Mapping[str, Any], a: Assumptions) -> list[str]:
    """Each service's database apart: statements per second on its primary and
    on each of its replicas' set, and its share of the primary's statements."""
    per = {
        (service, server): service_statements(inputs, a, server, service)
        for service in SERVICES
        for server in ("primary", "replica")
    }
    primary = sum(per[service, "primary"] for service in SERVICES)
    lines = [
        "Each service's own database (`DATABASE_URL` and `DATABASE_REPLICA_URLS` per"
        " service; statements counted per database from performance_schema's digests):",
        "",
        "| database | per request | "
        + " | ".join(f"{_fmt(load, 0)} req/s" for load in LOADS)
        + " | share of the primary's statements |",
        "|---|---:|" + "---:|" * len(LOADS) + "---:|",
    ]
    for (service, server), value in per.items():
        share = f"{value / primary:.0%}" if server == "primary" and primary > 0 else ""
        lines.append(
            f"| {service} {server} | {value:.3f} | "
            + " | ".join(f"{_fmt(value * load, 0)} statements/s" for load in LOADS)
            + f" | {share} |"
        )
    lines += [
        "",
        "The run kept both databases on one primary and one replica, so the ceilings"
        " below are those of one server holding both; on servers of their own, each"
        " primary carries about its share above.",
    ]
    unread = [service for service in SERVICES if per[service, "replica"] < 0.001]
    if unread:
        lines[-1] += (
            f" Nothing of the mix reads {' or '.join(unread)}'s replicas (what it reads,"
            " its session and token state, the router keeps on the primary), so there"
            " they add failover, not capacity."
        )
    return lines


def _gateway_note(inputs: Mapping[str, Any], a: Assumptions) -> str:
    """What one gateway pod carries, and what that says of nginx's workers."""
    cpu_ms = tier_cpu_ms(inputs, a, "microservices", "gateway")
    per_pod = a.pod_vcpu * a.target_utilisation * 1000 / cpu_ms if cpu_ms > 0 else math.inf
    return (
        f"The gateway (nginx) spends {cpu_ms:.3f} ms of CPU per request of the mix (the"
        " measured one ran 2 workers, `GATEWAY_WORKERS`; one client at a time kept one"
        f" busy): a {a.pod_vcpu:g}-vCPU pod at {a.target_utilisation:.0%} carries about"
        f" {_fmt(per_pod, 0)} req/s. The overlay's nginx.conf keeps `worker_processes"
        " auto` (one worker per core of the node, all held to the pod's CPU limit"
        " together); the measurement gives no reason for a fixed count: the pod's"
        " vCPU, not nginx's workers, is what bounds it."
    )


def _runner_up(derivation: Derivation, first: Shared) -> str:
    """The other wall, when it is close enough that noise could swap the two."""
    others = [s for s in derivation.shared if s.name not in ("replica", first.name)]
    if not others:
        return ""
    second = min(others, key=lambda shared: shared.capacity_rps)
    if second.capacity_rps > 1.25 * first.capacity_rps:
        return ""
    return (
        f"; {second.name} follows at {_fmt(second.capacity_rps, 0)} req/s, within"
        f" {second.capacity_rps / first.capacity_rps - 1:.0%}: closer than this run's noise,"
        " so plan for both at once"
    )


def _servers_needed(shared: Shared) -> str:
    if shared.name == "replica":
        return f" → replicas: **{shared.servers}**"
    if shared.servers == 1:
        return " → one server holds it"
    what = "Redis Cluster shards" if shared.name == "redis" else "primaries (shards by user id)"
    return f" → **{shared.servers} {what}**"


def _argon2_share(inputs: Mapping[str, Any], a: Assumptions, mode: str, tier: str) -> str:
    """How much of a tier's CPU per request the 2 % of requests that hash take."""
    total = tier_cpu_ms(inputs, a, mode, tier)
    hashing = tier_cpu_ms(inputs, a, mode, tier, only=(LOGIN, CREATE))
    if total <= 0 or hashing / total < 0.2:
        return ""
    return (
        f" (login + create, {a.mix[LOGIN] + a.mix[CREATE]:.0%} of requests: {hashing / total:.0%})"
    )


def render(inputs: Mapping[str, Any], assumptions: Assumptions | None = None) -> str:
    a = assumptions or Assumptions()
    validate(inputs)
    measured = inputs["measured"]
    mix = ", ".join(f"{op} {weight:.0%}" for op, weight in a.mix.items())
    per_pod = a.pod_vcpu * a.target_utilisation
    out = [
        "# Capacity, on paper, past one machine",
        "",
        "<!-- Generated by `make capacity` (bench/capacity.py) from docs/capacity.json;"
        " edit the template there, not this file. -->",
        "",
        "What 10 000 and 100 000 authenticated requests per second need, derived from what one",
        "request was measured to cost on one machine: CPU per tier, database statements and",
        "Redis commands. Regenerate with `make capacity` (about five minutes; private MariaDB",
        "primary + replica and a private Redis, so every counter is the run's own).",
        "",
        *_summary(inputs, a),
        "## Measured inputs",
        "",
        f"Measured {measured['date']} on {measured['machine']} ({measured['cores']} cores"
        + (
            f", load average {_loads(measured.get('load_average'))} as it began"
            if _loads(measured.get("load_average"))
            else ""
        )
        + (
            f", {_loads(measured.get('load_average_end'))} as it ended"
            if _loads(measured.get("load_average_end"))
            else ""
        )
        + "),"
        f" {measured['requests']} requests per operation and protocol, one at a time, MariaDB"
        f" {measured['mariadb']}, Redis {measured['redis']}. Per request, after subtracting the"
        f" stack's own background (measured over a quiet {measured['quiet_seconds']:g} s)."
        " CPU is the run time of every thread of every process of the tier"
        " (`/proc/PID/task/TID/schedstat`)."
        + (
            f" {measured['runs']} runs: each CPU and latency figure is the least of them,"
            " memory the most (other work on the machine only ever adds CPU time; a"
            f" figure differed by up to {measured.get('cpu_spread', 1.0):.1f}{X} between runs)."
            if measured.get("runs", 1) > 1
            else ""
        )
        + (f" {measured['note']}" if measured.get("note") else ""),
        "",
        "Warm get-by-id reads the same users again; cold reads each for the first time"
        " (the user cache emptied first). Login and create include one Argon2id hash"
        " (m = 19 MiB, t = 2, p = 1, `users/hashers.py`).",
        "",
    ]
    for mode in MODES:
        if mode not in inputs["modes"]:
            continue
        out += [f"### {mode.capitalize()}", "", *_inputs_table(inputs, mode), ""]
    load = inputs["redis_under_load"]
    replay = inputs["replica_under_load"]
    out += [
        "One request at a time, each statement and each command wakes its server on its own;"
        " under load many share the wake-up. So the shared servers' CPU is also measured"
        " busy, and the derivation uses those figures where it has them:",
        "",
        f"- Redis ({load['tool']}, GET and SET of a user record's size,"
        f" {_fmt(load['commands'], 0)} commands):"
        f" **{redis_us_per_command(inputs):.2f} µs of Redis CPU per command**"
        f" ({_fmt(load['ops_per_second'], 0)} ops/s here, the load generator sharing the"
        " machine), against the Redis column's one-at-a-time figure above.",
        f"- MariaDB replica ({replay['tool']}, the {replay['distinct_statements']} read"
        " statements a cold get-by-id and a list-20 send the replica, taken from its general"
        f" log and replayed, {_fmt(replay['statements'], 0)} statements):"
        f" **{replica_us_per_statement(inputs):.1f} µs of replica CPU per statement**;"
        " applying the primary's writes is added at its one-at-a-time figure (the replica"
        " column of the writes above).",
        "- The primary's writes cannot be replayed as they are (unique e-mails, the last-admin"
        " lock): its figure is the one-at-a-time one of the table, which overstates a busy"
        " server's, so the primary's ceiling below is conservative.",
        "",
        "CPU is this machine's; a cloud vCPU is usually no faster, so the pod counts below are a",
        "floor, not a ceiling. The database held a few hundred users: statements per request do",
        "not depend on the table size, the CPU per statement of a deep page or a big table",
        "does (see the README's list figures). The private MariaDB skips fsync",
        "(`tests/support/replication.py`): a durable primary spends the same CPU but waits on",
        "its disk at every commit, which bounds its writes per second by the disk, not modelled",
        "here.",
        "",
        "## Assumptions",
        "",
        f"- Mix: {mix} (94 % reads, 1 % logins, 5 % writes), REST {a.rest_share:.0%},"
        f" gRPC {1 - a.rest_share:.0%}. Every request is authenticated except login.",
        f"- A pod has {a.pod_vcpu:g} vCPU (request = limit) and the HPA keeps it at"
        f" {a.target_utilisation:.0%}: {per_pod:g} vCPU of work per pod; never fewer than"
        f" {a.min_pods} pods per tier (one may be drained).",
        f"- User cache hit ratio {a.user_cache_hit_ratio:.0%} for get-by-id's target: the bench"
        " measures both ends (warm 100 %, cold 0 %, see the Redis hits / misses column), the"
        " blend is an assumption about the working set (`USER_CACHE_TIMEOUT` = 300 s; a user"
        " read twice in five minutes is a hit). The caller's own record is read on every"
        " authenticated request and is warm in both measurements.",
        f"- A MariaDB server has {a.database_host_vcpu:g} vCPU and Redis {a.redis_vcpu:g} (it"
        f" executes commands on one thread); plan each to {a.shared_utilisation:.0%}. Their"
        " CPU per request is the measured one of the private servers.",
        f"- At least {a.min_replicas} database replicas, so that reads survive losing one.",
        "- Writes (and reads of a caller who wrote in the last"
        " `DATABASE_REPLICA_PIN_SECONDS`, credentials, transactions) go to the primary; other"
        " reads to the replicas of `DATABASE_REPLICA_URLS`.",
        "",
    ]
    for mode in MODES:
        if mode not in inputs["modes"]:
            continue
        out += [f"## {mode.capitalize()} mode", ""]
        out += [f"CPU per request of the mix, per tier (share {X} Σ weight {X} ms):", ""]
        for tier in TIERS[mode]:
            cpu_ms = tier_cpu_ms(inputs, a, mode, tier)
            out.append(
                f"- {tier}: {_tier_arithmetic(inputs, a, mode, tier)} = {cpu_ms:.3f} ms"
                + _argon2_share(inputs, a, mode, tier)
            )
        out.append("")
        header = "| | " + " | ".join(f"{load:,} req/s".replace(",", " ") for load in LOADS) + " |"
        out += [header, "|---|" + "---|" * len(LOADS)]
        derived = [derive(inputs, a, mode, load) for load in LOADS]
        for index, tier in enumerate(TIERS[mode]):
            cells = []
            for d in derived:
                t = d.tiers[index]
                cells.append(
                    f"{d.load:,} {X} {t.cpu_ms:.3f} ms = {t.vcpu:.1f} vCPU;"
                    f" ⌈{t.vcpu:.1f} ÷ {per_pod:g}⌉ = **{t.pods} pods**".replace(",", " ")
                )
            out.append(f"| pods `{tier}` | " + " | ".join(cells) + " |")
        for index, name in enumerate(("primary", "replica", "redis")):
            unit = "commands" if name == "redis" else "statements"
            cells = []
            for d in derived:
                s = d.shared[index]
                cells.append(
                    f"{d.load:,} {X} {s.per_request:.3f} = **{_fmt(s.rate, 0)} {unit}/s**;"
                    f" CPU {d.load:,} {X} {s.cpu_ms_per_request:.3f} ms ="
                    f" {d.load * s.cpu_ms_per_request / 1000:.1f} vCPU".replace(",", " ")
                    + _servers_needed(s)
                )
            label = {"primary": "MariaDB primary", "replica": "MariaDB replicas", "redis": "Redis"}
            out.append(f"| {label[name]} | " + " | ".join(cells) + " |")
        if mode == "microservices":
            out += ["", *_per_service_databases(inputs, a), "", _gateway_note(inputs, a)]
        out += ["", _hit_ratio_sensitivity(inputs, a, mode)]
        rss = inputs["modes"][mode].get("rss_mib", {})
        if rss:
            out += [
                "",
                "Resident memory of each tier's pod (its processes, two workers for `rest` and"
                " `grpc`; shared pages counted in every process), at the end of the run: "
                + ", ".join(f"{tier} {rss[tier]:.0f} MiB" for tier in TIERS[mode] if tier in rss)
                + ".",
            ]
        out.append("")
        first = derived[0].first_to_saturate()
        out += [
            f"Where each shared server reaches its ceiling"
            f" (vCPU {X} utilisation ÷ CPU per request):",
            "",
        ]
        for s in derived[0].shared:
            if s.name == "redis":
                out.append(
                    f"- redis: {a.redis_vcpu:g} {X} {a.shared_utilisation:g} {X} 1000 ÷"
                    f" ({s.per_request:.3f} commands {X} {redis_us_per_command(inputs):.2f} µs)"
                    f" = **{_fmt(s.capacity_rps, 0)} req/s**"
                )
                continue
            if s.name == "replica":
                out.append(
                    f"- replica: {a.database_host_vcpu:g} {X} {a.shared_utilisation:g} {X} 1000 ÷"
                    f" ({s.per_request:.3f} statements {X}"
                    f" {replica_us_per_statement(inputs):.1f} µs +"
                    f" {replica_apply_ms(inputs, a, mode):.3f} ms applying the writes)"
                    f" = **{_fmt(s.capacity_rps, 0)} req/s** per replica"
                )
                continue
            out.append(
                f"- {s.name}: {a.database_host_vcpu:g} {X} {a.shared_utilisation:g} {X} 1000 ÷"
                f" {s.cpu_ms_per_request:.3f} ms = **{_fmt(s.capacity_rps, 0)} req/s**"
            )
        out += [
            "",
            f"**Saturates first: {first.name}**, at about {_fmt(first.capacity_rps, 0)} req/s"
            + _runner_up(derived[0], first)
            + ".",
            "",
            f"The overlay's autoscalers (`docker/k8s/overlays/{mode}`): minReplicas"
            f" {a.min_pods}, maxReplicas ⌈{HEADROOM:g} {X} the 10 000 req/s count⌉ (headroom"
            " for a burst while the HPA catches up; 100 000 req/s needs them raised): "
            + ", ".join(
                f"{tier} ⌈{HEADROOM:g} {X} {derived[0].pods()[tier]}⌉ = {ceiling}"
                for tier, ceiling in max_replicas(inputs, a, mode).items()
            )
            + ".",
            "",
        ]
    out += [
        "## What changes at each wall",
        "",
        "- **App pods** scale out without limit of their own: the HPA adds them (the"
        f" overlays' `maxReplicas` is {HEADROOM:g} {X} the 10k req/s count above; raise it"
        " for more). The tiers share nothing but MariaDB and Redis (and, in microservices"
        " mode, the gateway, itself a Deployment that scales the same way).",
        "- **Replicas**: reads scale by adding replicas to `DATABASE_REPLICA_URLS`"
        " (the router spreads them); the count is in the table. Each replica also"
        " applies every write of the primary, which bounds this at the primary's write rate.",
        "- **Redis**: one Redis executes commands on one thread; Sentinel"
        " (`REDIS_SENTINELS`) adds failover, not capacity, and every call goes to the primary"
        " (`arcana/core/rediscache.py`: counters and invalidations are read where they were"
        " written). Past its ceiling: Redis Cluster, which django-redis's default client does"
        " not speak, so the cache backend needs a cluster-aware client. The keys spread well"
        " (the user cache is per user, `users:v2:<id>`; throttle and lockout counters per"
        " client and account), but the multi-key calls must stay inside one hash slot: the"
        " writes' `set_many` runs as `MULTI`/`EXEC` (2 to 4 per write above) and login's"
        " lockout check is an `MGET`; a hash tag per user or account (`{<id>}`) keeps each"
        " group in one slot.",
        "- **Primary**: every write, login and pinned read lands on one server. Past its"
        " ceiling, shard users by id (the id is a UUID: a hash of it picks the shard; a login"
        " by e-mail needs an e-mail → id index, itself sharded by e-mail hash); lists then fan"
        " out over the shards or move to a search index.",
        "- **Microservices' databases**: each service has a `DATABASE_URL` of its own, so"
        " its database can move to a server of its own before anything is sharded; the"
        " per-service table above says how the primary's statements split.",
        "",
        "The Kubernetes overlays (`docker/k8s/overlays/monolithic`, `.../layered`,"
        f" `.../microservices`) request {a.pod_vcpu:g} vCPU per app pod (request = limit),"
        f" scale at {a.target_utilisation:.0%} CPU between the floor and the ceilings above,"
        " and request at least the resident memory measured; `tests/test_k8s.py` checks"
        " them against docs/capacity.json.",
        "",
    ]
    return "\n".join(out)


def max_replicas(inputs: Mapping[str, Any], assumptions: Assumptions, mode: str) -> dict[str, int]:
    """The overlays' HPA ceiling per tier: the 10k req/s count, and half again for headroom."""
    derived = derive(inputs, assumptions, mode, LOADS[0])
    return {tier: math.ceil(pods * HEADROOM - 1e-9) for tier, pods in derived.pods().items()}


OVERLAYS = ROOT / "docker" / "k8s" / "overlays"


def ceiling_comment(pods: int) -> list[str]:
    """The comment above an overlay's sized ``maxReplicas`` (tests/test_k8s.py reads it)."""
    return [
        f"# {HEADROOM:g} x {pods}, the pods docs/CAPACITY.md derives for 10k req/s, rounded",
        "# up (100k needs more: see there); tests/test_k8s.py checks it against",
        "# docs/capacity.json, `python -m bench.capacity --size-overlays` writes it.",
    ]


def resize_ceilings(text: str, pods: Mapping[str, int], ceilings: Mapping[str, int]) -> str:
    """``text`` (one overlay file's YAML) with the ``maxReplicas`` of each
    autoscaler of ``ceilings``' Deployments set to its ceiling, the comment
    above it (:func:`ceiling_comment`) replaced; everything else as it was."""
    import re

    documents = text.split("\n---\n")
    heading = re.compile(r"kind: HorizontalPodAutoscaler\nmetadata:\n  name: (\S+)\n")
    ceiling = re.compile(r"(?:^[ \t]*#.*\n)*^([ \t]*)maxReplicas: *\d+[ \t]*$", re.MULTILINE)
    for index, document in enumerate(documents):
        found = heading.search(document)
        if found is None or found[1] not in ceilings:
            continue
        tier = found[1]

        def replacement(match: re.Match[str], tier: str = tier) -> str:
            indent = match[1]
            lines = [indent + line for line in ceiling_comment(pods[tier])]
            return "\n".join([*lines, f"{indent}maxReplicas: {ceilings[tier]}"])

        documents[index], count = ceiling.subn(replacement, document, count=1)
        if count != 1:
            raise ValueError(f"the autoscaler {tier} has no maxReplicas to size")
    return "\n---\n".join(documents)


def size_overlays(inputs: Mapping[str, Any], assumptions: Assumptions) -> list[Path]:
    """Write every overlay's sized ceilings from ``inputs``; the files changed."""
    changed = []
    for mode in MODES:
        pods = derive(inputs, assumptions, mode, LOADS[0]).pods()
        ceilings = max_replicas(inputs, assumptions, mode)
        for path in sorted((OVERLAYS / mode).glob("*.yaml")):
            text = path.read_text()
            sized = resize_ceilings(text, pods, ceilings)
            if sized != text:
                path.write_text(sized)
                changed.append(path)
    return changed


# --- measuring --------------------------------------------------------------------


def thread_cpu(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds of every thread of these processes, by thread id, from
    ``/proc/PID/task/TID/schedstat`` (nanoseconds: ``/proc/PID/stat`` counts in
    10 ms ticks, too coarse for a database's share of a few hundred requests)."""
    found: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in os.scandir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    text = Path(task.path, "schedstat").read_text()
                    found[int(task.name)] = int(text.split()[0]) / 1e9
    return found


def cpu_spent(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds between two :func:`thread_cpu` readings. Threads that ended in
    between are missed; the servers keep theirs (gthread and gRPC pools,
    MariaDB's thread cache, persistent connections)."""
    return sum(seconds - before.get(tid, 0.0) for tid, seconds in after.items())


@dataclass
class Reading:
    cpu: dict[str, dict[int, float]]  # tier -> thread id -> CPU seconds
    mysql: dict[str, dict[str, float]]
    redis: dict[str, float]
    at: float
    by_database: dict[str, dict[str, float]] = field(default_factory=dict)


class Meters:
    """Counters of the private servers and CPU of the stack's processes."""

    def __init__(self, pair: Any, redis_port: int, redis_server: Any) -> None:
        self.pair = pair
        self.redis = importlib.import_module("redis").Redis(port=redis_port, socket_timeout=5)
        self.redis_server = redis_server
        self.connections = {
            "primary": importlib.import_module("tests.support.replication").connect(
                pair.primary.port
            ),
            "replica": importlib.import_module("tests.support.replication").connect(
                pair.replica.port
            ),
        }
        self.trees: dict[str, list[int]] = {}
        # Microservices mode: database name -> service, to count each one's statements.
        self.databases: dict[str, str] = {}

    def watch(self, tiers: Mapping[str, Sequence[Any]]) -> None:
        self.trees = {
            "mariadb_primary": self.pair.primary.server.pids(),
            "mariadb_replica": self.pair.replica.server.pids(),
            "redis": self.redis_server.pids(),
        }
        for tier, servers in tiers.items():
            self.trees[tier] = [pid for server in servers for pid in server.pids()]

    def read(self) -> Reading:
        cpu = {name: thread_cpu(pids) for name, pids in self.trees.items()}
        mysql = {}
        for name, conn in self.connections.items():
            cursor = conn.cursor()
            names = ",".join(f"'{counter}'" for counter in MYSQL_COUNTERS)
            cursor.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
            mysql[name] = {row[0]: float(row[1]) for row in cursor.fetchall()}
        stats = self.redis.info("stats")
        commands = self.redis.info("commandstats")
        # The readings' own INFO calls are the only ones: the app sends none.
        counted = sum(value["calls"] for key, value in commands.items() if key != "cmdstat_info")
        redis = {
            "commands": float(counted),
            "keyspace_hits": float(stats["keyspace_hits"]),
            "keyspace_misses": float(stats["keyspace_misses"]),
        }
        for key, value in commands.items():
            if key != "cmdstat_info":
                redis[key.removeprefix("cmdstat_")] = float(value["calls"])
        return Reading(cpu, mysql, redis, time.monotonic(), self._by_database())

    def _by_database(self) -> dict[str, dict[str, float]]:
        """Statements per service's database on each server (performance_schema's
        digests, by the connection's default database; the readings have none)."""
        if not self.databases:
            return {}
        found = {}
        for name, conn in self.connections.items():
            cursor = conn.cursor()
            cursor.execute(
                "SELECT SCHEMA_NAME, SUM(COUNT_STAR) FROM"
                " performance_schema.events_statements_summary_by_digest"
                " WHERE SCHEMA_NAME IS NOT NULL GROUP BY SCHEMA_NAME"
            )
            counts = {str(row[0]): float(row[1]) for row in cursor.fetchall()}
            found[name] = {
                service: counts.get(database, 0.0) for database, service in self.databases.items()
            }
        return found

    def close(self) -> None:
        self.redis.close()
        for conn in self.connections.values():
            conn.close()


# Each reading itself sends one statement to each MariaDB server.
READING_STATEMENTS = {"Questions": 1.0}


def _delta(before: Reading, after: Reading) -> dict[str, Any]:
    return {
        "seconds": after.at - before.at,
        "cpu": {
            name: cpu_spent(before.cpu.get(name, {}), threads)
            for name, threads in after.cpu.items()
        },
        "db": {
            name: {
                counter: after.mysql[name].get(counter, 0.0)
                - before.mysql[name].get(counter, 0.0)
                - READING_STATEMENTS.get(counter, 0.0)
                for counter in MYSQL_COUNTERS
            }
            for name in after.mysql
        },
        "redis": {
            key: after.redis.get(key, 0.0) - before.redis.get(key, 0.0) for key in after.redis
        },
        "by_database": {
            server: {
                service: count - before.by_database[server].get(service, 0.0)
                for service, count in counts.items()
            }
            for server, counts in after.by_database.items()
        },
    }


def _per_request(delta: Mapping[str, Any], quiet: Mapping[str, Any], count: int) -> dict[str, Any]:
    """A batch's counts less the background over the same time, per request."""
    scale = float(delta["seconds"]) / float(quiet["seconds"])

    def net(value: float, background: float) -> float:
        return max(0.0, value - background * scale) / count

    found: dict[str, Any] = {
        "cpu_ms": {
            name: 1000 * net(value, quiet["cpu"].get(name, 0.0))
            for name, value in delta["cpu"].items()
        },
        "db": {
            server: {
                counter: net(value, quiet["db"][server][counter])
                for counter, value in counters.items()
            }
            for server, counters in delta["db"].items()
        },
        "redis": {
            key: net(value, quiet["redis"].get(key, 0.0)) for key, value in delta["redis"].items()
        },
    }
    if delta["by_database"]:
        found["statements_by_service"] = {
            server: {
                service: net(value, quiet["by_database"][server][service])
                for service, value in counts.items()
            }
            for server, counts in delta["by_database"].items()
        }
        # Before the background is taken off: never below what the requests
        # sent. Where one statement per request goes, the net figure reads a
        # little under 1 about as often as over (the batch's share of the
        # background varies), so "do statements go there" asks this one.
        found["statements_by_service_gross"] = {
            server: {service: value / count for service, value in counts.items()}
            for server, counts in delta["by_database"].items()
        }
    return found


class Client:
    """One keep-alive REST connection and one gRPC channel to a stack, as its admin."""

    def __init__(self, stack: Any) -> None:
        import grpc

        from protos.arcana.v1 import auth_pb2_grpc, users_pb2_grpc

        self.stack = stack
        self.rest = http.client.HTTPConnection("127.0.0.1", stack.rest_port, timeout=60)
        self.channel = grpc.insecure_channel(stack.grpc_address)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.users = users_pb2_grpc.UserServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.metadata = (("authorization", f"Bearer {stack.admin_token}"),)
        self.sequence = 0

    def close(self) -> None:
        self.rest.close()
        self.channel.close()

    def _http(self, method: str, path: str, body: Any, expected: int, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.stack.admin_token}"
        payload = None if body is None else json.dumps(body)
        self.rest.request(method, path, body=payload, headers=headers)
        response = self.rest.getresponse()
        data = response.read()
        if response.status != expected:
            raise RuntimeError(f"{method} {path}: HTTP {response.status} {data[:300]!r}")
        return json.loads(data) if data else None

    def call(self, protocol: str, op: str, user_id: str = "") -> str:
        """One request; returns the id of a user it created (else "")."""
        from protos.arcana.v1 import auth_pb2, users_pb2

        self.sequence += 1
        if op in (GET, GET_COLD):
            if protocol == "rest":
                self._http("GET", f"/api/v1/users/{user_id}", None, 200)
            else:
                self.users.GetUser(
                    users_pb2.GetUserRequest(id=user_id), metadata=self.metadata, timeout=60
                )
        elif op == LIST:
            if protocol == "rest":
                self._http("GET", "/api/v1/users?page=0&size=20", None, 200)
            else:
                self.users.ListUsers(
                    users_pb2.ListUsersRequest(page=0, size=20), metadata=self.metadata, timeout=60
                )
        elif op == LOGIN:
            login = {"email": self.stack.admin_email, "password": self.stack.password}
            if protocol == "rest":
                self._http("POST", "/api/v1/auth/login", login, 200, auth=False)
            else:
                self.auth.Login(auth_pb2.LoginRequest(**login), timeout=60)
        elif op == UPDATE:
            name = f"Capacity Renamed {self.sequence}"
            if protocol == "rest":
                self._http("PATCH", f"/api/v1/users/{user_id}", {"name": name}, 200)
            else:
                self.users.UpdateUser(
                    users_pb2.UpdateUserRequest(id=user_id, name=name),
                    metadata=self.metadata,
                    timeout=60,
                )
        elif op == CREATE:
            user = {
                "name": f"Capacity User {self.sequence}",
                "email": f"cap-{protocol}-{self.sequence}-{os.getpid()}@capacity.example.com",
                "password": self.stack.password,
            }
            if protocol == "rest":
                return str(self._http("POST", "/api/v1/users", user, 201)["id"])
            return str(
                self.users.CreateUser(
                    users_pb2.CreateUserRequest(**user), metadata=self.metadata, timeout=60
                ).id
            )
        else:
            raise ValueError(f"no operation {op!r}")
        return ""


def _forget_users(redis_port: int) -> None:
    """Empty the user cache (the private Redis holds nothing else of anyone's)."""
    client = importlib.import_module("redis").Redis(port=redis_port, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match="*users:v2:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _tiers(stack: Any) -> dict[str, list[Any]]:
    """The stack's servers by the Deployment (``TIERS``) each runs as."""
    if stack.mode == "microservices":
        found = {"gateway": stack.tiers["gateway"]}
        for service in SERVICES:
            rest, grpc, internal = stack.tiers[service]
            found |= {f"{service}-rest": [rest], f"{service}-grpc": [grpc]}
            found[f"{service}-internal"] = [internal]
        return found
    found = {"rest": [stack.rest], "grpc": [stack.grpc]}
    for tier in ("service", "repository"):
        if tier in stack.tiers:
            found[tier] = stack.tiers[tier]
    return found


def measure_mode(
    mode: str,
    pair: Any,
    redis_port: int,
    redis_server: Any,
    requests: int,
    quiet: float,
    replay: int = 0,
) -> dict[str, Any]:
    """One mode's figures; ``replay``: also the replica's CPU per statement
    under load, over that many statements (:func:`replica_under_load`)."""
    from tests.support.stack import database_name, live_stack

    found: dict[str, Any] = {protocol: {} for protocol in PROTOCOLS}
    with live_stack(
        pair.primary.url("arcana"),
        f"redis://127.0.0.1:{redis_port}/0",
        mode=mode,
        # As the pods run them (REST_WORKERS, GRPC_WORKERS): the resident
        # memory measured is a pod's. One client at a time keeps to one of them.
        rest_workers=2,
        grpc_workers=2,
        database_prefix="cap",
        replica_urls=[pair.replica.url("arcana")],
        env_overrides={"USER_CACHE": "true"},
    ) as stack:
        all_tiers = _tiers(stack)
        meters = Meters(pair, redis_port, redis_server)
        meters.databases = {database_name(url): service for service, url in stack.databases.items()}
        client = Client(stack)
        pin = float(stack.env.get("DATABASE_REPLICA_PIN_SECONDS", "5")) + 1.5
        try:
            meters.watch(all_tiers)
            for protocol in PROTOCOLS:  # warm every path (connections, imports)
                for op in (LIST, GET):
                    for _ in range(20):
                        client.call(protocol, op, stack.admin_id)
            time.sleep(pin)
            before = meters.read()
            time.sleep(quiet)
            background = _delta(before, meters.read())
            created: dict[str, list[str]] = {}

            def batch(protocol: str, op: str, targets: Sequence[str]) -> None:
                latencies = []
                client.rest.close()  # idle since the last batch: past the server's keep-alive
                client.call(protocol, LIST if op == CREATE else GET, stack.admin_id)  # reconnect
                start = meters.read()
                for index in range(requests):
                    began = time.perf_counter()
                    made = client.call(protocol, op, targets[index % len(targets)])
                    latencies.append((time.perf_counter() - began) * 1000)
                    if made:
                        created.setdefault(protocol, []).append(made)
                figures = _per_request(_delta(start, meters.read()), background, requests)
                figures["p50_ms"] = statistics.median(latencies)
                figures["requests"] = requests
                found[protocol][op] = figures
                print(
                    f"capacity: {mode} {protocol} {op}: p50 {figures['p50_ms']:.2f} ms, "
                    + ", ".join(f"{k} {v:.2f}" for k, v in figures["cpu_ms"].items() if v)
                    + f" ms CPU; primary {figures['db']['primary']['Questions']:.2f}, "
                    f"replica {figures['db']['replica']['Questions']:.2f} statements; "
                    f"Redis {figures['redis']['commands']:.2f} commands",
                    flush=True,
                )

            for protocol in PROTOCOLS:
                batch(protocol, CREATE, [""])
            for protocol in PROTOCOLS:
                batch(protocol, UPDATE, created[protocol])
            for protocol in PROTOCOLS:
                batch(protocol, LOGIN, [""])
            time.sleep(pin)  # no caller pinned to the primary by those writes
            _forget_users(redis_port)
            for protocol in PROTOCOLS:
                batch(protocol, GET_COLD, created[protocol])
            for protocol in PROTOCOLS:
                batch(protocol, GET, created[protocol])
                batch(protocol, LIST, [""])
            if replay:

                def reads() -> None:
                    _forget_users(redis_port)
                    client.call("rest", GET_COLD, created["rest"][0])
                    client.call("rest", LIST)

                found["replica_under_load"] = replica_under_load(
                    pair, database_name(stack.database_url), reads, count=replay
                )
            from bench.procstat import rss_bytes

            # Resident memory of each tier's processes (one worker each), at the end.
            found["rss_mib"] = {
                tier: rss_bytes([pid for server in servers for pid in server.pids()]) / 2**20
                for tier, servers in all_tiers.items()
            }
            found["background_per_second"] = {
                "cpu_ms": {
                    k: 1000 * v / background["seconds"] for k, v in background["cpu"].items()
                },
                "db": {
                    server: {k: v / background["seconds"] for k, v in counters.items()}
                    for server, counters in background["db"].items()
                },
                "redis_commands": background["redis"]["commands"] / background["seconds"],
            }
        finally:
            client.close()
            meters.close()
    return found


@contextlib.contextmanager
def private_redis(directory: Path) -> Iterator[tuple[int, Any]]:
    from tests.support.servers import Server, free_port

    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found (Debian: apt-get install redis-server)")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(directory)]
    server = Server(f"redis-server (:{port})", argv, os.environ, directory / "redis.log")
    server.start()
    try:
        redis = importlib.import_module("redis")

        def answers() -> bool:
            with contextlib.suppress(redis.RedisError):
                return bool(redis.Redis(port=port, socket_timeout=1).ping())
            return False

        server.wait_until(answers, 30)
        yield port, server
    finally:
        server.stop()


def replica_under_load(
    pair: Any,
    database: str,
    requests: Callable[[], object],
    clients: int = 16,
    count: int = 20_000,
) -> dict[str, Any]:
    """The replica's CPU per statement with ``clients`` connections busy: the
    read statements ``requests`` makes the replica run (a cold get-by-id and a
    list-20, taken from its general log), replayed by ``mariadb-slap``."""
    import subprocess

    binary = shutil.which("mariadb-slap") or shutil.which("mysqlslap")
    if binary is None:
        raise RuntimeError("mariadb-slap not found (Debian: apt-get install mariadb-client)")
    replica = pair.replica
    replica.sql("TRUNCATE mysql.general_log")
    replica.sql("SET GLOBAL log_output = 'TABLE'")
    replica.sql("SET GLOBAL general_log = 1")
    try:
        requests()
    finally:
        replica.sql("SET GLOBAL general_log = 0")
    logged = replica.sql(
        "SELECT CONVERT(argument USING utf8mb4) AS sql_text FROM mysql.general_log"
        " WHERE command_type = 'Query' ORDER BY event_time"
    )
    statements = [
        row["sql_text"]
        for row in logged
        if row["sql_text"].lstrip().upper().startswith("SELECT") and "`users_" in row["sql_text"]
    ]
    if not statements:
        raise RuntimeError("no read of the users tables reached the replica's general log")
    if any(";" in statement for statement in statements):
        raise RuntimeError("a logged statement holds ';', which mariadb-slap would split")

    def questions() -> float:
        return float(replica.sql("SHOW GLOBAL STATUS LIKE 'Questions'")[0]["Value"])

    pids = replica.server.pids()
    cpu_before, questions_before = thread_cpu(pids), questions()
    subprocess.run(  # noqa: S603  (our own argv)
        [binary, "-h127.0.0.1", f"-P{replica.port}", "-uroot", f"--concurrency={clients}",
         f"--number-of-queries={count}", "--iterations=1", f"--create-schema={database}",
         "--no-drop", "--delimiter=;", f"--query={';'.join(statements)}"],
        capture_output=True,
        check=True,
        timeout=600,
    )  # fmt: skip
    cpu_after, executed = thread_cpu(pids), questions() - questions_before - 1
    cpu = cpu_spent(cpu_before, cpu_after)
    return {
        "clients": clients,
        "statements": executed,
        "distinct_statements": len(statements),
        "cpu_us_per_statement": cpu * 1e6 / executed,
        "tool": f"mariadb-slap -c {clients}",
    }


def redis_under_load(
    port: int, server: Any, clients: int = 32, requests: int = 200_000
) -> dict[str, Any]:
    """Redis's own CPU per command with ``clients`` connections busy
    (``redis-benchmark``, GET and SET of a user record's size, no pipelining)."""
    import subprocess

    binary = shutil.which("redis-benchmark")
    if binary is None:
        raise RuntimeError("redis-benchmark not found (Debian: apt-get install redis-tools)")
    client = importlib.import_module("redis").Redis(port=port, socket_timeout=5)
    try:

        def calls() -> float:
            stats = client.info("commandstats")
            return float(sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info"))

        pids = server.pids()
        cpu_before, calls_before, started = thread_cpu(pids), calls(), time.monotonic()
        subprocess.run(  # noqa: S603  (our own argv)
            [binary, "-p", str(port), "-c", str(clients), "-n", str(requests), "-d", "600",
             "-t", "get,set", "-q"],
            capture_output=True,
            check=True,
            timeout=600,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        cpu_after, calls_after = thread_cpu(pids), calls()
        client.flushdb()  # the benchmark's keys, on this run's own Redis
    finally:
        client.close()
    cpu = cpu_spent(cpu_before, cpu_after)
    commands = calls_after - calls_before  # INFO (the readings) is not counted
    return {
        "clients": clients,
        "commands": commands,
        "ops_per_second": commands / elapsed,
        "cpu_us_per_command": cpu * 1e6 / commands,
        "tool": f"redis-benchmark -c {clients} -d 600 -t get,set",
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


PERFORMANCE_SCHEMA = ("--performance-schema=ON",)


def measure(
    modes: Sequence[str], requests: int, quiet: float, under_load: float = 1.0
) -> dict[str, Any]:
    """Every mode's inputs; ``under_load`` scales the busy measurements (20 000
    replica statements, 200 000 Redis commands: a smoke run wants fewer)."""
    from tests.support.replication import replicated_pair

    load_at_start = round(os.getloadavg()[0], 2)
    with (
        tempfile.TemporaryDirectory(prefix="arcana-capacity-") as directory,
        # performance_schema: statements per database (microservices' two), on both.
        replicated_pair(Path(directory) / "mariadb", PERFORMANCE_SCHEMA) as pair,
        private_redis(Path(directory)) as (redis_port, redis_server),
    ):
        version = pair.primary.sql("SELECT VERSION() AS v")[0]["v"]
        redis_version = (
            importlib.import_module("redis").Redis(port=redis_port).info("server")["redis_version"]
        )
        pair.primary.sql("CREATE DATABASE IF NOT EXISTS arcana")
        results = {
            mode: measure_mode(
                mode,
                pair,
                redis_port,
                redis_server,
                requests,
                quiet,
                replay=round(20_000 * under_load) if index == 0 else 0,
            )
            for index, mode in enumerate(modes)
        }
        replica_load = results[modes[0]].pop("replica_under_load")
        redis_load = redis_under_load(
            redis_port, redis_server, requests=round(200_000 * under_load)
        )
    return {
        "schema": SCHEMA,
        "measured": {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": _cpu_model(),
            "cores": os.cpu_count(),
            "requests": requests,
            "quiet_seconds": quiet,
            "mariadb": str(version),
            "redis": str(redis_version),
            "command": "make capacity",
            # Other work on the machine inflates CPU per request: say how busy it was.
            "load_average": load_at_start,
            "load_average_end": round(os.getloadavg()[0], 2),
        },
        "modes": results,
        "redis_under_load": redis_load,
        "replica_under_load": replica_load,
    }


# Figures that other work on the machine can only make larger (CPU time, latency):
# of several runs, the least is the nearest to the cost itself.
LEAST_OF_RUNS = ("cpu_ms", "cpu_us_per_command", "cpu_us_per_statement", "p50_ms")


def merge_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several runs' inputs as one: each CPU and latency figure the least any run
    measured, resident memory the most, counts (statements, commands) the first
    run's (they do not vary)."""
    if not runs:
        raise ValueError("no runs to merge")

    def walk(values: list[Any], path: tuple[str, ...]) -> Any:
        first = values[0]
        if isinstance(first, Mapping):
            return {
                key: walk([v[key] for v in values if isinstance(v, Mapping) and key in v],
                          (*path, key))
                for key in first
            }  # fmt: skip
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) == len(values) and numbers:
            if any(part in LEAST_OF_RUNS for part in path):
                if "cpu_ms" in path and min(numbers) >= 0.5:  # a tier's, not a rounding's
                    spread.append(max(numbers) / min(numbers))
                return min(numbers)
            if "rss_mib" in path:
                return max(numbers)
        return first

    spread: list[float] = []
    merged: dict[str, Any] = walk(list(runs), ())
    merged["measured"] = {
        **runs[0]["measured"],
        "date": ", ".join(str(run["measured"]["date"]) for run in runs),
        # Runs merged before count as the runs they were (--merge of a --runs 2 output).
        "runs": sum(int(run["measured"].get("runs", 1)) for run in runs),
        "load_average": _flat(run["measured"].get("load_average") for run in runs),
        "load_average_end": _flat(run["measured"].get("load_average_end") for run in runs),
        "cpu_spread": round(
            max([*spread, *(float(run["measured"].get("cpu_spread", 1.0)) for run in runs)]), 2
        ),
    }
    return merged


def _flat(values: Iterable[Any]) -> list[Any]:
    return [v for value in values for v in (value if isinstance(value, list) else [value])]


def write(inputs: Mapping[str, Any], assumptions: Assumptions, doc: Path, *jsons: Path) -> None:
    text = json.dumps(inputs, indent=1, sort_keys=True) + "\n"
    for path in jsons:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    doc.write_text(render(inputs, assumptions))


def load_inputs(path: Path) -> dict[str, Any]:
    try:
        inputs: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"capacity: cannot read {path}: {exc}") from None
    if not isinstance(inputs, dict) or inputs.get("schema") != SCHEMA:
        raise SystemExit(f"capacity: {path} is not schema {SCHEMA} capacity inputs")
    return inputs


def _stop_on_sigterm() -> None:
    """SIGTERM / SIGHUP unwind like Ctrl-C: every server started is stopped."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.capacity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="per operation and protocol")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--quiet-seconds", type=float, default=5.0)
    parser.add_argument("--render", type=Path, metavar="JSON", help="re-render from inputs only")
    parser.add_argument(
        "--runs", type=int, default=1, help="measure this many times, keep the least CPU of each"
    )
    parser.add_argument(
        "--merge", type=Path, nargs="+", metavar="JSON", help="merge runs' inputs (see --runs)"
    )
    parser.add_argument("--doc", type=Path, help=f"default {DOC.relative_to(ROOT)}")
    parser.add_argument(
        "--size-overlays",
        action="store_true",
        help="set docker/k8s/overlays/*'s HPA ceilings from docs/capacity.json, then exit",
    )
    parser.add_argument(
        "--note", default="", help="how the machine was while measuring (shown in the document)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="20 requests each (smoke run); writes bench/out/ only, not docs/",
    )
    args = parser.parse_args(argv)
    assumptions = Assumptions()
    doc = args.doc or (OUT_JSON.parent / "CAPACITY.md" if args.quick else DOC)
    if args.size_overlays:
        try:
            changed = size_overlays(load_inputs(DOC_JSON), assumptions)
        except ValueError as exc:
            parser.error(str(exc))
        print("\n".join(f"sized {path.relative_to(ROOT)}" for path in changed) or "no change")
        return 0
    if args.render:
        inputs = load_inputs(args.render)
        try:
            doc.write_text(render(inputs, assumptions))
        except ValueError as exc:
            parser.error(str(exc))
        print(f"wrote {doc}")
        return 0
    if args.merge:
        inputs = merge_runs([load_inputs(path) for path in args.merge])
        if args.note:
            inputs["measured"]["note"] = args.note
        try:
            write(inputs, assumptions, doc, DOC_JSON)
        except ValueError as exc:
            parser.error(str(exc))
        print(f"wrote {DOC_JSON} and {doc} from {len(args.merge)} runs")
        return 0
    modes = [mode for mode in args.modes.split(",") if mode]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    requests = 20 if args.quick else args.requests
    _stop_on_sigterm()
    if requests < 1 or args.quiet_seconds <= 0 or args.runs < 1:
        parser.error("--requests, --runs and --quiet-seconds must be positive")
    scale = 0.1 if args.quick else 1.0
    inputs = merge_runs(
        [measure(modes, requests, args.quiet_seconds, scale) for _ in range(args.runs)]
    )
    if args.note:
        inputs["measured"]["note"] = args.note
    jsons = (OUT_JSON,) if args.quick else (OUT_JSON, DOC_JSON)
    write(inputs, assumptions, doc, *jsons)
    print(f"wrote {', '.join(str(path) for path in (*jsons, doc))}")
    for mode in modes:
        for load in LOADS:
            d = derive(inputs, assumptions, mode, load)
            first = d.first_to_saturate().name
            print(f"{mode} {load} req/s: pods {d.pods()}; first to saturate {first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
