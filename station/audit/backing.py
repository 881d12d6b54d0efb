"""Whether the audit chain backs what a row of the records says: the database is not the authority.

A request's state, a credential's status and an operator's roles and enablement are each put
there by an audited event, in the same transaction. Someone with write access to the database
can change a row without one (``UPDATE requests SET state='approved'``); the chain then no
longer agrees. This module replays the events of an object, in sequence order, into the state
they say the row should have (:class:`Replay`), and compares:

* :func:`disagreement` / :func:`require_backed`: one row, before the station acts on it (a
  workflow step, a revocation, the recheck); an event whose content no longer gives its hash
  backs nothing.
* :func:`check_records`: every row, for ``station audit verify`` (the chain itself is checked
  by :mod:`station.audit.verify`).

What each event means (the actions the station writes):

=================================  ===========================================================
``request.opened``                 request ``requested``; its actor is the registrar, then an
                                   enabled operator with the registrar role (``operator.*``)
``request.approved`` / ``.rejected``  ``approved`` / ``rejected``; its actor is the approver,
                                   then an enabled supervisor
``request.applicant_authenticated``  ``authenticated`` (PKI-AUTH after approval)
``credential.issued``              its request (``details.request_id``) goes ``approved`` →
                                   ``issued`` (service) or ``authenticated`` →
                                   ``key_generated`` (workflow); the credential is ``active``
``credential.delivered`` / ``credential.activated`` / ``request.issued``
                                   ``delivered`` / ``activated`` / ``issued``
``request.cancelled`` / ``request.failed``  ``cancelled`` / ``failed``
``credential.revoked``             the credential is ``revoked`` (``details.reason``)
``operator.added``                 the operator exists, enabled, with ``details.roles``
``operator.disabled`` / ``operator.enabled``  disabled / enabled again
any operator event with ``details.roles``  the operator's roles from then on
``applicant.piv_auth_recorded``    the applicant's FASC-N, card and cardholder UUIDs, and a
                                   PIV Authentication certificate (SHA-256) of theirs
``crl.published``                  a CRL (number, entries) the station signed
=================================  ===========================================================

Other events (refusals, sign-ins, key planning) leave these states as they are.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.orm import Session

from station.audit import chain
from station.errors import StationError
from station.records.models import (
    Applicant,
    AuditEvent,
    Credential,
    CredentialStatus,
    CrlIssue,
    IssuanceRequest,
    Operator,
    PivAuthCertificate,
)
from station.terms import RequestState, Role

Row = IssuanceRequest | Credential | Operator | Applicant | PivAuthCertificate | CrlIssue

_REQUEST_STATE = {
    "request.opened": RequestState.REQUESTED,
    "request.approved": RequestState.APPROVED,
    "request.rejected": RequestState.REJECTED,
    "request.applicant_authenticated": RequestState.AUTHENTICATED,
    "credential.delivered": RequestState.DELIVERED,
    "credential.activated": RequestState.ACTIVATED,
    "request.issued": RequestState.ISSUED,
    "request.cancelled": RequestState.CANCELLED,
    "request.failed": RequestState.FAILED,
}
# the event that puts a request in a state (key_generated: the certificate was issued)
EVENT_FOR_STATE = {state.value: action for action, state in _REQUEST_STATE.items()} | {
    RequestState.KEY_GENERATED.value: "credential.issued",
}


# operator event details naming how the operator signs in, compared with the row when recorded:
# the SHA-256 (hex) of the row's auth_reference (argon2 hash or PIV Auth certificate SHA-256),
# the auth method, the card's FASC-N and UUID
SIGN_IN_FIELDS = ("auth_method", "auth_reference_sha256", "card_fascn", "card_uuid")


class RecordNotBacked(StationError):
    """A row says what no audited event says: the station does not act on it."""

    class Code(str, Enum):
        UNBACKED = "audit.unbacked"
        REVOCATION_UNBACKED = "revocation.unbacked"

    code = Code.UNBACKED.value
    hint = "the records were changed behind the station's back: run `station audit verify` and restore them"


@dataclass
class AuditedRequest:
    state: str
    registrar: str
    approver: str | None = None
    applicant_id: int | None = None  # from request.opened
    target_device: str | None = None  # the device it was opened for (request.opened)
    replaces: str | None = None  # the serial of the credential on that device it replaces (request.opened)
    opened_seq: int = 0
    decided_seq: int = 0  # the request.approved / request.rejected event
    credentials: list[str] = field(default_factory=list)
    unauthorised: list[str] = field(default_factory=list)  # steps taken by someone without the role


@dataclass
class AuditedCredential:
    request_id: int | None
    certificate_sha256: str | None
    not_after: str | None
    status: str = CredentialStatus.ACTIVE.value
    reason: str | None = None
    revoked_seq: int | None = None
    revoked_at: str | None = None  # the event's time, as hashed

    @property
    def active(self) -> bool:
        return self.status == CredentialStatus.ACTIVE.value


@dataclass
class AuditedOperator:
    identity: str | None
    roles: frozenset[str]
    active: bool = True
    # how the operator signs in, as far as the events record it (compared when recorded)
    sign_in: dict[str, str] = field(default_factory=dict)


@dataclass
class AuditedApplicant:
    identifiers: set[str] = field(default_factory=set)  # every FASC-N, card UUID, cardholder UUID recorded
    piv_auth: set[str] = field(default_factory=set)  # SHA-256 of the PIV Authentication certificates recorded


@dataclass
class Replay:
    """The states the events say, per object: requests by id, credentials by serial, operators
    and applicants by id, CRLs as (number, entries)."""

    requests: dict[int, AuditedRequest] = field(default_factory=dict)
    credentials: dict[str, AuditedCredential] = field(default_factory=dict)
    operators: dict[int, AuditedOperator] = field(default_factory=dict)
    applicants: dict[int, AuditedApplicant] = field(default_factory=dict)
    crls: set[tuple[int, int]] = field(default_factory=set)

    def feed(self, ev: AuditEvent, details: dict | None = None) -> None:
        """``details``: the event's details already parsed (read only)."""
        action, details = ev.action, json.loads(ev.details) if details is None else details
        if ev.object_type == "request" and ev.object_id.isdigit():
            rid = int(ev.object_id)
            if action == "request.opened":
                self.requests[rid] = AuditedRequest(RequestState.REQUESTED.value, ev.actor, applicant_id=details.get("applicant_id"),
                                                    target_device=details.get("target_device"), replaces=details.get("replaces"),
                                                    opened_seq=ev.seq)
                self._check_role(self.requests[rid], ev, Role.REGISTRAR)
            elif action in _REQUEST_STATE and rid in self.requests:
                req = self.requests[rid]
                req.state = _REQUEST_STATE[action].value
                if action in ("request.approved", "request.rejected"):
                    req.approver, req.decided_seq = ev.actor, ev.seq
                    self._check_role(req, ev, Role.SUPERVISOR)
        elif ev.object_type == "credential":
            self._credential(ev, action, details)
        elif ev.object_type == "applicant" and ev.object_id.isdigit() and action == "applicant.piv_auth_recorded":
            applicant = self.applicants.setdefault(int(ev.object_id), AuditedApplicant())
            applicant.identifiers |= {str(details[k]).lower() for k in ("fascn", "card_uuid", "cardholder_uuid") if details.get(k)}
            applicant.piv_auth.add(str(details.get("piv_auth_sha256", "")).lower())
        elif ev.object_type == "crl" and action == "crl.published":
            self.crls.add((details.get("number"), details.get("entries")))
        elif ev.object_type == "operator" and ev.object_id.isdigit():
            oid = int(ev.object_id)
            if action == "operator.added":
                self.operators[oid] = AuditedOperator(details.get("identity"), frozenset(details.get("roles") or ()))
            if oid in self.operators:
                op = self.operators[oid]
                if "roles" in details:
                    op.roles = frozenset(details["roles"])
                op.sign_in |= {k: str(details[k]).lower() for k in SIGN_IN_FIELDS if details.get(k) is not None}
                if action in ("operator.disabled", "operator.enabled"):
                    op.active = action == "operator.enabled"

    def _check_role(self, req: AuditedRequest, ev: AuditEvent, role: Role) -> None:
        """The actor was, at that point of the chain, an enabled operator holding ``role``."""
        if not any(op.identity == ev.actor and op.active and role.value in op.roles for op in self.operators.values()):
            req.unauthorised.append(f"{ev.action} at event {ev.seq} by {ev.actor!r}, who was not then an enabled {role.value}")

    def _credential(self, ev: AuditEvent, action: str, details: dict) -> None:
        if action == "credential.issued":
            rid = details.get("request_id")
            self.credentials[ev.object_id] = AuditedCredential(rid, details.get("certificate_sha256"), details.get("not_after"))
            req = self.requests.get(rid) if isinstance(rid, int) else None
            if req is not None:
                req.credentials.append(ev.object_id)
                if req.state == RequestState.AUTHENTICATED.value:
                    req.state = RequestState.KEY_GENERATED.value
                elif req.state == RequestState.APPROVED.value:
                    req.state = RequestState.ISSUED.value
        elif action == "credential.revoked" and ev.object_id in self.credentials:
            cred = self.credentials[ev.object_id]
            if cred.status != CredentialStatus.REVOKED.value:
                cred.status, cred.reason = CredentialStatus.REVOKED.value, details.get("reason")
                cred.revoked_seq, cred.revoked_at = ev.seq, ev.occurred_at


