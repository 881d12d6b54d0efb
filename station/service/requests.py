"""The issuance engine's records: a request read once, its state moved compare-and-set with its
audit event, what a step must know before it acts, refusals, and a request ended.

The engine (station/issuance/engine.py) holds the rules and the refusals; these functions do
the records' work in one transaction each and return plain dataclasses, so that nothing above
the service layer touches the database. Every change and its audit event commit together.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from station.audit.backing import AuditedCredential, applicant_credentials, audited_status, backed_request_said
from station.errors import StationError
from station.records.models import Credential, IssuanceRequest, Operator, PivAuthCertificate
from station.service.issuance import IssuanceError, approver_signed_in, locked_request, require_backed
from station.service.operators import role_refusal
from station.service.revocation import mark_revoked
from station.service.station import Station
from station.terms import FINAL_STATES, RequestState, Role

_REQUESTS = IssuanceRequest.__table__
_STATE = select(_REQUESTS.c.state).where(_REQUESTS.c.id == bindparam("id"))
# compare-and-set: moved only from the expected state (prepared once; the columns a step sets, added)
_ADVANCE = (_REQUESTS.update().where(_REQUESTS.c.id == bindparam("rid"), _REQUESTS.c.state == bindparam("expected"))
            .values(state=bindparam("new")))
_OPERATORS = Operator.__table__
_REGISTRAR, _APPROVER, _ACTOR = (_OPERATORS.alias(name) for name in ("registrar", "approver", "actor"))
# a step's facts: the request, locked, with its registrar's and approver's identities and the
# rows of its approver and of the acting registrar (enabled, roles): one query
_FACTS = (select(_REQUESTS.c.state, _REGISTRAR.c.identity.label("registrar"), _APPROVER.c.identity.label("approver"),
                 _APPROVER.c.active.label("approver_active"), _APPROVER.c.roles.label("approver_roles"),
                 _ACTOR.c.active.label("actor_active"), _ACTOR.c.roles.label("actor_roles"))
          .select_from(_REQUESTS.outerjoin(_REGISTRAR, _REGISTRAR.c.id == _REQUESTS.c.registrar_id)
                       .outerjoin(_APPROVER, _APPROVER.c.id == _REQUESTS.c.approver_id)
                       .outerjoin(_ACTOR, _ACTOR.c.identity == bindparam("actor")))
          .where(_REQUESTS.c.id == bindparam("id")).with_for_update(of=_REQUESTS))
_LOAD = (select(_REQUESTS.c.state, _REQUESTS.c.aal, _REQUESTS.c.target_state, PivAuthCertificate.fingerprint,
                PivAuthCertificate.der, Credential.certificate, Credential.serial, Credential.policy)
         .join(PivAuthCertificate, PivAuthCertificate.id == _REQUESTS.c.piv_auth_certificate_id)
         .outerjoin(Credential, Credential.request_id == _REQUESTS.c.id)
         .where(_REQUESTS.c.id == bindparam("id")))


@dataclass(frozen=True)
class RequestRecord:
    """A request with its applicant's PIV Authentication certificate and its credential (once
    issued), read in one query."""
    id: int
    state: str
    aal: str
    target_state: str | None
    piv_auth_sha256: str
    piv_auth_der: bytes
    certificate_der: bytes | None
    serial: str | None
    policy: str | None
    facts: StepFacts | None = None  # read in the same transaction when asked (``facts_for``)


@dataclass(frozen=True)
class RequestSummary:
    """A line of ``station requests list``."""
    request_id: int
    state: str
    aal: str
    target_kind: str
    registrar: str
    created_at: str  # ISO 8601


@dataclass(frozen=True)
class StepFacts:
    """What a step must know before it acts, read under the request's row lock: the row's
    state; the audit chain's record of the request (``unbacked``: why the row is not believed);
    the approver and whether their sign-in is in the chain; whether the acting registrar and the
    approver still hold their roles (the refusal when not); the device the request was opened
    for; the applicant's other active credentials, as the chain has them."""
    state: str
    unbacked: StationError | None = None
    approver: str | None = None
    approver_signed_in: bool = False
    actor_not_registrar: StationError | None = None
    approver_not_supervisor: StationError | None = None
    target_device: str | None = None
    active_credentials: int = 0  # but for the one the request replaces
    replaces: str | None = None  # the serial of the credential the request replaces on its device


