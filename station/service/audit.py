"""The audit trail as the CLI sees it: verify, export and sign a checkpoint, each in one
transaction (the chain itself lives in :mod:`station.audit`)."""

from __future__ import annotations

from typing import IO

from station.audit.export import export_jsonl
from station.audit.log import read_anchor
from station.audit.trust import pinned_keys
from station.audit.verify import verify_chain
from station.ca import ca_store
from station.service.station import Station


def verify(station: Station):
    """The chain checked against the station's audit key, its anchor and the pinned keys (a
    report naming the first bad event and the rows the chain does not back)."""
    own_key = ca_store.load_audit_public_key(station.home)
    with station.db.transaction() as session:
        return verify_chain(session, own_key, read_anchor(station.home.audit_anchor), pinned=pinned_keys(station.home))


def export(station: Station, out: IO[str]) -> int:
    """The trail as JSON Lines on ``out``; the number of events written."""
    with station.db.transaction() as session:
        return export_jsonl(session, out)


def checkpoint(station: Station):
    """Sign the chain head now (None when the trail is empty)."""
    with station.db.transaction() as session:
        return station.audit.checkpoint(session)