def intact(ev: AuditEvent) -> bool:
    """The event's content still gives its hash (its links are :func:`verify_chain`'s business)."""
    return chain.event_hash(ev.seq, ev.occurred_at, ev.actor, ev.action, ev.object_type, ev.object_id, ev.details,
                            ev.prev_hash) == ev.hash


_EVENTS = AuditEvent.__table__
_EVENT_ROWS = select(*_EVENTS.c)  # rows, not ORM objects: a replay only reads them


def _replay(session: Session, *conditions, params: dict | None = None) -> Replay:  # noqa: ANN002
    """The events matching any of ``conditions`` (all without), replayed in sequence order; a
    prepared statement is passed as ``params`` (its bound values) and one condition."""
    query = conditions[0] if params is not None else _EVENT_ROWS.where(or_(*conditions)) if conditions else _EVENT_ROWS
    if params is None:
        query = query.order_by(AuditEvent.seq)
    replay = Replay()
    session.flush()  # what an ORM query would flush first
    # a whole chain is read in batches (a server-side cursor on PostgreSQL); one object's events at once
    result = session.connection().execute(query, params or {}, execution_options={} if params else {"yield_per": 1000})
    feed = replay.feed
    for ev in result.all() if params else result:  # one fetch for one object's events, not a fetch per row
        details = _checked(ev)
        if details is not None:
            feed(ev, details)
    return replay


