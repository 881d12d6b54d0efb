"""What ``station card read`` reports: identifiers, certificates, PIN status; no PIN spent."""

from __future__ import annotations

from typing import Any

from station.devices.errors import FileNotFound, SecurityStatusNotSatisfied, StationError
from station.devices.piv.constants import KeyRef, Slot
from station.devices.piv.containers import PinPolicy
from station.devices.piv.fascn import FascnError
from station.devices.piv.session import PinStatus, PivSession


def summarize(session: PivSession) -> dict[str, Any]:
    """Read the public objects of a PIV card into a JSON-ready dict."""
    chuid = session.read_chuid()
    try:
        fascn_fields = chuid.fascn_fields.to_dict()
    except FascnError:
        fascn_fields = None
    certificates = []
    for slot in Slot:
        try:
            cert = session.read_certificate(slot)
        except FileNotFound:
            continue
        except StationError as exc:
            certificates.append({"slot": str(slot), "error": str(exc)})
            continue
        certificates.append({
            "slot": str(slot),
            "subject": cert.subject.rfc4514_string(),
            "serial": format(cert.serial_number, "x"),
            "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
    discovery = session.read_discovery()
    policy = discovery.pin_policy if discovery else PinPolicy.APPLICATION
    try:
        status = session.get_pin_status(KeyRef.GLOBAL_PIN if policy == PinPolicy.GLOBAL else KeyRef.PIN)
    except SecurityStatusNotSatisfied:  # no PIN over contactless (SP 800-73-4 Part 1 §3)
        status = PinStatus(verified=False, retries_left=None)
    return {
        "interface": session.interface.value,
        "fascn": chuid.fascn.hex().upper(),
        "fascn_fields": fascn_fields,
        "card_uuid": str(chuid.card_uuid) if chuid.card_uuid else None,
        "cardholder_uuid": str(chuid.cardholder_uuid) if chuid.cardholder_uuid else None,
        "expiry": chuid.expiry.isoformat(),
        "certificates": certificates,
        "pin_retries": status.retries_left,
        "pin_blocked": status.blocked,
        "pin_policy": policy.value,
    }
