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
from sqlalchemy import func, or_, select

from station.crypto.pkiauth import pki_auth, read_public_objects
from station.crypto.profile import Aal, CsrProof, TargetKind
from station.crypto.trust import TrustProfile
from station.crypto.validation import PathValidator
from station.devices.piv.chuid import Chuid
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
    Operator,
    PivAuthCertificate,
    RequestState,
    Role,
)
from station.service import issuance as records
from station.service.revocation import mark_revoked

FINAL = {RequestState.ISSUED, RequestState.REJECTED, RequestState.CANCELLED, RequestState.FAILED}
KEY_ALGORITHM = "P-256"


class IssuanceRefused(StationError):
    code = "issuance.refused"


@dataclass(frozen=True)
class Outcome:
    request_id: int
    state: str
    serial: str | None = None
    certificate: x509.Certificate | None = None
    selftest: selftest.SelfTestResult | None = None


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

    @staticmethod
    def _request_in(session, request_id: int, expected: RequestState):
        """The request, locked; refused (``issuance.state``) unless it is ``expected``."""
        req = records.locked_request(session, request_id)
        if req.state != expected.value:
            raise IssuanceRefused(f"request {request_id} is {req.state}, not {expected.value}", code="issuance.state")
        return req

    def _transition(self, request_id: int, expected: RequestState, new: RequestState, actor: str, action: str,
                    details: dict | None = None, **columns) -> None:
        with self.station.db.transaction() as session:
            req = self._request_in(session, request_id, expected)
            req.state = new.value
            for name, value in columns.items():
                setattr(req, name, value)
            self.station.audit.append(session, actor=actor, action=action, object_type="request", object_id=req.id,
                                      details=details or {})

    def state(self, request_id: int) -> str:
        with self.station.db.transaction() as session:
            return records.locked_request(session, request_id).state

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
        contents = read_public_objects(card)
        cert_der = contents.certificates.get("9A")
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
            applicant_id = session.execute(
                select(PivAuthCertificate.applicant_id).where(PivAuthCertificate.fingerprint == fingerprint)).scalar()
            active = 0 if applicant_id is None else session.execute(
                select(func.count(Credential.id)).join(PivAuthCertificate, Credential.piv_auth_certificate_id == PivAuthCertificate.id)
                .where(PivAuthCertificate.applicant_id == applicant_id, Credential.status == CredentialStatus.ACTIVE.value)
            ).scalar_one()
        if operator is not None:
            raise self._refuse(registrar, "separation.applicant_is_operator",
                               f"the applicant's card belongs to operator {operator!r}", hint="another registrar must serve this person")
        if active >= self.max_active:
            raise self._refuse(registrar, "limits.active_credentials", f"the applicant already holds {active} active derived credentials")
        _, pac_id = records.record_applicant(
            self.station, cert, actor=signed.identity, fascn=fascn, card_uuid=card_uuid,
            cardholder_uuid=str(chuid.cardholder_uuid) if chuid and chuid.cardholder_uuid else None,
        )
        kind = TargetKind.of_device(hardware=device.hardware, smart_card=device.smart_card)
        request_id = records.open_request(self.station, pac_id, aal=aal, target_kind=kind, registrar=signed.identity)
        with self.station.db.transaction() as session:
            req = records.locked_request(session, request_id)
            req.target_uri = str(getattr(target, "uri", device.identity))
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
        if card is None:
            raise IssuanceRefused("PKI-AUTH needs the applicant's PIV card in a reader",
                                  code="issuance.card_needed", hint="name the applicant's reader")
        with self.station.db.transaction() as session:
            req = self._request_in(session, request_id, RequestState.APPROVED)  # PKI-AUTH follows approval
            expected_fp, aal, registrar = req.piv_auth_certificate.fingerprint, Aal(req.aal), req.registrar.identity
        verdict = pki_auth(card, self.profile, self.ui, cache_dir=self.crl_cache)
        if not verdict.accepted:
            raise self._refuse(registrar, verdict.reasons[0], f"PKI-AUTH of the applicant's card: {verdict.details[0]}", request_id)
        if (verdict.identity.sha256_fingerprint or "").lower() != expected_fp.lower():
            raise self._refuse(registrar, "issuance.different_card", "this is not the card the request was opened with", request_id)
        if aal is Aal.AAL3 and not self.ui.confirm_photo(verdict.identity.facial_image, verdict.identity.subject_dn or ""):
            raise self._refuse(registrar, "assurance.photo_not_confirmed",
                               "AAL3 needs the registrar to confirm that the card's facial image shows the applicant", request_id)
        self._transition(request_id, RequestState.APPROVED, RequestState.AUTHENTICATED, registrar, "request.applicant_authenticated",
                         {"piv_auth_sha256": expected_fp, "photo_confirmed": aal is Aal.AAL3})
        self.ui.progress(RequestState.AUTHENTICATED.value, "PKI-AUTH accepted")

    # --- 4. key generation and certification -------------------------------------------------------------
    def generate(self, request_id: int, target: Target) -> None:
        with self.station.db.transaction() as session:
            req = self._request_in(session, request_id, RequestState.AUTHENTICATED)
            saved, registrar = req.target_state, req.registrar.identity
            subject = x509.load_der_x509_certificate(req.piv_auth_certificate.der).subject
        if saved:
            target.restore(json.loads(saved))  # resumed: the key exists already
        else:
            target.generate_key(KEY_ALGORITHM)
            with self.station.db.transaction() as session:
                req = records.locked_request(session, request_id)
                req.target_state = json.dumps(target.state())
                self.station.audit.append(session, actor=registrar, action="target.key_generated", object_type="request",
                                          object_id=req.id, details={"device": target.describe().identity})
        proof = CsrProof(target.proof_of_possession(subject))
        issued = records.issue_certificate(self.station, request_id, proof, actor=registrar,
                                           target_device=target.describe().identity,
                                           from_state=RequestState.AUTHENTICATED, to_state=RequestState.KEY_GENERATED)
        self.ui.progress(RequestState.KEY_GENERATED.value, f"certificate {issued.serial} issued")

    def _credential(self, request_id: int, expected: RequestState) -> tuple[x509.Certificate, str, str]:
        """The request's certificate, policy and registrar; refused unless it is ``expected``."""
        with self.station.db.transaction() as session:
            req = self._request_in(session, request_id, expected)
            if req.credential is None:
                raise IssuanceRefused(f"request {request_id} has no certificate", code="issuance.state")
            return x509.load_der_x509_certificate(req.credential.certificate), req.credential.policy, req.registrar.identity

    # --- 5. delivery -----------------------------------------------------------------------------------
    def deliver(self, request_id: int, target: Target) -> None:
        cert, _, registrar = self._credential(request_id, RequestState.KEY_GENERATED)
        target.install_certificate(cert, [self.station.ca.certificate])
        self._transition(request_id, RequestState.KEY_GENERATED, RequestState.DELIVERED, registrar, "credential.delivered")
        self.ui.progress(RequestState.DELIVERED.value, "certificate installed on the device")

    # --- 6. activation -------------------------------------------------------------------------------------
    def activate(self, request_id: int, target: Target) -> None:
        _, _, registrar = self._credential(request_id, RequestState.DELIVERED)
        pin, confirmation = self.ui.request_new_pin()
        try:
            check_new_pin(pin, confirmation)
        except StationError as exc:
            raise self._refuse(registrar, exc.code, str(exc), request_id, exc.hint) from None
        try:
            target.set_activation_secret(pin)
        except StationError as exc:
            # The transport secret no longer works: after a crash the new PIN may already be set.
            # Only this recovery path tries a PIN that might be wrong (a normal issuance spends no try).
            if exc.code != "pin-incorrect" or not target.activation_secret_set(pin):
                raise self._refuse(registrar, "activation.transport_secret",
                                   "the token refuses its transport PIN and the new PIN does not unlock it", request_id,
                                   "re-initialize the token (or give its current PIN in the target URI)") from None
        del pin, confirmation
        self._transition(request_id, RequestState.DELIVERED, RequestState.ACTIVATED, registrar, "credential.activated")
        self.ui.progress(RequestState.ACTIVATED.value, "the applicant's PIN is set")

    # --- 7. functional test ------------------------------------------------------------------------------
    def verify(self, request_id: int, target: Target) -> selftest.SelfTestResult:
        cert, policy, registrar = self._credential(request_id, RequestState.ACTIVATED)
        pin = self.ui.request_pin(pin_kind="credential", tries_left=None)
        result = selftest.run(target, pin, cert, self.station.ca.certificate, policy)
        del pin
        if result.passed:
            self._transition(request_id, RequestState.ACTIVATED, RequestState.ISSUED, registrar, "request.issued",
                             {"selftest": result.checks})
        else:
            self.fail(request_id, registrar, f"self-test failed: {result.detail}")
        self.ui.progress(RequestState.ISSUED.value if result.passed else RequestState.FAILED.value, result.detail)
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

    # --- everything after approval, from wherever the request stands (also: resume) -----------------------------
    def complete(self, request_id: int, card: PivSession | None, target: Target) -> Outcome:
        steps = {
            RequestState.APPROVED.value: lambda: self.authenticate_applicant(request_id, card),
            RequestState.AUTHENTICATED.value: lambda: self.generate(request_id, target),
            RequestState.KEY_GENERATED.value: lambda: self.deliver(request_id, target),
            RequestState.DELIVERED.value: lambda: self.activate(request_id, target),
        }
        with self.station.db.transaction() as session:
            saved = records.locked_request(session, request_id).target_state
        if saved:
            target.restore(json.loads(saved))
        while (state := self.state(request_id)) in steps:
            steps[state]()
        result = self.verify(request_id, target) if state == RequestState.ACTIVATED.value else None
        with self.station.db.transaction() as session:
            req = records.locked_request(session, request_id)
            state, credential = req.state, req.credential
            serial = credential.serial if credential is not None else None
            cert = x509.load_der_x509_certificate(credential.certificate) if credential is not None else None
        return Outcome(request_id, state, serial, cert, result)
