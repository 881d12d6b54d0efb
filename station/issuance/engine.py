"""The issuance engine: SP 800-157's seven steps as transitions of one request (docs/issuance.md).

Qt-free and device-agnostic: people are reached through an :class:`Interaction`, devices
through a :class:`~station.issuance.targets.Target` and a :class:`PivSession` for the
applicant's card. Every transition runs in one database transaction with its audit event.
Before a step acts it finds the request's state in the audit chain (a row alone is not
believed: issue 9) and re-checks the operators, the applicant's limit and the device; every
refusal names its rule and is audited too. Callers run the engine on the device worker.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from cryptography import x509

from station.cancel import Cancelled, check
from station.issuance.pkiauth import LastTryRefused, pki_auth, read_public_objects
from station.ca.profile import CsrProof
from station.validation.card_contents import CardContents
from station.validation.trust import TrustProfile
from station.validation.validation import PathValidator
from station.devices.errors import PinIncorrect
from station.devices.piv.chuid import Chuid
from station.devices.piv.constants import Slot
from station.devices.piv.fascn import FascN, FascnError
from station.devices.piv.session import PivSession
from station.errors import Exit, StationError
from station.issuance import selftest
from station.issuance.interaction import Interaction
from station.issuance.pin_policy import check_new_pin
from station.issuance.progress import Progress, Step
from station.issuance.signin import SignedIn, sign_in
from station.issuance.targets.base import DeviceIdentity, DeviceMustBeReset, RequestNotReceived, Target
from station.service import issuance, operators, requests, revocation
from station.service.requests import EndingCredential, StepFacts
from station.terms import FINAL_STATES, Aal, RequestState, Role, TargetKind

KEY_ALGORITHM = "P-256"
_AUDIT_HINT = "run `station audit verify`; nothing goes on with this request until an administrator has looked"


class IssuanceRefused(StationError):
    """A step refused; every refusal is audited with its code as the ``rule``. The code is one
    of the engine's own rules (``Code``), or the code of the error it passes on, or the
    decisive reason of a rejected card's verdict (station/errors.py: a code passed on is not
    retyped)."""

    class Code(str, Enum):
        REFUSED = "issuance.refused"
        UNKNOWN_REQUEST = "issuance.unknown_request"
        STATE = "issuance.state"
        REASON_NEEDED = "issuance.reason_needed"
        CARD_NEEDED = "issuance.card_needed"
        DIFFERENT_CARD = "issuance.different_card"
        OTHER_TARGET = "issuance.other_target"
        SEPARATION_OF_DUTIES = "issuance.separation_of_duties"
        APPROVAL_WITHDRAWN = "issuance.approval_withdrawn"
        APPROVAL_UNSIGNED = "audit.approval_unsigned"
        AAL3_NEEDS_HARDWARE = "assurance.aal3_needs_hardware"
        HOLDS_CREDENTIAL = "target.holds_credential"
        PHOTO_NOT_CONFIRMED = "assurance.photo_not_confirmed"
        APPLICANT_IS_OPERATOR = "separation.applicant_is_operator"
        ACTIVE_CREDENTIALS = "limits.active_credentials"
        TRANSPORT_SECRET = "activation.transport_secret"
        NOT_PIV = "not-piv"  # the card verdict's reason for a card without a PIV Authentication certificate

    code = Code.REFUSED.value
    hint = "see the reason code in docs/issuance.md; `station requests list` shows the request"
    exit_code = Exit.REFUSED


@dataclass
class _Request:
    """What the steps need of a request, read once: fixed when the request is opened (the
    credential when it is issued); ``state`` follows the engine's own transitions, and every
    step checks it, in the database and in the audit chain, before its device work and again
    when it writes. ``actor`` is the signed-in registrar doing the steps."""
    id: int
    state: str
    actor: str
    piv_auth_sha256: str
    aal: Aal
    subject: x509.Name
    target_state: str | None
    certificate: x509.Certificate | None
    serial: str | None
    policy: str | None
    new_pin: str | None = field(default=None, repr=False)  # asked before key generation; memory only
    replaces: str | None = None  # the serial of the credential on the device it replaces (the chain's word)
    # the step facts read with the request, in its transaction: the first step's check uses them
    # (instead of reading them again); taken once, dropped at any transition
    facts: StepFacts | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Outcome:
    request_id: int
    state: str
    serial: str | None = None
    certificate: x509.Certificate | None = None
    selftest: selftest.SelfTestResult | None = None
    policy: str | None = None  # the certificate policy OID it was issued under


def _fascn(hex_value: str | None) -> FascN | None:
    try:
        return FascN.from_bytes(bytes.fromhex(hex_value)) if hex_value else None
    except (ValueError, FascnError):
        return None


def _same_person(a: FascN, b: FascN) -> bool:
    """Two FASC-Ns of one person (TIG SCEPACS v2.3 §6): the same credential (agency, system and
    credential number; a re-issued card changes only its ICI), or the same person identifier
    within the same organization (PI with OC and OI; it follows the person to a new card). A
    PIV-I FASC-N (agency 9999, SP 800-73-4 §3.1.2) names no one."""
    if "9999" in (a.agency_code, b.agency_code):
        return False
    if (a.agency_code, a.system_code, a.credential_number) == (b.agency_code, b.system_code, b.credential_number):
        return True
    return int(a.person_identifier) != 0 and (a.person_identifier, a.organizational_category, a.organizational_identifier) == \
        (b.person_identifier, b.organizational_category, b.organizational_identifier)


class IssuanceEngine:
    def __init__(self, station, trust_profile: TrustProfile, interaction: Interaction, *, crl_cache: Path,
                 max_active_per_applicant: int | None = None, operator_profile: TrustProfile | None = None,
                 operator_card=None, cancel: threading.Event | None = None, request_wait: float | None = None):
        """``operator_profile``: trust profile for operators' own PIV cards (default: the
        applicants'). ``operator_card(identity)``: the PivSession of the reader holding that
        operator's card, or None (the operator then signs in with a password). ``cancel``: set
        it (from any thread) to stop at the next safe point with :class:`Cancelled`; the request
        stays in its last committed state, for ``complete()`` (resume) or ``cancel()``. ``request_wait``: how long a device that sends
        its own request is waited for, in seconds (``[issuance] request_wait_seconds``, 300)."""
        self.station = station
        self.profile = trust_profile
        self.operator_profile = operator_profile or trust_profile
        self.operator_card = operator_card or (lambda identity: None)
        self.ui = interaction
        self.crl_cache = crl_cache
        limits = station.config.get("issuance") or {}
        self.max_active = max_active_per_applicant if max_active_per_applicant is not None else int(limits.get("max_active_per_applicant", 2))
        self.cancel_token = cancel  # not self.cancel: that is the method that ends a request
        self.request_wait = float(request_wait if request_wait is not None else limits.get("request_wait_seconds", 300))

    # --- helpers ---------------------------------------------------------------------------
    def _check(self, where: str) -> None:
        """A safe point: nothing is half done here; stop if the cancel token is set."""
        check(self.cancel_token, where)

    def _devices(self, *devices) -> None:
        """Hand this engine's cancel token to the card and the target before they are driven
        (a token an earlier run left on them does not stop this one)."""
        for device in devices:
            if device is not None:
                device.cancel = self.cancel_token

    @contextlib.contextmanager
    def _leaves(self, request_id: int | None):
        """A :class:`Cancelled` that leaves this block names the request it left behind."""
        try:
            yield
        except Cancelled as exc:
            if exc.request_id is None:
                exc.request_id = request_id
            raise

    def _refuse(self, actor: str, rule: IssuanceRefused.Code | StationError | str, message: str, request_id: int | None = None, hint: str = "") -> IssuanceRefused:
        """An audited refusal. ``rule``: one of the engine's own (an :class:`IssuanceRefused.Code`),
        the error this refusal passes on (its code is the refusal's), or the decisive reason
        code of a rejected card's verdict."""
        refused = IssuanceRefused(message, code=rule.code if isinstance(rule, StationError) else rule, hint=hint)
        requests.record_refusal(self.station, actor=actor, rule=refused.code, request_id=request_id)
        return refused

    def _stop(self, req: _Request, rule: IssuanceRefused.Code | StationError | str, message: str, hint: str = "", *, ends: bool = False) -> IssuanceRefused:
        """An audited refusal of ``req``; with ``ends`` the request cannot go on and ends
        ``failed`` (a certificate already issued is revoked), so nobody resumes it later."""
        refused = self._refuse(req.actor, rule, message, req.id, hint)
        if ends:
            self.fail(req.id, req.actor, refused.code)
            req.state = RequestState.FAILED.value
        return refused

    def _tell(self, step: Step, message: str, substep: str = "", *, request_id: int | None = None,
              state: RequestState | str | None = None) -> None:
        """A progress event: ``substep`` before work starts, ``state`` once a transition is committed."""
        state = state.value if isinstance(state, RequestState) else state
        self.ui.progress(Progress(step, message, substep, state=state, request_id=request_id))

    def _sign_in(self, identity: str, purpose: str, role: Role) -> SignedIn:
        """A fresh sign-in for ``role``: PKI-AUTH of the operator's own card when it is in a
        reader, else the operator's password (where the configuration allows passwords)."""
        def secret() -> str:
            typed = self.ui.operator_secret(identity, purpose)
            if self.cancel_token is not None and self.cancel_token.is_set():
                typed = ""  # not kept in the traceback's frame
                self._check("before the sign-in is checked")  # the password check (argon2id, ~0.1 s) stops too
            return typed

        return sign_in(self.station, identity, secret, role, card=self.operator_card(identity),
                       profile=self.operator_profile, cache_dir=self.crl_cache, cancel=self.cancel_token)

    def _load(self, request_id: int, actor: str) -> _Request:
        """The request with its applicant certificate and credential (one query), and, in the
        same transaction, the facts its next step checks (:meth:`_expect`): the steps follow at once."""
        row = requests.load(self.station, request_id, facts_for=actor)
        if row is None:
            raise IssuanceRefused(f"no request {request_id}", code=IssuanceRefused.Code.UNKNOWN_REQUEST)
        cert = x509.load_der_x509_certificate(row.certificate_der) if row.certificate_der else None
        return _Request(request_id, row.state, actor, row.piv_auth_sha256, Aal(row.aal),
                        x509.load_der_x509_certificate(row.piv_auth_der).subject, row.target_state, cert, row.serial, row.policy,
                        facts=row.facts)

    def _expect(self, req: _Request, expected: RequestState, target: Target | None = None) -> None:
        """Before a step acts: the request is ``expected`` in the records (else ``issuance.state``)
        and in the audit chain, approved by a supervisor who signed in; the acting registrar and
        the approver are still enabled in their roles; the applicant is within the limit; the
        device is the request's own. Each refusal is audited; one the request cannot get past
        (approver withdrawn, limit reached) ends it ``failed``."""
        device = target.describe().device if target is not None else None
        facts, req.facts = req.facts, None
        if facts is None:  # none read with the request: read now, after the transition before it
            facts = requests.step_facts(self.station, req.id, req.actor)
        if facts.state != expected.value:
            raise IssuanceRefused(f"request {req.id} is {facts.state}, not {expected.value}", code=IssuanceRefused.Code.STATE)
        if facts.unbacked is not None:  # the row says what the chain does not
            obstacle = (facts.unbacked, str(facts.unbacked), facts.unbacked.hint, False)
        else:
            obstacle = self._obstacle(req, facts, device)
        if obstacle is not None:
            rule, message, hint, ends = obstacle
            raise self._stop(req, rule, message, hint, ends=ends)
        req.replaces = facts.replaces

    def _obstacle(self, req: _Request, record: StepFacts, device: DeviceIdentity | None):
        """Why ``req`` may not take its next step, as (rule, message, hint, ends), or None."""
        if record.approver is None or not record.approver_signed_in:
            return (IssuanceRefused.Code.APPROVAL_UNSIGNED, f"request {req.id} has no approval by a signed-in supervisor in the audit chain",
                    _AUDIT_HINT, False)
        if record.approver == req.actor:
            return (IssuanceRefused.Code.SEPARATION_OF_DUTIES, f"operator {req.actor!r} approved request {req.id} and cannot carry it out",
                    "another registrar goes on with it (FIPS 201-3 §2.1)", False)
        if (exc := record.actor_not_registrar) is not None:
            return exc, str(exc), "a registrar who is enabled goes on with it", False
        if (exc := record.approver_not_supervisor) is not None:
            return IssuanceRefused.Code.APPROVAL_WITHDRAWN, f"the approver of request {req.id}: {exc}", "open a new request", True
        opened_for = DeviceIdentity.parse(record.target_device) if record.target_device else None
        if device is not None and opened_for is not None and not device.same_device(opened_for):
            return (IssuanceRefused.Code.OTHER_TARGET, f"request {req.id} was opened for another device ({opened_for.name})",
                    "go on with the device the request was opened for", False)
        active = record.active_credentials
        if active >= self.max_active:
            return IssuanceRefused.Code.ACTIVE_CREDENTIALS, f"the applicant already holds {active} active derived credentials", "", True
        return None

    def _advance(self, req: _Request, expected: RequestState, new: RequestState, action: str,
                 details: dict | None = None, **columns) -> None:
        """``expected`` → ``new`` with its audit event, in one transaction; refused (nothing
        written) when the request is no longer ``expected``."""
        req.facts = None  # read before this transition: no step after it goes by them
        state = requests.advance(self.station, req.id, expected, new, actor=req.actor, action=action, details=details, **columns)
        if state is not None:
            raise IssuanceRefused(f"request {req.id} is {state}, not {expected.value}", code=IssuanceRefused.Code.STATE)
        req.state = new.value
        for name, value in columns.items():
            setattr(req, name, value)

    def state(self, request_id: int) -> str:
        state = requests.state_of(self.station, request_id)
        if state is None:
            raise IssuanceRefused(f"no request {request_id}", code=IssuanceRefused.Code.UNKNOWN_REQUEST)
        return state

    def _applicant_is_operator(self, fingerprint: str, fascn: str | None, card_uuid: str | None,
                               cardholder_uuid: str | None) -> str | None:
        """An operator enrolled with this card (:func:`operators.card_holders`: the same PIV Authentication
        certificate, FASC-N, card UUID, or the CHUID's cardholder UUID learnt at the operator's
        PIV sign-in), or with another card of the same person (:func:`_same_person`: the same
        credential, as on a re-issued card, or person identifier)."""
        holders = operators.card_holders(self.station, piv_auth_sha256=fingerprint, fascn=fascn, card_uuid=card_uuid,
                                         cardholder_uuid=cardholder_uuid)  # one transaction
        person = _fascn(fascn)
        if holders.identity is not None or person is None:
            return holders.identity
        return next((identity for identity, other in holders.fascns if (o := _fascn(other)) and _same_person(person, o)), None)

    # --- 1. request ------------------------------------------------------------------------------
    def open_request(self, card: PivSession, *, registrar: str, aal: str, target: Target, replace: bool = False) -> int:
        return self._open(card, registrar=registrar, aal=aal, target=target, replace=replace)[0]

    def _replacing(self, registrar: str, target: Target, replace: bool) -> str | None:
        """A device whose one credential the new one replaces (a PIV token's 9A) and that holds
        one: refused unless the registrar confirmed ``replace``; then the serial of this
        station's credential there while it is active (revoked when the new key is made), else None."""
        existing = target.installed_certificate() if target.replaces_credential else None
        if existing is None:
            return None
        mine = revocation.on_device(self.station, existing)
        if not replace:
            what = (f"derived credential {mine[0]} of this station" if mine else "a certificate this station did not issue")
            raise self._refuse(registrar, IssuanceRefused.Code.HOLDS_CREDENTIAL, f"the token already holds {what}",
                               hint="if the new credential is to replace it, confirm so (station issue --replace; on the "
                                    "request page: Replace it): it is revoked when the new key is made")
        return mine[0] if mine and mine[1] else None

    def _open(self, card: PivSession, *, registrar: str, aal: str, target: Target,
              replace: bool = False) -> tuple[int, SignedIn, CardContents]:
        """The request opened: its id, the registrar signed in, and what was read from the card."""
        self._devices(card, target)
        self._check("before the registrar signs in")
        signed = self._sign_in(registrar, "open a request", Role.REGISTRAR)
        self._check("before reading the applicant's card")
        aal = Aal(aal)
        device = target.describe()
        if aal is Aal.AAL3 and not device.hardware:
            if device.not_hardware_because:  # more than configuration decides (a PIV token's attestation)
                raise self._refuse(registrar, IssuanceRefused.Code.AAL3_NEEDS_HARDWARE, device.not_hardware_because,
                                   hint="issue at AAL2, or use a token that attests its keys")
            raise self._refuse(registrar, IssuanceRefused.Code.AAL3_NEEDS_HARDWARE,
                               f"AAL3 needs a hardware token; {device.device.name} is not configured as hardware",
                               hint="issue at AAL2, or use a token whose PKCS#11 module the configuration lists as hardware")
        self._tell(Step.REQUEST, "reading the applicant's PIV card", "reading the card")
        contents = read_public_objects(card, objects=("chuid",), slots=(Slot.AUTHENTICATION,))  # who: the rest at PKI-AUTH
        cert_der = contents.certificates.get(str(Slot.AUTHENTICATION))
        if cert_der is None:
            raise self._refuse(registrar, IssuanceRefused.Code.NOT_PIV, "the card holds no PIV Authentication certificate")
        self._check("before validating the applicant's certificate")
        self._tell(Step.REQUEST, "checking the applicant's certificate and its revocation", "checking the certificate")
        result = PathValidator(self.profile, cache_dir=self.crl_cache).validate(cert_der, policies=self.profile.piv_auth_policies)
        if not result.ok:
            raise self._refuse(registrar, result.reason, f"the applicant's PIV Authentication certificate: {result.detail}")
        cert = x509.load_der_x509_certificate(cert_der)
        fingerprint = issuance.fingerprint(cert)
        chuid = Chuid.from_bytes(contents.chuid) if contents.chuid else None
        fascn = chuid.fascn.hex().upper() if chuid else None
        card_uuid = str(chuid.card_uuid) if chuid and chuid.card_uuid else None
        cardholder_uuid = str(chuid.cardholder_uuid) if chuid and chuid.cardholder_uuid else None
        operator = self._applicant_is_operator(fingerprint, fascn, card_uuid, cardholder_uuid)
        if operator is not None:
            raise self._refuse(registrar, IssuanceRefused.Code.APPLICANT_IS_OPERATOR,
                               f"the applicant's card belongs to operator {operator!r}", hint="another registrar must serve this person")
        # the applicant as the records know them (by this certificate, else cardholder UUID or
        # FASC-N: a person with a new card is still the same applicant for the limit)
        applicant_id, pac_id = issuance.record_applicant(
            self.station, cert, actor=signed.identity, fascn=fascn, card_uuid=card_uuid, cardholder_uuid=cardholder_uuid,
        )
        replaces = self._replacing(registrar, target, replace)
        active = requests.active_credentials(self.station, applicant_id, replaced=replaces)
        if active >= self.max_active:
            raise self._refuse(registrar, IssuanceRefused.Code.ACTIVE_CREDENTIALS, f"the applicant already holds {active} active derived credentials")
        kind = TargetKind.of_device(hardware=device.hardware, smart_card=device.smart_card)
        self._check("before the request is recorded")
        request_id = issuance.open_request(self.station, pac_id, aal=aal, target_kind=kind, registrar=signed.identity,
                                          target_uri=device.uri or device.identity, target_device=device.identity,
                                          replaces=replaces)
        self._tell(Step.REQUEST, f"request {request_id} opened for {cert.subject.rfc4514_string()}", request_id=request_id,
                   state=RequestState.REQUESTED)
        return request_id, signed, contents

    # --- 2. approval ------------------------------------------------------------------------------
    def approve(self, request_id: int, *, approver: str) -> None:
        with self._leaves(request_id):
            self._check("before the approver signs in")
            signed = self._sign_in(approver, f"approve request {request_id}", Role.SUPERVISOR)
            self._check("before the approval is recorded")
        try:
            issuance.approve_request(self.station, request_id, approver=signed.identity)
        except StationError as exc:  # e.g. the registrar approving their own request
            raise self._refuse(signed.identity, exc, str(exc), request_id, exc.hint) from None
        self._tell(Step.APPROVAL, f"approved by {signed.identity}", request_id=request_id, state=RequestState.APPROVED)

    def deny(self, request_id: int, *, approver: str, reason: str) -> None:
        """A supervisor, freshly signed in, rejects the request (it ends ``rejected``) with
        ``reason``, in words, recorded with the rejection."""
        if not reason.strip():
            raise IssuanceRefused("a rejection needs the supervisor's reason", code=IssuanceRefused.Code.REASON_NEEDED,
                                  hint="say in a few words why the request is rejected")
        with self._leaves(request_id):
            self._check("before the approver signs in")
            signed = self._sign_in(approver, f"reject request {request_id}", Role.SUPERVISOR)
            self._check("before the rejection is recorded")
        try:
            issuance.reject_request(self.station, request_id, approver=signed.identity, reason=reason.strip())
        except StationError as exc:  # e.g. the registrar rejecting their own request
            raise self._refuse(signed.identity, exc, str(exc), request_id, exc.hint) from None
        self._tell(Step.APPROVAL, f"rejected by {signed.identity}: {reason.strip()}", request_id=request_id,
                   state=RequestState.REJECTED)

    # --- steps 3 to 7 one at a time, each by a freshly signed-in registrar -----------------------------------
    def _as(self, registrar: str, request_id: int) -> _Request:
        with self._leaves(request_id):
            self._check("before the registrar signs in")
            signed = self._sign_in(registrar, f"go on with request {request_id}", Role.REGISTRAR)
        return self._load(request_id, signed.identity)

    def authenticate_applicant(self, request_id: int, card: PivSession | None, *, registrar: str) -> None:
        req = self._as(registrar, request_id)
        with self._leaves(request_id):
            self._authenticate(req, card)

    def generate(self, request_id: int, target: Target, *, registrar: str) -> None:
        req = self._as(registrar, request_id)
        with self._leaves(request_id):
            self._generate(req, target)

    def deliver(self, request_id: int, target: Target, *, registrar: str) -> None:
        req = self._as(registrar, request_id)
        with self._leaves(request_id):
            self._deliver(req, target)

    def activate(self, request_id: int, target: Target, *, registrar: str) -> None:
        req = self._as(registrar, request_id)
        with self._leaves(request_id):
            self._activate(req, target)

    def verify(self, request_id: int, target: Target, *, registrar: str) -> selftest.SelfTestResult:
        req = self._as(registrar, request_id)
        with self._leaves(request_id):
            return self._verify(req, target)

    # --- 3. applicant authentication ------------------------------------------------------------------
    def _authenticate(self, req: _Request, card: PivSession | None, read: CardContents | None = None) -> None:
        """A PKI-AUTH that fails (card rejected, wrong PIN not asked again, last PIN try, another
        card, photo not confirmed) ends the request: it is not left approved for anyone to try
        again. A person at a screen is asked a mistyped PIN again (``pkiauth.PinEntry``).
        ``read``: what this engine read from ``card`` when it opened the request, in the same
        card session (not read again; every check runs on it)."""
        if card is None:
            raise IssuanceRefused("PKI-AUTH needs the applicant's PIV card in a reader",
                                  code=IssuanceRefused.Code.CARD_NEEDED, hint="name the applicant's reader")
        self._expect(req, RequestState.APPROVED)  # PKI-AUTH follows approval
        self._devices(card)
        self._check("before PKI-AUTH")
        try:
            verdict = pki_auth(card, self.profile, self.ui, cache_dir=self.crl_cache, cancel=self.cancel_token,
                               progress=lambda event: self.ui.progress(replace(event, request_id=req.id)), already=read)
        except LastTryRefused as exc:
            raise self._stop(req, exc, str(exc), exc.hint, ends=True) from None
        if not verdict.accepted:
            raise self._stop(req, verdict.reasons[0], f"PKI-AUTH of the applicant's card: {verdict.details[0]}", ends=True)
        if (verdict.identity.sha256_fingerprint or "").lower() != req.piv_auth_sha256.lower():
            raise self._stop(req, IssuanceRefused.Code.DIFFERENT_CARD, "this is not the card the request was opened with", ends=True)
        if req.aal is Aal.AAL3 and not self.ui.confirm_photo(verdict.identity.facial_image, verdict.identity.subject_dn or ""):
            raise self._stop(req, IssuanceRefused.Code.PHOTO_NOT_CONFIRMED,
                             "AAL3 needs the registrar to confirm that the card's facial image shows the applicant", ends=True)
        self._check("before PKI-AUTH is recorded")
        self._advance(req, RequestState.APPROVED, RequestState.AUTHENTICATED, "request.applicant_authenticated",
                      {"piv_auth_sha256": req.piv_auth_sha256, "photo_confirmed": req.aal is Aal.AAL3})
        self._tell(Step.PKI_AUTH, "PKI-AUTH accepted", request_id=req.id, state=RequestState.AUTHENTICATED)

    # --- 4. key generation and certification -------------------------------------------------------------
    def _new_pin(self, req: _Request) -> str:
        """The applicant's new PIN, within its policy: asked before the key is generated (a weak
        PIN mints nothing) and kept in memory only, for activation."""
        if req.new_pin is None:
            self._check("before asking for the new PIN")
            pin, confirmation = self.ui.request_new_pin()
            try:
                check_new_pin(pin, confirmation)
            except StationError as exc:
                raise self._stop(req, exc, str(exc), exc.hint) from None
            req.new_pin = pin
        return req.new_pin

    def _generate(self, req: _Request, target: Target) -> None:
        self._expect(req, RequestState.AUTHENTICATED, target)
        self._devices(target)
        if not target.device_sets_pin:
            self._new_pin(req)
        self._check("before key generation")
        device = target.describe().identity
        csr = self._awaited_request(req, target, device) if target.sends_request else self._made_key(req, target, device)
        proof = CsrProof(csr)
        self._check("before asking the CA for the certificate")
        self._tell(Step.KEY_GENERATION, "asking the CA for the certificate", "certifying the key", request_id=req.id)
        issued = issuance.issue_certificate(self.station, req.id, proof, actor=req.actor,
                                           target_device=device,
                                           from_state=RequestState.AUTHENTICATED, to_state=RequestState.KEY_GENERATED)
        req.state, req.certificate, req.serial, req.policy = (RequestState.KEY_GENERATED.value, issued.certificate,
                                                              issued.serial, issued.policy)
        self._tell(Step.KEY_GENERATION, f"certificate {issued.serial} issued", request_id=req.id, state=RequestState.KEY_GENERATED)

    def _made_key(self, req: _Request, target: Target, device: str) -> bytes:
        """The key made on the device at the station's word, and its request (proof of possession)."""
        recorded = json.loads(req.target_state) if req.target_state else {}
        if recorded:
            target.restore(recorded)  # resumed: the key is planned, perhaps generated
        else:
            target.plan_key(KEY_ALGORITHM)  # recorded before the device makes it: a crash leaves no stray key
            if target.state():
                recorded = target.state()
                self._advance(req, RequestState.AUTHENTICATED, RequestState.AUTHENTICATED, "target.key_planned",
                              {"device": device}, target_state=json.dumps(recorded))
        if req.replaces and revocation.supersede(self.station, req.replaces, actor=req.actor, request_id=req.id):
            self._tell(Step.KEY_GENERATION, f"credential {req.replaces}, which the new key replaces on the token, is revoked",
                       "revoking the replaced credential", request_id=req.id)
        self._tell(Step.KEY_GENERATION, "generating the key on the token", "generating the key", request_id=req.id)
        public_key = target.generate_key(KEY_ALGORITHM)
        made = {**target.state(), "public_key_sha256": issuance.public_key_sha256(public_key)}
        if made != recorded:  # a key the records do not know yet (also: one made again)
            attested = {k: v for k, v in made.items() if k.startswith("attest")}  # a verified attestation's facts
            self._advance(req, RequestState.AUTHENTICATED, RequestState.AUTHENTICATED, "target.key_generated",
                          {"device": device, "public_key_sha256": made["public_key_sha256"], **attested},
                          target_state=json.dumps(made))
        self._check("after key generation, before the certification request")  # the key is on record: resume uses it
        return target.proof_of_possession(req.subject)

    def _awaited_request(self, req: _Request, target: Target, device: str) -> bytes:
        """A device that makes its key and sends its request when ready (a phone): that the
        request waits for it is recorded once (``target.awaiting_request``, in the chain and the
        request's target state); then the device's request arrives, or ``request_wait`` passes
        (refused and audited; the request stays ``authenticated``, to resume), or the operator
        cancels (:class:`station.cancel.Cancelled`; resumable too)."""
        recorded = json.loads(req.target_state) if req.target_state else {}
        if recorded.get("awaiting") != "request":
            self._advance(req, RequestState.AUTHENTICATED, RequestState.AUTHENTICATED, "target.awaiting_request",
                          {"device": device, "wait_seconds": self.request_wait},
                          target_state=json.dumps({**recorded, "awaiting": "request"}))
        self._tell(Step.KEY_GENERATION, "waiting for the device's certification request", "waiting for the device",
                   request_id=req.id)
        try:
            csr = target.await_request(req.subject, deadline=time.monotonic() + self.request_wait, cancel=self.cancel_token,
                                       request_id=req.id, aal=req.aal.value)
        except RequestNotReceived as exc:
            self._refuse(req.actor, exc, str(exc), req.id)
            exc.request_id = req.id  # the command names the request left waiting
            exc.args = (f"request {req.id} is left waiting: {exc}",)
            raise
        self._advance(req, RequestState.AUTHENTICATED, RequestState.AUTHENTICATED, "target.request_received",
                      {"device": device, "public_key_sha256": issuance.public_key_sha256(x509.load_der_x509_csr(csr).public_key()),
                       **target.attested()})
        return csr

    @staticmethod
    def _certificate(req: _Request) -> x509.Certificate:
        if req.certificate is None:
            raise IssuanceRefused(f"request {req.id} has no certificate", code=IssuanceRefused.Code.STATE)
        return req.certificate

    # --- 5. delivery -----------------------------------------------------------------------------------
    def _deliver(self, req: _Request, target: Target) -> None:
        self._expect(req, RequestState.KEY_GENERATED, target)
        self._devices(target)
        self._check("before delivery")
        self._tell(Step.DELIVERY, "writing the certificate to the device", "writing the certificate", request_id=req.id)
        target.install_certificate(self._certificate(req), [self.station.ca.certificate])
        self._advance(req, RequestState.KEY_GENERATED, RequestState.DELIVERED, "credential.delivered")
        self._tell(Step.DELIVERY, "certificate installed on the device", request_id=req.id, state=RequestState.DELIVERED)

    # --- 6. activation -------------------------------------------------------------------------------------
    def _activate(self, req: _Request, target: Target) -> None:
        self._expect(req, RequestState.DELIVERED, target)
        self._devices(target)
        self._certificate(req)
        self._check("before activation")
        if target.device_sets_pin:
            self._tell(Step.ACTIVATION, "waiting for the applicant to set the PIN on the device", "waiting for the device",
                       request_id=req.id)
            target.await_activation(deadline=time.monotonic() + self.request_wait, cancel=self.cancel_token)
            self._advance(req, RequestState.DELIVERED, RequestState.ACTIVATED, "credential.activated", {"activated_by": "device"})
            self._tell(Step.ACTIVATION, "the applicant's PIN is set on the device", request_id=req.id, state=RequestState.ACTIVATED)
            return
        pin = self._new_pin(req)
        self._check("before the new PIN is set")
        self._tell(Step.ACTIVATION, "setting the applicant's PIN on the device", "setting the PIN", request_id=req.id)
        try:
            target.set_activation_secret(pin)
        except Cancelled:
            raise  # stopped before the token was asked: the transport secret is still the one
        except StationError as exc:
            # The transport secret no longer works: after a crash the new PIN may already be set.
            # Only this recovery path tries a PIN that might be wrong (a normal issuance spends no try).
            if not isinstance(exc, PinIncorrect) or not target.activation_secret_set(pin):
                raise self._stop(req, IssuanceRefused.Code.TRANSPORT_SECRET,
                                 "the token refuses its transport PIN and the new PIN does not unlock it",
                                 "re-initialize the token (or give its current PIN in the target URI)") from None
        del pin
        req.new_pin = None
        self._advance(req, RequestState.DELIVERED, RequestState.ACTIVATED, "credential.activated")
        self._tell(Step.ACTIVATION, "the applicant's PIN is set", request_id=req.id, state=RequestState.ACTIVATED)

    # --- 7. functional test ------------------------------------------------------------------------------
    def _verify(self, req: _Request, target: Target) -> selftest.SelfTestResult:
        self._expect(req, RequestState.ACTIVATED, target)
        self._devices(target)
        cert = self._certificate(req)
        self._check("before the functional test")
        if target.device_self_test:
            self._tell(Step.SELF_TEST, "waiting for the device's self-test", "waiting for the device", request_id=req.id)
            result = target.await_self_test(deadline=time.monotonic() + self.request_wait, cancel=self.cancel_token)
        else:
            result = self._station_test(req, target, cert)
        if result.passed:
            self._advance(req, RequestState.ACTIVATED, RequestState.ISSUED, "request.issued", {"selftest": result.checks})
        else:
            self.fail(req.id, req.actor, f"self-test failed: {result.detail}")
            req.state = RequestState.FAILED.value
        self._tell(Step.SELF_TEST, result.detail, request_id=req.id, state=req.state)
        return result

    def _station_test(self, req: _Request, target: Target, cert: x509.Certificate) -> selftest.SelfTestResult:
        pin = self.ui.request_pin(pin_kind="credential", tries_left=None)
        try:
            self._check("before the functional test signs")
            self._tell(Step.SELF_TEST, "signing a test challenge with the new credential", "signing a test challenge", request_id=req.id)
            return selftest.run(target, pin, cert, self.station.ca.certificate, req.policy)
        finally:
            del pin

    # --- ending without a credential ------------------------------------------------------------------------
    def _end(self, request_id: int, new: RequestState, actor: str, action: str, reason: str) -> None:
        """Cancel or fail; a certificate already issued is revoked in the same transaction."""
        def revokes(state: str, credential: EndingCredential | None) -> bool:
            if RequestState(state) in FINAL_STATES:
                raise IssuanceRefused(f"request {request_id} is already {state}", code=IssuanceRefused.Code.STATE)
            return credential is not None and (credential.audited is None or credential.audited.active)  # not the row's word alone

        requests.end(self.station, request_id, new, actor=actor, action=action, reason=reason, revokes=revokes)

    def cancel(self, request_id: int, *, actor: str, reason: str = "cancelled by operator", target: Target | None = None) -> None:
        """End the request ``cancelled`` (its certificate, if any, revoked). With ``target`` (the
        request's device), the key this request's run made there, and its certificate, are
        deleted too, found by the recorded target state while the transport secret still opens
        the device: first the key, then the request ends (a token that cannot be reached leaves
        the request as it was, to cancel again). After activation only the applicant's PIN
        opens the device: the request still ends cancelled and its certificate revoked, then
        :class:`DeviceMustBeReset` says the device must be reset. A request already cancelled or
        failed gets only its key deleted."""
        if target is None:
            self._end(request_id, RequestState.CANCELLED, actor, "request.cancelled", reason)
            return
        facts = requests.device_facts(self.station, request_id)
        state, recorded, opened_for = RequestState(facts.state), json.loads(facts.target_state or "{}"), facts.target_device
        if state is RequestState.ISSUED:
            raise IssuanceRefused(f"request {request_id} is already issued", code=IssuanceRefused.Code.STATE,
                                  hint="revoke the credential instead (station credentials revoke)")
        device = target.describe().device
        if opened_for and not device.same_device(DeviceIdentity.parse(opened_for)):
            raise IssuanceRefused(f"request {request_id} was opened for another device ({DeviceIdentity.parse(opened_for).name})",
                                  code=IssuanceRefused.Code.OTHER_TARGET, hint="name the device the request was opened for")
        reset_needed = None
        if state is RequestState.ACTIVATED:  # the transport secret is gone: no PIN try is spent finding that out
            reset_needed = DeviceMustBeReset("the applicant's PIN is set on the device, so the key made for the request "
                                             "stays on it: the device must be reset")
        elif recorded:
            target.restore(recorded)
            try:
                target.discard_key()
            except DeviceMustBeReset as exc:  # e.g. a crash right after C_SetPIN
                reset_needed = exc
        if state not in FINAL_STATES:
            self._end(request_id, RequestState.CANCELLED, actor, "request.cancelled", reason)
        requests.record_event(self.station, request_id, actor=actor,
                              action="target.key_discarded" if reset_needed is None else "target.reset_needed",
                              details={"device": str(device), "key_id": recorded.get("key_id")})
        if reset_needed is not None:
            reset_needed.args = (f"request {request_id} is cancelled and its certificate revoked, but {reset_needed}",)
            raise reset_needed

    def fail(self, request_id: int, actor: str, reason: str) -> None:
        self._end(request_id, RequestState.FAILED, actor, "request.failed", reason)

    # --- all seven steps for the applicant at the station --------------------------------------------------------
    def issue(self, card: PivSession, *, registrar: str, approver: str, aal: str, target: Target,
              replace: bool = False) -> Outcome:
        """Open, approve and complete in one go. An attempt that stops part way (a refusal, a
        wrong token PIN, a missing input) ends its request ``failed``, a certificate already
        issued revoked: nothing is left half done for someone to resume."""
        request_id, signed, read = self._open(card, registrar=registrar, aal=aal, target=target, replace=replace)
        try:
            self.approve(request_id, approver=approver)
            return self._complete(self._load(request_id, signed.identity), card, target, read)
        except Cancelled as exc:  # stopped at a safe point: left as it is, to resume or cancel
            if exc.request_id is None:
                exc.request_id = request_id
            raise
        except RequestNotReceived:  # the device may still send it: the request waits, resumable
            raise
        except StationError as exc:
            if RequestState(self.state(request_id)) not in FINAL_STATES:
                self.fail(request_id, signed.identity, f"the issuance stopped: {exc.code}")
            raise

    # --- everything after approval, from wherever the request stands (also: resume) -----------------------------
    def complete(self, request_id: int, card: PivSession | None, target: Target, *, registrar: str) -> Outcome:
        """``registrar`` signs in afresh and carries out the remaining steps."""
        return self._complete(self._as(registrar, request_id), card, target)

    def _complete(self, req: _Request, card: PivSession | None, target: Target, read: CardContents | None = None) -> Outcome:
        """``read``: what was read from ``card`` when the request was opened, in this card session."""
        steps = {
            RequestState.APPROVED.value: lambda: self._authenticate(req, card, read),
            RequestState.AUTHENTICATED.value: lambda: self._generate(req, target),
            RequestState.KEY_GENERATED.value: lambda: self._deliver(req, target),
            RequestState.DELIVERED.value: lambda: self._activate(req, target),
        }
        with self._leaves(req.id):
            self._devices(card, target)
            if req.target_state:
                req.facts = None  # the device is looked at first: its step reads its facts after that
                target.restore(json.loads(req.target_state))
            while req.state in steps:  # each step checks the state in the database and the chain before its device work
                steps[req.state]()
            result = self._verify(req, target) if req.state == RequestState.ACTIVATED.value else None
        return Outcome(req.id, req.state, req.serial, req.certificate, result, req.policy)
