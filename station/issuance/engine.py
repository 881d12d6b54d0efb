"""The issuance engine: SP 800-157's seven steps as transitions of one request (docs/issuance.md).

Qt-free and device-agnostic: people are reached through an :class:`Interaction`, devices
through a :class:`~station.issuance.targets.Target` and a :class:`PivSession` for the
applicant's card. Every transition runs in one database transaction with its audit event.
Before a step acts it finds the request's state in the audit chain (a row alone is not
believed: issue 9) and re-checks the operators, the applicant's limit and the device; every
refusal names its rule and is audited too. Callers run the engine on the device worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from sqlalchemy import bindparam, select

from station.audit.backing import AuditedRequest, audited_status, audited_statuses
from station.issuance.pkiauth import LastTryRefused, pki_auth, read_public_objects
from station.ca.profile import Aal, CsrProof, TargetKind
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
from station.issuance.signin import SignedIn, sign_in
from station.issuance.targets.base import Target
from station.records.models import (
    AuthMethod,
    Credential,
    IssuanceRequest,
    Operator,
    PivAuthCertificate,
    RequestState,
    Role,
)
from station.service import issuance as records
from station.service.operators import card_holder, operator_with_role
from station.service.revocation import mark_revoked

FINAL = {RequestState.ISSUED, RequestState.REJECTED, RequestState.CANCELLED, RequestState.FAILED}
KEY_ALGORITHM = "P-256"
_REQUESTS = IssuanceRequest.__table__
_STATE = select(_REQUESTS.c.state).where(_REQUESTS.c.id == bindparam("id"))
_LOAD = (select(_REQUESTS.c.state, _REQUESTS.c.aal, _REQUESTS.c.target_state, PivAuthCertificate.fingerprint,
                PivAuthCertificate.der, Credential.certificate, Credential.serial, Credential.policy)
         .join(PivAuthCertificate, PivAuthCertificate.id == _REQUESTS.c.piv_auth_certificate_id)
         .outerjoin(Credential, Credential.request_id == _REQUESTS.c.id)
         .where(_REQUESTS.c.id == bindparam("id")))
_AUDIT_HINT = "run `station audit verify`; nothing goes on with this request until an administrator has looked"


class IssuanceRefused(StationError):
    code = "issuance.refused"
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
                 operator_card=None):
        """``operator_profile``: trust profile for operators' own PIV cards (default: the
        applicants'). ``operator_card(identity)``: the PivSession of the reader holding that
        operator's card, or None (the operator then signs in with a password)."""
        self.station = station
        self.profile = trust_profile
        self.operator_profile = operator_profile or trust_profile
        self.operator_card = operator_card or (lambda identity: None)
        self.ui = interaction
        self.crl_cache = crl_cache
        limits = station.config.get("issuance") or {}
        self.max_active = max_active_per_applicant if max_active_per_applicant is not None else int(limits.get("max_active_per_applicant", 2))

    # --- helpers ---------------------------------------------------------------------------
    def _refuse(self, actor: str, rule: str, message: str, request_id: int | None = None, hint: str = "") -> IssuanceRefused:
        with self.station.db.transaction() as session:
            self.station.audit.append(session, actor=actor, action="issuance.refused", object_type="request",
                                      object_id=request_id if request_id is not None else "-", details={"rule": rule})
        return IssuanceRefused(message, code=rule, hint=hint)

    def _stop(self, req: _Request, rule: str, message: str, hint: str = "", *, ends: bool = False) -> IssuanceRefused:
        """An audited refusal of ``req``; with ``ends`` the request cannot go on and ends
        ``failed`` (a certificate already issued is revoked), so nobody resumes it later."""
        refused = self._refuse(req.actor, rule, message, req.id, hint)
        if ends:
            self.fail(req.id, req.actor, rule)
            req.state = RequestState.FAILED.value
        return refused

    def _sign_in(self, identity: str, purpose: str, role: Role) -> SignedIn:
        """A fresh sign-in for ``role``: PKI-AUTH of the operator's own card when it is in a
        reader, else the operator's password (where the configuration allows passwords)."""
        return sign_in(self.station, identity, lambda: self.ui.operator_secret(identity, purpose), role,
                       card=self.operator_card(identity), profile=self.operator_profile, cache_dir=self.crl_cache)

    def _load(self, request_id: int, actor: str) -> _Request:
        """The request with its applicant certificate and credential: one query."""
        with self.station.db.transaction() as session:
            row = session.connection().execute(_LOAD, {"id": request_id}).first()
        if row is None:
            raise IssuanceRefused(f"no request {request_id}", code="issuance.unknown_request")
        cert = x509.load_der_x509_certificate(row.certificate) if row.certificate else None
        return _Request(request_id, row.state, actor, row.fingerprint, Aal(row.aal),
                        x509.load_der_x509_certificate(row.der).subject, row.target_state, cert, row.serial, row.policy)

    def _expect(self, req: _Request, expected: RequestState, target: Target | None = None) -> None:
        """Before a step acts: the request is ``expected`` in the records (else ``issuance.state``)
        and in the audit chain, approved by a supervisor who signed in; the acting registrar and
        the approver are still enabled in their roles; the applicant is within the limit; the
        device is the request's own. Each refusal is audited; one the request cannot get past
        (approver withdrawn, limit reached) ends it ``failed``."""
        device = target.describe().identity if target is not None else None
        with self.station.db.transaction() as session:
            row = records.locked_request(session, req.id)
            if row.state != expected.value:
                raise IssuanceRefused(f"request {req.id} is {row.state}, not {expected.value}", code="issuance.state")
            try:
                obstacle = self._obstacle(session, req, records.require_backed(session, row), device)
            except StationError as exc:  # the row says what the chain does not
                obstacle = (exc.code, str(exc), exc.hint, False)
        if obstacle is not None:
            rule, message, hint, ends = obstacle
            raise self._stop(req, rule, message, hint, ends=ends)

    def _obstacle(self, session, req: _Request, record: AuditedRequest, device: str | None):
        """Why ``req`` may not take its next step, as (rule, message, hint, ends), or None."""
        if record.approver is None or not records.approver_signed_in(session, record):
            return ("audit.approval_unsigned", f"request {req.id} has no approval by a signed-in supervisor in the audit chain",
                    _AUDIT_HINT, False)
        if record.approver == req.actor:
            return ("issuance.separation_of_duties", f"operator {req.actor!r} approved request {req.id} and cannot carry it out",
                    "another registrar goes on with it (FIPS 201-3 §2.1)", False)
        try:
            operator_with_role(session, req.actor, Role.REGISTRAR)
        except StationError as exc:
            return exc.code, str(exc), "a registrar who is enabled goes on with it", False
        try:
            operator_with_role(session, record.approver, Role.SUPERVISOR)
        except StationError as exc:
            return "issuance.approval_withdrawn", f"the approver of request {req.id}: {exc}", "open a new request", True
        if device is not None and record.target_device and device != record.target_device:
            return ("issuance.other_target", f"request {req.id} was opened for another device ({record.target_device.split(';')[0]})",
                    "go on with the device the request was opened for", False)
        active = self._active_credentials(session, record.applicant_id, besides=req.id)
        if active >= self.max_active:
            return "limits.active_credentials", f"the applicant already holds {active} active derived credentials", "", True
        return None

    @staticmethod
    def _active_credentials(session, applicant_id: int | None, besides: int | None = None) -> int:
        """The applicant's active derived credentials, but for request ``besides``'s own: as the
        audit chain has them (a credential marked revoked in the records alone still counts)."""
        query = (select(Credential.serial).join(PivAuthCertificate, Credential.piv_auth_certificate_id == PivAuthCertificate.id)
                 .where(PivAuthCertificate.applicant_id == applicant_id))
        if besides is not None:
            query = query.where(Credential.request_id != besides)
        audited = audited_statuses(session, list(session.execute(query).scalars()))
        return sum(1 for credential in audited.values() if credential.active)

    def _advance(self, req: _Request, expected: RequestState, new: RequestState, action: str,
                 details: dict | None = None, **columns) -> None:
        """``expected`` → ``new`` with its audit event, in one transaction; refused (nothing
        written) when the request is no longer ``expected``."""
        with self.station.db.transaction() as session:
            connection = session.connection()
            moved = connection.execute(
                _REQUESTS.update().where(_REQUESTS.c.id == req.id, _REQUESTS.c.state == expected.value)
                .values(state=new.value, **columns)).rowcount
            if moved != 1:
                state = connection.execute(_STATE, {"id": req.id}).scalar()
                raise IssuanceRefused(f"request {req.id} is {state}, not {expected.value}", code="issuance.state")
            self.station.audit.append(session, actor=req.actor, action=action, object_type="request", object_id=req.id,
                                      details=details or {})
        req.state = new.value
        for name, value in columns.items():
            setattr(req, name, value)

    def state(self, request_id: int) -> str:
        with self.station.db.transaction() as session:
            state = session.connection().execute(_STATE, {"id": request_id}).scalar()
        if state is None:
            raise IssuanceRefused(f"no request {request_id}", code="issuance.unknown_request")
        return state

    def _applicant_is_operator(self, session, fingerprint: str, fascn: str | None, card_uuid: str | None,
                               cardholder_uuid: str | None) -> str | None:
        """An operator enrolled with this card (:func:`card_holder`: the same PIV Authentication
        certificate, FASC-N, card UUID, or the CHUID's cardholder UUID learnt at the operator's
        PIV sign-in), or with another card of the same person (:func:`_same_person`: the same
        credential, as on a re-issued card, or person identifier)."""
        card = Operator(auth_method=AuthMethod.PIV.value, auth_reference=fingerprint, card_fascn=fascn, card_uuid=card_uuid,
                        cardholder_uuid=cardholder_uuid)
        found = card_holder(session, card)
        person = _fascn(fascn)
        if found is not None or person is None:
            return found.identity if found is not None else None
        enrolled = session.execute(select(Operator.identity, Operator.card_fascn).where(Operator.card_fascn.is_not(None)))
        return next((identity for identity, other in enrolled if (o := _fascn(other)) and _same_person(person, o)), None)

    # --- 1. request ------------------------------------------------------------------------------
    def open_request(self, card: PivSession, *, registrar: str, aal: str, target: Target) -> int:
        return self._open(card, registrar=registrar, aal=aal, target=target)[0]

    def _open(self, card: PivSession, *, registrar: str, aal: str, target: Target) -> tuple[int, SignedIn]:
        signed = self._sign_in(registrar, "open a request", Role.REGISTRAR)
        aal = Aal(aal)
        device = target.describe()
        if aal is Aal.AAL3 and not device.hardware:
            raise self._refuse(registrar, "assurance.aal3_needs_hardware",
                               f"AAL3 needs a hardware token; {device.identity.split(';')[0]} is not configured as hardware",
                               hint="issue at AAL2, or use a token whose PKCS#11 module the configuration lists as hardware")
        contents = read_public_objects(card, objects=("chuid",), slots=(Slot.AUTHENTICATION,))  # who: the rest at PKI-AUTH
        cert_der = contents.certificates.get(str(Slot.AUTHENTICATION))
        if cert_der is None:
            raise self._refuse(registrar, "not-piv", "the card holds no PIV Authentication certificate")
        result = PathValidator(self.profile, cache_dir=self.crl_cache).validate(cert_der, policies=self.profile.piv_auth_policies)
        if not result.ok:
            raise self._refuse(registrar, result.reason, f"the applicant's PIV Authentication certificate: {result.detail}")
        cert = x509.load_der_x509_certificate(cert_der)
        fingerprint = records.fingerprint(cert)
        chuid = Chuid.from_bytes(contents.chuid) if contents.chuid else None
        fascn = chuid.fascn.hex().upper() if chuid else None
        card_uuid = str(chuid.card_uuid) if chuid and chuid.card_uuid else None
        cardholder_uuid = str(chuid.cardholder_uuid) if chuid and chuid.cardholder_uuid else None
        with self.station.db.transaction() as session:
            operator = self._applicant_is_operator(session, fingerprint, fascn, card_uuid, cardholder_uuid)
        if operator is not None:
            raise self._refuse(registrar, "separation.applicant_is_operator",
                               f"the applicant's card belongs to operator {operator!r}", hint="another registrar must serve this person")
        # the applicant as the records know them (by this certificate, else cardholder UUID or
        # FASC-N: a person with a new card is still the same applicant for the limit)
        applicant_id, pac_id = records.record_applicant(
            self.station, cert, actor=signed.identity, fascn=fascn, card_uuid=card_uuid, cardholder_uuid=cardholder_uuid,
        )
        with self.station.db.transaction() as session:
            active = self._active_credentials(session, applicant_id)
        if active >= self.max_active:
            raise self._refuse(registrar, "limits.active_credentials", f"the applicant already holds {active} active derived credentials")
        kind = TargetKind.of_device(hardware=device.hardware, smart_card=device.smart_card)
        request_id = records.open_request(self.station, pac_id, aal=aal, target_kind=kind, registrar=signed.identity,
                                          target_uri=str(getattr(target, "uri", device.identity)), target_device=device.identity)
        self.ui.progress(RequestState.REQUESTED.value, f"request {request_id} opened for {cert.subject.rfc4514_string()}")
        return request_id, signed

    # --- 2. approval ------------------------------------------------------------------------------
    def approve(self, request_id: int, *, approver: str) -> None:
        signed = self._sign_in(approver, f"approve request {request_id}", Role.SUPERVISOR)
        try:
            records.approve_request(self.station, request_id, approver=signed.identity)
        except StationError as exc:  # e.g. the registrar approving their own request
            raise self._refuse(signed.identity, exc.code, str(exc), request_id, exc.hint) from None
        self.ui.progress(RequestState.APPROVED.value, f"approved by {signed.identity}")

    # --- steps 3 to 7 one at a time, each by a freshly signed-in registrar -----------------------------------
    def _as(self, registrar: str, request_id: int) -> _Request:
        signed = self._sign_in(registrar, f"go on with request {request_id}", Role.REGISTRAR)
        return self._load(request_id, signed.identity)

    def authenticate_applicant(self, request_id: int, card: PivSession | None, *, registrar: str) -> None:
        self._authenticate(self._as(registrar, request_id), card)

    def generate(self, request_id: int, target: Target, *, registrar: str) -> None:
        self._generate(self._as(registrar, request_id), target)

    def deliver(self, request_id: int, target: Target, *, registrar: str) -> None:
        self._deliver(self._as(registrar, request_id), target)

    def activate(self, request_id: int, target: Target, *, registrar: str) -> None:
        self._activate(self._as(registrar, request_id), target)

    def verify(self, request_id: int, target: Target, *, registrar: str) -> selftest.SelfTestResult:
        return self._verify(self._as(registrar, request_id), target)

    # --- 3. applicant authentication ------------------------------------------------------------------
    def _authenticate(self, req: _Request, card: PivSession | None) -> None:
        """A PKI-AUTH that fails (card rejected, wrong PIN, last PIN try, another card, photo not
        confirmed) ends the request: it is not left approved for anyone to try again."""
        if card is None:
            raise IssuanceRefused("PKI-AUTH needs the applicant's PIV card in a reader",
                                  code="issuance.card_needed", hint="name the applicant's reader")
        self._expect(req, RequestState.APPROVED)  # PKI-AUTH follows approval
        try:
            verdict = pki_auth(card, self.profile, self.ui, cache_dir=self.crl_cache)
        except LastTryRefused as exc:
            raise self._stop(req, exc.code, str(exc), exc.hint, ends=True) from None
        if not verdict.accepted:
            raise self._stop(req, verdict.reasons[0], f"PKI-AUTH of the applicant's card: {verdict.details[0]}", ends=True)
        if (verdict.identity.sha256_fingerprint or "").lower() != req.piv_auth_sha256.lower():
            raise self._stop(req, "issuance.different_card", "this is not the card the request was opened with", ends=True)
        if req.aal is Aal.AAL3 and not self.ui.confirm_photo(verdict.identity.facial_image, verdict.identity.subject_dn or ""):
            raise self._stop(req, "assurance.photo_not_confirmed",
                             "AAL3 needs the registrar to confirm that the card's facial image shows the applicant", ends=True)
        self._advance(req, RequestState.APPROVED, RequestState.AUTHENTICATED, "request.applicant_authenticated",
                      {"piv_auth_sha256": req.piv_auth_sha256, "photo_confirmed": req.aal is Aal.AAL3})
        self.ui.progress(RequestState.AUTHENTICATED.value, "PKI-AUTH accepted")

    # --- 4. key generation and certification -------------------------------------------------------------
    def _new_pin(self, req: _Request) -> str:
        """The applicant's new PIN, within its policy: asked before the key is generated (a weak
        PIN mints nothing) and kept in memory only, for activation."""
        if req.new_pin is None:
            pin, confirmation = self.ui.request_new_pin()
            try:
                check_new_pin(pin, confirmation)
            except StationError as exc:
                raise self._stop(req, exc.code, str(exc), exc.hint) from None
            req.new_pin = pin
        return req.new_pin

    def _generate(self, req: _Request, target: Target) -> None:
        self._expect(req, RequestState.AUTHENTICATED, target)
        self._new_pin(req)
        device = target.describe().identity
        recorded = json.loads(req.target_state) if req.target_state else {}
        if recorded:
            target.restore(recorded)  # resumed: the key is planned, perhaps generated
        else:
            target.plan_key(KEY_ALGORITHM)  # recorded before the device makes it: a crash leaves no stray key
            if target.state():
                recorded = target.state()
                self._advance(req, RequestState.AUTHENTICATED, RequestState.AUTHENTICATED, "target.key_planned",
                              {"device": device}, target_state=json.dumps(recorded))
        public_key = target.generate_key(KEY_ALGORITHM)
        made = {**target.state(), "public_key_sha256": records.public_key_sha256(public_key)}
        if made != recorded:  # a key the records do not know yet (also: one made again)
            self._advance(req, RequestState.AUTHENTICATED, RequestState.AUTHENTICATED, "target.key_generated",
                          {"device": device, "public_key_sha256": made["public_key_sha256"]}, target_state=json.dumps(made))
        proof = CsrProof(target.proof_of_possession(req.subject))
        issued = records.issue_certificate(self.station, req.id, proof, actor=req.actor,
                                           target_device=device,
                                           from_state=RequestState.AUTHENTICATED, to_state=RequestState.KEY_GENERATED)
        req.state, req.certificate, req.serial, req.policy = (RequestState.KEY_GENERATED.value, issued.certificate,
                                                              issued.serial, issued.policy)
        self.ui.progress(RequestState.KEY_GENERATED.value, f"certificate {issued.serial} issued")

    @staticmethod
    def _certificate(req: _Request) -> x509.Certificate:
        if req.certificate is None:
            raise IssuanceRefused(f"request {req.id} has no certificate", code="issuance.state")
        return req.certificate

    # --- 5. delivery -----------------------------------------------------------------------------------
    def _deliver(self, req: _Request, target: Target) -> None:
        self._expect(req, RequestState.KEY_GENERATED, target)
        target.install_certificate(self._certificate(req), [self.station.ca.certificate])
        self._advance(req, RequestState.KEY_GENERATED, RequestState.DELIVERED, "credential.delivered")
        self.ui.progress(RequestState.DELIVERED.value, "certificate installed on the device")

    # --- 6. activation -------------------------------------------------------------------------------------
    def _activate(self, req: _Request, target: Target) -> None:
        self._expect(req, RequestState.DELIVERED, target)
        self._certificate(req)
        pin = self._new_pin(req)
        try:
            target.set_activation_secret(pin)
        except StationError as exc:
            # The transport secret no longer works: after a crash the new PIN may already be set.
            # Only this recovery path tries a PIN that might be wrong (a normal issuance spends no try).
            if not isinstance(exc, PinIncorrect) or not target.activation_secret_set(pin):
                raise self._stop(req, "activation.transport_secret",
                                 "the token refuses its transport PIN and the new PIN does not unlock it",
                                 "re-initialize the token (or give its current PIN in the target URI)") from None
        del pin
        req.new_pin = None
        self._advance(req, RequestState.DELIVERED, RequestState.ACTIVATED, "credential.activated")
        self.ui.progress(RequestState.ACTIVATED.value, "the applicant's PIN is set")

    # --- 7. functional test ------------------------------------------------------------------------------
    def _verify(self, req: _Request, target: Target) -> selftest.SelfTestResult:
        self._expect(req, RequestState.ACTIVATED, target)
        cert = self._certificate(req)
        pin = self.ui.request_pin(pin_kind="credential", tries_left=None)
        result = selftest.run(target, pin, cert, self.station.ca.certificate, req.policy)
        del pin
        if result.passed:
            self._advance(req, RequestState.ACTIVATED, RequestState.ISSUED, "request.issued", {"selftest": result.checks})
        else:
            self.fail(req.id, req.actor, f"self-test failed: {result.detail}")
            req.state = RequestState.FAILED.value
        self.ui.progress(req.state, result.detail)
        return result

    # --- ending without a credential ------------------------------------------------------------------------
    def _end(self, request_id: int, new: RequestState, actor: str, action: str, reason: str) -> None:
        """Cancel or fail; a certificate already issued is revoked in the same transaction."""
        with self.station.db.transaction() as session:
            req = records.locked_request(session, request_id)
            if RequestState(req.state) in FINAL:
                raise IssuanceRefused(f"request {request_id} is already {req.state}", code="issuance.state")
            credential = req.credential
            audited = audited_status(session, credential.serial) if credential is not None else None
            req.state = new.value
            self.station.audit.append(session, actor=actor, action=action, object_type="request", object_id=req.id,
                                      details={"reason": reason, "credential": credential.serial if credential else None})
            if credential is not None and (audited is None or audited.active):  # not the row's word alone
                mark_revoked(self.station, session, credential, x509.ReasonFlags.cessation_of_operation, actor=actor,
                             because=f"request {request_id} {new.value}: {reason}")

    def cancel(self, request_id: int, *, actor: str, reason: str = "cancelled by operator") -> None:
        self._end(request_id, RequestState.CANCELLED, actor, "request.cancelled", reason)

    def fail(self, request_id: int, actor: str, reason: str) -> None:
        self._end(request_id, RequestState.FAILED, actor, "request.failed", reason)

    # --- all seven steps for the applicant at the station --------------------------------------------------------
    def issue(self, card: PivSession, *, registrar: str, approver: str, aal: str, target: Target) -> Outcome:
        """Open, approve and complete in one go. An attempt that stops part way (a refusal, a
        wrong token PIN, a missing input) ends its request ``failed``, a certificate already
        issued revoked: nothing is left half done for someone to resume."""
        request_id, signed = self._open(card, registrar=registrar, aal=aal, target=target)
        try:
            self.approve(request_id, approver=approver)
            return self._complete(self._load(request_id, signed.identity), card, target)
        except StationError as exc:
            if RequestState(self.state(request_id)) not in FINAL:
                self.fail(request_id, signed.identity, f"the issuance stopped: {exc.code}")
            raise

    # --- everything after approval, from wherever the request stands (also: resume) -----------------------------
    def complete(self, request_id: int, card: PivSession | None, target: Target, *, registrar: str) -> Outcome:
        """``registrar`` signs in afresh and carries out the remaining steps."""
        return self._complete(self._as(registrar, request_id), card, target)

    def _complete(self, req: _Request, card: PivSession | None, target: Target) -> Outcome:
        steps = {
            RequestState.APPROVED.value: lambda: self._authenticate(req, card),
            RequestState.AUTHENTICATED.value: lambda: self._generate(req, target),
            RequestState.KEY_GENERATED.value: lambda: self._deliver(req, target),
            RequestState.DELIVERED.value: lambda: self._activate(req, target),
        }
        if req.target_state:
            target.restore(json.loads(req.target_state))
        while req.state in steps:  # each step checks the state in the database and the chain before its device work
            steps[req.state]()
        result = self._verify(req, target) if req.state == RequestState.ACTIVATED.value else None
        return Outcome(req.id, req.state, req.serial, req.certificate, result, req.policy)
