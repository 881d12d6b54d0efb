"""The PIV Card Application (SP 800-73-4): data model and session."""

from station.devices.piv.chuid import Chuid
from station.devices.piv.constants import (
    DERIVED_PIV_AID,
    PIV_AID,
    Algorithm,
    KeyRef,
    ObjectId,
    Slot,
)
from station.devices.piv.containers import CertificateContainer, DiscoveryObject, PinPolicy
from station.devices.piv.fascn import FascN
from station.devices.piv.session import PinStatus, PivSession, encode_pin

__all__ = [
    "Algorithm", "CertificateContainer", "Chuid", "DERIVED_PIV_AID", "DiscoveryObject", "FascN",
    "KeyRef", "ObjectId", "PIV_AID", "PinPolicy", "PinStatus", "PivSession", "Slot", "encode_pin",
]
