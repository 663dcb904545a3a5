"""The results: one table for the terminal, the same as Markdown, and a chart."""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from bench import load

GET_TARGET_CONCURRENCY = 8
GRPC_OVER_REST_TARGET = 1.5
FLOOR_TARGET = 0.75
GRPC_FLOOR_TARGET = 0.8
# Issue 8: one internal hop adds at most this many bare-echo p50s, and layered
# get-by-id at concurrency 8 keeps at least this share of monolithic throughput.
HOP_TARGET = 1.5
LAYERED_THROUGHPUT_TARGET = 0.5
# Issue 13: a login (one Argon2id verification at OWASP's minimum, users/hashers.py)
# answers within this many milliseconds at concurrency 1, monolithic.
LOGIN_P50_TARGET_MS = 50.0
LABELS = {
    load.REST: "REST",
    load.GRPC: "gRPC",
    load.REST_FLOOR: "REST floor",
    load.GRPC_FLOOR: "gRPC floor",
    load.ECHO: "echo (plaintext)",
    load.ECHO_TLS: "echo (mutual TLS)",
}
# Internal calls one request makes in layered mode, the same over REST and gRPC
# (read from the code, and counted in the tiers' logs: see the README), with
# the user cache warm (Redis; the benchmark reads the same seeded users over
# and over). Every authenticated request first looks up the caller
# (users.service.user_record): the controller finds the record in the shared
# cache, 0 hops (arcana.core.delegation.front); then the operation itself:
# - get-by-id: users.service.user_get (the access rule), whose
#   users.repo.user_get the service tier finds in the cache: 1 hop;
# - list-20: users.service.user_list -> users.repo.user_list: 2;
# - create: users.service.user_create_by -> users.repo.user_insert: 2;
# login is not authenticated: authn.service.auth_login, which calls the
# repository tier for the credentials (users.repo.user_credentials, never
# cached), the last-login stamp (users.repo.user_login_record) and the new
# session (authn.repo.refresh_token_record): 4.
HOPS = {load.GET: 1, load.LIST: 2, load.CREATE: 2, load.LOGIN: 4}
# Operations whose latency is not dominated by one Argon2 hash (about 0.1-0.2 s
# of CPU, varying by more than the hops cost): the hop target is judged on these.
HOP_JUDGED = (load.GET, load.LIST)


@dataclass(frozen=True)
class Result:
    kind: str
    mode: str  # "monolithic" or "layered" for REST and gRPC; "" for floors and the echo
    operation: str
    concurrency: int
    ok: int
    errors: int
    duration: float
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    server_cpu_ms: float  # CPU of the server's processes per successful request
    backend_cpu_ms: float  # CPU of MariaDB + Redis per successful request (nan on SQLite)
    client_cpu_ms: float  # CPU of the load-generating processes per successful request
    machine_busy_pct: float  # every CPU of the machine, whoever used it
    machine_steal_pct: float  # taken by the hypervisor for other guests
    db_statements: float  # per request, counted by MariaDB (nan on SQLite)
    cache_commands: float  # per request, counted by Redis (nan without Redis)
    worker_cpu_split: tuple[float, ...]  # CPU seconds of each server worker, busiest first
    first_error: str | None


def label(result: Result) -> str:
    return f"{LABELS[result.kind]} {result.mode}" if result.mode else LABELS[result.kind]