@dataclass(frozen=True)
class EndingCredential:
    """The credential of a request that ends: its row's status and the audit chain's record."""
    serial: str
    status: str
    audited: AuditedCredential | None


def load(station: Station, request_id: int, *, facts_for: str | None = None) -> RequestRecord | None:
    """The request (None: no such request); with ``facts_for`` (the acting registrar), also
    the :class:`StepFacts` of its next step, read in the same transaction."""
    with station.db.transaction() as session:
        row = session.connection().execute(_LOAD, {"id": request_id}).first()
        if row is None:
            return None
        facts = _step_facts(session, request_id, facts_for) if facts_for is not None else None
    return RequestRecord(request_id, row.state, row.aal, row.target_state, row.fingerprint, row.der, row.certificate,
                         row.serial, row.policy, facts)


def state_of(station: Station, request_id: int) -> str | None:
    with station.db.transaction() as session:
        return session.connection().execute(_STATE, {"id": request_id}).scalar()


def listing(station: Station, *, open_only: bool = False) -> list[RequestSummary]:
    """The requests in order; ``open_only``: those that have not ended."""
    final = {s.value for s in FINAL_STATES}
    with station.db.transaction() as session:
        rows = session.execute(select(IssuanceRequest).order_by(IssuanceRequest.id)).scalars().all()
        return [RequestSummary(r.id, r.state, r.aal, r.target_kind, r.registrar.identity, r.created_at.isoformat())
                for r in rows if not (open_only and r.state in final)]


def advance(station: Station, request_id: int, expected: RequestState, new: RequestState, *, actor: str, action: str,
            details: dict | None = None, **columns) -> str | None:
    """``expected`` → ``new`` (and ``columns``) with its audit event, in one transaction; None
    when done, else (nothing written) the state the request is in instead."""
    with station.db.transaction() as session:
        connection = session.connection()
        moved = connection.execute(_advance_setting(tuple(sorted(columns))),
                                   {"rid": request_id, "expected": expected.value, "new": new.value,
                                    **{f"set_{name}": value for name, value in columns.items()}}).rowcount
        if moved != 1:
            return connection.execute(_STATE, {"id": request_id}).scalar()
        station.audit.append(session, actor=actor, action=action, object_type="request", object_id=request_id,
                             details=details or {})
    return None


@functools.lru_cache(maxsize=None)
def _advance_setting(names: tuple[str, ...]):  # noqa: ANN202
    """:data:`_ADVANCE` also setting the columns ``names`` (bound as ``set_<name>``), made once per set of names."""
    return _ADVANCE.values(**{name: bindparam(f"set_{name}") for name in names}) if names else _ADVANCE


def _active_credentials(session: Session, applicant_id: int | None, besides: int | None = None,
                        replaced: str | None = None) -> int:
    audited = applicant_credentials(session, applicant_id, besides=besides)  # the chain's word, one query
    return sum(1 for serial, credential in audited.items() if credential.active and serial != replaced)


def active_credentials(station: Station, applicant_id: int | None, *, besides: int | None = None,
                       replaced: str | None = None) -> int:
    """The applicant's active derived credentials, but for request ``besides``'s own and the
    one ``replaced`` on its token: as the audit chain has them (a credential marked revoked in
    the records alone still counts)."""
    with station.db.transaction() as session:
        return _active_credentials(session, applicant_id, besides, replaced)


