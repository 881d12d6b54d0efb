"""The composition root: one issuance session wired from an opened station.

:meth:`Station.issuance_session` (:func:`issuance_session`) is the only place that puts the
station together for issuance; the command line (``station issue``, ``requests resume`` and
``cancel``, ``selftest``), the demo, the benchmarks and the desktop application use it and
nothing else. It owns:

- the trust profiles: the applicants' (``trust_profile``) and the operators' own cards'
  (``operator_trust_profile``, default the applicants'), and the CRL cache in the home;
- the readers: the applicant's card and each operator's own card, opened on first use with
  an exclusive connection inside a PC/SC transaction (no other program talks to the card
  around PKI-AUTH), reset when the session closes (no PIN stays verified); the admin
  commands' operator-card sign-in (:func:`operator_sign_in`) opens its reader the same way
  (:func:`card_session`);
- the operator-card look-up for sign-in: an operator named with a reader signs in by
  PKI-AUTH of that card, any other with their password;
- the target: its URI opened through the target registry
  (:func:`station.issuance.targets.open_target`) with the configured hardware modules
  (``[targets] hardware_modules``) and the interaction's transport-PIN entry;
- the engine (:class:`station.issuance.engine.IssuanceEngine`) with the cancel token (which the
  cards and the target are given when opened, too).

The workflow modules are imported when a session is made: the service layer stays importable
without them (this module wires the floors above it; nothing below imports it).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

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


def open_target(station: Station, uri: str, pin_entry=None, phone_events=None):
    """The target of ``uri`` through the registry, with the configured hardware modules, the
    station's secret store, PUK handling and attestation roots, the enrollment service (started
    when a phone first needs it) and ``phone_events`` (each factory takes what it uses)."""
    from station.service.enrollment import enrollment_service
    from station.issuance.targets import open_target as open_by_scheme
    from station.issuance.targets.attestation import load_roots

    targets = station.config.get("targets") or {}
    hardware = set(targets.get("hardware_modules", []))
    return open_by_scheme(uri, hardware_modules=hardware, pin_entry=pin_entry, secrets=station.secrets,
                          puk_handling=targets.get("piv_puk", "escrow"),
                          attestation_roots=load_roots(targets.get("attestation_roots", []), station.home.root),
                          enrollment_service=lambda: enrollment_service(station), phone_events=phone_events)


def card_session(reader: str, *, cancel: threading.Event | None = None):
    """A PivSession on an exclusive connection to ``reader``, inside a PC/SC transaction, the
    card reset when the block ends (:func:`station.devices.pcsc.piv_session`). The one place
    the station opens an applicant's or operator's PIV card."""
    from station.devices import pcsc

    return pcsc.piv_session(reader, cancel=cancel)


def operator_sign_in(station: Station, identity: str, secret, role, *, reader: str | None = None,
                     cancel: threading.Event | None = None):
    """A fresh sign-in of ``identity`` for an action needing ``role`` (a
    :class:`station.terms.Role`): with ``reader``, PKI-AUTH of the operator's own card there
    (:func:`card_session`; ``secret()`` gives its PIN) under the operator trust profile, else
    their password ``secret()`` (:func:`station.issuance.signin.sign_in`)."""
    from station.issuance.signin import sign_in

    if not reader:
        return sign_in(station, identity, secret, role, cancel=cancel)
    with card_session(reader, cancel=cancel) as card:
        return sign_in(station, identity, secret, role, card=card, profile=operator_profile(station),
                       cache_dir=crl_cache(station), cancel=cancel)


class IssuanceSession:
    """One issuance (or resume, or cancel) at the station: the engine, the applicant's card
    session, the target and the operators' cards, closed together (a context manager)."""

    def __init__(self, station: Station, interaction: Any, *, cancel: threading.Event | None = None,
                 applicant_reader: str | None = None, operator_readers: dict[str, str] | None = None,
                 target: str | None = None, revocation: str | None = None, phone_events=None, **engine_options: Any):
        self.station = station
        self.interaction = interaction
        self.cancel_token = cancel
        self._applicant_reader = applicant_reader
        self._operator_readers = {identity: reader for identity, reader in (operator_readers or {}).items() if reader}
        self._target_uri = target
        self._revocation = revocation
        self._phone_events = phone_events
        self._engine_options = engine_options
        self._stack = contextlib.ExitStack()
        self._engine = None
        self._card = None
        self._target = None

    # --- what it owns ---------------------------------------------------------------------------
    def _open_card(self, reader: str):
        """A :func:`card_session` on ``reader``, held until the session closes (then reset)."""
        return self._stack.enter_context(card_session(reader, cancel=self.cancel_token))

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
            self._target = open_target(self.station, self._target_uri, pin_entry, self._phone_events)
            self._stack.callback(self._target.close)
            self._target.cancel = self.cancel_token
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
    def issue(self, *, registrar: str, approver: str, aal: str, replace: bool = False):
        """All seven steps (:meth:`IssuanceEngine.issue`); ``replace``: the registrar confirmed
        that the new credential replaces the one on the device."""
        engine, target = self.engine, self.target
        return engine.issue(self.card, registrar=registrar, approver=approver, aal=aal, target=target, replace=replace)

    def open_request(self, *, registrar: str, aal: str, replace: bool = False) -> int:
        engine, target = self.engine, self.target
        return engine.open_request(self.card, registrar=registrar, aal=aal, target=target, replace=replace)

    def approve(self, request_id: int, *, approver: str) -> None:
        self.engine.approve(request_id, approver=approver)

    def deny(self, request_id: int, *, approver: str, reason: str) -> None:
        self.engine.deny(request_id, approver=approver, reason=reason)

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


def read_applicant(reader: str, *, cancel: threading.Event | None = None) -> dict:
    """What the wizard's Request page shows of the card in ``reader``, read without a PIN: the
    cardholder's name (PIV Authentication certificate subject), FASC-N, expiry, and the facial
    image when the card lets it be read without a PIN (None otherwise)."""
    from station.devices.piv.constants import Slot
    from station.devices.piv.summary import summarize
    from station.errors import StationError

    with card_session(reader, cancel=cancel) as card:
        summary = summarize(card)  # reads every certificate once, the 9A one among them
        try:
            summary["photo"] = card.read_facial_image()
        except StationError:  # the facial image needs the PIN on most cards (SP 800-73-4)
            summary["photo"] = None
    auth = next((c for c in summary["certificates"] if c["slot"] == str(Slot.AUTHENTICATION) and "subject" in c), None)
    summary["name"] = ""
    if auth is not None:
        subject = x509.Name.from_rfc4514_string(auth["subject"])
        names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        summary["name"] = names[0].value if names else auth["subject"]
    return summary


def describe_targets(station: Station, offers: dict[str, str]) -> list[dict]:
    """Each configured target (shown name -> URI) as the device describes itself, or as
    absent when it cannot be opened (unplugged): name, uri, kind, hardware, present, details."""
    from station.errors import StationError

    described = []
    for name, uri in offers.items():
        try:
            target = open_target(station, uri)
            try:
                d = target.describe()
            finally:
                target.close()
            described.append({"name": name, "uri": uri, "kind": d.kind, "hardware": d.hardware, "present": True,
                              "details": d.device.words(label=False)})
        except StationError as exc:
            described.append({"name": name, "uri": uri, "kind": "", "hardware": False, "present": False,
                              "details": str(exc)})
    return described