def one_line(result: Result) -> str:
    return (
        f"{result.operation:<10} c={result.concurrency:<2} {label(result):<17} "
        f"{result.rps:9.1f} rps  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
        f"n={result.ok} err={result.errors}  server CPU {result.server_cpu_ms:.2f} ms/req"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(
    backend: str, workers: int, modes: tuple[str, ...] = (load.MONOLITHIC,), replicas: int = 1
) -> dict[str, str]:
    load1, load5, _ = os.getloadavg()
    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "Python": sys.version.split()[0],
        "OS": f"{platform.system()} {platform.release()}",
        "database": backend,
        "server processes": f"{workers} per server (arcana.wsgi_server: granian workers x "
        f"{os.environ.get('REST_THREADS', '4')} threads, as deployed; "
        f"grpcrunserver --workers, SO_REUSEPORT, "
        f"{os.environ.get('GRPC_MAX_WORKERS', '10')} threads each)"
        + (
            f"; layered mode: that controller tier, {replicas} service and {replicas} "
            "repository tier processes (tierserver, one port each, balanced per call, "
            "mutual TLS)"
            if load.LAYERED in modes
            else ""
        ),
        "versions": ", ".join(
            f"{name} {version(name)}"
            for name in ("Django", "djangorestframework", "djangogrpcframework", "grpcio")
        )
        + f", granian {version('granian')}",
        "load average at the end": f"{load1:.2f} (1 min), {load5:.2f} (5 min)",
    }


def _find(
    results: list[Result],
    kind: str,
    operation: str,
    concurrency: int,
    mode: str = load.MONOLITHIC,
) -> Result | None:
    if kind not in (load.REST, load.GRPC):
        mode = ""
    for result in results:
        if (result.kind, result.operation, result.concurrency, result.mode) == (
            kind,
            operation,
            concurrency,
            mode,
        ):
            return result
    return None


def _ratio(top: Result | None, bottom: Result | None) -> float:
    if top is None or bottom is None or not bottom.rps:
        return float("nan")
    return top.rps / bottom.rps


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _modes(results: list[Result]) -> list[str]:
    return [mode for mode in load.MODES if any(r.mode == mode for r in results)]


def _rows(results: list[Result]) -> list[list[str]]:
    rows = []
    operations = [op for op in load.OPERATIONS if any(r.operation == op for r in results)]
    concurrencies = sorted({r.concurrency for r in results})
    lines = [(op, mode) for op in operations for mode in _modes(results)]
    if load.GET in operations:
        lines.insert(len(_modes(results)), (load.GET, ""))  # the floors, after get-by-id
    nan = float("nan")
    for operation, mode in lines:
        floor = not mode
        rest_kind, grpc_kind = (
            (load.REST_FLOOR, load.GRPC_FLOOR) if floor else (load.REST, load.GRPC)
        )
        for concurrency in concurrencies:
            rest = _find(results, rest_kind, operation, concurrency, mode)
            grpc = _find(results, grpc_kind, operation, concurrency, mode)
            if rest is None and grpc is None:
                continue
            rows.append(
                [
                    f"{operation} floor" if floor else operation,
                    mode or "-",
                    str(concurrency),
                    _fmt(rest.rps if rest else nan),
                    _fmt(rest.p50_ms if rest else nan, 2),
                    _fmt(rest.p99_ms if rest else nan, 2),
                    _fmt(grpc.rps if grpc else nan),
                    _fmt(grpc.p50_ms if grpc else nan, 2),
                    _fmt(grpc.p99_ms if grpc else nan, 2),
                    _fmt(_ratio(grpc, rest), 2) + "x",
                ]
            )
    return rows


HEADER = [
    "operation",
    "mode",
    "conc",
    "REST rps",
    "REST p50 ms",
    "REST p99 ms",
    "gRPC rps",
    "gRPC p50 ms",
    "gRPC p99 ms",
    "gRPC/REST",
]
MODE_HEADER = [
    "operation",
    "conc",
    "REST rps L/M",
    "REST p50 L/M",
    "gRPC rps L/M",
    "gRPC p50 L/M",
]