def step_facts(station: Station, request_id: int, actor: str) -> StepFacts:
    """:class:`StepFacts` of ``request_id`` for the registrar ``actor``, in one transaction
    holding the request's row lock (unknown request: ``issuance.unknown_request``)."""
    with station.db.transaction() as session:
        return _step_facts(session, request_id, actor)


def _step_facts(session: Session, request_id: int, actor: str) -> StepFacts:
    """:func:`step_facts` in the caller's transaction: four queries, rows not ORM objects (the
    request locked with its registrar's, approver's and actor's operator rows; the request's
    replay; the approver's sign-in; the applicant's credentials' replay)."""
    row = session.connection().execute(_FACTS, {"id": request_id, "actor": actor}).first()
    if row is None:
        raise IssuanceError(f"no request {request_id}", code=IssuanceError.Code.UNKNOWN_REQUEST)
    try:
        record = backed_request_said(session, request_id, row.state, row.registrar, row.approver)
    except StationError as exc:  # the row says what the chain does not
        return StepFacts(row.state, unbacked=exc)
    signed_in = record.approver is not None and approver_signed_in(session, record)
    # the approver's row is the one the chain names: backed, so its identity is record.approver
    not_registrar = role_refusal(actor, row.actor_active, row.actor_roles, Role.REGISTRAR)
    not_supervisor = role_refusal(record.approver, row.approver_active, row.approver_roles, Role.SUPERVISOR)
    return StepFacts(row.state, None, record.approver, signed_in, not_registrar, not_supervisor, record.target_device,
                     _active_credentials(session, record.applicant_id, besides=request_id, replaced=record.replaces),
                     record.replaces)


def record_refusal(station: Station, *, actor: str, rule: str, request_id: int | None = None) -> None:
    """The audit event of a refused step (``issuance.refused``, naming its rule)."""
    with station.db.transaction() as session:
        station.audit.append(session, actor=actor, action="issuance.refused", object_type="request",
                             object_id=request_id if request_id is not None else "-", details={"rule": rule})


def end(station: Station, request_id: int, new: RequestState, *, actor: str, action: str, reason: str,
        revokes: Callable[[str, EndingCredential | None], bool]) -> None:
    """Cancel or fail ``request_id`` under its row lock, with its audit event; ``revokes(state,
    credential)`` (the engine's rule; it may refuse by raising) says whether its credential is
    revoked, in the same transaction."""
    with station.db.transaction() as session:
        req = locked_request(session, request_id)
        credential = req.credential
        ending = (EndingCredential(credential.serial, credential.status, audited_status(session, credential.serial))
                  if credential is not None else None)
        revoke = revokes(req.state, ending)
        req.state = new.value
        station.audit.append(session, actor=actor, action=action, object_type="request", object_id=req.id,
                             details={"reason": reason, "credential": credential.serial if credential else None})
        if revoke:
            mark_revoked(station, session, credential, x509.ReasonFlags.cessation_of_operation, actor=actor,
                         because=f"request {request_id} {new.value}: {reason}")


@dataclass(frozen=True)
class DeviceFacts:
    """What ending a request with its device needs: its state, the recorded target state and
    the device the audit chain says it was opened for."""
    state: str
    target_state: str | None
    target_device: str | None


def device_facts(station: Station, request_id: int) -> DeviceFacts:
    """:class:`DeviceFacts` of ``request_id``, backed by the audit chain (else refused)."""
    with station.db.transaction() as session:
        row = locked_request(session, request_id)
        return DeviceFacts(row.state, row.target_state, require_backed(session, row).target_device)


def record_event(station: Station, request_id: int | None, *, actor: str, action: str, details: dict) -> None:
    """An audit event about ``request_id`` (None: a request nobody can name, e.g. a phone using
    an unknown enrollment label) that changes no row (e.g. ``target.key_discarded``)."""
    with station.db.transaction() as session:
        station.audit.append(session, actor=actor, action=action, object_type="request",
                             object_id=request_id if request_id is not None else "-", details=details)
