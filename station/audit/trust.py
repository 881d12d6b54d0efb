"""Which audit keys may sign checkpoints: the station's own, and those an administrator pinned.

The trusted set lives in the station home, beside the checkpoint copy (``audit/anchor.json``),
never in the database alone:

* the station's own audit public key (``audit/audit-key.pub.pem``), made at ``init`` and
  registered by the chain's ``audit.key_registered`` event of that init;
* ``audit/trusted-keys.json`` (fingerprint → public key PEM): other stations' keys that a
  signed-in administrator pinned with ``station audit trust-key`` (:func:`pin_key`), each
  pin recorded as an ``audit.key_trusted`` event.

A key that is only in the database (an ``audit_keys`` row and its registration event) signs
nothing this station believes: whoever can write the database could add one, with a
checkpoint signed by it over a truncated or rewritten chain.
"""

from __future__ import annotations

import json
import re
from enum import Enum

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from station.audit.log import key_fingerprint
from station.errors import StationError
from station.home import StationHome, write_private
from station.records.models import AuditEvent, AuditKey

TRUSTED_KEYS = "trusted-keys.json"
_FINGERPRINT = re.compile(r"[0-9a-f]{16,64}")


class TrustError(StationError):
    class Code(str, Enum):
        TRUST = "audit.trust"
        FINGERPRINT = "audit.trust.fingerprint"
        UNKNOWN = "audit.trust.unknown"
        UNREGISTERED = "audit.trust.unregistered"

    code = Code.TRUST.value
    hint = "pin only the fingerprint `station audit verify` names, of a key registered in this station's audit trail"


def _path(home: StationHome):  # noqa: ANN202
    return home.audit_dir / TRUSTED_KEYS


def pinned_keys(home: StationHome) -> dict[str, object]:
    """fingerprint → public key of the keys pinned in this home (not the station's own)."""
    path = _path(home)
    if not path.exists():
        return {}
    keys = {}
    for fingerprint, pem in json.loads(path.read_text()).items():
        key = serialization.load_pem_public_key(pem.encode())
        if key_fingerprint(key) == fingerprint:  # a hand-edited entry that does not match is ignored
            keys[fingerprint] = key
    return keys


def pin_key(station, fingerprint: str, *, actor: str) -> str:  # noqa: ANN001
    """Trust another station's registered audit key (full SHA-256 or a unique prefix of 16+ hex
    digits): pinned in this home and recorded as ``audit.key_trusted``. Returns the fingerprint."""
    wanted = fingerprint.strip().lower().replace(":", "")
    if not _FINGERPRINT.fullmatch(wanted):
        raise TrustError(f"not an audit key fingerprint: {fingerprint!r}", code=TrustError.Code.FINGERPRINT,
                         hint="give the key's SHA-256 (at least 16 hex digits) as `station audit verify` names it")
    pinned = {fp: key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
              for fp, key in pinned_keys(station.home).items()}
    with station.db.transaction() as session:
        rows = session.execute(select(AuditKey).where(AuditKey.fingerprint.startswith(wanted))).scalars().all()
        if len(rows) != 1:
            raise TrustError(f"{'no' if not rows else 'more than one'} registered audit key starts with {wanted}",
                             code=TrustError.Code.UNKNOWN, hint="give the full fingerprint of a key in the records")
        row = rows[0]
        key = serialization.load_pem_public_key(row.public_key_pem.encode())
        registered = session.execute(select(AuditEvent.seq).where(
            AuditEvent.action == "audit.key_registered", AuditEvent.object_id == row.fingerprint)).first()
        if key_fingerprint(key) != row.fingerprint or registered is None:
            raise TrustError(f"audit key {row.fingerprint[:16]}… in the records is not one a station registered",
                             code=TrustError.Code.UNREGISTERED, hint="run `station audit verify`; do not trust this key")
        station.audit.append(session, actor=actor, action="audit.key_trusted", object_type="audit_key",
                             object_id=row.fingerprint, details={"key_sha256": row.fingerprint, "station_id": row.station_id})
        pinned[row.fingerprint] = row.public_key_pem
    write_private(_path(station.home), json.dumps(pinned, indent=1, sort_keys=True).encode())  # once the event is committed
    return row.fingerprint
