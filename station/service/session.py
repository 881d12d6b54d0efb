"""The composition root: one issuance session wired from an opened station.

:meth:`Station.issuance_session` (:func:`issuance_session`) is the only place that puts the
station together for issuance; the command line (``station issue``, ``requests resume`` and
``cancel``, ``selftest``), the demo, the benchmarks and the desktop application use it and
nothing else. It owns:

- the trust profiles: the applicants' (``trust_profile``) and the operators' own cards'
  (``operator_trust_profile``, default the applicants'), and the CRL cache in the home;
- the readers: the applicant's card and each operator's own card, opened on first use with
  an exclusive connection inside a PC/SC transaction (no other program talks to the card
  around PKI-AUTH), reset when the session closes (no PIN stays verified);
- the operator-card look-up for sign-in: an operator named with a reader signs in by
  PKI-AUTH of that card, any other with their password;
- the target: its URI opened through the target registry
  (:func:`station.issuance.targets.open_target`) with the configured hardware modules
  (``[targets] hardware_modules``) and the interaction's transport-PIN entry;
- the engine (:class:`station.issuance.engine.IssuanceEngine`) with the cancel token.

The workflow modules are imported when a session is made: the service layer stays importable
without them (this module wires the floors above it; nothing below imports it).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from station.service.station import Station


def _profile(station: Station, path: str, revocation: str | None):
    """The trust profile in ``path`` (``revocation`` overriding its mode), loaded once while
    the station is open (a desktop session issues many times)."""
    from station.validation.trust import TrustProfile

    key = (str(path), revocation)
    if key not in station._trust_profiles:
        profile = TrustProfile.load(path)
        station._trust_profiles[key] = profile.with_revocation(revocation) if revocation else profile
    return station._trust_profiles[key]


def applicant_profile(station: Station, *, revocation: str | None = None):
    """The trust profile for applicants' PIV cards (``trust_profile``); ``revocation``
    overrides its revocation mode."""
    return _profile(station, station.config["trust_profile"], revocation)


def operator_profile(station: Station, *, revocation: str | None = None):
    """The trust profile for operators' own PIV cards (default: the applicants')."""
    return _profile(station, station.config.get("operator_trust_profile") or station.config["trust_profile"], revocation)


def crl_cache(station: Station) -> Path:
    """The CRL cache folder in the station home (made when missing)."""
    cache = station.home.crl_dir
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def open_target(station: Station, uri: str, pin_entry=None):
    """The target of ``uri`` through the registry, with the configured hardware modules."""
    from station.issuance.targets import open_target as open_by_scheme

    hardware = set((station.config.get("targets") or {}).get("hardware_modules", []))
    return open_by_scheme(uri, hardware_modules=hardware, pin_entry=pin_entry)


class IssuanceSession:
    """One issuance (or resume, or cancel) at the station: the engine, the applicant's card
    session, the target and the operators' cards, closed together (a context manager)."""

    def __init__(self, station: Station, interaction: Any, *, cancel: threading.Event | None = None,
                 applicant_reader: str | None = None, operator_readers: dict[str, str] | None = None,
                 target: str | None = None, revocation: str | None = None, **engine_options: Any):
        self.station = station
        self.interaction = interaction
        self.cancel_token = cancel
        self._applicant_reader = applicant_reader
        self._operator_readers = {identity: reader for identity, reader in (operator_readers or {}).items() if reader}
        self._target_uri = target
        self._revocation = revocation
        self._engine_options = engine_options
        self._stack = contextlib.ExitStack()
        self._engine = None
        self._card = None
        self._target = None

    # --- what it owns ---------------------------------------------------------------------------
    def _open_card(self, reader: str):
        """A PivSession on an exclusive connection to ``reader``, inside a PC/SC transaction;
        the card is reset when the session closes."""
        from station.devices import pcsc
        from station.devices.piv import PivSession

        conn = pcsc.open_reader(reader, exclusive=True)
        self._stack.callback(conn.close, reset=True)
        self._stack.enter_context(conn.transaction())
        return PivSession(conn)

    def _operator_card(self, identity: str):
        """The PivSession of the reader holding ``identity``'s own card, or None (password)."""
        reader = self._operator_readers.get(identity)
        return self._open_card(reader) if reader else None

    @property
    def card(self):
        """The applicant's card (a PivSession), or None when no reader was named."""
        if self._card is None and self._applicant_reader:
            self._card = self._open_card(self._applicant_reader)
        return self._card

    @property
    def target(self):
        """The target device, or None when no target URI was given."""
        if self._target is None and self._target_uri:
            pin_entry = getattr(self.interaction, "transport_pin", None)
            self._target = open_target(self.station, self._target_uri, pin_entry)
            self._stack.callback(self._target.close)
        return self._target

    @property
    def engine(self):
        if self._engine is None:
            from station.issuance.engine import IssuanceEngine

            self._engine = IssuanceEngine(
                self.station, applicant_profile(self.station, revocation=self._revocation), self.interaction,
                crl_cache=crl_cache(self.station), operator_profile=operator_profile(self.station, revocation=self._revocation),
                operator_card=self._operator_card, cancel=self.cancel_token, **self._engine_options)
        return self._engine

    # --- the engine's operations on this session's card and target -----------------------------------
    def issue(self, *, registrar: str, approver: str, aal: str):
        """All seven steps (:meth:`IssuanceEngine.issue`)."""
        engine, target = self.engine, self.target
        return engine.issue(self.card, registrar=registrar, approver=approver, aal=aal, target=target)

    def open_request(self, *, registrar: str, aal: str) -> int:
        engine, target = self.engine, self.target
        return engine.open_request(self.card, registrar=registrar, aal=aal, target=target)

    def approve(self, request_id: int, *, approver: str) -> None:
        self.engine.approve(request_id, approver=approver)

    def complete(self, request_id: int, *, registrar: str):
        """The remaining steps of a request (resume)."""
        engine, target = self.engine, self.target
        return engine.complete(request_id, self.card, target, registrar=registrar)

    def cancel(self, request_id: int, *, actor: str, reason: str = "cancelled by operator", **options: Any) -> None:
        self.engine.cancel(request_id, actor=actor, reason=reason, **options)

    def state(self, request_id: int) -> str:
        return self.engine.state(request_id)

    # --- closing -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Let go of the target and the cards (each card reset)."""
        self._stack.close()

    def __enter__(self) -> IssuanceSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def issuance_session(station: Station, interaction: Any, **options: Any) -> IssuanceSession:
    return IssuanceSession(station, interaction, **options)