def _mode_rows(results: list[Result]) -> list[list[str]]:
    """Layered over monolithic, per operation and concurrency."""
    rows = []
    for operation in load.OPERATIONS:
        for concurrency in sorted({r.concurrency for r in results}):
            cells = []
            for kind in (load.REST, load.GRPC):
                layered = _find(results, kind, operation, concurrency, load.LAYERED)
                mono = _find(results, kind, operation, concurrency, load.MONOLITHIC)
                cells += [
                    _fmt(_ratio(layered, mono), 2) + "x",
                    _fmt(layered.p50_ms / mono.p50_ms if layered and mono else float("nan"), 2)
                    + "x",
                ]
            if any(cell != "-x" for cell in cells):
                rows.append([operation, str(concurrency), *cells])
    return rows


HOP_HEADER = [
    "operation",
    "protocol",
    "hops",
    "monolithic p50 ms",
    "layered p50 ms",
    "hop cost ms",
    "hop cost / echo mTLS p50",
    f"target <= {HOP_TARGET}",
]


@dataclass(frozen=True)
class HopCost:
    operation: str
    kind: str
    hops: int
    monolithic_p50: float
    layered_p50: float
    cost: float  # ms added per internal hop
    ratio: float  # cost / the mutual-TLS echo's p50

    @property
    def judged(self) -> bool:
        return self.operation in HOP_JUDGED


def hop_costs(results: list[Result]) -> list[HopCost]:
    """At the lowest concurrency: (layered p50 - monolithic p50) / hops."""
    concurrencies = sorted({r.concurrency for r in results})
    echo = _find(results, load.ECHO_TLS, load.ECHO_OPERATION, concurrencies[0]) if results else None
    costs = []
    for operation in load.OPERATIONS:
        for kind in (load.REST, load.GRPC):
            layered = _find(results, kind, operation, concurrencies[0], load.LAYERED)
            mono = _find(results, kind, operation, concurrencies[0], load.MONOLITHIC)
            if layered is None or mono is None:
                continue
            hops = HOPS[operation]
            cost = (layered.p50_ms - mono.p50_ms) / hops
            costs.append(
                HopCost(
                    operation,
                    kind,
                    hops,
                    mono.p50_ms,
                    layered.p50_ms,
                    cost,
                    cost / echo.p50_ms if echo and echo.p50_ms else float("nan"),
                )
            )
    return costs


def _verdict(value: float, goal: float, *, at_most: bool = False) -> str:
    if math.isnan(value):
        return "not measured"
    return "met" if (value <= goal if at_most else value >= goal) else "MISSED"


def _hop_rows(costs: list[HopCost]) -> list[list[str]]:
    return [
        [
            c.operation,
            LABELS[c.kind],
            str(c.hops),
            _fmt(c.monolithic_p50, 2),
            _fmt(c.layered_p50, 2),
            _fmt(c.cost, 3),
            _fmt(c.ratio, 2) + "x",
            _verdict(c.ratio, HOP_TARGET, at_most=True)
            if c.judged
            else "(Argon2 noise: not judged)",
        ]
        for c in costs
    ]


def _echo_lines(results: list[Result]) -> list[str]:
    return [
        f"{LABELS[r.kind]}: p50 {_fmt(r.p50_ms, 3)} ms, p99 {_fmt(r.p99_ms, 3)} ms, "
        f"{_fmt(r.rps)} calls/s at conc {r.concurrency}"
        for r in results
        if r.kind in load.ECHO_KINDS
    ]


COST_HEADER = [
    "server",
    "operation",
    "conc",
    "requests",
    "errors",
    "server CPU ms/req",
    "DB+cache CPU ms/req",
    "client CPU ms/req",
    "DB stmts/req",
    "Redis cmds/req",
    "machine busy %",
    "steal %",
    "CPU per worker (s)",
]


def _cost_rows(results: list[Result]) -> list[list[str]]:
    return [
        [
            label(r),
            r.operation,
            str(r.concurrency),
            str(r.ok),
            str(r.errors),
            _fmt(r.server_cpu_ms, 2),
            _fmt(r.backend_cpu_ms, 2),
            _fmt(r.client_cpu_ms, 2),
            _fmt(r.db_statements, 2),
            _fmt(r.cache_commands, 2),
            _fmt(r.machine_busy_pct, 0),
            _fmt(r.machine_steal_pct, 0),
            " / ".join(f"{share:.2f}" for share in r.worker_cpu_split),
        ]
        for r in results
    ]


