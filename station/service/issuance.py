"""Applicants, requests and issuance of Derived PIV Authentication certificates.

The workflow calls, in order: :func:`record_applicant` (after PKI-AUTH with the PIV card),
:func:`open_request` (registrar), :func:`approve_request` (a different approver, FIPS 201-3
§2.1), then :func:`issue_certificate` with the device's proof of possession. Issuance is
idempotent per request: asking again with the same key returns the certificate already issued.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from station.audit.backing import AuditedRequest, backed_request, backed_request_said
from station.ca.profile import AssuranceMismatch, ProofOfPossession, plan_certificate
from station.terms import Aal, TargetKind
from station.errors import StationError
from station.records.models import (
    Applicant,
    AuditEvent,
    Credential,
    IssuanceRequest,
    Operator,
    PivAuthCertificate,
    serial_hex,
    utcnow,
)
from station.terms import RequestState, Role
from station.service.operators import role_refusal, same_person
from station.service.station import Station

IDENTITY_PROOFING_MAX_AGE = dt.timedelta(days=90)  # Common Policy §4.2.3


class IssuanceError(StationError):
    class Code(str, Enum):
        ISSUANCE = "issuance"
        UNKNOWN_PIV_AUTH = "issuance.unknown_piv_auth"
        UNKNOWN_REQUEST = "issuance.unknown_request"
        SEPARATION_OF_DUTIES = "issuance.separation_of_duties"
        STATE = "issuance.state"
        ALREADY_ISSUED = "issuance.already_issued"
        MISMATCH = "issuance.mismatch"
        STALE = "issuance.stale"

    code = Code.ISSUANCE.value
    hint = "check the request with `station requests list`"


@dataclass(frozen=True)
class IssuedCredential:
    credential_id: int
    serial: str
    certificate: x509.Certificate
    already_issued: bool  # True when an earlier call issued it
    policy: str = ""  # the certificate policy OID it was issued under


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def public_key_sha256(key) -> str:  # noqa: ANN001
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _common_name(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()


_KNOWN_PIV_AUTH = select(PivAuthCertificate.__table__.c.applicant_id, PivAuthCertificate.__table__.c.id).where(
    PivAuthCertificate.__table__.c.fingerprint == bindparam("fingerprint"))


def record_applicant(
    station: Station,
    piv_auth_cert: x509.Certificate,
    *,
    actor: str,
    name: str | None = None,
    fascn: str | None = None,
    card_uuid: str | None = None,
    cardholder_uuid: str | None = None,
) -> tuple[int, int]:
    """Record who authenticated with which PIV Authentication certificate.

    Returns (applicant id, PIV Auth certificate record id). The certificate must already have
    been validated (path, revocation, policy) and the card's signature checked by the caller.
    """
    fp = fingerprint(piv_auth_cert)
    with station.db.transaction() as session:
        known = session.connection().execute(_KNOWN_PIV_AUTH, {"fingerprint": fp}).first()  # a row, not an ORM object
        if known is not None:
            return known.applicant_id, known.id
        applicant = None
        if cardholder_uuid:
            applicant = session.execute(select(Applicant).where(Applicant.cardholder_uuid == cardholder_uuid)).scalars().first()
        if applicant is None and fascn:
            applicant = session.execute(select(Applicant).where(Applicant.fascn == fascn)).scalars().first()
        if applicant is None:
            applicant = Applicant(cardholder_uuid=cardholder_uuid, fascn=fascn, card_uuid=card_uuid, name=name or _common_name(piv_auth_cert))
            session.add(applicant)
        else:
            applicant.fascn, applicant.card_uuid = fascn or applicant.fascn, card_uuid or applicant.card_uuid
        session.flush()
        pac = PivAuthCertificate(
            applicant_id=applicant.id,
            fingerprint=fp,
            serial=serial_hex(piv_auth_cert.serial_number),
            issuer=piv_auth_cert.issuer.rfc4514_string(),
            subject=piv_auth_cert.subject.rfc4514_string(),
            not_after=piv_auth_cert.not_valid_after_utc,
            der=piv_auth_cert.public_bytes(serialization.Encoding.DER),
        )
        session.add(pac)
        session.flush()
        station.audit.append(
            session,
            actor=actor,
            action="applicant.piv_auth_recorded",
            object_type="applicant",
            object_id=applicant.id,
            details={
                "fascn": fascn,
                "card_uuid": card_uuid,
                "cardholder_uuid": cardholder_uuid,
                "piv_auth_sha256": fp,
                "piv_auth_serial": pac.serial,
                "piv_auth_issuer": pac.issuer,
                "piv_auth_not_after": pac.not_after.isoformat(),
            },
        )
        return applicant.id, pac.id


def open_request(
    station: Station, piv_auth_certificate_id: int, *, aal: Aal | str, target_kind: TargetKind | str, registrar: str,
    target_uri: str | None = None, target_device: str | None = None, replaces: str | None = None,
) -> int:
    """``target_uri``: the PIN-free URI of the device the credential goes to; ``target_device``:
    its identity (label, model, serial), recorded in the chain so that no other device is used;
    ``replaces``: the serial of this station's credential on that device, which the registrar
    confirmed the new one replaces (revoked when the new key is made)."""
    aal, target = Aal(aal), TargetKind(target_kind)
    if aal is Aal.AAL3 and not target.is_hardware:
        raise AssuranceMismatch(f"AAL3 cannot be issued to a {target.value} key")
    with station.db.transaction() as session:  # rows, not ORM objects
        connection = session.connection()
        op = connection.execute(_OPERATOR_ROLES, {"identity": registrar}).first()
        refusal = role_refusal(registrar, op is not None and op.active, op.roles if op is not None else None, Role.REGISTRAR)
        if refusal is not None:
            raise refusal
        pac = connection.execute(_PIV_AUTH_RECORD, {"id": piv_auth_certificate_id}).first()
        if pac is None:
            raise IssuanceError(f"no PIV Authentication certificate record {piv_auth_certificate_id}", code=IssuanceError.Code.UNKNOWN_PIV_AUTH)
        request_id = connection.execute(_INSERT_REQUEST, {
            "applicant_id": pac.applicant_id,
            "piv_auth_certificate_id": piv_auth_certificate_id,
            "aal": aal.value,
            "target_kind": target.value,
            "registrar_id": op.id,
            "state": RequestState.REQUESTED.value,
            "target_uri": target_uri,
        }).inserted_primary_key[0]  # created_at: now (the column's default)
        station.audit.append(
            session,
            actor=registrar,
            action="request.opened",
            object_type="request",
            object_id=request_id,
            details={"applicant_id": pac.applicant_id, "aal": aal.value, "target_kind": target.value, "piv_auth_sha256": pac.fingerprint,
                     "target_device": target_device, **({"replaces": replaces} if replaces else {})},
        )
        return request_id


_INSERT_REQUEST = IssuanceRequest.__table__.insert()  # made once (SQLAlchemy keys a new statement each time)
_OPERATOR_ROLES = select(Operator.__table__.c.id, Operator.__table__.c.active, Operator.__table__.c.roles).where(
    Operator.__table__.c.identity == bindparam("identity"))
_PIV_AUTH_RECORD = select(PivAuthCertificate.__table__.c.applicant_id, PivAuthCertificate.__table__.c.fingerprint).where(
    PivAuthCertificate.__table__.c.id == bindparam("id"))


def require_backed(session: Session, req: IssuanceRequest) -> AuditedRequest:
    """What the audit chain says of ``req``; refused (:class:`RecordNotBacked`,
    ``audit.unbacked``) when the row says what the chain does not (its state, who opened and
    who decided it, in their roles then): nothing acts on such a row."""
    return backed_request(session, req)


def approver_signed_in(session: Session, audited: AuditedRequest) -> bool:
    """The approver's ``operator.signed_in`` is in the chain between the request's opening and
    its approval."""
    return audited.approver is not None and session.connection().execute(  # a row: no ORM execution
        _SIGNED_IN, {"actor": audited.approver, "after": audited.opened_seq, "before": audited.decided_seq}).first() is not None


_SIGNED_IN = select(AuditEvent.seq).where(AuditEvent.action == "operator.signed_in", AuditEvent.actor == bindparam("actor"),
                                          AuditEvent.seq > bindparam("after"), AuditEvent.seq < bindparam("before")).limit(1)
_LOCKED = select(IssuanceRequest).where(IssuanceRequest.id == bindparam("id")).with_for_update()


def locked_request(session: Session, request_id: int) -> IssuanceRequest:
    """The request row, locked for the rest of the transaction (``FOR UPDATE``; SQLite
    transactions are exclusive anyway)."""
    req = session.execute(_LOCKED, {"id": request_id}).scalar_one_or_none()
    if req is None:
        raise IssuanceError(f"no request {request_id}", code=IssuanceError.Code.UNKNOWN_REQUEST)
    return req




_REQUESTS, _OPERATORS = IssuanceRequest.__table__, Operator.__table__
_REGISTRAR, _APPROVER = _OPERATORS.alias("registrar"), _OPERATORS.alias("approver")
# the request to decide, locked, with the identities of its registrar and approver (for the chain)
_DECIDING = (select(_REQUESTS.c.state, _REQUESTS.c.registrar_id, _REGISTRAR.c.identity.label("registrar"),
                    _APPROVER.c.identity.label("approver"))
             .select_from(_REQUESTS.outerjoin(_REGISTRAR, _REGISTRAR.c.id == _REQUESTS.c.registrar_id)
                          .outerjoin(_APPROVER, _APPROVER.c.id == _REQUESTS.c.approver_id))
             .where(_REQUESTS.c.id == bindparam("id")).with_for_update(of=_REQUESTS))
# the deciding operator (by identity) and the request's registrar (by id): who may decide, and whether they are one person
_DECIDERS = select(_OPERATORS).where(or_(_OPERATORS.c.identity == bindparam("approver"),
                                         _OPERATORS.c.id == bindparam("registrar_id")))
_DECIDE = (_REQUESTS.update().where(_REQUESTS.c.id == bindparam("rid"))
           .values(state=bindparam("new"), approver_id=bindparam("approver_id"), decided_at=bindparam("at")))


def decide_request(station: Station, request_id: int, *, approver: str, approve: bool = True, reason: str = "") -> None:
    """Approve or reject (``reason``: the supervisor's words, recorded with a rejection). The
    approver holds the approver role and is not the registrar. The
    rows are read and written as rows (Core), in the order of the rules: the request (unknown,
    then not backed by the chain), the approver's role, one person, the state."""
    with station.db.transaction() as session:
        connection = session.connection()
        req = connection.execute(_DECIDING, {"id": request_id}).first()
        if req is None:
            raise IssuanceError(f"no request {request_id}", code=IssuanceError.Code.UNKNOWN_REQUEST)
        backed_request_said(session, request_id, req.state, req.registrar, req.approver)
        people = connection.execute(_DECIDERS, {"approver": approver, "registrar_id": req.registrar_id}).all()
        op = next((row for row in people if row.identity == approver), None)
        refusal = role_refusal(approver, op is not None and op.active, op.roles if op is not None else None, Role.SUPERVISOR)
        if refusal is not None:
            raise refusal
        registrar = next((row for row in people if row.id == req.registrar_id), None)  # backed: it exists
        if registrar is not None and same_person(op, registrar):  # the same operator, or another record of the same PIV card
            raise IssuanceError(
                "the registrar of a request cannot approve it",
                code=IssuanceError.Code.SEPARATION_OF_DUTIES,
                hint="a second official must approve (FIPS 201-3 §2.1)",
            )
        if req.state != RequestState.REQUESTED.value:
            raise IssuanceError(f"request {request_id} is {req.state}, not awaiting a decision", code=IssuanceError.Code.STATE)
        new = RequestState.APPROVED if approve else RequestState.REJECTED
        connection.execute(_DECIDE, {"rid": request_id, "new": new.value, "approver_id": op.id, "at": utcnow()})
        station.audit.append(
            session, actor=approver, action="request.approved" if approve else "request.rejected", object_type="request", object_id=request_id,
            details=None if approve else {"reason": reason},
        )


def approve_request(station: Station, request_id: int, *, approver: str) -> None:
    decide_request(station, request_id, approver=approver, approve=True)


def reject_request(station: Station, request_id: int, *, approver: str, reason: str) -> None:
    decide_request(station, request_id, approver=approver, approve=False, reason=reason)


_CREDENTIALS, _PIV_AUTH = Credential.__table__, PivAuthCertificate.__table__
# the request to certify, locked, with the identities of its registrar and approver (for the
# chain), its applicant's PIV Authentication certificate and its credential if issued: one query
_CERTIFYING = (select(_REQUESTS.c.state, _REQUESTS.c.aal, _REQUESTS.c.target_kind, _REQUESTS.c.created_at,
                      _REQUESTS.c.piv_auth_certificate_id, _REGISTRAR.c.identity.label("registrar"),
                      _APPROVER.c.identity.label("approver"), _PIV_AUTH.c.der.label("piv_auth_der"),
                      _PIV_AUTH.c.fingerprint.label("piv_auth_fingerprint"), _CREDENTIALS.c.id.label("credential_id"),
                      _CREDENTIALS.c.serial, _CREDENTIALS.c.certificate, _CREDENTIALS.c.policy,
                      _CREDENTIALS.c.public_key_sha256)
               .select_from(_REQUESTS.outerjoin(_REGISTRAR, _REGISTRAR.c.id == _REQUESTS.c.registrar_id)
                            .outerjoin(_APPROVER, _APPROVER.c.id == _REQUESTS.c.approver_id)
                            .outerjoin(_PIV_AUTH, _PIV_AUTH.c.id == _REQUESTS.c.piv_auth_certificate_id)
                            .outerjoin(_CREDENTIALS, _CREDENTIALS.c.request_id == _REQUESTS.c.id))
               .where(_REQUESTS.c.id == bindparam("id")).with_for_update(of=_REQUESTS))
_INSERT_CREDENTIAL = _CREDENTIALS.insert()
_CERTIFIED = (_REQUESTS.update().where(_REQUESTS.c.id == bindparam("rid"))
              .values(state=bindparam("new"), issued_at=bindparam("at")))


def _existing(request_id: int, row, key_sha256: str) -> IssuedCredential:
    """The credential already issued for the request (``row``: :data:`_CERTIFYING`'s)."""
    if row.public_key_sha256 != key_sha256:
        raise IssuanceError(
            f"request {request_id} was already issued certificate {row.serial} for another key",
            code=IssuanceError.Code.ALREADY_ISSUED,
            hint="open a new request for a new key",
        )
    return IssuedCredential(row.credential_id, row.serial, x509.load_der_x509_certificate(row.certificate), True, row.policy)


def issue_certificate(
    station: Station,
    request_id: int,
    proof: ProofOfPossession,
    *,
    actor: str,
    applicant_piv_auth_cert: x509.Certificate | None = None,
    aal: Aal | str | None = None,
    target_kind: TargetKind | str | None = None,
    target_device: str | None = None,
    from_state: RequestState = RequestState.APPROVED,
    to_state: RequestState = RequestState.ISSUED,
) -> IssuedCredential:
    """Issue (once) the Derived PIV Authentication certificate of an approved request.

    ``proof`` is a :class:`~station.ca.profile.CsrProof` or
    :class:`~station.ca.profile.SignedChallengeProof`; only its verified public key is used.
    ``applicant_piv_auth_cert``, ``aal`` and ``target_kind``, when given, must match the request.
    The credential row, the request's new state and the audit event commit together. The
    issuance engine certifies an ``authenticated`` request into ``key_generated``
    (``from_state``/``to_state``); ``issued`` then waits for the self-test.
    """
    subject_key = proof.verified_public_key()
    key_sha = public_key_sha256(subject_key)
    with station.db.transaction() as session:
        # rows, not ORM objects: the request locked, with what it needs (one query)
        connection = session.connection()
        req = connection.execute(_CERTIFYING, {"id": request_id}).first()
        if req is None:
            raise IssuanceError(f"no request {request_id}", code=IssuanceError.Code.UNKNOWN_REQUEST)
        # RecordNotBacked unless the chain backs the row
        backed_request_said(session, request_id, req.state, req.registrar, req.approver)
        if req.credential_id is not None:
            return _existing(request_id, req, key_sha)
        if req.state != from_state.value:
            raise IssuanceError(f"request {request_id} is {req.state}; only a request that is {from_state.value} is certified",
                                code=IssuanceError.Code.STATE)
        piv_auth = x509.load_der_x509_certificate(req.piv_auth_der)
        if applicant_piv_auth_cert is not None and fingerprint(applicant_piv_auth_cert) != req.piv_auth_fingerprint:
            raise IssuanceError("the PIV Authentication certificate is not the one of this request", code=IssuanceError.Code.MISMATCH)
        if (aal is not None and Aal(aal).value != req.aal) or (
            target_kind is not None and TargetKind(target_kind).value != req.target_kind
        ):
            raise IssuanceError("AAL or target kind differ from the approved request", code=IssuanceError.Code.MISMATCH)
        now = utcnow()
        if now - req.created_at > IDENTITY_PROOFING_MAX_AGE:
            raise IssuanceError(
                "the identity check of this request is older than 90 days",
                code=IssuanceError.Code.STALE,
                hint="the applicant authenticates with the PIV card again (new request)",
            )
        plan = plan_certificate(
            issuer=station.ca.certificate,
            subject_key=subject_key,
            piv_auth=piv_auth,
            aal=Aal(req.aal),
            target=TargetKind(req.target_kind),
            settings=station.profile_settings,
            now=now,
        )
        cert = station.ca.issue(plan)
        cred = {
            "request_id": request_id,
            "serial": serial_hex(plan.serial),
            "issuer_key_id": station.ca.key_id,
            "certificate": cert.public_bytes(serialization.Encoding.DER),
            "policy": plan.policy.dotted_string,
            "subject": cert.subject.rfc4514_string(),
            "san_uuid": str(plan.san_uuid),
            "public_key_sha256": key_sha,
            "target_device": target_device,
            "piv_auth_certificate_id": req.piv_auth_certificate_id,
            "not_before": plan.not_before,
            "not_after": plan.not_after,
            "issued_at": now,
        }
        credential_id = connection.execute(_INSERT_CREDENTIAL, cred).inserted_primary_key[0]  # status: active (default)
        connection.execute(_CERTIFIED, {"rid": request_id, "new": to_state.value, "at": now})
        station.audit.append(
            session,
            actor=actor,
            action="credential.issued",
            object_type="credential",
            object_id=cred["serial"],
            details={
                "request_id": request_id,
                "request_state": to_state.value,
                "serial": cred["serial"],
                "policy": cred["policy"],
                "aal": req.aal,
                "target_kind": req.target_kind,
                "target_device": target_device,
                "san_uuid": cred["san_uuid"],
                "public_key_sha256": key_sha,
                "not_after": plan.not_after.isoformat(),
                "certificate_sha256": fingerprint(cert),
            },
        )
        return IssuedCredential(credential_id, cred["serial"], cert, False, cred["policy"])
