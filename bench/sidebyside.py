"""What the side-by-side benchmarks share (``bench.wsgi``, ``bench.aio``): their
common options, a scratch database, and interleaved rounds judged as the
median of each round's throughput ratio against the first contender.

Interleaving (A, B, C, then C, B, A, ...) makes a noisy machine slow every
contender alike; a ratio per round, then the median, keeps one bad round from
deciding.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from tests.support.stack import is_mysql_url, mysql_database_create, mysql_database_drop

# Per concurrency level: "<name>_rps", "<name>_mean_ms" and "<name>_ratio" (the
# median of the rounds' rps ratios against the first contender) for each name.
Levels = dict[str, dict[str, float]]
Measure = Callable[[str, int, float], dict[str, float]]  # (name, clients, seconds) -> rps, mean_ms


def concurrency(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be at least 1")
    return levels


def parser(description: str) -> argparse.ArgumentParser:
    """The options every side-by-side benchmark takes; add its own, then ``parse``."""
    found = argparse.ArgumentParser(description=description)
    found.add_argument("--rounds", type=int, default=6)
    found.add_argument("--seconds", type=float, default=3.0)
    found.add_argument("--concurrency", type=concurrency, default=[1, 8])
    found.add_argument("--workers", type=int, default=2, help="processes per server")
    found.add_argument("--database-url", default="", help="default: a SQLite file of the run")
    return found


def parse(found: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    options = found.parse_args(argv)
    if options.rounds < 1 or options.seconds <= 0 or options.workers < 1:
        found.error("--rounds, --seconds and --workers must be positive")
    return options


def workspace(
    stack: ExitStack, options: argparse.Namespace, found: argparse.ArgumentParser, prefix: str
) -> tuple[Path, str]:
    """A temporary directory for the run's logs, and its database: a SQLite file
    there, or with ``--database-url`` a new MySQL database of the run's own beside
    the one named; both removed when ``stack`` closes."""
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"{prefix}-")))
    if not options.database_url:
        return directory, f"sqlite:///{directory / 'db.sqlite3'}"
    if not is_mysql_url(options.database_url):
        found.error("--database-url must be a mysql:// URL (default: SQLite)")
    created = mysql_database_create(options.database_url, prefix=prefix.replace("-", "_"))
    stack.callback(mysql_database_drop, created)
    return directory, created


def interleaved(
    names: Sequence[str], levels: Sequence[int], rounds: int, seconds: float, measure: Measure
) -> Levels:
    """Each level: every contender warmed for a second, then ``rounds`` rounds in
    alternating order, printed as they finish; medians and ratios per level."""
    found: Levels = {}
    for level in levels:
        for name in names:  # warm each: caches, connections, code paths
            measure(name, level, 1.0)
        results: list[dict[str, dict[str, float]]] = []
        for number in range(rounds):
            order = names if number % 2 == 0 else tuple(reversed(names))
            result = {name: measure(name, level, seconds) for name in order}
            results.append(result)
            print(
                f"concurrency {level}, round {number + 1}: "
                + ", ".join(f"{name} {result[name]['rps']:6.0f}/s" for name in names),
                flush=True,
            )
        medians: dict[str, float] = {}
        for name in names:
            medians[f"{name}_rps"] = statistics.median(r[name]["rps"] for r in results)
            medians[f"{name}_mean_ms"] = statistics.median(r[name]["mean_ms"] for r in results)
            medians[f"{name}_ratio"] = statistics.median(
                r[name]["rps"] / r[names[0]]["rps"] for r in results
            )
        found[str(level)] = medians
    return found


def table(levels: Levels, names: Sequence[str], unit: str = "req/s") -> str:
    """Markdown: per level, each contender's rps and mean, then each one's ratio
    against the first."""
    header = ["concurrency"]
    for name in names:
        header += [f"{name} {unit}", f"{name} mean ms"]
    header += [f"{name}/{names[0]}" for name in names[1:]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for level, found in levels.items():
        cells = [level]
        for name in names:
            cells += [f"{found[f'{name}_rps']:.0f}", f"{found[f'{name}_mean_ms']:.2f}"]
        cells += [f"{found[f'{name}_ratio']:.2f}x" for name in names[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(
    out: Path,
    levels: Levels,
    options: argparse.Namespace,
    headline: str,
    names: Sequence[str],
    unit: str = "req/s",
) -> None:
    """``out`` (JSON: the levels and the options), then the table, printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"levels": levels, "options": vars(options)}, indent=2))
    print(
        f"\n{headline}, median of {options.rounds} interleaved rounds:\n"
        f"{table(levels, names, unit)}\nwritten to {out}"
    )