@dataclass(frozen=True)
class Target:
    """One of the issues' targets as measured by one run: what it is, the goal,
    the measured value (nan when the run did not measure it)."""

    name: str
    value: float
    goal: float
    at_most: bool = False
    unit: str = "x"

    @property
    def verdict(self) -> str:
        return _verdict(self.value, self.goal, at_most=self.at_most)

    @property
    def met(self) -> bool:
        return self.verdict == "met"

    def shown(self) -> str:
        return f"{_fmt(self.value, 1 if self.unit == ' ms' else 2)}{self.unit}"

    @property
    def line(self) -> str:
        return f"{self.name}: {self.shown()} -> {self.verdict}"


def targets(results: list[Result]) -> list[Target]:
    """The targets of issues 8 and 13 that one run measures, in a fixed order.

    Issue 13 judges get-by-id at concurrency 1 and 8, auth on both: REST >=
    FLOOR_TARGET of its floor, gRPC >= GRPC_FLOOR_TARGET of its own, gRPC over
    REST >= GRPC_OVER_REST_TARGET; issue 8 judges layered throughput at 8."""
    found: list[Target] = []
    concurrencies = sorted({r.concurrency for r in results if r.operation == load.GET})
    for at in concurrencies:
        speedup = _ratio(
            _find(results, load.GRPC, load.GET, at), _find(results, load.REST, load.GET, at)
        )
        found.append(
            Target(
                f"gRPC get-by-id >= {GRPC_OVER_REST_TARGET}x REST at conc {at}",
                speedup,
                GRPC_OVER_REST_TARGET,
            )
        )
        for kind, floor, goal in (
            (load.REST, load.REST_FLOOR, FLOOR_TARGET),
            (load.GRPC, load.GRPC_FLOOR, GRPC_FLOOR_TARGET),
        ):
            value = _ratio(_find(results, kind, load.GET, at), _find(results, floor, load.GET, at))
            found.append(
                Target(f"{LABELS[kind]} get-by-id >= {goal}x its floor at conc {at}", value, goal)
            )
    if concurrencies:
        at = max(concurrencies)
        note = "" if at == GET_TARGET_CONCURRENCY else f" (measured at conc {at}, not 8)"
        for kind in (load.REST, load.GRPC):
            layered = _find(results, kind, load.GET, at, load.LAYERED)
            if layered is None:
                continue
            value = _ratio(layered, _find(results, kind, load.GET, at))
            found.append(
                Target(
                    f"{LABELS[kind]} layered get-by-id >= {LAYERED_THROUGHPUT_TARGET}x "
                    f"monolithic throughput at conc 8{note}",
                    value,
                    LAYERED_THROUGHPUT_TARGET,
                )
            )
    for kind in (load.REST, load.GRPC):
        login = _find(results, kind, load.LOGIN, 1)
        if login is not None:
            found.append(
                Target(
                    f"{LABELS[kind]} login p50 <= {LOGIN_P50_TARGET_MS:.0f} ms at conc 1",
                    login.p50_ms,
                    LOGIN_P50_TARGET_MS,
                    at_most=True,
                    unit=" ms",
                )
            )
    for cost in hop_costs(results):
        if cost.judged:
            found.append(
                Target(
                    f"{LABELS[cost.kind]} {cost.operation}: one hop adds <= {HOP_TARGET}x the "
                    "mutual-TLS echo's p50",
                    cost.ratio,
                    HOP_TARGET,
                    at_most=True,
                )
            )
    return found


