"""One background thread per process that runs periodic refreshes (cloud ranges, databases).

Tasks are held by weak reference: an app that goes away takes its tasks with it. The thread does
not survive ``fork`` (gunicorn's workers); it is started again in the child, so every worker
refreshes on its own schedule. A task that raises is logged and tried again at its next turn.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("flask_rampart")


class _Task:
    __slots__ = ("due", "every", "method", "owner")

    def __init__(self, owner: Any, method: str, every: float, due: float) -> None:
        self.owner = weakref.ref(owner)
        self.method = method
        self.every = every
        self.due = due


class Scheduler:
    """Runs ``owner.method()`` every ``every`` seconds on a daemon thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tasks: list[_Task] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def every(self, owner: Any, method: str, seconds: float, *, first: float | None = None) -> None:
        """Calls ``owner.<method>()`` every ``seconds``; the first time after ``first`` seconds
        (default: ``seconds``)."""
        delay = seconds if first is None else first
        with self._cond:
            self._tasks.append(_Task(owner, method, seconds, self._clock() + delay))
            self._ensure_thread()
            self._cond.notify()

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():
            # A forked child: the parent's thread is not running here.
            self._pid = os.getpid()
            self._thread = None
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="rampart-refresh", daemon=True)
            self._thread.start()

    def after_fork(self) -> None:
        self._cond = threading.Condition()
        with self._cond:
            if self._tasks:
                self._ensure_thread()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._tasks = [t for t in self._tasks if t.owner() is not None]
                if not self._tasks:
                    self._thread = None
                    return
                now = self._clock()
                due = [t for t in self._tasks if t.due <= now]
                if not due:
                    wait = min(t.due for t in self._tasks) - now
                    self._cond.wait(timeout=min(wait, 60.0))
                    continue
                for t in due:
                    t.due = now + t.every
            for t in due:
                self._call(t)

    @staticmethod
    def _call(task: _Task) -> None:
        owner = task.owner()
        if owner is None:
            return
        try:
            getattr(owner, task.method)()
        except Exception:
            # The traceback as text: a kept record must not keep the owner alive.
            logger.error("background refresh %s failed:\n%s", task.method, traceback.format_exc())


SCHEDULER = Scheduler()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=SCHEDULER.after_fork)
