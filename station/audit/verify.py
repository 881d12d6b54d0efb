"""Checking the whole audit chain and its signed checkpoints.

The walk goes through the events in sequence order and stops at the first break, which it
names: a missing sequence number (deleted), an event whose content no longer gives its hash
(edited), an event whose hash fits the neighbouring position (inserted, deleted and
renumbered, or reordered), or an event that does not link to the one before it. Then every
checkpoint inside the verified part must match the chain and carry a valid signature by a
trusted audit key; a chain rewritten wholesale after an edit is caught there, and reported
from the first event after the last checkpoint that still matches.

Trusted keys: this station's audit public key and the keys pinned in its home
(:mod:`station.audit.trust`), never a key found only in the database. Then the requests,
credentials and operators rows are held against the chain (:mod:`station.audit.backing`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session

from station.audit import chain
from station.audit.backing import check_records
from station.audit.log import key_fingerprint
from station.records.models import AuditCheckpoint, AuditEvent, AuditHead
from station.signatures import UnsupportedKeyType, verify_signature


@dataclass(frozen=True)
class Finding:
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"event {self.seq}: {self.problem}"


@dataclass
class VerifyReport:
    events: int = 0
    checkpoints_verified: int = 0
    last_checkpoint_seq: int = 0
    findings: list[Finding] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)  # records rows the chain does not back (station.audit.backing)

    @property
    def ok(self) -> bool:
        return not self.findings and not self.rows

    @property
    def first_bad(self) -> Finding | None:
        return min(self.findings, key=lambda f: f.seq) if self.findings else None


def _hash_at(event: AuditEvent, seq: int) -> str:
    """The hash the event would have at position ``seq``."""
    return chain.event_hash(
        seq, event.occurred_at, event.actor, event.action, event.object_type, event.object_id, event.details, event.prev_hash
    )


def _diagnose(event: AuditEvent, nxt: AuditEvent | None) -> Finding:
    """Name the first bad event, given that ``event`` does not verify at its position."""
    seq = event.seq
    if seq == 1 and _hash_at(event, seq) == event.hash:
        return Finding(1, "does not start from the genesis hash")
    if _hash_at(event, seq) == event.hash:
        # its own hash is right, so the link is wrong: the event before it was rewritten
        # (hash recomputed) or slipped in
        return Finding(seq - 1, f"was rewritten or inserted: event {seq} does not link to it")
    if _hash_at(event, seq - 1) == event.hash:
        return Finding(seq - 1, "was inserted (the events after it were renumbered)")
    if _hash_at(event, seq + 1) == event.hash:
        if nxt is not None and _hash_at(nxt, nxt.seq - 1) == nxt.hash:
            return Finding(seq, f"events {seq} and {seq + 1} were reordered")
        return Finding(seq, "is missing: it was deleted and the events after it renumbered")
    return Finding(seq, "was altered (its content no longer matches its hash)")


def _walk(session: Session, report: VerifyReport) -> dict[int, str]:
    """Verify hashes and links in order; returns seq -> hash for the intact prefix."""
    verified: dict[int, str] = {0: chain.GENESIS}
    events = list(session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars())
    report.events = len(events)
    for i, event in enumerate(events):
        expected = i + 1
        if event.seq != expected:
            report.findings.append(Finding(expected, f"is missing (deleted; the next event present is {event.seq})"))
            break
        if _hash_at(event, expected) != event.hash or event.prev_hash != verified[expected - 1]:
            report.findings.append(_diagnose(event, events[i + 1] if i + 1 < len(events) else None))
            break
        verified[expected] = event.hash
    return verified


def _trusted_keys(own_key: ec.EllipticCurvePublicKey | None, pinned: dict[str, object] | None) -> dict[str, object]:
    """This station's own key and the keys pinned in its home (:mod:`station.audit.trust`);
    a key found only in the database is trusted by nobody."""
    keys: dict[str, object] = dict(pinned or {})
    if own_key is not None:
        keys[key_fingerprint(own_key)] = own_key
    return keys


def _check_anchor(session: Session, anchor: dict, report: VerifyReport) -> None:
    seq, head_hash = int(anchor["seq"]), anchor["head_hash"]
    kept = session.execute(
        select(AuditCheckpoint.id).where(
            AuditCheckpoint.seq == seq, AuditCheckpoint.head_hash == head_hash, AuditCheckpoint.key_fingerprint == anchor["key_sha256"]
        )
    ).first()
    if kept is None:
        report.findings.append(
            Finding(seq, "is not proven: this station's signed checkpoint here is gone from the database "
                         "(checkpoints deleted, or the database rolled back)")  # fmt: skip
        )


def verify_chain(session: Session, own_key: ec.EllipticCurvePublicKey | None, anchor: dict | None = None, *,
                 pinned: dict[str, object] | None = None) -> VerifyReport:
    """``own_key`` and ``pinned`` (:func:`station.audit.trust.pinned_keys`) are the keys trusted
    to sign checkpoints; a checkpoint signed by any other key is a finding. ``anchor``: this station's latest checkpoint as recorded in its home
    (:func:`station.audit.log.read_anchor`); it must still be in the database and match.
    The requests, credentials and operators rows are then held against the chain
    (:func:`station.audit.backing.check_records`): ``report.rows`` names each that disagrees."""
    report = VerifyReport()
    verified = _walk(session, report)
    walk_ok = not report.findings
    keys = _trusted_keys(own_key, pinned)
    last_seq = max(verified)
    last_good_cp = 0
    for cp in session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.seq, AuditCheckpoint.id)).scalars():
        key = keys.get(cp.key_fingerprint)
        if key is None:
            report.findings.append(Finding(cp.seq, f"checkpoint {cp.id} is signed by audit key {cp.key_fingerprint} that this "
                                                   "station does not trust (if it is another station's, an administrator "
                                                   "pins it with `station audit trust-key`)"))
            continue
        try:
            verify_signature(key, cp.signature, chain.checkpoint_message(cp.seq, cp.head_hash, cp.signed_at), hashes.SHA256())
        except (InvalidSignature, UnsupportedKeyType):
            report.findings.append(Finding(cp.seq, f"checkpoint {cp.id} has a bad signature (checkpoint forged or edited)"))
            continue
        if cp.seq > last_seq:
            # past a break in the walk the events are unverified; past an intact end they are gone
            if walk_ok and not any(f.seq == last_seq + 1 for f in report.findings):
                report.findings.append(Finding(last_seq + 1, f"is missing: a signed checkpoint covers events up to {cp.seq} (deleted)"))
            continue
        if verified[cp.seq] != cp.head_hash:
            report.findings.append(
                Finding(last_good_cp + 1, f"events {last_good_cp + 1}..{cp.seq} were rewritten: the chain no longer matches signed checkpoint {cp.id}")
            )
            continue
        last_good_cp = max(last_good_cp, cp.seq)
        report.checkpoints_verified += 1
    report.last_checkpoint_seq = last_good_cp
    if anchor is not None:
        _check_anchor(session, anchor, report)
    head = session.get(AuditHead, 1)
    if walk_ok and head is not None and (head.seq, head.hash) != (last_seq, verified[last_seq]):
        report.findings.append(Finding(last_seq + 1, f"is missing: the chain head says the last event is {head.seq} (deleted)"))
    report.rows = check_records(session)
    return report