def _verdicts(results: list[Result]) -> tuple[list[str], list[str]]:
    """Lines on "x of floor" per concurrency, and lines on the issues' targets."""
    floors = []
    concurrencies = sorted({r.concurrency for r in results if r.operation == load.GET})
    for concurrency in concurrencies:
        rest = _ratio(
            _find(results, load.REST, load.GET, concurrency),
            _find(results, load.REST_FLOOR, load.GET, concurrency),
        )
        grpc = _ratio(
            _find(results, load.GRPC, load.GET, concurrency),
            _find(results, load.GRPC_FLOOR, load.GET, concurrency),
        )
        floors.append(
            f"conc {concurrency}: REST {_fmt(rest, 2)}x of its floor, "
            f"gRPC {_fmt(grpc, 2)}x of its floor"
        )
    return floors, [target.line for target in targets(results)]


def runs_table(runs: list[list[Target]]) -> tuple[str, str]:
    """Targets across consecutive runs (``bench/run.py --runs N``): a target
    counts as met only when every run met it."""
    names: list[str] = []
    for run in runs:
        names.extend(t.name for t in run if t.name not in names)
    header = [
        "target",
        *(f"run {number}" for number in range(1, len(runs) + 1)),
        f"all {len(runs)}",
    ]
    rows = []
    for name in names:
        cells = []
        verdicts = []
        for run in runs:
            target = next((t for t in run if t.name == name), None)
            cells.append(
                "-" if target is None else f"{target.shown()} {'met' if target.met else 'MISSED'}"
            )
            verdicts.append(target is not None and target.met)
        rows.append([name, *cells, "met" if all(verdicts) else "MISSED"])
    return _text_table(header, rows), _md_table(header, rows)


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.ljust(width) if index == 0 or not _numeric(cell) else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _numeric(cell: str) -> bool:
    return cell[:1].isdigit() or cell[:1] == "-"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


NOTES = [
    "Every call is authenticated with the same admin access token on both protocols "
    "(login excepted); get-by-id picks a random seeded user each time.",
    "create and login are dominated by one Argon2id hash each (the production hasher, "
    "users.hashers.Argon2idPasswordHasher: OWASP's minimum, m = 19 MiB, t = 2, p = 1), so "
    "their throughput is a measure of the hasher, not of the protocol.",
    "A REST client keeps one HTTP/1.1 connection alive and sends one request at a time on it; "
    "a gRPC channel multiplexes every call on one HTTP/2 connection.",
    "gRPC server processes share the port with SO_REUSEPORT, which balances connections, "
    "not calls: each client process's channel stays on one server process for the whole run "
    "(see 'CPU per worker').",
    "Floors: a plain Django function view on the same REST server (no DRF, no middleware, "
    "no auth) and a bare grpcio generic handler (bytes in/out, no framework, no interceptors), "
    "each doing "
    "`SELECT id, name, email FROM users_user WHERE id = %s` through django.db.connection with "
    "the service's persistent, health-checked connections, same process and thread counts.",
    "Load comes from separate client processes on the same machine, so clients and servers "
    "share its cores; compare rows with each other, not with other machines.",
]


