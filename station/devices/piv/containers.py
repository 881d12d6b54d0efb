"""Container formats: certificate containers and the Discovery Object (SP 800-73-4 Part 1)."""

from __future__ import annotations

import enum
import zlib
from dataclasses import dataclass

from cryptography import x509

from station.devices import tlv
from station.devices.errors import TlvError
from station.devices.piv.constants import PIV_AID, KeyRef

TAG_CERTIFICATE = 0x70
TAG_CERT_INFO = 0x71
TAG_MSCUID = 0x72
TAG_ERROR_DETECTION_CODE = 0xFE
CERTINFO_GZIP = 0x01
# A PIV certificate is a few KiB; refuse to inflate more than this (gzip bombs).
MAX_CERTIFICATE = 64 * 1024


class ContainerError(TlvError):
    code = "malformed-data"
    hint = "the card's data is malformed: use another card or have the card re-issued"


@dataclass(frozen=True)
class CertificateContainer:
    """Tag 70 certificate, 71 CertInfo (01: gzip-compressed), FE error detection code."""

    certificate_der: bytes
    compressed: bool = False

    @classmethod
    def from_bytes(cls, data: bytes) -> "CertificateContainer":
        try:
            fields = tlv.tlv_map(data)
        except TlvError as exc:
            raise ContainerError(f"certificate container is malformed: {exc}") from None
        if TAG_CERTIFICATE not in fields:
            raise ContainerError("certificate container has no certificate (tag 70)")
        info = fields.get(TAG_CERT_INFO, b"\x00")
        compressed = bool(info and info[0] & CERTINFO_GZIP)
        body = fields[TAG_CERTIFICATE]
        if compressed:
            inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header
            try:
                body = inflater.decompress(body, MAX_CERTIFICATE + 1)
            except zlib.error:
                raise ContainerError("compressed certificate does not inflate") from None
            if len(body) > MAX_CERTIFICATE:
                raise ContainerError("compressed certificate inflates past 64 KiB")
        return cls(body, compressed)

    def to_bytes(self) -> bytes:
        body = self.certificate_der
        if self.compressed:
            import gzip

            body = gzip.compress(body, mtime=0)
        return tlv.encode_tlvs(
            [(TAG_CERTIFICATE, body), (TAG_CERT_INFO, bytes([CERTINFO_GZIP if self.compressed else 0])), (TAG_ERROR_DETECTION_CODE, b"")]
        )

    @property
    def certificate(self) -> x509.Certificate:
        try:
            return x509.load_der_x509_certificate(self.certificate_der)
        except ValueError:
            raise ContainerError("certificate in the container is not valid DER") from None


class PinPolicy(enum.Enum):
    """Which PIN the cardholder uses (Discovery Object PIN usage policy)."""

    APPLICATION = "application"
    GLOBAL = "global"


@dataclass(frozen=True)
class DiscoveryObject:
    """Tag 7E: 4F PIV AID, 5F2F PIN usage policy (SP 800-73-4 Part 1 §3.3.2)."""

    aid: bytes = PIV_AID
    pin_usage_policy: bytes = b"\x40\x00"

    @classmethod
    def from_bytes(cls, data: bytes) -> "DiscoveryObject":
        try:
            fields = tlv.tlv_map(tlv.unwrap(data, 0x7E))
        except TlvError as exc:
            raise ContainerError(f"Discovery Object is malformed: {exc}") from None
        policy = fields.get(0x5F2F, b"\x40\x00")
        if len(policy) != 2:
            raise ContainerError("PIN usage policy must be 2 bytes")
        return cls(fields.get(0x4F, PIV_AID), policy)

    def to_bytes(self) -> bytes:
        return tlv.encode_tlv(0x7E, tlv.encode_tlvs([(0x4F, self.aid), (0x5F2F, self.pin_usage_policy)]))

    @property
    def global_pin_satisfies(self) -> bool:
        return bool(self.pin_usage_policy[0] & 0x20)

    @property
    def pin_policy(self) -> PinPolicy:
        """The PIN to ask for: the Global PIN only when it satisfies the access rules and the
        second byte says it is primary (0x20 in byte 2 = Global PIN primary)."""
        if self.global_pin_satisfies and self.pin_usage_policy[1] == 0x20:
            return PinPolicy.GLOBAL
        return PinPolicy.APPLICATION

    @property
    def pin_key_reference(self) -> KeyRef:
        """The key reference VERIFY uses: 00 (Global PIN) or 80 (PIV Card Application PIN)."""
        return KeyRef.GLOBAL_PIN if self.pin_policy == PinPolicy.GLOBAL else KeyRef.PIN
