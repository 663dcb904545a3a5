"""Client processes driven over pipes: the mechanics ``bench/load.py`` and
``bench/mixed.py`` share.

:class:`ProcessPool` spawns ``size`` processes running ``main(index, *args,
conn)``; ``main`` hands ``conn`` to :func:`serve`, which builds the process's
worker and then answers every command the parent sends with ``(tag, result)``
until it receives ``None``. Both ends live here because they must agree on the
protocol: ``("ready", None)`` once the worker is built, ``("error",
traceback)`` when anything fails, which :meth:`ProcessPool.expect` raises in
the parent.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Protocol

READY_TIMEOUT = 120.0


class Worker(Protocol):
    """What one client process runs: one ``handle`` per command, ``close`` at the end."""

    def handle(self, command: Any) -> Any: ...

    def close(self) -> None: ...


def serve(conn: Connection, tag: str, start: Callable[[], Worker]) -> None:
    """The child's end: build the worker with ``start``, then answer commands until ``None``."""
    worker: Worker | None = None
    try:
        worker = start()
        conn.send(("ready", None))
        while True:
            command = conn.recv()
            if command is None:
                break
            conn.send((tag, worker.handle(command)))
    except KeyboardInterrupt:
        pass  # Ctrl-C reaches the whole terminal group; the parent cleans up
    except Exception:
        conn.send(("error", traceback.format_exc()))
    finally:
        if worker is not None:
            worker.close()


class ProcessPool:
    """``size`` processes running ``main(index, *args, conn)``, ready when built."""

    def __init__(
        self,
        main: Callable[..., None],
        args: tuple[Any, ...],
        size: int,
        *,
        name: str,
        join_timeout: float,
        daemon: bool | None = None,
    ) -> None:
        # spawn, not fork: the parent may already hold grpc or database state,
        # and a forked copy of either is undefined behaviour.
        context = multiprocessing.get_context("spawn")
        self.join_timeout = join_timeout
        self.processes: list[Any] = []
        self.pipes: list[Connection] = []
        for index in range(size):
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=main,
                args=(index, *args, child_end),
                name=f"{name}-{index}",
                daemon=daemon,
            )
            process.start()
            child_end.close()
            self.processes.append(process)
            self.pipes.append(parent_end)
        for pipe in self.pipes:
            self.expect(pipe, "ready", READY_TIMEOUT)

    @staticmethod
    def expect(pipe: Connection, tag: str, timeout: float) -> Any:
        """The payload of the next message on ``pipe``, which must be tagged ``tag``."""
        if not pipe.poll(timeout):
            raise RuntimeError(f"a client process did not answer within {timeout:.0f}s")
        got, payload = pipe.recv()
        if got != tag:
            raise RuntimeError(f"a client process failed:\n{payload}")
        return payload

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):  # that client already exited
                pipe.send(None)
        for process in self.processes:
            process.join(timeout=self.join_timeout)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        for pipe in self.pipes:
            pipe.close()
