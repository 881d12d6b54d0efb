"""PKI-AUTH of a PIV card in a reader (FIPS 201-3 §6.2.3.1), strict in-person profile.

Order: read the public objects; show the PIN tries left and ask for the PIN (through a
:class:`PinEntry` callback, in the manner of python-fido2's ``UserInteraction``); VERIFY; read
the PIN-protected objects (facial image, fingerprints, printed information); run every static
check (:func:`station.validation.verdict.evaluate_card`); have key 9A sign a fresh random challenge
and verify it with the PIV Authentication certificate's key.

Refusals and outcomes:
- a blocked PIN is a reject with ``pin-blocked``; a wrong PIN a reject with ``pin-incorrect``
  (the details say how many tries are left), unless the person typing it can type it again
  (:attr:`PinEntry.asks_again`: the kiosk can, a line of standard input cannot), who is then
  asked again with the tries now left, for as long as more than one is;
- with one try left the PIN is not sent unless the caller allows it (:class:`LastTryRefused`);
- a card pulled out raises :class:`CardRemoved` (``card-removed``): nothing was written anywhere;
- a card without a PIV application is a reject with ``not-piv``;
- a contactless reader cannot do PKI-AUTH (no PIN, no key 9A there; SP 800-73-4 Part 1 §3).
The PIN lives only in the local variable of :func:`pki_auth` and is never logged or stored.
Once the PIN was verified, the card is reset when PKI-AUTH ends, however it ends: no PIN stays
verified for another program to use key 9A with (issuance also holds the card exclusively).
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Callable, Protocol

from station.cancel import check
from station.validation.card_contents import CardContents
from station.validation.fetch import cancelled_by
from station.validation.trust import TrustProfile
from station.validation.verdict import REJECT, Identity, Verdict, check_challenge_signature, evaluate_card
from station.devices.connection import Interface
from station.devices.errors import ApduError, CardRemoved, InterfaceRestricted, NotPivCard, PinBlocked, PinIncorrect
from station.devices.piv.constants import KeyRef, ObjectId, Slot
from station.devices.piv.containers import CertificateContainer, DiscoveryObject
from station.devices.piv.session import PivSession, algorithm_for_key
from station.errors import StationError
from station.issuance.progress import Progress, Step

_FREE_OBJECTS = {
    "discovery": ObjectId.DISCOVERY,
    "chuid": ObjectId.CHUID,
    "security_object": ObjectId.SECURITY_OBJECT,
    "ccc": ObjectId.CARD_CAPABILITY_CONTAINER,
}
_PIN_OBJECTS = {
    "facial_image": ObjectId.FACIAL_IMAGE,
    "fingerprints": ObjectId.FINGERPRINTS,
    "printed_information": ObjectId.PRINTED_INFORMATION,
}


class PinEntry(Protocol):
    """How PKI-AUTH asks the person at the card for the PIN (CLI prompt, kiosk screen).
    ``asks_again`` (optional, default False): after a wrong PIN the person can be asked again
    (a kiosk), rather than the wrong PIN ending PKI-AUTH (a line of standard input, read
    once)."""

    def request_pin(self, *, pin_kind: str, tries_left: int | None) -> str: ...


class LastTryRefused(StationError):
    code = "pin-last-try"
    hint = "one PIN try is left: the cardholder should have the PIN reset by the card issuer, or allow the last try explicitly"


#: the sub-steps of PKI-AUTH in order; an event's fraction is the share of them already done
_PHASES = ("reading the card", "PIN", "reading protected objects", "checking revocation", "challenge")


def _tell(progress: Callable[[Progress], None] | None, substep: str, message: str) -> None:
    if progress is not None:
        progress(Progress(Step.PKI_AUTH, message, substep, fraction=_PHASES.index(substep) / len(_PHASES)))


def _reject(reason: str, detail: str, identity: Identity | None = None) -> Verdict:
    return Verdict(REJECT, [reason], [f"{reason}: {detail}"], identity or Identity())


def read_public_objects(session: PivSession, *, objects: tuple[str, ...] = tuple(_FREE_OBJECTS),
                        slots: tuple[Slot, ...] = tuple(Slot), already: CardContents | None = None) -> CardContents:
    """Everything readable without the PIN (or the ``objects`` and certificate ``slots`` named);
    absent or empty objects are ``None``. ``already``: what ``session`` read from the card
    before (the card held exclusively since): the objects and certificates it holds are taken
    from it, not read again."""
    contents = CardContents()
    for attr in objects:
        known = getattr(already, attr) if already is not None else None
        setattr(contents, attr, known if known is not None else session.read_optional(_FREE_OBJECTS[attr]) or None)
    for slot in slots:
        if already is not None and str(slot) in already.certificates:
            contents.certificates[str(slot)] = already.certificates[str(slot)]
            continue
        raw = session.read_optional(slot.object_id)
        if raw:
            try:
                contents.certificates[str(slot)] = CertificateContainer.from_bytes(raw).certificate_der
            except StationError:
                contents.certificates[str(slot)] = raw  # judged (and rejected) by the checks
    return contents


def read_pin_objects(session: PivSession, contents: CardContents) -> None:
    for attr, tag in _PIN_OBJECTS.items():
        setattr(contents, attr, session.read_optional(tag) or None)


def pin_reference(contents: CardContents) -> tuple[KeyRef, str]:
    """The PIN to ask for, from the Discovery Object already read (no extra APDU)."""
    disco = None
    if contents.discovery:
        try:
            disco = DiscoveryObject.from_bytes(contents.discovery)
        except StationError:
            pass  # a malformed Discovery Object is judged by the checks; use the application PIN
    key_ref = disco.pin_key_reference if disco else KeyRef.PIN
    return key_ref, ("global" if key_ref == KeyRef.GLOBAL_PIN else "application")


def pki_auth(
    session: PivSession,
    profile: TrustProfile,
    pin_entry: PinEntry,
    *,
    mode: str | None = None,
    allow_last_try: bool = False,
    now: datetime | None = None,
    cache_dir: str | Path | None = None,
    cancel: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    already: CardContents | None = None,
) -> Verdict:
    """Authenticate the card in ``session``; returns the verdict (see the module docstring).
    ``already``: public objects ``session`` read from the card before, holding it exclusively
    since (:func:`read_public_objects`): every check still runs on them.

    ``cancel`` set stops PKI-AUTH with :class:`~station.cancel.Cancelled` at its next safe
    point: before reading, before the PIN is asked for, after it is typed but before VERIFY
    (no try spent), before the checks, between network fetches and before the challenge; a
    verdict reached while it was set is not returned. The card's own commands stop too
    (``session.cancel`` becomes ``cancel``). ``progress`` hears each sub-step as it starts (it
    must not block)."""
    if cancel is not None:
        session.cancel = cancel
    if session.interface == Interface.CONTACTLESS:
        raise InterfaceRestricted("PKI-AUTH needs the contact interface: the PIN and key 9A do not work contactless")
    check(cancel, "before reading the card")
    _tell(progress, "reading the card", "reading the card's public objects and certificates")
    contents = read_public_objects(session, already=already)
    key_ref, pin_kind = pin_reference(contents)
    status = session.get_pin_status(key_ref)
    if status.blocked:
        return _reject("pin-blocked", f"the {pin_kind} PIN is blocked")
    tries_left, asks_again = status.retries_left, bool(getattr(pin_entry, "asks_again", False))
    while True:
        if tries_left == 1 and not allow_last_try:
            raise LastTryRefused(f"only one {pin_kind} PIN try is left; the station will not spend it")
        check(cancel, "before asking for the PIN")
        _tell(progress, "PIN", f"asking for the {pin_kind} PIN ({tries_left} tries left)"
              if tries_left is not None else f"asking for the {pin_kind} PIN")
        pin = pin_entry.request_pin(pin_kind=pin_kind, tries_left=tries_left)
        try:
            session.verify(pin, key_ref)  # not sent once cancelled: the session checks the token before each command
            break
        except PinIncorrect as exc:
            if not asks_again or exc.retries_left is None or exc.retries_left < 1:
                return _reject("pin-incorrect", f"wrong {pin_kind} PIN, {exc.retries_left} tries left")
            tries_left = exc.retries_left  # the person at the kiosk types it again
        except PinBlocked:
            return _reject("pin-blocked", f"the {pin_kind} PIN is blocked")
        finally:
            del pin
    try:
        return _after_verify(session, contents, profile, mode=mode, now=now, cache_dir=cache_dir, cancel=cancel, progress=progress)
    finally:
        _reset(session)


def _reset(session: PivSession) -> None:
    """Clear the verified PIN; a card pulled from the reader has none left either."""
    try:
        session.reset()
    except CardRemoved:
        pass


def _after_verify(session: PivSession, contents: CardContents, profile: TrustProfile, *, mode, now, cache_dir,
                  cancel: threading.Event | None = None, progress=None) -> Verdict:
    """PKI-AUTH once the PIN is verified: PIN-protected objects, every check, the challenge."""
    _tell(progress, "reading protected objects", "reading the facial image and the other PIN-protected objects")
    read_pin_objects(session, contents)
    check(cancel, "before the certificate and revocation checks")
    _tell(progress, "checking revocation", "checking the certificates, their signatures and revocation")
    with cancelled_by(cancel):
        verdict = evaluate_card(contents, profile, mode=mode, now=now, cache_dir=cache_dir)
    check(cancel, "before the challenge")  # a verdict reached while cancelling (a fetch refused) does not count
    cert_der = contents.certificates.get(str(Slot.AUTHENTICATION))
    if cert_der is None:
        verdict.add_failure("cert-invalid", "the card holds no PIV Authentication certificate", decisive=not verdict.reasons)
        return verdict
    try:
        from cryptography import x509

        algorithm = algorithm_for_key(x509.load_der_x509_certificate(cert_der).public_key())
    except (ValueError, KeyError):
        if verdict.accepted:
            verdict.add_failure("cert-invalid", "the PIV Authentication key type is not supported by PIV")
        return verdict

    def sign(challenge: bytes) -> bytes:
        try:
            return session.sign(Slot.AUTHENTICATION, algorithm, challenge)
        except ApduError:  # the card refuses: its 9A key is not the certificate's kind of key
            return b""

    _tell(progress, "challenge", "having the card sign a fresh challenge")
    return check_challenge_signature(verdict, cert_der, sign)


def not_piv_verdict(exc: NotPivCard) -> Verdict:
    return _reject("not-piv", str(exc))