#: event row (all its columns, as read) -> its parsed details when intact, else None. A pure
#: function of what was read in this transaction (a row changed since is another key), kept so
#: that every step does not hash and parse again the events the steps before it read.
_CHECKED: dict[tuple, dict | None] = {}
_CHECKED_MAX = 50_000


def _checked(ev) -> dict | None:  # noqa: ANN001
    key = tuple(ev)  # seq, occurred_at, actor, action, object_type, object_id, details, prev_hash, hash
    try:
        return _CHECKED[key]
    except KeyError:
        pass
    details = json.loads(ev.details) if intact(ev) else None
    if len(_CHECKED) >= _CHECKED_MAX:
        _CHECKED.clear()
    _CHECKED[key] = details
    return details


def _of(object_type: str, object_id: object):  # noqa: ANN202
    return and_(AuditEvent.object_type == object_type, AuditEvent.object_id == str(object_id))


#: operator events that change no role, status or sign-in method (the approval's sign-in is looked
#: up on its own: service/issuance.py approver_signed_in)
_SIGN_INS = ("operator.signed_in", "operator.signin_refused")


# prepared once (the statement cache then skips building and compiling them at every step)
_REQUEST_EVENTS = _EVENT_ROWS.where(or_(
    and_(_EVENTS.c.object_type == "request", _EVENTS.c.object_id == bindparam("object_id")),
    and_(_EVENTS.c.object_type == "credential",
         _EVENTS.c.object_id.in_(select(Credential.serial).where(Credential.request_id == bindparam("request_id")))),
    # action != each sign-in (not NOT IN, whose list SQLAlchemy renders into the SQL at every execution)
    and_(_EVENTS.c.object_type == "operator", *(_EVENTS.c.action != action for action in _SIGN_INS)))).order_by(_EVENTS.c.seq)
