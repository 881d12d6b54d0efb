"""Station operators: who they are, their roles, how they authenticate."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from station.errors import StationError
from station.records.models import AuthMethod, Operator, Role
from station.service.station import Station


class OperatorError(StationError):
    code = "operator"


def add_operator(
    station: Station,
    identity: str,
    *,
    display_name: str,
    roles: list[Role],
    auth_method: AuthMethod,
    auth_reference: str | None = None,
    actor: str,
) -> int:
    """``auth_reference``: the SHA-256 of the operator's PIV Auth certificate, or an argon2 hash."""
    with station.db.transaction() as session:
        if session.execute(select(Operator).where(Operator.identity == identity)).scalar_one_or_none():
            raise OperatorError(f"operator {identity!r} exists", code="operator.exists")
        op = Operator(
            identity=identity,
            display_name=display_name,
            roles=" ".join(sorted(Role(r).value for r in roles)),
            auth_method=AuthMethod(auth_method).value,
            auth_reference=auth_reference,
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
