"""The interface's context: the station opens on the worker after the sign-in screen shows,
and a job submitted before it is open (an operator quick to sign in) runs once it is, with it;
when the opening fails, later jobs fail in words instead of running without a station."""

from __future__ import annotations

import time

from station.ui.context import Settings, StationNotOpen, UiContext
from station.ui.worker import QtDeviceWorker


def test_a_job_submitted_while_the_station_opens_runs_after_it_with_the_station(qtbot, sqlite_station):
    worker = QtDeviceWorker()
    try:
        ctx = UiContext(sqlite_station.home, None, worker, Settings())
        ctx.open(lambda: time.sleep(0.2) or sqlite_station)
        seen = []
        ctx.call("early", lambda station: (station is sqlite_station, ctx.station is sqlite_station),
                 on_done=seen.append, on_error=seen.append)
        assert ctx.station is None  # not open yet: the GUI thread did not wait
        qtbot.waitUntil(lambda: bool(seen), timeout=5000)
        assert seen == [(True, True)]
    finally:
        worker.stop()


def test_when_the_station_cannot_open_later_jobs_fail_in_words(qtbot, sqlite_station):
    worker = QtDeviceWorker()
    try:
        ctx = UiContext(sqlite_station.home, None, worker, Settings())

        def cannot_open():
            raise OSError("the disk is gone")

        ctx.open(cannot_open)
        errors = []
        ctx.call("after", lambda station: station, on_done=errors.append, on_error=errors.append)
        qtbot.waitUntil(lambda: bool(errors), timeout=5000)
        assert isinstance(errors[0], StationNotOpen) and errors[0].code == "ui.station_not_open" and errors[0].hint
    finally:
        worker.stop()


def test_a_job_submitted_before_a_deferred_opening_starts_it_and_runs_after_it(qtbot, sqlite_station):
    """The application defers the opening until the sign-in screen has painted (or focus comes,
    which never does without a window manager); an operator who signs in sooner must not find
    the station "not open"."""
    worker = QtDeviceWorker()
    try:
        ctx = UiContext(sqlite_station.home, None, worker, Settings())
        opened = []
        ctx.open_later(lambda: opened.append(1) or sqlite_station)
        time.sleep(0.1)
        assert opened == [] and ctx.open_job is None  # deferred: nothing submitted yet
        seen = []
        ctx.call("early sign-in", lambda station: station is sqlite_station, on_done=seen.append, on_error=seen.append)
        qtbot.waitUntil(lambda: bool(seen), timeout=5000)
        assert seen == [True] and opened == [1]
        assert ctx.open_deferred() is None  # already submitted: not a second time
    finally:
        worker.stop()


def test_the_readers_of_piv_targets_are_known_whatever_the_attribute_order():
    from station.ui.context import Settings

    settings = Settings(targets={"token": "piv:serial=7;reader=Token%20reader%201", "soft": "pkcs11:token=a",
                                 "other": "piv:reader=R2?pin-source=file:/p", "broken": "piv:serial=7"})
    assert settings.target_readers == {"Token reader 1", "R2"}
