"""Appending to the audit chain, inside the caller's transaction.

:meth:`AuditLog.append` locks the single ``audit_head`` row (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite transactions are ``BEGIN IMMEDIATE``), links the new event to the head and
moves the head, all in the session of the change being recorded: the change and its event
commit or roll back together. The head its last append left is kept: the next append moves it
with one ``UPDATE … WHERE seq = … AND hash = …`` (the same lock), and reads it only when that
finds another head (another writer, a rolled-back transaction). Every
``checkpoint_every_events`` events, or when ``checkpoint_every_seconds`` have passed since the
last checkpoint, the head is signed with the station's audit key; and a transaction that
issues or revokes a credential (:data:`CHECKPOINT_AT_COMMIT`) signs its final head just before
it commits, so what a CRL and the records rest on is never only in the unsigned tail of the
chain.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import bindparam, event, func, select
from sqlalchemy.orm import Session

from station.audit import chain
from station.ca.signer import PrivateKeySigner
from station.errors import StationError
from station.home import write_private
from station.records.models import AuditCheckpoint, AuditEvent, AuditHead, AuditKey

SYSTEM_ACTOR = "system"
# the end of an issuance (service: credential.issued; workflow: request.issued), a revocation,
# and a change to the audit keys: the transaction's head is signed before it commits
CHECKPOINT_AT_COMMIT = frozenset({"credential.issued", "request.issued", "credential.revoked", "audit.key_registered",
                                  "audit.key_trusted"})
_SIGN_AT_COMMIT = "station.audit.sign_at_commit"
# session.info: (transaction, seq, hash) of the head the last append in that transaction made,
# and (seq, hash) of the head a checkpoint of that transaction signed
_APPENDED, _SIGNED_HEAD = "station.audit.appended", "station.audit.signed_head"
_EVENTS, _HEAD_TABLE = AuditEvent.__table__, AuditHead.__table__
_HEAD = select(_HEAD_TABLE.c.seq, _HEAD_TABLE.c.hash).where(_HEAD_TABLE.c.id == 1).with_for_update()
_CHECKPOINTS = AuditCheckpoint.__table__
# statements made once: a statement made at each call is keyed for SQLAlchemy's compiled cache each time
_INSERT_EVENT, _INSERT_CHECKPOINT = _EVENTS.insert(), _CHECKPOINTS.insert()
_KEY_REGISTERED = select(AuditKey.__table__.c.fingerprint).where(AuditKey.__table__.c.fingerprint == bindparam("fingerprint"))
_SIGNED = (select(_CHECKPOINTS.c.seq, _CHECKPOINTS.c.head_hash, _CHECKPOINTS.c.signed_at, _CHECKPOINTS.c.key_fingerprint,
                  _CHECKPOINTS.c.signature)
           .where(_CHECKPOINTS.c.seq == bindparam("seq"), _CHECKPOINTS.c.key_fingerprint == bindparam("fingerprint")).limit(1))
_MOVE_HEAD = _HEAD_TABLE.update().where(_HEAD_TABLE.c.id == 1).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
# the head moved only from where this log left it: one statement instead of a locking read and a move
_MOVE_KEPT_HEAD = (_HEAD_TABLE.update()
                   .where(_HEAD_TABLE.c.id == 1, _HEAD_TABLE.c.seq == bindparam("old_seq"),
                          _HEAD_TABLE.c.hash == bindparam("old_hash"))
                   .values(seq=bindparam("new_seq"), hash=bindparam("new_hash")))


class AuditError(StationError):
    class Code(str, Enum):
        AUDIT = "audit"
        NO_KEY = "audit.no_key"
        KEY_UNREGISTERED = "audit.key_unregistered"

    code = Code.AUDIT.value
    hint = "run `station audit verify` to see what is wrong with the audit trail"


def key_fingerprint(public_key) -> str:  # noqa: ANN001
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


@dataclass
class AuditLog:
    station_id: str
    signer: PrivateKeySigner | None = None  # None: events are chained but no checkpoint is signed
    checkpoint_every_events: int = 100
    checkpoint_every_seconds: int = 3600
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
    anchor: Path | None = None  # where this station keeps its latest checkpoint, outside the database
    # (seq, signed_at) of the newest checkpoint known committed: spares a query per append
    _last_checkpoint: tuple[int, dt.datetime] | None = field(default=None, init=False, repr=False)
    _signer_fingerprint: tuple[Any, str] | None = field(default=None, init=False, repr=False)
    # (seq, hash) of the head this log's last append left: a hint, never trusted (see append)
    _head: tuple[int, str] | None = field(default=None, init=False, repr=False)

    def append(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        object_type: str,
        object_id: str | int,
        details: dict[str, Any] | None = None,
    ) -> AuditEvent:
        details = details or {}
        chain.check_no_secrets(details)
        session.flush()  # the change being recorded, then its event: Core statements, no unit of work
        connection = session.connection()
        fields = {"occurred_at": chain.timestamp(self.clock()), "actor": actor, "action": action, "object_type": object_type,
                  "object_id": str(object_id), "details": chain.canonical_json(details)}
        # The head this log left at its last append is moved only if it is still the head
        # (seq and hash compared, under the same lock as the read: SQLite's BEGIN IMMEDIATE, a
        # PostgreSQL row lock); when another writer (or a rolled-back transaction) moved it,
        # it is read, locked, as always.
        row, kept = None, self._head
        if kept is not None:
            row = _link(*kept, fields)
            if connection.execute(_MOVE_KEPT_HEAD, {"old_seq": kept[0], "old_hash": kept[1],
                                                    "new_seq": row["seq"], "new_hash": row["hash"]}).rowcount != 1:
                row = None
        if row is None:
            head = connection.execute(_HEAD).one()
            row = _link(head.seq, head.hash, fields)
            connection.execute(_MOVE_HEAD, {"new_seq": row["seq"], "new_hash": row["hash"]})
        connection.execute(_INSERT_EVENT, row)
        self._head = (row["seq"], row["hash"])
        session.info[_APPENDED] = (session.get_transaction(), row["seq"], row["hash"])
        if self.signer is not None:
            if action in CHECKPOINT_AT_COMMIT:
                self._sign_at_commit(session)
            elif self._checkpoint_due(session, row["seq"]):
                self.checkpoint(session)
        return AuditEvent(**row)

    def _sign_at_commit(self, session: Session) -> None:
        """Sign the head once, as the transaction's last write (several revocations in one
        transaction make one checkpoint)."""
        if not session.info.get(_SIGN_AT_COMMIT):
            session.info[_SIGN_AT_COMMIT] = True
            event.listen(session, "before_commit", self._checkpoint_now, once=True)

    def _checkpoint_now(self, session: Session) -> None:
        session.info.pop(_SIGN_AT_COMMIT, None)
        self.checkpoint(session)

    def _due(self, last: tuple[int, dt.datetime], seq: int) -> bool:
        last_seq, signed_at = last
        return seq - last_seq >= self.checkpoint_every_events or \
            (self.clock() - signed_at).total_seconds() >= self.checkpoint_every_seconds

    def _checkpoint_due(self, session: Session, seq: int) -> bool:
        """Due by the newest checkpoint this log knows; the database is asked only when that
        one says due (another station sharing the records may have signed since)."""
        if self._last_checkpoint is not None and not self._due(self._last_checkpoint, seq):
            return False
        last = session.execute(select(AuditCheckpoint.seq, AuditCheckpoint.signed_at).order_by(AuditCheckpoint.seq.desc()).limit(1)).first()
        if last is None:
            return True
        known = (last.seq, dt.datetime.fromisoformat(last.signed_at))
        self._remember(session, known)
        return self._due(known, seq)

    def _remember(self, session: Session, checkpoint: tuple[int, dt.datetime]) -> None:
        """Known once the transaction commits (a rolled-back checkpoint is not remembered)."""
        event.listen(session, "after_commit", lambda _s: setattr(self, "_last_checkpoint", checkpoint), once=True)

    def register_key(self, session: Session, actor: str = SYSTEM_ACTOR) -> str:
        """Record this station's audit public key (once) and the fact as an event."""
        if self.signer is None:
            raise AuditError("no audit key loaded", code=AuditError.Code.NO_KEY)
        public = self.signer.public_key()
        fingerprint = key_fingerprint(public)
        if session.get(AuditKey, fingerprint) is None:
            pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
            session.add(AuditKey(fingerprint=fingerprint, station_id=self.station_id, public_key_pem=pem))
            session.flush()
            self.append(
                session,
                actor=actor,
                action="audit.key_registered",
                object_type="audit_key",
                object_id=fingerprint,
                details={"station_id": self.station_id, "key_sha256": fingerprint},
            )
        return fingerprint

    def _fingerprint(self) -> str:
        """The SHA-256 of the signer's public key, computed once per signer."""
        signer = self.signer
        if self._signer_fingerprint is None or self._signer_fingerprint[0] is not signer:
            self._signer_fingerprint = (signer, key_fingerprint(signer.public_key()))
        return self._signer_fingerprint[1]

    def checkpoint(self, session: Session) -> AuditCheckpoint | None:
        """Sign the current head (in this transaction). None when the chain is empty."""
        if self.signer is None:
            raise AuditError("no audit key loaded", code=AuditError.Code.NO_KEY)
        session.flush()  # the changes before it: the head they moved
        connection = session.connection()
        appended = session.info.get(_APPENDED)
        made_here = appended is not None and appended[0] is session.get_transaction()
        if made_here:  # the head an append of this transaction made, locked since: no one else moved it
            seq, head_hash = appended[1], appended[2]
        else:
            head = connection.execute(_HEAD).one()
            seq, head_hash = head.seq, head.hash
        if seq == 0:
            return None
        fingerprint = self._fingerprint()
        if connection.execute(_KEY_REGISTERED, {"fingerprint": fingerprint}).first() is None:
            raise AuditError("this station's audit key is not registered in the records", code=AuditError.Code.KEY_UNREGISTERED)
        # a head made in this transaction is signed already only if this transaction signed it
        if not made_here or session.info.get(_SIGNED_HEAD) == (seq, head_hash):
            done = connection.execute(_SIGNED, {"seq": seq, "fingerprint": fingerprint}).first()
            if done is not None and done.head_hash == head_hash:
                return AuditCheckpoint(**done._asdict())  # this head is already signed by this station
        signed_at = chain.timestamp(self.clock())
        signature = self.signer.sign(chain.checkpoint_message(seq, head_hash, signed_at), hashes.SHA256())
        row = {"seq": seq, "head_hash": head_hash, "signed_at": signed_at, "key_fingerprint": fingerprint,
               "signature": signature}
        connection.execute(_INSERT_CHECKPOINT, row)  # a Core insert: no unit of work
        session.info[_SIGNED_HEAD] = (seq, head_hash)
        cp = AuditCheckpoint(**row)
        self._remember(session, (cp.seq, dt.datetime.fromisoformat(signed_at)))
        if self.anchor is not None:
            record = {"seq": cp.seq, "head_hash": cp.head_hash, "signed_at": signed_at, "key_sha256": fingerprint}
            path = self.anchor
            event.listen(session, "after_commit", lambda _s: write_anchor(path, record), once=True)
        return cp


def _link(seq: int, prev_hash: str, fields: dict[str, str]) -> dict[str, Any]:
    """The event after the head (``seq``, ``prev_hash``), with its hash."""
    row = {"seq": seq + 1, **fields, "prev_hash": prev_hash}
    row["hash"] = chain.event_hash(**row)
    return row


def write_anchor(path: Path, record: dict[str, Any]) -> None:
    """The station's latest committed checkpoint, kept beside the station's keys: deleting
    checkpoints and rewriting the chain in the database cannot move it back. Writers (threads
    and processes on one home) queue on a lock file, and the anchor only moves forward: two
    transactions may commit their checkpoints in either order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = read_anchor(path)
        if current is None or int(current["seq"]) <= int(record["seq"]):
            write_private(path, json.dumps(record).encode())


def read_anchor(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def event_count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
