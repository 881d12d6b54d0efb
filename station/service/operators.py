"""Station operators: who they are, their roles, how they authenticate."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from station.errors import StationError
from station.records.models import AuthMethod, Operator, Role
from station.service.station import Station


class OperatorError(StationError):
    code = "operator"
    hint = "check the operator with `station operators list`"


ISSUING_ROLES = frozenset({Role.REGISTRAR, Role.SUPERVISOR})


def check_roles(roles: list[Role]) -> None:
    """Separation of duties at enrolment: an administrator manages configuration and operators
    but never issues; an auditor only reads."""
    roles = {Role(r) for r in roles}
    if not roles:
        raise OperatorError("an operator needs at least one role", code="operator.no_role")
    if Role.ADMINISTRATOR in roles and roles & ISSUING_ROLES:
        raise OperatorError("an administrator never issues: no registrar or supervisor role beside it",
                            code="separation.administrator_issues", hint="enrol a second operator identity for issuing")
    if Role.AUDITOR in roles and len(roles) > 1:
        raise OperatorError("an auditor is read-only and holds no other role", code="separation.auditor_read_only")


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
) -> int:
    """``auth_reference``: the SHA-256 of the operator's PIV Auth certificate, or an argon2 hash.
    ``card_fascn``/``card_uuid``: the identifiers of the operator's PIV card, so that the
    station never lets an operator serve or approve for themself."""
    check_roles(roles)
    with station.db.transaction() as session:
        if session.execute(select(Operator).where(Operator.identity == identity)).scalar_one_or_none():
            raise OperatorError(f"operator {identity!r} exists", code="operator.exists")
        op = Operator(
            identity=identity,
            display_name=display_name,
            roles=" ".join(sorted(Role(r).value for r in roles)),
            auth_method=AuthMethod(auth_method).value,
            auth_reference=auth_reference,
            card_fascn=card_fascn.upper() if card_fascn else None,
            card_uuid=card_uuid.lower() if card_uuid else None,
        )
        session.add(op)
        session.flush()
        station.audit.append(
            session,
            actor=actor,
            action="operator.added",
            object_type="operator",
            object_id=op.id,
            details={"identity": identity, "roles": op.roles.split(), "auth_method": op.auth_method},
        )
        return op.id


def operator_with_role(session: Session, identity: str, role: Role) -> Operator:
    op = session.execute(select(Operator).where(Operator.identity == identity)).scalar_one_or_none()
    if op is None or not op.active:
        raise OperatorError(f"no active operator {identity!r}", code="operator.unknown")
    if not op.has_role(role):
        raise OperatorError(f"operator {identity!r} does not hold the {role.value} role", code="operator.role")
    return op


def list_operators(station: Station) -> list[dict]:
    with station.db.transaction() as session:
        return [
            {"id": op.identity, "name": op.display_name, "roles": op.roles.split(), "auth": op.auth_method,
             "active": op.active, "card_fascn": op.card_fascn, "card_uuid": op.card_uuid}
            for op in session.execute(select(Operator).order_by(Operator.identity)).scalars()
        ]


def disable_operator(station: Station, identity: str, *, actor: str) -> None:
    """An operator who leaves keeps their history; they can no longer sign in."""
    with station.db.transaction() as session:
        op = session.execute(select(Operator).where(Operator.identity == identity).with_for_update()).scalar_one_or_none()
        if op is None:
            raise OperatorError(f"no operator {identity!r}", code="operator.unknown")
        if not op.active:
            raise OperatorError(f"operator {identity!r} is already disabled", code="operator.disabled")
        op.active = False
        station.audit.append(session, actor=actor, action="operator.disabled", object_type="operator", object_id=op.id,
                             details={"identity": identity})
