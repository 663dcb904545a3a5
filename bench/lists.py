"""List pages at a million rows: ``python -m bench.lists`` (``make bench-lists``).

Against the database ``DATABASE_URL`` names (MariaDB/MySQL, seeded first
with ``python -m bench.seed``; the README uses ``page_million``), list-20
pages are timed by offset and by cursor, with no filter, with ``search`` and
with ``sync_status``:

- page 0, page 1,000 (offset 20,000) and the last page (offset ~1,000,000
  with no filter), by offset;
- the same three positions by cursor (the cursor of the row just before the
  page, found once, outside the timing).

at three levels: the repository (``users.repository.user_list`` /
``user_list_after``: the database work alone; the offset cap is the
service's and does not apply), REST (Django's test client in this process:
the whole REST stack without a socket) and gRPC (the production server in
this process on ``--grpc-port``, a real channel). The service caps offsets
at USER_LIST_MAX_OFFSET; REST and gRPC are run with it raised so the raw
offset cost shows. The deepest offset pages take tens of seconds at a
million rows, so each is timed ``--deep-repeat`` times (default 1), and the
protocols skip the last page by offset unless ``--protocol-deep``.

Each figure is the median of ``--repeat`` calls after one warm-up call (the
last page by offset: ``--deep-repeat`` calls, no warm-up).
Needs ``DATABASE_URL`` (mysql://) and ``REDIS_URL``; give the database
connection room: ``DATABASE_READ_TIMEOUT=600``.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SIZE = 20
FILTERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("none", {}),
    ("search=smith", {"search": "smith"}),
    ("sync_status=pending", {"sync_status": "pending"}),
)


@dataclass(frozen=True)
class Position:
    label: str
    page: int
    deep: bool


def _median_ms(call: Callable[[], object], repeat: int, warm: bool = True) -> float:
    if warm:  # the buffer pool and the count cache, as for a client's second request
        call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


# (level, filter, page 0 by offset ms, last page by cursor ms), measured interleaved.
TARGETS: list[tuple[str, str, float, float]] = []


def _interleaved(
    first: Callable[[], object], second: Callable[[], object], rounds: int
) -> tuple[float, float]:
    """Medians of ``first`` and ``second`` called in turn, ``rounds`` times each
    (after one warm-up each): on a noisy machine both see the same noise."""
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for call, into in ((first, times[0]), (second, times[1])):
            started = time.perf_counter()
            call()
            into.append(time.perf_counter() - started)
    return statistics.median(times[0]) * 1000, statistics.median(times[1]) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per figure")
    parser.add_argument("--deep-repeat", type=int, default=1, help="for the last page by offset")
    parser.add_argument("--grpc-port", type=int, default=19301)
    parser.add_argument(
        "--levels", default="repository,rest,grpc", help="comma-separated: repository,rest,grpc"
    )
    parser.add_argument(
        "--protocol-deep", action="store_true", help="time the last page by offset on REST/gRPC too"
    )
    parser.add_argument(
        "--target-rounds",
        type=int,
        default=25,
        help="rounds of page 0 by offset against the last page by cursor, in turn",
    )
    parser.add_argument("--how", default="offset,cursor", help="comma-separated: offset,cursor")
    parser.add_argument(
        "--skip-deep-offset",
        action="store_true",
        help="time the last page by offset nowhere (minutes at a million rows)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arcana.settings.local")
    os.environ.setdefault("DATABASE_READ_TIMEOUT", "600")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "mysql":
        parser.error("DATABASE_URL must name a MariaDB/MySQL database (seeded: bench.seed)")
    settings.USER_LIST_MAX_OFFSET = 10**9  # the raw offset cost, on every level
    levels = [level.strip() for level in args.levels.split(",") if level.strip()]
    rows = _measure(levels, args)
    _print(rows, levels)
    return 0


def _measure(levels: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    from users import repository
    from users.cursors import ListFilters, make_cursor
    from users.repository import LIST_ORDER

    callers = {level: _caller(level, args) for level in levels}
    rows = []
    for filter_label, filters in FILTERS:
        matching = repository._listed(
            "default", filters.get("sync_status"), filters.get("search"), None
        )
        count = matching.count()
        last_page = max(0, (count - 1) // SIZE)
        positions = (
            Position("page 0", 0, False),
            Position("page 1,000", 1000, False),
            Position(f"last (page {last_page:,})", last_page, True),
        )
        wire = ListFilters(
            search=filters.get("search"), sync_status=filters.get("sync_status"), is_active=None
        )
        for position in positions:
            cursor = None
            if position.page:
                # The row before the page, found from the nearer end (only its
                # key read): the cursor costs no deep offset itself.
                index = position.page * SIZE - 1
                if index < count // 2:
                    keys = matching.order_by(*LIST_ORDER).values_list("pk", flat=True)
                    pk = keys[index]
                else:
                    keys = matching.order_by("-created_at", "-id").values_list("pk", flat=True)
                    pk = keys[count - 1 - index]
                cursor = make_cursor(repository.user_get(user_id=str(pk)), wire)
            for how in [how.strip() for how in args.how.split(",") if how.strip()]:
                row: dict[str, Any] = {
                    "filter": filter_label,
                    "position": position.label,
                    "how": how,
                }
                for level, caller in callers.items():
                    deep = how == "offset" and position.deep  # a scan no cache holds: no warm-up
                    protocol = level != "repository"
                    if deep and (args.skip_deep_offset or (protocol and not args.protocol_deep)):
                        row[level] = None
                        continue
                    row[level] = _median_ms(
                        functools.partial(caller, filters, how, position.page, cursor),
                        args.deep_repeat if deep else args.repeat,
                        warm=not deep,
                    )
                rows.append(row)
                print(_line(row, list(callers)), flush=True)
        last_cursor = cursor  # the last position's, after the loop
        for level, caller in callers.items():
            first, last = _interleaved(
                functools.partial(caller, filters, "offset", 0, None),
                functools.partial(caller, filters, "cursor", last_page, last_cursor),
                args.target_rounds,
            )
            TARGETS.append((level, filter_label, first, last))
    return rows


def _caller(level: str, args: argparse.Namespace) -> Callable[..., object]:
    if level == "repository":
        return _repository_caller()
    if level == "rest":
        return _rest_caller()
    if level == "grpc":
        return _grpc_caller(args.grpc_port)
    raise SystemExit(f"unknown level {level!r}")


def _admin_token() -> str:
    from authn.services import token_pair_issue
    from users import repository
    from users.models import User

    admin = User.objects.filter(is_staff=True, roles__name="admin", is_active=True).first()
    if admin is None:
        raise SystemExit("no active admin among the users: seed first (python -m bench.seed)")
    return token_pair_issue(user=repository.user_get(user_id=str(admin.pk))).access


def _repository_caller() -> Callable[..., object]:
    from users import repository
    from users.cursors import read_cursor

    def call(filters: dict[str, Any], how: str, page: int, cursor: str | None) -> object:
        search, status = filters.get("search"), filters.get("sync_status")
        if how == "offset":
            return repository.user_list(page=page, size=SIZE, sync_status=status, search=search)
        after = None
        if cursor:
            from users.cursors import ListFilters

            after = read_cursor(cursor, ListFilters(search, status, None))
        return repository.user_list_after(
            size=SIZE,
            after_created_at=after.created_at if after else None,
            after_id=after.id if after else None,
            sync_status=status,
            search=search,
            is_active=None,
        )

    return call


def _rest_caller() -> Callable[..., object]:
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {_admin_token()}")

    def call(filters: dict[str, Any], how: str, page: int, cursor: str | None) -> object:
        query: dict[str, Any] = {"size": SIZE, **filters}
        if how == "offset":
            query["page"] = page
        elif cursor:
            query["cursor"] = cursor
        response = client.get("/api/v1/users", query)
        if response.status_code != 200:
            raise SystemExit(f"REST list: {response.status_code} {response.content[:200]!r}")
        return response

    return call


def _grpc_caller(port: int) -> Callable[..., object]:
    import grpc
    from django.conf import settings

    from arcana.grpc.server import build_server
    from protos.arcana.v1 import users_pb2, users_pb2_grpc

    server = build_server(
        f"127.0.0.1:{port}",
        max_workers=4,
        max_message_bytes=settings.GRPC_MAX_MESSAGE_BYTES,
        health_interval=3600,
    )
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=10)
    stub = users_pb2_grpc.UserServiceStub(channel)  # type: ignore[no-untyped-call]
    metadata = (("authorization", f"Bearer {_admin_token()}"),)

    def call(filters: dict[str, Any], how: str, page: int, cursor: str | None) -> object:
        request = users_pb2.ListUsersRequest(size=SIZE, **filters)
        if how == "offset":
            request.page = page
        elif cursor:
            request.cursor = cursor
        return stub.ListUsers(request, metadata=metadata, timeout=600)

    return call


def _line(row: dict[str, Any], levels: list[str]) -> str:
    cells = [f"{row['filter']:<20}", f"{row['position']:<20}", f"{row['how']:<7}"]
    for level in levels:
        value = row.get(level)
        cells.append(f"{'—' if value is None else f'{value:,.1f}':>10}")
    return " ".join(cells)


def _print(rows: list[dict[str, Any]], levels: list[str]) -> None:
    print()
    print("| filter | page | by | " + " | ".join(f"{level} ms" for level in levels) + " |")
    print("| --- | --- | --- | " + " | ".join("---:" for _ in levels) + " |")
    for row in rows:
        cells = []
        for level in levels:
            value = row.get(level)
            cells.append("—" if value is None else f"{value:,.1f}")
        print(f"| {row['filter']} | {row['position']} | {row['how']} | " + " | ".join(cells) + " |")
    print()
    if TARGETS:
        print("target: the last page by cursor <= 2x page 0 (by offset), measured in turn")
    for level, filter_label, first_ms, last_ms in TARGETS:
        verdict = "meets" if last_ms <= 2 * first_ms else "MISSES"
        print(
            f"{level:>10}, {filter_label:<20} page 0 {first_ms:7.1f} ms, last by cursor"
            f" {last_ms:7.1f} ms: {last_ms / first_ms:.2f}x ({verdict})"
        )
    print()
    for level in levels:
        for filter_label, _ in FILTERS:
            cursor = [r for r in rows if r["filter"] == filter_label and r["how"] == "cursor"]
            first, last = cursor[0].get(level), cursor[-1].get(level)
            offset = [r for r in rows if r["filter"] == filter_label and r["how"] == "offset"]
            offset0 = offset[0].get(level) if offset else None
            if first and last:
                versus_offset = f"{last / offset0:.2f}x page 0 by offset, " if offset0 else ""
                print(
                    f"{level:>10}, {filter_label:<20} last page by cursor: {versus_offset}"
                    f"{last / first:.2f}x page 0 by cursor"
                )


if __name__ == "__main__":
    sys.exit(main())
