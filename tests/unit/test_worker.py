"""The device worker: one thread, in order, errors delivered; Qt gets results by signal."""

import threading
import time

import pytest

from station.devices.errors import CardRemoved
from station.devices.worker import DeviceWorker


def test_jobs_run_in_order_on_one_worker_thread():
    worker = DeviceWorker()
    seen = []
    jobs = [worker.submit(f"job{i}", lambda i=i: (seen.append(i), threading.current_thread())[1]) for i in range(20)]
    threads = {job.result(timeout=5) for job in jobs}
    assert seen == list(range(20))
    assert threads == {worker.thread} and worker.thread is not threading.current_thread()
    assert worker.stop()


def test_submit_returns_before_the_job_runs_and_errors_are_delivered():
    worker = DeviceWorker()
    gate = threading.Event()
    started = time.monotonic()
    slow = worker.submit("wait", gate.wait, 5)
    failing = worker.submit("pull", lambda: (_ for _ in ()).throw(CardRemoved("the card was removed")))
    assert time.monotonic() - started < 0.5 and not slow.done()
    gate.set()
    assert slow.result(timeout=5) is True
    with pytest.raises(CardRemoved):
        failing.result(timeout=5)
    worker.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        worker.submit("late", lambda: None)


def test_qt_adapter_delivers_results_as_signals_on_the_gui_thread(qtbot):
    from station.ui.worker import QtDeviceWorker

    qt_worker = QtDeviceWorker()
    gui_thread = threading.current_thread()
    delivered = []
    qt_worker.finished.connect(lambda job_id, result: delivered.append((job_id, result, threading.current_thread())))
    with qtbot.waitSignal(qt_worker.finished, timeout=5000):
        job_id = qt_worker.run("read", lambda: threading.current_thread().name)
    assert delivered == [(job_id, "device-worker", gui_thread)]
    with qtbot.waitSignal(qt_worker.failed, timeout=5000) as blocker:
        qt_worker.run("fail", lambda: 1 / 0)
    assert isinstance(blocker.args[1], ZeroDivisionError)
    assert qt_worker.stop()
