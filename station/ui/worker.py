"""The device worker seen from Qt: results arrive as signals on the GUI thread.

``QtDeviceWorker.run(name, fn, ...)`` returns a job id at once; ``finished(job_id, result)``
or ``failed(job_id, error)`` is emitted later. The signals are emitted from the worker thread
and Qt queues them to the receivers' (GUI) thread, so slots never run on the worker and the
GUI thread never blocks on a device.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from station.devices.worker import DeviceWorker


class QtDeviceWorker(QObject):
    finished = Signal(int, object)
    failed = Signal(int, object)

    def __init__(self, worker: DeviceWorker | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.worker = worker or DeviceWorker()

    def run(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
        job = self.worker.submit(name, fn, *args, **kwargs)
        job.add_done_callback(self._deliver)
        return job.job_id

    def _deliver(self, job) -> None:
        error = job.exception()
        if error is None:
            self.finished.emit(job.job_id, job.result())
        else:
            self.failed.emit(job.job_id, error)

    def stop(self, timeout: float = 10.0) -> bool:
        return self.worker.stop(timeout)