_APPLICANT_SERIALS = (select(Credential.serial)
                      .join(PivAuthCertificate, Credential.piv_auth_certificate_id == PivAuthCertificate.id)
                      .where(PivAuthCertificate.applicant_id == bindparam("applicant_id")))
_APPLICANT_EVENTS = _EVENT_ROWS.where(_EVENTS.c.object_type == "credential",
                                      _EVENTS.c.object_id.in_(_APPLICANT_SERIALS)).order_by(_EVENTS.c.seq)
_APPLICANT_EVENTS_BESIDES = _EVENT_ROWS.where(
    _EVENTS.c.object_type == "credential",
    _EVENTS.c.object_id.in_(_APPLICANT_SERIALS.where(Credential.request_id != bindparam("besides")))).order_by(_EVENTS.c.seq)
_IDENTITIES = select(Operator.id, Operator.identity).where(Operator.id.in_(bindparam("ids", expanding=True)))


def _request_replay(session: Session, request_id: int) -> Replay:
    """The request's events, its credential's, and the operators' (who held which role when;
    their sign-ins left out, so that a step's replay does not grow with every sign-in ever made):
    one query."""
    return _replay(session, _REQUEST_EVENTS, params={"object_id": str(request_id), "request_id": request_id})


def replay_for(session: Session, row: Row) -> Replay:
    """The events of this one row's object (a request's with its credential's, a credential's
    with its request's), replayed."""
    if isinstance(row, Operator):
        return _replay(session, _of("operator", row.id))
    if isinstance(row, (Applicant, PivAuthCertificate)):
        return _replay(session, _of("applicant", row.id if isinstance(row, Applicant) else row.applicant_id))
    if isinstance(row, CrlIssue):
        return _replay(session, AuditEvent.action == "crl.published")
    if isinstance(row, IssuanceRequest):
        return _request_replay(session, row.id)
    return _replay(session, _of("credential", row.serial), _of("request", row.request_id))


def _identities(session: Session, *operator_ids: int | None) -> dict[int | None, str]:
    """operator id → identity (all operators when no id is given)."""
    if operator_ids:
        return dict(session.execute(_IDENTITIES, {"ids": [i for i in operator_ids if i is not None]}).all())
    return dict(session.execute(select(Operator.id, Operator.identity)).all())


def _certificate_sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _request_problems(row: IssuanceRequest, replay: Replay, identities: dict | None = None) -> list[str]:
    registrar, approver = (identities or {}).get(row.registrar_id), (identities or {}).get(row.approver_id)
    return _request_said(row.id, row.state, registrar, approver, replay)


def _request_said(request_id: int, state: str, registrar: str | None, approver: str | None, replay: Replay) -> list[str]:
    """What a request row says (its state, its registrar's and approver's identities) that the replay does not."""
    audited = replay.requests.get(request_id)
    if audited is None:
        return ["has no request.opened event (added behind the station's back)"]
    problems = []
    if state != audited.state:
        problems.append(f"state {state!r} has no {EVENT_FOR_STATE.get(state, state)} event "
                        f"(the audit trail says {audited.state!r})")
    if registrar != audited.registrar:
        problems.append(f"registrar {registrar!r} is not who opened it in the audit trail ({audited.registrar!r})")
    if approver != audited.approver:
        problems.append(f"approver {approver!r} is not who decided it in the audit trail ({audited.approver!r})")
    return problems + audited.unauthorised


