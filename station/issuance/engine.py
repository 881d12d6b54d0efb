"""The issuance engine: SP 800-157's seven steps as transitions of one request (docs/issuance.md).

Qt-free and device-agnostic: people are reached through an :class:`Interaction`, devices
through a :class:`~station.issuance.targets.Target` and a :class:`PivSession` for the
applicant's card. Every transition runs in one database transaction with its audit event;
every refusal names its rule and is audited too. Callers run the engine on the device worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from sqlalchemy import bindparam, func, or_, select

from station.audit.backing import RecordNotBacked, disagreement
from station.crypto.pkiauth import pki_auth, read_public_objects
from station.crypto.profile import Aal, CsrProof, TargetKind
from station.crypto.trust import TrustProfile
from station.crypto.validation import PathValidator
from station.devices.piv.chuid import Chuid
from station.devices.piv.constants import Slot
from station.devices.piv.session import PivSession
from station.errors import StationError
from station.issuance import selftest
from station.issuance.interaction import Interaction
from station.issuance.pin_policy import check_new_pin
from station.issuance.signin import SignedIn, sign_in_with_password, sign_in_with_piv
from station.issuance.targets.base import Target
from station.records.models import (
    Credential,
    CredentialStatus,
    IssuanceRequest,
    Operator,
    PivAuthCertificate,
    RequestState,
    Role,
)
from station.service import issuance as records
from station.service.revocation import mark_revoked

FINAL = {RequestState.ISSUED, RequestState.REJECTED, RequestState.CANCELLED, RequestState.FAILED}
KEY_ALGORITHM = "P-256"
_REQUESTS = IssuanceRequest.__table__
_STATE = select(_REQUESTS.c.state).where(_REQUESTS.c.id == bindparam("id"))
_LOAD = (select(_REQUESTS.c.state, _REQUESTS.c.aal, _REQUESTS.c.target_state, Operator.identity, PivAuthCertificate.fingerprint,
                PivAuthCertificate.der, Credential.certificate, Credential.serial, Credential.policy)
         .join(Operator, Operator.id == _REQUESTS.c.registrar_id)
         .join(PivAuthCertificate, PivAuthCertificate.id == _REQUESTS.c.piv_auth_certificate_id)
         .outerjoin(Credential, Credential.request_id == _REQUESTS.c.id)
         .where(_REQUESTS.c.id == bindparam("id")))


class IssuanceRefused(StationError):
    code = "issuance.refused"


@dataclass
class _Request:
    """What the steps need of a request, read once: fixed when the request is opened (the
    credential when it is issued); ``state`` follows the engine's own transitions, and every
    step checks it in the database before its device work and again when it writes."""
    id: int
    state: str
    registrar: str
    piv_auth_sha256: str
    aal: Aal
    subject: x509.Name
    target_state: str | None
    certificate: x509.Certificate | None
    serial: str | None
    policy: str | None


@dataclass(frozen=True)
class Outcome:
    request_id: int
    state: str
    serial: str | None = None
    certificate: x509.Certificate | None = None
    selftest: selftest.SelfTestResult | None = None
    policy: str | None = None  # the certificate policy OID it was issued under


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

    def _sign_in(self, identity: str, purpose: str, role: Role) -> SignedIn:
        """A fresh sign-in: PKI-AUTH of the operator's own card when it is in a reader, else the
        operator's password (where the configuration allows passwords)."""
        card = self.operator_card(identity)
        if card is not None:
            ui = self.ui

            class OperatorPin:  # the operator's secret is their card's PIN
                def request_pin(self, *, pin_kind: str, tries_left: int | None) -> str:
                    return ui.operator_secret(identity, purpose)

            verdict = pki_auth(card, self.operator_profile, OperatorPin(), cache_dir=self.crl_cache)
            signed = sign_in_with_piv(self.station, identity, verdict)
        else:
            signed = sign_in_with_password(self.station, identity, self.ui.operator_secret(identity, purpose))
        if role.value not in signed.roles:
            raise self._refuse(identity, "separation.role", f"operator {identity!r} does not hold the {role.value} role")
        return signed

    def _load(self, request_id: int) -> _Request:
        """The request with its registrar, applicant certificate and credential: one query."""
        with self.station.db.transaction() as session:
            row = session.connection().execute(_LOAD, {"id": request_id}).first()
        if row is None:
            raise IssuanceRefused(f"no request {request_id}", code="issuance.unknown_request")
        cert = x509.load_der_x509_certificate(row.certificate) if row.certificate else None
        return _Request(request_id, row.state, row.identity, row.fingerprint, Aal(row.aal),
                        x509.load_der_x509_certificate(row.der).subject, row.target_state, cert, row.serial, row.policy)

    def _expect(self, req: _Request, expected: RequestState) -> None:
        """Before device work: refused (``issuance.state``) unless the request is still ``expected``,
        and (``audit.unbacked``) unless the audit chain backs the request as it stands."""
        state = self.state(req.id)
        if state != expected.value:
            raise IssuanceRefused(f"request {req.id} is {state}, not {expected.value}", code="issuance.state")
        with self.station.db.transaction() as session:
            problem = disagreement(session, session.get(IssuanceRequest, req.id))
        if problem is not None:
            raise self._refuse(req.registrar, RecordNotBacked.code, f"{problem}: the station does not act on it", req.id,
                               RecordNotBacked.hint)

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
            self.station.audit.append(session, actor=req.registrar, action=action, object_type="request", object_id=req.id,
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

    def _applicant_is_operator(self, session, fingerprint: str, fascn: str | None, card_uuid: str | None) -> str | None:
        """An operator whose PIV card is this card: same PIV Authentication certificate, FASC-N or card UUID."""
        same = [func.lower(Operator.auth_reference) == fingerprint.lower()]
        if fascn:
            same.append(Operator.card_fascn == fascn.upper())
        if card_uuid:
            same.append(Operator.card_uuid == card_uuid.lower())
        return session.execute(select(Operator.identity).where(or_(*same))).scalar()

    # --- 1. request ------------------------------------------------------------------------------
    def open_request(self, card: PivSession, *, registrar: str, aal: str, target: Target) -> int:
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
        with self.station.db.transaction() as session:
            operator = self._applicant_is_operator(session, fingerprint, fascn, card_uuid)
        if operator is not None:
            raise self._refuse(registrar, "separation.applicant_is_operator",
                               f"the applicant's card belongs to operator {operator!r}", hint="another registrar must serve this person")
        # the applicant as the records know them (by this certificate, else cardholder UUID or
        # FASC-N: a person with a new card is still the same applicant for the limit)
        applicant_id, pac_id = records.record_applicant(
            self.station, cert, actor=signed.identity, fascn=fascn, card_uuid=card_uuid,
            cardholder_uuid=str(chuid.cardholder_uuid) if chuid and chuid.cardholder_uuid else None,
        )
        with self.station.db.transaction() as session:
            active = session.execute(
                select(func.count(Credential.id)).join(PivAuthCertificate, Credential.piv_auth_certificate_id == PivAuthCertificate.id)
                .where(PivAuthCertificate.applicant_id == applicant_id, Credential.status == CredentialStatus.ACTIVE.value)
            ).scalar_one()
        if active >= self.max_active:
            raise self._refuse(registrar, "limits.active_credentials", f"the applicant already holds {active} active derived credentials")
        kind = TargetKind.of_device(hardware=device.hardware, smart_card=device.smart_card)
        request_id = records.open_request(self.station, pac_id, aal=aal, target_kind=kind, registrar=signed.identity,
                                          target_uri=str(getattr(target, "uri", device.identity)))
        self.ui.progress(RequestState.REQUESTED.value, f"request {request_id} opened for {cert.subject.rfc4514_string()}")
        return request_id

    # --- 2. approval ------------------------------------------------------------------------------
    def approve(self, request_id: int, *, approver: str) -> None:
        signed = self._sign_in(approver, f"approve request {request_id}", Role.SUPERVISOR)
        try:
            records.approve_request(self.station, request_id, approver=signed.identity)
        except StationError as exc:  # e.g. the registrar approving their own request
            raise self._refuse(signed.identity, exc.code, str(exc), request_id, exc.hint) from None
        self.ui.progress(RequestState.APPROVED.value, f"approved by {signed.identity}")

    # --- 3. applicant authentication ------------------------------------------------------------------
    def authenticate_applicant(self, request_id: int, card: PivSession | None) -> None:
        self._authenticate(self._load(request_id), card)

    def _authenticate(self, req: _Request, card: PivSession | None) -> None:
        if card is None:
            raise IssuanceRefused("PKI-AUTH needs the applicant's PIV card in a reader",
                                  code="issuance.card_needed", hint="name the applicant's reader")
        self._expect(req, RequestState.APPROVED)  # PKI-AUTH follows approval
        verdict = pki_auth(card, self.profile, self.ui, cache_dir=self.crl_cache)
        if not verdict.accepted:
            raise self._refuse(req.registrar, verdict.reasons[0], f"PKI-AUTH of the applicant's card: {verdict.details[0]}", req.id)
        if (verdict.identity.sha256_fingerprint or "").lower() != req.piv_auth_sha256.lower():
            raise self._refuse(req.registrar, "issuance.different_card", "this is not the card the request was opened with", req.id)
        if req.aal is Aal.AAL3 and not self.ui.confirm_photo(verdict.identity.facial_image, verdict.identity.subject_dn or ""):
            raise self._refuse(req.registrar, "assurance.photo_not_confirmed",
                               "AAL3 needs the registrar to confirm that the card's facial image shows the applicant", req.id)
        self._advance(req, RequestState.APPROVED, RequestState.AUTHENTICATED, "request.applicant_authenticated",
                      {"piv_auth_sha256": req.piv_auth_sha256, "photo_confirmed": req.aal is Aal.AAL3})
        self.ui.progress(RequestState.AUTHENTICATED.value, "PKI-AUTH accepted")

    # --- 4. key generation and certification -------------------------------------------------------------
    def generate(self, request_id: int, target: Target) -> None:
        self._generate(self._load(request_id), target)

    def _generate(self, req: _Request, target: Target) -> None:
        self._expect(req, RequestState.AUTHENTICATED)
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
        before = target.state()  # not as recorded when a recorded key is gone from the device
        public_key = target.generate_key(KEY_ALGORITHM)
        if before != recorded or target.state() != recorded:  # a key the records do not know yet
            self._advance(req, RequestState.AUTHENTICATED, RequestState.AUTHENTICATED, "target.key_generated",
                          {"device": device, "public_key_sha256": records.public_key_sha256(public_key)},
                          target_state=json.dumps(target.state()))
        proof = CsrProof(target.proof_of_possession(req.subject))
        issued = records.issue_certificate(self.station, req.id, proof, actor=req.registrar,
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
    def deliver(self, request_id: int, target: Target) -> None:
        self._deliver(self._load(request_id), target)

    def _deliver(self, req: _Request, target: Target) -> None:
        self._expect(req, RequestState.KEY_GENERATED)
        target.install_certificate(self._certificate(req), [self.station.ca.certificate])
        self._advance(req, RequestState.KEY_GENERATED, RequestState.DELIVERED, "credential.delivered")
        self.ui.progress(RequestState.DELIVERED.value, "certificate installed on the device")

    # --- 6. activation -------------------------------------------------------------------------------------
    def activate(self, request_id: int, target: Target) -> None:
        self._activate(self._load(request_id), target)

    def _activate(self, req: _Request, target: Target) -> None:
        self._expect(req, RequestState.DELIVERED)
        self._certificate(req)
        pin, confirmation = self.ui.request_new_pin()
        try:
            check_new_pin(pin, confirmation)
        except StationError as exc:
            raise self._refuse(req.registrar, exc.code, str(exc), req.id, exc.hint) from None
        try:
            target.set_activation_secret(pin)
        except StationError as exc:
            # The transport secret no longer works: after a crash the new PIN may already be set.
            # Only this recovery path tries a PIN that might be wrong (a normal issuance spends no try).
            if exc.code != "pin-incorrect" or not target.activation_secret_set(pin):
                raise self._refuse(req.registrar, "activation.transport_secret",
                                   "the token refuses its transport PIN and the new PIN does not unlock it", req.id,
                                   "re-initialize the token (or give its current PIN in the target URI)") from None
        del pin, confirmation
        self._advance(req, RequestState.DELIVERED, RequestState.ACTIVATED, "credential.activated")
        self.ui.progress(RequestState.ACTIVATED.value, "the applicant's PIN is set")

    # --- 7. functional test ------------------------------------------------------------------------------
    def verify(self, request_id: int, target: Target) -> selftest.SelfTestResult:
        return self._verify(self._load(request_id), target)

    def _verify(self, req: _Request, target: Target) -> selftest.SelfTestResult:
        self._expect(req, RequestState.ACTIVATED)
        cert = self._certificate(req)
        pin = self.ui.request_pin(pin_kind="credential", tries_left=None)
        result = selftest.run(target, pin, cert, self.station.ca.certificate, req.policy)
        del pin
        if result.passed:
            self._advance(req, RequestState.ACTIVATED, RequestState.ISSUED, "request.issued", {"selftest": result.checks})
        else:
            self.fail(req.id, req.registrar, f"self-test failed: {result.detail}")
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
            req.state = new.value
            self.station.audit.append(session, actor=actor, action=action, object_type="request", object_id=req.id,
                                      details={"reason": reason, "credential": credential.serial if credential else None})
            if credential is not None and credential.status == CredentialStatus.ACTIVE.value:
                mark_revoked(self.station, session, credential, x509.ReasonFlags.cessation_of_operation, actor=actor,
                             because=f"request {request_id} {new.value}: {reason}")

    def cancel(self, request_id: int, *, actor: str, reason: str = "cancelled by operator") -> None:
        self._end(request_id, RequestState.CANCELLED, actor, "request.cancelled", reason)

    def fail(self, request_id: int, actor: str, reason: str) -> None:
        self._end(request_id, RequestState.FAILED, actor, "request.failed", reason)

    # --- all seven steps for the applicant at the station --------------------------------------------------------
    def issue(self, card: PivSession, *, registrar: str, approver: str, aal: str, target: Target) -> Outcome:
        request_id = self.open_request(card, registrar=registrar, aal=aal, target=target)
        self.approve(request_id, approver=approver)
        return self.complete(request_id, card, target)

    # --- everything after approval, from wherever the request stands (also: resume) -----------------------------
    def complete(self, request_id: int, card: PivSession | None, target: Target) -> Outcome:
        req = self._load(request_id)
        steps = {
            RequestState.APPROVED.value: lambda: self._authenticate(req, card),
            RequestState.AUTHENTICATED.value: lambda: self._generate(req, target),
            RequestState.KEY_GENERATED.value: lambda: self._deliver(req, target),
            RequestState.DELIVERED.value: lambda: self._activate(req, target),
        }
        if req.target_state:
            target.restore(json.loads(req.target_state))
        while req.state in steps:  # each step checks the state in the database before its device work
            steps[req.state]()
        result = self._verify(req, target) if req.state == RequestState.ACTIVATED.value else None
        return Outcome(request_id, req.state, req.serial, req.certificate, result, req.policy)
