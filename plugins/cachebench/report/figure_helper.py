"""A helper process for a process that draws many figures.

``python -m cachebench run`` runs a whole campaign in one process (``dag.test()``),
and so does the export benchmark: there, a second process draws each PDF while
the first draws the PNG (each is about half of a figure's CPU time), when a
second core is free. In an Airflow deployment every task is its own process,
and none draws many figures (an export task one, the report task five): a
helper would cost more to start than it saves, since a spawned or forkserver
child imports the task's ``__main__`` again (for Airflow's workers the
``airflow`` script, and with it Airflow: seconds of CPU). So the helper starts,
in the background, only when a process asks for more jobs than any task has
(``start_at``), and takes jobs once it is up: nobody waits for it to start.

``concurrent.futures.ProcessPoolExecutor`` with a forkserver context, not fork:
the callers (Airflow tasks, ``dag.test()``, the export's metrics thread) have
threads, and a forked child may inherit a lock one of them held. The fork
server starts with ``preload`` imported (matplotlib), and the worker forks from
it. As with any spawn or forkserver child, the caller's ``__main__`` must be
importable without side effects (``if __name__ == "__main__":``); where it is
not, the worker dies at start and the process does its jobs itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger(__name__)


class Helper:
    """One helper process per process that uses it, started at its ``start_at``-th job."""

    def __init__(self, preload: str, start_at: int):
        self._preload, self._start_at = preload, start_at
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()  # whose state this is: a forked child starts over
        self._asked = 0
        self._pool: ProcessPoolExecutor | None = None
        self._up: Future[int] | None = None  # the start-up job: done once the worker runs
        self._off = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any] | None:
        """``fn(*args)`` in the helper if it is up; None: do it yourself."""
        if self._pid != os.getpid():
            self._reset()
        self._asked += 1
        # A daemonic process (e.g. a multiprocessing pool's worker) may not have children.
        if self._off or multiprocessing.current_process().daemon or self._asked < self._start_at:
            return None
        try:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([self._preload])
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
                self._up = self._pool.submit(os.getpid)  # starts it; not waited for
                return None
            if self._up is None or not self._up.done():
                return None
            self._up.result()  # raises if the worker died at start
            return self._pool.submit(fn, *args)
        except (BrokenProcessPool, OSError, RuntimeError) as exc:
            self._give_up(exc)
            return None

    def done(self, future: Future[Any]) -> bool:
        """Wait for ``future``: True once it ran, False if the helper died (do the job
        yourself); an error raised by the job itself is raised here."""
        try:
            future.result()
        except BrokenProcessPool as exc:
            self._give_up(exc)
            return False
        return True

    def close(self) -> None:
        """Stop the helper process (after its jobs); the next jobs start a new one."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._reset()

    def _give_up(self, exc: BaseException) -> None:
        log.warning("figure helper process unavailable, drawing in this process: %r", exc)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool, self._up, self._off = None, None, True