def _credential_problems(row: Credential, replay: Replay, _identities: dict | None = None) -> list[str]:
    audited = replay.credentials.get(row.serial)
    if audited is None:
        return [f"serial {row.serial} has no credential.issued event (added behind the station's back)"]
    problems = []
    if row.status != audited.status and audited.revoked_seq is not None:
        problems.append(f"status {row.status!r} of serial {row.serial}, but the audit trail revoked it at event {audited.revoked_seq}")
    elif row.status != audited.status:
        problems.append(f"status {row.status!r} of serial {row.serial} has no credential.{row.status} event "
                        f"(the audit trail says {audited.status!r})")
    elif audited.reason is not None and row.revocation_reason != audited.reason:
        problems.append(f"revocation reason {row.revocation_reason!r} is not the audited {audited.reason!r}")
    if row.request_id != audited.request_id:
        problems.append(f"request {row.request_id} is not the audited request {audited.request_id}")
    if audited.certificate_sha256 and _certificate_sha256(row.certificate) != audited.certificate_sha256:
        problems.append(f"certificate of serial {row.serial} is not the one credential.issued recorded")
    if audited.not_after and _aware(row.not_after) != dt.datetime.fromisoformat(audited.not_after):
        problems.append(f"notAfter {row.not_after.isoformat()} is not the audited {audited.not_after}")
    return problems


def _operator_problems(row: Operator, replay: Replay, _identities: dict | None = None) -> list[str]:
    audited = replay.operators.get(row.id)
    if audited is None:
        return [f"{row.identity!r} has no operator.added event (added behind the station's back)"]
    problems = []
    if row.identity != audited.identity:
        problems.append(f"identity {row.identity!r} is not the audited {audited.identity!r}")
    roles = frozenset(row.roles.split())
    if roles != audited.roles:
        problems.append(f"roles {' '.join(sorted(roles))!r} are not the audited {' '.join(sorted(audited.roles))!r}")
    said = {"auth_method": row.auth_method, "card_fascn": row.card_fascn, "card_uuid": row.card_uuid,
            "auth_reference_sha256": hashlib.sha256(row.auth_reference.encode()).hexdigest() if row.auth_reference else None}
    changed = [k for k, v in audited.sign_in.items() if (said[k] or "").lower() != v]
    if changed:
        problems.append(f"sign-in {', '.join(changed)} not as the audit trail recorded it")
    if bool(row.active) != audited.active:
        problems.append("enabled, but the audit trail has it disabled (operator.disabled)" if row.active
                        else "disabled with no operator.disabled event")
    return problems


def _applicant_problems(row: Applicant, replay: Replay, _identities: dict | None = None) -> list[str]:
    audited = replay.applicants.get(row.id)
    if audited is None:
        return ["has no applicant.piv_auth_recorded event (added behind the station's back)"]
    return [f"{name} {value} was never recorded for this applicant"
            for name, value in (("FASC-N", row.fascn), ("card UUID", row.card_uuid), ("cardholder UUID", row.cardholder_uuid))
            if value and value.lower() not in audited.identifiers]


def _piv_auth_problems(row: PivAuthCertificate, replay: Replay, _identities: dict | None = None) -> list[str]:
    if _certificate_sha256(row.der) != row.fingerprint.lower():
        return [f"certificate is not the one its fingerprint {row.fingerprint[:16]}… names"]
    audited = replay.applicants.get(row.applicant_id)
    if audited is None or row.fingerprint.lower() not in audited.piv_auth:
        return [f"certificate {row.fingerprint[:16]}… was never recorded for applicant {row.applicant_id}"]
    return []


def _crl_problems(row: CrlIssue, replay: Replay, _identities: dict | None = None) -> list[str]:
    if (row.number, row.entries) not in replay.crls:
        return [f"CRL {row.number} with {row.entries} entries has no crl.published event"]
    return []


# per table, in the order verify reports them: what the row says against what the replay says
_CHECKS = {
    Operator: _operator_problems,
    Applicant: _applicant_problems,
    PivAuthCertificate: _piv_auth_problems,
    IssuanceRequest: _request_problems,
    Credential: _credential_problems,
    CrlIssue: _crl_problems,
}


def _problems(row: Row, replay: Replay, identities: dict[int | None, str]) -> list[str]:
    return _CHECKS[type(row)](row, replay, identities)


def row_name(row: Row) -> str:
    return f"{row.__tablename__} {row.id}"


