"""``station audit export --format jsonl``: one JSON object a line, events then checkpoints.

Each event line carries every hashed field (``details`` as the exact canonical string that
was hashed, and parsed as ``details_json`` for readers), so the export verifies offline with
:func:`station.audit.chain.event_hash`.
"""

from __future__ import annotations

import base64
import json
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from station.records.models import AuditCheckpoint, AuditEvent


def export_jsonl(session: Session, out: IO[str]) -> int:
    count = 0
    for ev in session.execute(select(AuditEvent).order_by(AuditEvent.seq)).yield_per(1000).scalars():
        line = {
            "record": "event",
            "seq": ev.seq,
            "occurred_at": ev.occurred_at,
            "actor": ev.actor,
            "action": ev.action,
            "object_type": ev.object_type,
            "object_id": ev.object_id,
            "details": ev.details,
            "details_json": json.loads(ev.details),
            "prev_hash": ev.prev_hash,
            "hash": ev.hash,
        }
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        count += 1
    for cp in session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.seq, AuditCheckpoint.id)).scalars():
        line = {
            "record": "checkpoint",
            "seq": cp.seq,
            "head_hash": cp.head_hash,
            "signed_at": cp.signed_at,
            "key_sha256": cp.key_fingerprint,
            "signature": base64.b64encode(cp.signature).decode(),
        }
        out.write(json.dumps(line) + "\n")
    return count
