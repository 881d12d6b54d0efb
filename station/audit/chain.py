"""The hash chain's rules, with no database in sight.

Event *n* has hash ``SHA-256(JSON["station-audit-v1", n, occurred_at, actor, action,
object_type, object_id, details, prev_hash])`` where ``details`` is canonical JSON (sorted
keys, no spaces) and ``prev_hash`` is event *n-1*'s hash (:data:`GENESIS` for event 1). The
sequence number is inside the hash, so a renumbered (inserted, deleted, reordered) event no
longer matches. A checkpoint signs ``seq``, the head hash and the signing time.

Nothing secret may enter an event: :func:`check_no_secrets` refuses details whose keys name
a PIN, password, passphrase, secret or private key, and any value holding a PEM private key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from enum import Enum
from typing import Any

from station.errors import StationError

GENESIS = "0" * 64
EVENT_DOMAIN = "station-audit-v1"
CHECKPOINT_DOMAIN = "station-audit-checkpoint-v1"

_FORBIDDEN_WORDS = {"pin", "puk", "password", "passphrase", "passcode", "secret", "private", "privatekey", "otp", "mgmkey"}
_WORD = re.compile(r"[a-z0-9]+")


class SensitiveDataInEvent(StationError):
    class Code(str, Enum):
        SENSITIVE = "audit.sensitive"
        BAD_VALUE = "audit.bad_value"

    code = Code.SENSITIVE.value
    hint = "audit events record what happened, never a PIN, password or key: drop that field"


def timestamp(now: dt.datetime | None = None) -> str:
    """ISO 8601 UTC with microseconds: always 32 characters."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(
    seq: int, occurred_at: str, actor: str, action: str, object_type: str, object_id: str, details: str, prev_hash: str
) -> str:
    payload = [EVENT_DOMAIN, seq, occurred_at, actor, action, object_type, object_id, details, prev_hash]
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def checkpoint_message(seq: int, head_hash: str, signed_at: str) -> bytes:
    return canonical_json([CHECKPOINT_DOMAIN, seq, head_hash, signed_at]).encode("utf-8")


def check_no_secrets(value: Any, path: str = "details") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            words = set(_WORD.findall(str(key).lower()))
            joined = "".join(_WORD.findall(str(key).lower()))
            if words & _FORBIDDEN_WORDS or joined in _FORBIDDEN_WORDS or "privatekey" in joined:
                raise SensitiveDataInEvent(f"audit event field {path}.{key} looks like a secret")
            check_no_secrets(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_no_secrets(item, f"{path}[{i}]")
    elif isinstance(value, str):
        if "PRIVATE KEY-----" in value:
            raise SensitiveDataInEvent(f"audit event field {path} holds a private key")
    elif value is not None and not isinstance(value, (int, float, bool)):
        raise SensitiveDataInEvent(f"audit event field {path} has a {type(value).__name__}; use plain JSON values",
                                   code=SensitiveDataInEvent.Code.BAD_VALUE)