def disagreement(session: Session, row: Row) -> str | None:
    """Does the chain back this row? None when it does; else one line naming the row and what
    the chain does not back, e.g. ``requests 7: state 'approved' has no request.approved event
    (the audit trail says 'requested')``.

    ``row`` is an :class:`IssuanceRequest` (state, registrar, approver), a :class:`Credential`
    (status, revocation reason, request, certificate, notAfter), an :class:`Operator`
    (identity, roles, enabled), an :class:`Applicant` (FASC-N, UUIDs), a
    :class:`PivAuthCertificate` (its certificate, its applicant) or a :class:`CrlIssue`. Reads only the events of that object; an event whose content
    no longer gives its hash backs nothing.
    """
    return _disagreement(session, row)[0]


def _disagreement(session: Session, row: Row) -> tuple[str | None, Replay]:
    identities = _identities(session, row.registrar_id, row.approver_id) if isinstance(row, IssuanceRequest) else {}
    replay = replay_for(session, row)
    problems = _problems(row, replay, identities)
    return (f"{row_name(row)}: {problems[0]}" if problems else None), replay


def require_backed(session: Session, row: Row) -> None:
    """Raise :class:`RecordNotBacked` (``audit.unbacked``) unless the chain backs ``row``
    (see :func:`disagreement`). Call it before acting on the row."""
    problem = disagreement(session, row)
    if problem is not None:
        raise RecordNotBacked(f"{problem}: the station does not act on it")


def backed_request(session: Session, row: IssuanceRequest) -> AuditedRequest:
    """What the chain says of the request, from the same replay that checked the row:
    :class:`RecordNotBacked` unless the chain backs it (see :func:`disagreement`)."""
    identities = _identities(session, row.registrar_id, row.approver_id)
    return backed_request_said(session, row.id, row.state, identities.get(row.registrar_id), identities.get(row.approver_id))


def backed_request_said(session: Session, request_id: int, state: str, registrar: str | None,
                        approver: str | None) -> AuditedRequest:
    """:func:`backed_request` of a request row read as columns: its ``state`` and the identities
    of its ``registrar`` and ``approver`` (joined in the caller's query, no ORM object)."""
    replay = _request_replay(session, request_id)
    problems = _request_said(request_id, state, registrar, approver, replay)
    if problems:
        raise RecordNotBacked(f"{IssuanceRequest.__tablename__} {request_id}: {problems[0]}: the station does not act on it")
    return replay.requests[request_id]


def audited_request(session: Session, request_id: int) -> AuditedRequest | None:
    """The request as its events say: state, registrar, approver (None: no request.opened event)."""
    return _request_replay(session, request_id).requests.get(request_id)


def audited_status(session: Session, serial: str) -> AuditedCredential | None:
    """The credential's status as its events say (None: no credential.issued event)."""
    return audited_statuses(session, [serial]).get(serial)


def audited_statuses(session: Session, serials: list[str]) -> dict[str, AuditedCredential]:
    """Those credentials as their events say, by serial (one replay; a serial the chain never
    issued is absent)."""
    if not serials:
        return {}
    replay = _replay(session, and_(AuditEvent.object_type == "credential", AuditEvent.object_id.in_(serials)))
    return {serial: c for serial, c in replay.credentials.items() if serial in serials}


def applicant_credentials(session: Session, applicant_id: int | None, *, besides: int | None = None) -> dict[str, AuditedCredential]:
    """The applicant's credentials but for request ``besides``'s own, as their events say, by
    serial (one query; a credential the chain never issued is absent)."""
    if besides is None:
        return _replay(session, _APPLICANT_EVENTS, params={"applicant_id": applicant_id}).credentials
    return _replay(session, _APPLICANT_EVENTS_BESIDES, params={"applicant_id": applicant_id, "besides": besides}).credentials


def replay_credentials(session: Session) -> Replay:
    """Every credential as the chain says (issued, revoked, why and when): what CRLs are built from."""
    return _replay(session, AuditEvent.object_type == "credential")


def check_records(session: Session) -> list[str]:
    """Every operators, applicants, piv_auth_certificates, requests, credentials and crls row
    against one replay of the whole chain: one line per row that disagrees (``table id:
    what``), for ``station audit verify``."""
    replay, identities = _replay(session), _identities(session)
    findings = []
    for model in _CHECKS:
        for row in session.execute(select(model).order_by(model.id)).scalars():
            problems = _problems(row, replay, identities)
            if problems:
                findings.append(f"{row_name(row)}: {'; '.join(problems)}")
    return findings
