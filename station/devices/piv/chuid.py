"""The Card Holder Unique Identifier (SP 800-73-4 Part 1 §3.1.2, Table 9)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from station.devices import tlv
from station.devices.errors import TlvError
from station.devices.piv.fascn import FascN

TAG_BUFFER_LENGTH = 0xEE
TAG_FASCN = 0x30
TAG_ORGANIZATION_IDENTIFIER = 0x32
TAG_DUNS = 0x33
TAG_GUID = 0x34
TAG_EXPIRATION_DATE = 0x35
TAG_CARDHOLDER_UUID = 0x36
TAG_ISSUER_SIGNATURE = 0x3E
TAG_ERROR_DETECTION_CODE = 0xFE


class ChuidError(TlvError):
    code = "chuid-invalid"
    hint = "the card's CHUID is malformed: use another card or have the card re-issued"


def _uuid(value: bytes | None, name: str) -> uuid.UUID | None:
    if value is None:
        return None
    if len(value) != 16:
        raise ChuidError(f"CHUID {name} must be 16 bytes, got {len(value)}")
    return uuid.UUID(bytes=value)


@dataclass(frozen=True)
class Chuid:
    fascn: bytes
    card_uuid: uuid.UUID | None
    expiry: dt.date
    issuer_signature: bytes = b""
    cardholder_uuid: uuid.UUID | None = None
    organization_identifier: bytes | None = None
    duns: bytes | None = None
    buffer_length: bytes | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> "Chuid":
        """Parse the CHUID (the value of the 53 container)."""
        try:
            fields = tlv.tlv_map(data)
        except TlvError as exc:
            raise ChuidError(f"CHUID is malformed: {exc}") from None
        fascn = fields.get(TAG_FASCN)
        if fascn is None or len(fascn) != 25:
            raise ChuidError("CHUID has no 25-byte FASC-N (tag 30)")
        raw_expiry = fields.get(TAG_EXPIRATION_DATE)
        try:
            expiry = dt.datetime.strptime(raw_expiry.decode("ascii"), "%Y%m%d").date()
        except (AttributeError, UnicodeDecodeError, ValueError):
            raise ChuidError("CHUID expiration date (tag 35) is missing or not YYYYMMDD") from None
        return cls(
            fascn=fascn,
            card_uuid=_uuid(fields.get(TAG_GUID), "GUID"),
            expiry=expiry,
            issuer_signature=fields.get(TAG_ISSUER_SIGNATURE, b""),
            cardholder_uuid=_uuid(fields.get(TAG_CARDHOLDER_UUID), "cardholder UUID"),
            organization_identifier=fields.get(TAG_ORGANIZATION_IDENTIFIER),
            duns=fields.get(TAG_DUNS),
            buffer_length=fields.get(TAG_BUFFER_LENGTH),
        )

    def _unsigned_items(self) -> list[tuple[int, bytes]]:
        items: list[tuple[int, bytes | None]] = [
            (TAG_BUFFER_LENGTH, self.buffer_length),
            (TAG_FASCN, self.fascn),
            (TAG_ORGANIZATION_IDENTIFIER, self.organization_identifier),
            (TAG_DUNS, self.duns),
            (TAG_GUID, self.card_uuid.bytes if self.card_uuid else None),
            (TAG_EXPIRATION_DATE, self.expiry.strftime("%Y%m%d").encode()),
            (TAG_CARDHOLDER_UUID, self.cardholder_uuid.bytes if self.cardholder_uuid else None),
        ]
        return [(t, v) for t, v in items if v is not None]

    def signed_content(self) -> bytes:
        """The bytes the issuer signature covers (SP 800-73-4 Part 1 §3.1.2): every field but
        the signature (3E), the error detection code (FE) included, in card order. For a CHUID
        read from a card use :meth:`signed_content_of` on the card's own bytes."""
        return tlv.encode_tlvs([*self._unsigned_items(), (TAG_ERROR_DETECTION_CODE, b"")])

    @staticmethod
    def signed_content_of(data: bytes) -> bytes:
        """The signed bytes of a CHUID exactly as the card encodes them: every TLV but 3E."""
        data = bytes(data)
        out, pos = bytearray(), 0
        try:
            while pos < len(data):
                item, end = tlv.read_tlv(data, pos)
                if item.tag != TAG_ISSUER_SIGNATURE:
                    out += data[pos:end]
                pos = end
        except TlvError as exc:
            raise ChuidError(f"CHUID is malformed: {exc}") from None
        return bytes(out)

    def to_bytes(self) -> bytes:
        items = self._unsigned_items()
        items.append((TAG_ISSUER_SIGNATURE, self.issuer_signature))
        items.append((TAG_ERROR_DETECTION_CODE, b""))
        return tlv.encode_tlvs(items)

    @property
    def fascn_fields(self) -> FascN:
        return FascN.from_bytes(self.fascn)