def render(results: list[Result], info: dict[str, str], quick: bool) -> tuple[str, str]:
    rows = _rows(results)
    floors, targets = _verdicts(results)
    cost = _cost_rows(results)
    modes = _modes(results)
    layered = load.LAYERED in modes and load.MONOLITHIC in modes
    mode_rows = _mode_rows(results) if layered else []
    hop_rows = _hop_rows(hop_costs(results)) if layered else []
    echo = _echo_lines(results)
    title = ("REST vs gRPC" if not layered else "REST vs gRPC, monolithic vs layered") + (
        " (--quick smoke run: numbers are not meaningful)" if quick else ""
    )
    mode_text = (
        [
            "layered / monolithic (L/M: rps ratio, p50 ratio):",
            _text_table(MODE_HEADER, mode_rows),
            "",
            "hop floor (bare grpcio unary echo, internal get-by-id message sizes):",
            *(f"  {line}" for line in echo),
            "",
            "hop cost at the lowest concurrency: (layered p50 - monolithic p50) / hops:",
            _text_table(HOP_HEADER, hop_rows),
            "",
        ]
        if layered
        else []
    )
    mode_markdown = (
        [
            "## Layered / monolithic",
            "",
            _md_table(MODE_HEADER, mode_rows),
            "",
            "## Hop floor (bare grpcio unary echo)",
            "",
            *(f"- {line}" for line in echo),
            "",
            "## Hop cost: (layered p50 - monolithic p50) / hops",
            "",
            _md_table(HOP_HEADER, hop_rows),
            "",
        ]
        if layered
        else []
    )
    text = "\n".join(
        [
            title,
            *(f"  {key}: {value}" for key, value in info.items()),
            "",
            _text_table(HEADER, rows),
            "",
            *mode_text,
            "x of floor, get-by-id (service rps / floor rps):",
            *(f"  {line}" for line in floors),
            "",
            "targets:",
            *(f"  {line}" for line in targets),
            "",
            "cost per request:",
            _text_table(COST_HEADER, cost),
        ]
    )
    markdown = "\n".join(
        [
            f"# {title}",
            "",
            *(f"- **{key}**: {value}" for key, value in info.items()),
            "",
            _md_table(HEADER, rows),
            "",
            *mode_markdown,
            "## x of floor (get-by-id)",
            "",
            *(f"- {line}" for line in floors),
            "",
            "## Targets",
            "",
            *(f"- {line}" for line in targets),
            "",
            "## Cost per request",
            "",
            _md_table(COST_HEADER, cost),
            "",
            "## Notes",
            "",
            *(f"- {line}" for line in NOTES),
            "",
        ]
    )
    return text, markdown


def chart(results: list[Result], info: dict[str, str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display, and no GUI toolkit needed
    import matplotlib.pyplot as plt

    groups = sorted(
        {(r.operation, r.concurrency) for r in results if r.operation in load.OPERATIONS},
        key=lambda key: (load.OPERATIONS.index(key[0]), key[1]),
    )
    series = [
        (load.REST, load.MONOLITHIC, "#4c72b0"),
        (load.GRPC, load.MONOLITHIC, "#dd8452"),
        (load.REST, load.LAYERED, "#55a868"),
        (load.GRPC, load.LAYERED, "#c44e52"),
        (load.REST_FLOOR, "", "#a6bddb"),
        (load.GRPC_FLOOR, "", "#fdd0a2"),
    ]
    series = [s for s in series if any((r.kind, r.mode) == s[:2] for r in results)]
    width = 0.8 / max(1, len(series))
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    for offset, (kind, mode, colour) in enumerate(series):
        xs, rps, p50, p99 = [], [], [], []
        for index, (operation, concurrency) in enumerate(groups):
            result = _find(results, kind, operation, concurrency, mode)
            if result is None or not result.ok:
                continue
            xs.append(index + (offset - (len(series) - 1) / 2) * width)
            rps.append(result.rps)
            p50.append(result.p50_ms)
            p99.append(result.p99_ms)
        if not xs:
            continue
        name = f"{LABELS[kind]} {mode}".strip()
        left.bar(xs, rps, width, label=name, color=colour)
        right.bar(xs, p50, width, label=f"{name} p50", color=colour)
        right.scatter(xs, p99, marker="_", s=120, color="black")
    labels = [f"{operation}\nconc {concurrency}" for operation, concurrency in groups]
    for axis, title, unit in (
        (left, "throughput (higher is better)", "requests / s"),
        (right, "latency: bars p50, ticks p99 (lower is better)", "ms"),
    ):
        axis.set_xticks(range(len(groups)), labels, fontsize=8)
        axis.set_yscale("log")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(axis="y", which="both", alpha=0.3)
    left.legend(fontsize=8)
    figure.suptitle(
        f"Arcana REST vs gRPC by mode - {info['CPU']}, {info['cores']} cores, {info['database']}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
