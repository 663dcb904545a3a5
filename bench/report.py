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
LABELS = {
    load.REST: "REST",
    load.GRPC: "gRPC",
    load.REST_FLOOR: "REST floor",
    load.GRPC_FLOOR: "gRPC floor",
}


@dataclass(frozen=True)
class Result:
    kind: str
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


def one_line(result: Result) -> str:
    return (
        f"{result.operation:<10} c={result.concurrency:<2} {LABELS[result.kind]:<10} "
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


def machine(backend: str, workers: int) -> dict[str, str]:
    load1, load5, _ = os.getloadavg()
    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "Python": sys.version.split()[0],
        "OS": f"{platform.system()} {platform.release()}",
        "database": backend,
        "server processes": f"{workers} per server (gunicorn "
        f"{os.environ.get('GUNICORN_WORKER_CLASS', 'gthread')} workers x "
        f"{os.environ.get('GUNICORN_THREADS', '4')} threads, as docker/gunicorn.conf.py; "
        f"grpcrunserver --workers, SO_REUSEPORT, "
        f"{os.environ.get('GRPC_MAX_WORKERS', '10')} threads each)",
        "versions": ", ".join(
            f"{name} {version(name)}"
            for name in ("Django", "djangorestframework", "djangogrpcframework", "grpcio")
        )
        + f", gunicorn {version('gunicorn')}",
        "load average at the end": f"{load1:.2f} (1 min), {load5:.2f} (5 min)",
    }


def _find(results: list[Result], kind: str, operation: str, concurrency: int) -> Result | None:
    for result in results:
        if (result.kind, result.operation, result.concurrency) == (kind, operation, concurrency):
            return result
    return None


def _ratio(top: Result | None, bottom: Result | None) -> float:
    if top is None or bottom is None or not bottom.rps:
        return float("nan")
    return top.rps / bottom.rps


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _rows(results: list[Result]) -> list[list[str]]:
    rows = []
    operations = [op for op in load.OPERATIONS if any(r.operation == op for r in results)]
    concurrencies = sorted({r.concurrency for r in results})
    lines = [(op, False) for op in operations]
    if load.GET in operations:
        lines.insert(1, (load.GET, True))
    for operation, floor in lines:
        rest_kind, grpc_kind = (
            (load.REST_FLOOR, load.GRPC_FLOOR) if floor else (load.REST, load.GRPC)
        )
        for concurrency in concurrencies:
            rest = _find(results, rest_kind, operation, concurrency)
            grpc = _find(results, grpc_kind, operation, concurrency)
            if rest is None and grpc is None:
                continue
            nan = float("nan")
            rows.append(
                [
                    f"{operation} floor" if floor else operation,
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
    "conc",
    "REST rps",
    "REST p50 ms",
    "REST p99 ms",
    "gRPC rps",
    "gRPC p50 ms",
    "gRPC p99 ms",
    "gRPC/REST",
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
            LABELS[r.kind],
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


def _verdicts(results: list[Result]) -> tuple[list[str], list[str]]:
    """Lines on "x of floor" per concurrency, and lines on the issue's targets."""
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
    targets = []
    if concurrencies:
        at = (
            GET_TARGET_CONCURRENCY
            if GET_TARGET_CONCURRENCY in concurrencies
            else max(concurrencies)
        )
        note = "" if at == GET_TARGET_CONCURRENCY else f" (measured at conc {at}, not 8)"

        def verdict(value: float, goal: float) -> str:
            if math.isnan(value):
                return "not measured"
            return "met" if value >= goal else "MISSED"

        speedup = _ratio(
            _find(results, load.GRPC, load.GET, at), _find(results, load.REST, load.GET, at)
        )
        targets.append(
            f"gRPC get-by-id >= {GRPC_OVER_REST_TARGET}x REST at conc 8{note}: "
            f"{_fmt(speedup, 2)}x -> {verdict(speedup, GRPC_OVER_REST_TARGET)}"
        )
        for kind, floor in ((load.REST, load.REST_FLOOR), (load.GRPC, load.GRPC_FLOOR)):
            value = _ratio(_find(results, kind, load.GET, at), _find(results, floor, load.GET, at))
            targets.append(
                f"{LABELS[kind]} get-by-id >= {FLOOR_TARGET}x its floor{note}: "
                f"{_fmt(value, 2)}x -> {verdict(value, FLOOR_TARGET)}"
            )
    return floors, targets


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
    "create and login are dominated by one Argon2id hash each (Django's default parameters: "
    "time_cost 2, memory_cost 100 MiB, parallelism 8 - the production hasher), so their "
    "throughput is a measure of the hasher, not of the protocol.",
    "gunicorn's sync worker (the deployed config: threads = 1) answers every response with "
    "`Connection: close`, so a keep-alive REST client still opens one TCP connection per request; "
    "a gRPC channel multiplexes every call on one connection.",
    "gRPC server processes share the port with SO_REUSEPORT, which balances connections, "
    "not calls: each client process's channel stays on one server process for the whole run "
    "(see 'CPU per worker').",
    "Floors: a plain Django function view on gunicorn (no DRF, no middleware, no auth) and a "
    "bare grpcio generic handler (bytes in/out, no framework, no interceptors), each doing "
    "`SELECT id, name, email FROM users_user WHERE id = %s` through django.db.connection with "
    "the service's persistent, health-checked connections, same process and thread counts.",
    "Load comes from separate client processes on the same machine, so clients and servers "
    "share its cores; compare rows with each other, not with other machines.",
]


def render(results: list[Result], info: dict[str, str], quick: bool) -> tuple[str, str]:
    rows = _rows(results)
    floors, targets = _verdicts(results)
    cost = _cost_rows(results)
    title = "REST vs gRPC" + (" (--quick smoke run: numbers are not meaningful)" if quick else "")
    text = "\n".join(
        [
            title,
            *(f"  {key}: {value}" for key, value in info.items()),
            "",
            _text_table(HEADER, rows),
            "",
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
        {(r.operation, r.concurrency) for r in results},
        key=lambda key: (load.OPERATIONS.index(key[0]), key[1]),
    )
    kinds = [load.REST, load.GRPC, load.REST_FLOOR, load.GRPC_FLOOR]
    colours = {
        load.REST: "#4c72b0",
        load.GRPC: "#dd8452",
        load.REST_FLOOR: "#a6bddb",
        load.GRPC_FLOOR: "#fdd0a2",
    }
    width = 0.2
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    for offset, kind in enumerate(kinds):
        xs, rps, p50, p99 = [], [], [], []
        for index, (operation, concurrency) in enumerate(groups):
            result = _find(results, kind, operation, concurrency)
            if result is None or not result.ok:
                continue
            xs.append(index + (offset - 1.5) * width)
            rps.append(result.rps)
            p50.append(result.p50_ms)
            p99.append(result.p99_ms)
        if not xs:
            continue
        left.bar(xs, rps, width, label=LABELS[kind], color=colours[kind])
        right.bar(xs, p50, width, label=f"{LABELS[kind]} p50", color=colours[kind])
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
        f"Arcana REST vs gRPC - {info['CPU']}, {info['cores']} cores, {info['database']}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
