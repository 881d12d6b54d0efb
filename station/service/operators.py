"""Station operators: who they are, their roles, how they authenticate.

One person, one operator: a PIV card (its PIV Authentication certificate, FASC-N, card UUID or
cardholder UUID) already enrolled is refused for another operator, so that nobody holds two
identities that could open and approve the same request (FIPS 201-3 §2.1). An operator's
certificate must be a PIV Authentication certificate (SP 800-73-4 key 9A: digitalSignature,
the PIV Authentication policy, a path under the operator trust profile).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from station.errors import StationError
from station.records.models import Operator
from station.terms import AuthMethod, Role
from station.service.station import Station


class OperatorError(StationError):
    class Code(str, Enum):
        OPERATOR = "operator"
        PIV_CERT = "operator.piv_cert"
        NO_ROLE = "operator.no_role"
        SEPARATION_ADMINISTRATOR_ISSUES = "separation.administrator_issues"
        SEPARATION_AUDITOR_READ_ONLY = "separation.auditor_read_only"
        EXISTS = "operator.exists"
        SEPARATION_CARD_ENROLLED = "separation.card_enrolled"
        UNKNOWN = "operator.unknown"
        ROLE = "operator.role"
        DISABLED = "operator.disabled"
        LAST_ADMINISTRATOR = "operator.last_administrator"

    code = Code.OPERATOR.value
    hint = "check the operator with `station operators list`"


class PasswordsNotAllowed(StationError):
    """A password given for an operator (``operators add --password-stdin``, or the first
    administrator at ``init``) where the station allows no operator passwords."""

    code = "signin.passwords_disabled"
    hint = ("enrol the operator's PIV card instead: --piv-cert FILE, or --admin-piv-cert FILE at init; or allow "
            "passwords: --allow-operator-passwords at init, allow_passwords = true in the [operators] section after")


ISSUING_ROLES = frozenset({Role.REGISTRAR, Role.SUPERVISOR})


@dataclass(frozen=True)
class OperatorCard:
    """What identifies an operator's PIV card: the SHA-256 of its PIV Authentication
    certificate (the sign-in reference) and the FASC-N (hex) and card UUID of its subjectAltName."""
    sha256: str
    fascn: str | None
    card_uuid: str | None


def piv_auth_card(data: bytes, profile, *, cache_dir: Path | None, source: str = "the certificate") -> OperatorCard:
    """``data`` (PEM or DER) checked as a PIV Authentication certificate under ``profile``
    (a TrustProfile): an end-entity key for digitalSignature, asserting one of the profile's
    PIV Authentication policies, with a valid path to its anchors."""
    from station.validation.piv_objects import cert_identifiers
    from station.validation.validation import PathValidator

    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError:
        raise OperatorError(f"{source} is not a certificate", code=OperatorError.Code.PIV_CERT, hint="give the PEM or DER file") from None
    usage, constraints = (_extension(cert, kind) for kind in (x509.KeyUsage, x509.BasicConstraints))
    if usage is None or not usage.digital_signature or (constraints is not None and constraints.ca):
        raise OperatorError(f"{source} is not a PIV Authentication certificate (an end-entity key for digitalSignature)",
                            code=OperatorError.Code.PIV_CERT, hint="give the operator's PIV Authentication certificate (key 9A)")
    result = PathValidator(profile, cache_dir=cache_dir).validate(cert.public_bytes(Encoding.DER),
                                                                  policies=profile.piv_auth_policies)
    if not result.ok:
        raise OperatorError(f"{source} is not a valid PIV Authentication certificate under the operator trust profile"
                            f" ({result.reason}: {result.detail})", code=OperatorError.Code.PIV_CERT,
                            hint="give the operator's PIV Authentication certificate issued under the trusted PKI")
    ids = cert_identifiers(cert)
    return OperatorCard(cert.fingerprint(hashes.SHA256()).hex(), ids.fascn.hex().upper() if ids.fascn else None,
                        str(uuid.UUID(bytes=ids.uuid)) if ids.uuid else None)


def _extension(cert: x509.Certificate, kind):
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def check_roles(roles: list[Role]) -> None:
    """Separation of duties at enrolment: an administrator manages configuration and operators
    but never issues; an auditor only reads."""
    roles = {Role(r) for r in roles}
    if not roles:
        raise OperatorError("an operator needs at least one role", code=OperatorError.Code.NO_ROLE)
    if Role.ADMINISTRATOR in roles and roles & ISSUING_ROLES:
        raise OperatorError("an administrator never issues: no registrar or supervisor role beside it",
                            code=OperatorError.Code.SEPARATION_ADMINISTRATOR_ISSUES, hint="enrol a second operator identity for issuing")
    if Role.AUDITOR in roles and len(roles) > 1:
        raise OperatorError("an auditor is read-only and holds no other role", code=OperatorError.Code.SEPARATION_AUDITOR_READ_ONLY)


def add_operator(
    station: Station,
    identity: str,
    *,
    display_name: str,
    roles: list[Role],
    auth_method: AuthMethod,
    auth_reference: str | None = None,
    actor: str,
    card_fascn: str | None = None,
    card_uuid: str | None = None,
    cardholder_uuid: str | None = None,
) -> int:
    """``auth_reference``: the SHA-256 of the operator's PIV Auth certificate, or an argon2 hash.
    ``card_fascn``/``card_uuid``/``cardholder_uuid``: the identifiers of the operator's PIV card,
    so that the station never lets an operator serve or approve for themself."""
    with station.db.transaction() as session:
        return enrol(session, station.audit, identity, display_name=display_name, roles=roles, auth_method=auth_method,
                     auth_reference=auth_reference, actor=actor, card_fascn=card_fascn, card_uuid=card_uuid,
                     cardholder_uuid=cardholder_uuid)


def enrol(session: Session, audit, identity: str, *, display_name: str, roles: list[Role], auth_method: AuthMethod,
          auth_reference: str | None, actor: str, card_fascn: str | None = None, card_uuid: str | None = None,
          cardholder_uuid: str | None = None) -> int:
    """:func:`add_operator` inside the caller's transaction (``station init`` enrols the first
    administrator in the transaction that creates the station)."""
    check_roles(roles)
    if session.execute(select(Operator).where(Operator.identity == identity)).scalar_one_or_none():
        raise OperatorError(f"operator {identity!r} exists", code=OperatorError.Code.EXISTS)
    method = AuthMethod(auth_method).value
    op = Operator(
        identity=identity,
        display_name=display_name,
        roles=" ".join(sorted(Role(r).value for r in roles)),
        auth_method=method,
        auth_reference=auth_reference.lower() if auth_reference and method == AuthMethod.PIV.value else auth_reference,
        card_fascn=card_fascn.upper() if card_fascn else None,
        card_uuid=card_uuid.lower() if card_uuid else None,
        cardholder_uuid=cardholder_uuid.lower() if cardholder_uuid else None,
    )
    holder = card_holder(session, op)
    if holder is not None:
        raise OperatorError(f"this PIV card is already enrolled for operator {holder.identity!r}",
                            code=OperatorError.Code.SEPARATION_CARD_ENROLLED, hint="one person is one operator: give them more roles instead")
    session.add(op)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="operator.added",
        object_type="operator",
        object_id=op.id,
        details={"identity": identity, "roles": op.roles.split(), "auth_method": op.auth_method},
    )
    return op.id


def _card_matches(op: Operator) -> list:
    """Conditions for an operator row sharing ``op``'s card (certificate, FASC-N, card UUID or
    cardholder UUID)."""
    same = []
    if op.auth_method == AuthMethod.PIV.value and op.auth_reference:
        same.append((Operator.auth_method == AuthMethod.PIV.value) & (func.lower(Operator.auth_reference) == op.auth_reference.lower()))
    if op.card_fascn:
        same.append(Operator.card_fascn == op.card_fascn.upper())
    if op.card_uuid:
        same.append(Operator.card_uuid == op.card_uuid.lower())
    if op.cardholder_uuid:
        same.append(Operator.cardholder_uuid == op.cardholder_uuid.lower())
    return same


def card_holder(session: Session, op: Operator) -> Operator | None:
    """Another operator (enabled or not) enrolled with the same PIV card as ``op``."""
    same = _card_matches(op)
    if not same:
        return None
    query = select(Operator).where(or_(*same))
    if op.id is not None:
        query = query.where(Operator.id != op.id)
    return session.execute(query.limit(1)).scalar_one_or_none()


def same_person(a: Operator, b: Operator) -> bool:
    """Two operator records of one person: the same operator, or the same PIV card."""
    if a.id == b.id:
        return True
    ref = lambda op: op.auth_reference.lower() if op.auth_method == AuthMethod.PIV.value and op.auth_reference else None  # noqa: E731
    pairs = [(ref(a), ref(b)), (a.card_fascn, b.card_fascn), (a.card_uuid, b.card_uuid), (a.cardholder_uuid, b.cardholder_uuid)]
    return any(x is not None and x.lower() == (y or "").lower() for x, y in pairs)


_BY_IDENTITY = select(Operator).where(Operator.identity == bindparam("identity"))


def operator_with_role(session: Session, identity: str, role: Role) -> Operator:
    op = session.execute(_BY_IDENTITY, {"identity": identity}).scalar_one_or_none()
    refusal = role_refusal(identity, op is not None and op.active, op.roles if op is not None else None, role)
    if refusal is not None:
        raise refusal
    return op


def role_refusal(identity: str | None, active: bool | None, roles: str | None, role: Role) -> OperatorError | None:
    """Why the operator ``identity`` (its row's ``active`` and ``roles``; None: no such row)
    may not act in ``role``, or None (:func:`operator_with_role` for a row read as columns)."""
    if not active:
        return OperatorError(f"no active operator {identity!r}", code=OperatorError.Code.UNKNOWN)
    if role.value not in (roles or "").split():
        return OperatorError(f"operator {identity!r} does not hold the {role.value} role", code=OperatorError.Code.ROLE)
    return None


def list_operators(station: Station) -> list[dict]:
    with station.db.transaction() as session:
        return [
            {"id": op.identity, "name": op.display_name, "roles": op.roles.split(), "auth": op.auth_method,
             "active": op.active, "card_fascn": op.card_fascn, "card_uuid": op.card_uuid,
             "cardholder_uuid": op.cardholder_uuid}
            for op in session.execute(select(Operator).order_by(Operator.identity)).scalars()
        ]


def disable_operator(station: Station, identity: str, *, actor: str) -> None:
    """An operator who leaves keeps their history; they can no longer sign in. The last active
    administrator stays: without one nobody could enrol operators or revoke."""
    with station.db.transaction() as session:
        op = session.execute(select(Operator).where(Operator.identity == identity).with_for_update()).scalar_one_or_none()
        if op is None:
            raise OperatorError(f"no operator {identity!r}", code=OperatorError.Code.UNKNOWN)
        if not op.active:
            raise OperatorError(f"operator {identity!r} is already disabled", code=OperatorError.Code.DISABLED)
        if op.has_role(Role.ADMINISTRATOR) and not any(
                other.has_role(Role.ADMINISTRATOR) for other in session.execute(
                    select(Operator).where(Operator.active, Operator.id != op.id)).scalars()):
            raise OperatorError(f"operator {identity!r} is the last active administrator", code=OperatorError.Code.LAST_ADMINISTRATOR,
                                hint="enrol another administrator first")
        op.active = False
        station.audit.append(session, actor=actor, action="operator.disabled", object_type="operator", object_id=op.id,
                             details={"identity": identity})


@dataclass(frozen=True)
class CardHolders:
    """Who among the operators may hold an applicant's card: ``identity``, the operator
    enrolled with this very card, or None; then ``fascns``, (identity, FASC-N hex) of every
    operator enrolled with a FASC-N (read only when no operator holds the card and it has a
    FASC-N), for the caller's same-person rule."""
    identity: str | None
    fascns: list[tuple[str, str]]


def card_holders(station: Station, *, piv_auth_sha256: str, fascn: str | None, card_uuid: str | None,
                 cardholder_uuid: str | None) -> CardHolders:
    """The operator enrolled with this card (:func:`card_holder`: the same PIV Authentication
    certificate, FASC-N, card UUID, or the CHUID's cardholder UUID learnt at the operator's PIV
    sign-in), else the operators' enrolled FASC-Ns: one transaction, rows not ORM objects."""
    card = Operator(auth_method=AuthMethod.PIV.value, auth_reference=piv_auth_sha256, card_fascn=fascn, card_uuid=card_uuid,
                    cardholder_uuid=cardholder_uuid)
    with station.db.transaction() as session:
        connection = session.connection()
        same = _card_matches(card)
        found = connection.execute(select(Operator.identity).where(or_(*same)).limit(1)).scalar() if same else None
        if found is not None or not fascn:
            return CardHolders(found, [])
        return CardHolders(None, [(identity, enrolled) for identity, enrolled in connection.execute(_ENROLLED_FASCNS)])


_ENROLLED_FASCNS = select(Operator.identity, Operator.card_fascn).where(Operator.card_fascn.is_not(None))


@dataclass(frozen=True)
class OperatorLogin:
    """An active operator as sign-in sees them."""
    id: int
    identity: str
    roles: frozenset[str]
    auth_method: str
    auth_reference: str | None
    cardholder_uuid: str | None


def _login(op: Operator) -> OperatorLogin:
    return OperatorLogin(op.id, op.identity, frozenset(op.roles.split()), op.auth_method, op.auth_reference, op.cardholder_uuid)


def _active(session: Session, identity: str) -> Operator | None:
    op = session.execute(select(Operator).where(Operator.identity == identity)).scalar_one_or_none()
    return op if op is not None and op.active else None


def active_operator(station: Station, identity: str) -> OperatorLogin | None:
    with station.db.transaction() as session:
        op = _active(session, identity)
        return _login(op) if op is not None else None


def record_sign_in(station: Station, identity: str, method: AuthMethod, *, reference: str,
                   details: dict | None = None, cardholder_uuid: str | None = None) -> OperatorLogin | None:
    """The ``operator.signed_in`` event of ``identity``, who is still active and still signs in
    with ``method`` and ``reference`` (else None, nothing written); ``cardholder_uuid``: learnt
    from the card's CHUID (verified by PKI-AUTH), recorded with the operator."""
    with station.db.transaction() as session:
        op = _active(session, identity)
        stored = (op.auth_reference or "") if op is not None else ""
        if op is None or op.auth_method != method.value or (stored.lower() if method is AuthMethod.PIV else stored) != reference:
            return None
        op.cardholder_uuid = cardholder_uuid or op.cardholder_uuid
        station.audit.append(session, actor=op.identity, action="operator.signed_in", object_type="operator",
                             object_id=op.id, details={"method": method.value, **(details or {})})
        return _login(op)


def cardholder_elsewhere(station: Station, cardholder_uuid: str, *, besides: int) -> str | None:
    """Another operator than ``besides`` who holds the card of ``cardholder_uuid``."""
    with station.db.transaction() as session:
        return session.execute(select(Operator.identity).where(
            Operator.cardholder_uuid == cardholder_uuid, Operator.id != besides)).scalar()


def record_sign_in_refused(station: Station, identity: str, rule: str) -> None:
    with station.db.transaction() as session:
        station.audit.append(session, actor=identity, action="operator.signin_refused", object_type="operator",
                             object_id=identity, details={"rule": rule})
