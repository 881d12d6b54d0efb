"""What every window of the station shares: the station (opened on the device worker), the
worker itself, who is signed in, and the demo controls when the station runs as the demo.

The GUI thread never touches the database, a card, a token, the network or the CA: every
such call goes through :meth:`UiContext.call`, which runs ``fn(station, *args)`` on the one
device worker and delivers the result (or the error) to a callback on the GUI thread.

The context exists before the station is open: the sign-in screen is built from the home's
configuration (:attr:`UiContext.config`) while :meth:`UiContext.open` opens the station on the
worker. A job is given the station when it RUNS, on the worker, and the worker runs its jobs
one after the other, so a job submitted while the station opens (a quick operator's sign-in)
runs after the opening and finds the station open. The opening may be deferred
(:meth:`UiContext.open_later`: the application lets the sign-in screen paint first); the
first job submitted meanwhile starts it, so that it still runs after the opening.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from station.errors import StationError
from station.home import StationHome
from station.ui.worker import QtDeviceWorker


@dataclass
class Settings:
    """The interface's settings (``[ui]`` in station.toml)."""

    idle_lock_seconds: float = 300.0  # the station locks to the sign-in screen after this long idle
    applicant_reader: str | None = None  # None: the first reader a card is inserted into
    operator_reader: str | None = None  # where operators insert their own PIV card to sign in
    targets: dict[str, str] = field(default_factory=dict)  # a name shown -> target URI (no PIN in it)

    @classmethod
    def from_config(cls, config: dict) -> Settings:
        ui = config.get("ui") or {}
        return cls(idle_lock_seconds=float(ui.get("idle_lock_minutes", 5)) * 60,
                   applicant_reader=ui.get("applicant_reader"), operator_reader=ui.get("operator_reader"),
                   targets=dict(ui.get("targets") or {}))

    @property
    def target_readers(self) -> set[str]:
        """The readers of PIV-token targets (``piv:reader=…``): a card there is a target, never
        the applicant's."""
        from station.issuance.targets.piv_uri import PivUri, PivUriError

        readers = set()
        for uri in self.targets.values():
            if uri.startswith("piv:"):
                try:
                    readers.add(PivUri.parse(uri).reader)
                except PivUriError:
                    pass  # describing the target says what is wrong with it
        return readers


class StationNotOpen(StationError):
    """A job ran on the worker while no station was open (the opening failed)."""

    code = "ui.station_not_open"
    hint = "close the application and start it again; if it happens again, tell the station's administrator"


def keep_for_good() -> None:
    """What exists now (Qt, the station, certificates, trust profiles) lives as long as the
    process: out of the cyclic collector's way, so that a full collection, which holds every
    thread still while it walks the heap, stays short and the event loop does not stall
    (measured: ~80-200 ms pauses without, in tests/ui/test_wizard.py)."""
    gc.freeze()


class UiContext(QObject):
    """Created on the GUI thread with the open ``station``, or with ``station=None`` and the
    home's ``config`` before :meth:`open`; see the module docstring."""

    signed_in_changed = Signal(object)  # the SignedIn operator, or None once locked / signed out

    def __init__(self, home: StationHome, station, worker: QtDeviceWorker, settings: Settings, *,
                 demo=None, config: dict | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.home, self.station, self.worker, self.settings, self.demo = home, station, worker, settings, demo
        self._config = config
        self.operator = None  # station.issuance.signin.SignedIn of who is signed in
        self._callbacks: dict[int, tuple[Callable | None, Callable | None]] = {}
        self._deferred: tuple[Callable[..., Any], tuple] | None = None  # an opening not yet submitted
        self.open_job: int | None = None  # the opening's job id, once submitted
        worker.finished.connect(self._finished)
        worker.failed.connect(self._failed)
        if station is not None:
            keep_for_good()
        # The worker's pure-Python work (imports, records, ASN.1, validation) holds the GIL in
        # slices of the switch interval; a shorter slice lets the GUI thread in sooner (5 ms -> 1 ms).
        sys.setswitchinterval(0.001)

    @property
    def config(self) -> dict:
        """The station's configuration: the open station's, or the home's read before it opened."""
        return self.station.config if self.station is not None else (self._config or {})

    def open(self, opener: Callable[..., Any], *args: Any) -> int:
        """Open the station on the worker: ``opener(*args)`` returns it, and it becomes
        :attr:`station` there, before any job submitted after this one runs. The result (the
        station) or the error arrives through the worker's ``finished``/``failed`` signals with
        the returned job id."""
        def job():
            station = opener(*args)
            self.station = station
            keep_for_good()
            return station

        self.open_job = self.worker.run("open the station", job)
        return self.open_job

    def open_later(self, opener: Callable[..., Any], *args: Any) -> None:
        """Open the station as :meth:`open` does, but only at :meth:`open_deferred` or when a
        job is first submitted, whichever comes first."""
        self._deferred = (opener, args)

    def open_deferred(self) -> int | None:
        """Submit the deferred opening now; its job id, or None when there was none to submit."""
        if self._deferred is None:
            return None
        opener, args = self._deferred
        self._deferred = None
        return self.open(opener, *args)

    def call(self, name: str, fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None] | None = None,
             on_error: Callable[[BaseException], None] | None = None, **kwargs: Any) -> int:
        """Run ``fn(station, *args, **kwargs)`` on the device worker; ``on_done(result)`` or
        ``on_error(exc)`` runs later on the GUI thread. Returns the job id at once. A deferred
        opening is submitted first."""
        self.open_deferred()
        job = self.worker.run(name, self._with_station, fn, args, kwargs)
        self._callbacks[job] = (on_done, on_error)
        return job

    def _with_station(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        """On the worker: the station as it is when the job runs."""
        if self.station is None:
            raise StationNotOpen("the station is not open")
        return fn(self.station, *args, **kwargs)

    def set_operator(self, signed_in) -> None:
        self.operator = signed_in
        self.signed_in_changed.emit(signed_in)

    def _finished(self, job: int, result: Any) -> None:
        on_done, _ = self._callbacks.pop(job, (None, None))
        if on_done is not None:
            on_done(result)

    def _failed(self, job: int, error: BaseException) -> None:
        _, on_error = self._callbacks.pop(job, (None, None))
        if on_error is not None:
            on_error(error)
