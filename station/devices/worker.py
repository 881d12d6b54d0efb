"""One device worker: every card, token, network and CA operation runs on this one thread.

Callers (the GUI thread, the command line) submit jobs and get a :class:`Job` back at once;
the job runs later on the worker thread, strictly one at a time and in order, so two jobs
never talk to a device concurrently. Results and errors come back through the job's
callbacks, which run on the worker thread: the Qt adapter (:mod:`station.ui.worker`) turns
them into signals delivered on the GUI thread. Modelled on Electrum's hardware-wallet plugins.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable

log = logging.getLogger(__name__)
_STOP = object()


class Job(Future):
    """A submitted device operation: a Future with an id and a name (never its arguments,
    which may hold a PIN)."""

    def __init__(self, job_id: int, name: str):
        super().__init__()
        self.job_id = job_id
        self.name = name


class DeviceWorker:
    def __init__(self, name: str = "device-worker"):
        self._queue: queue.Queue = queue.Queue()
        self._ids = itertools.count(1)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def submit(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
        """Queue ``fn(*args, **kwargs)`` on the worker thread; returns immediately."""
        if not self._thread.is_alive():
            raise RuntimeError("the device worker has stopped")
        job = Job(next(self._ids), name)
        self._queue.put((job, fn, args, kwargs))
        return job

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            job, fn, args, kwargs = item
            if not job.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # delivered to the caller, never lost
                log.debug("device job %s (%s) failed: %s", job.job_id, job.name, type(exc).__name__)
                job.set_exception(exc)
            else:
                job.set_result(result)

    def stop(self, timeout: float = 10.0) -> bool:
        """Finish the queued jobs, then stop; False if the worker is still busy at ``timeout``."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        return not self._thread.is_alive()
