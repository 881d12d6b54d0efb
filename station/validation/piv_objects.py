"""Parsers for the PIV data objects the validation core judges.

- CHUID (SP 800-73-4 Part 1 §3.1.2, Table 9)
- biometric CBEFF records: patron format PIV header, biometric data block, signature block
  (SP 800-76-2 §9, Table 8)
- Security Object: data group -> container ID map (tag BA) and an LDS security object
  signed with CMS (tag BB) (SP 800-73-4 Part 1 §3.1.6; ICAO 9303 LDSSecurityObject)
- identifiers in a certificate's subjectAltName: pivFASC-N otherName and ``urn:uuid:`` URI
  (FIPS 201-3 §4.2.1, FPKI PIV certificate profiles)

Malformed input raises :class:`CardDataError`; nothing here decides a verdict. The CHUID
parser keeps the card's own bytes of the signed TLVs: a signature is verified over what the
card holds, not over a re-encoding (``station.devices.piv.chuid.Chuid`` re-encodes, which
suits building a CHUID). FASC-Ns are decoded with the card layer's
:class:`~station.devices.piv.fascn.FascN`, only to describe differences.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from asn1crypto import algos, core
from cryptography import x509

from station.devices.errors import TlvError
from station.devices.piv.fascn import FascN, FascnError
from station.devices.tlv import tlv_map
from station.devices.piv.chuid import Chuid, ChuidError
from station.errors import StationError

OID_PIV_FASCN = "2.16.840.1.101.3.6.6"
OID_ENTRY_UUID = "1.3.6.1.1.16.4"
OID_PIV_CONTENT_SIGNING = "2.16.840.1.101.3.6.7"
OID_CHUID_CONTENT = "2.16.840.1.101.3.6.1"  # id-PIV-CHUIDSecurityObject
OID_BIOMETRIC_CONTENT = "2.16.840.1.101.3.6.2"  # id-PIV-biometricObject
OID_LDS_SECURITY_OBJECT = ("2.23.136.1.1.1", "1.3.27.1.1.1")  # ICAO; the old arc seen on cards

#: Container IDs of SP 800-73-4 Part 1 Table 2 -> CardContents attribute.
CONTAINER_OBJECTS = {
    0x3000: "chuid",
    0x6010: "fingerprints",
    0x6030: "facial_image",
    0x3001: "printed_information",
    0x6050: "discovery",
    0xDB00: "ccc",
}

#: Certificate containers (SP 800-73-4 Part 1 Table 2: PIV Authentication, Digital
#: Signature, Key Management, Card Authentication, retired Key Management 1-20, Secure
#: Messaging signer). CardContents holds their certificates without the 70/71/FE
#: container, so their Security Object hashes cannot be recomputed.
CERTIFICATE_CONTAINERS = frozenset({0x0101, 0x0100, 0x0102, 0x0500, 0x1017} | set(range(0x1001, 0x1015)))

CBEFF_HEADER_LEN = 88


class CardDataError(StationError):
    code = "malformed-data"
    hint = "the card's data is malformed: use another card or have the card re-issued"


def parse_chuid(data: bytes) -> Chuid:
    """Parse a CHUID (the value of its 53 container) for the strict checks: the card layer's
    :class:`~station.devices.piv.chuid.Chuid`, which must also carry a GUID and a signature.
    Its signed bytes come from :meth:`Chuid.signed_content_of` on the card's own bytes."""
    try:
        chuid = Chuid.from_bytes(data)
    except ChuidError as exc:
        raise CardDataError(str(exc)) from None
    if chuid.card_uuid is None:
        raise CardDataError("CHUID has no GUID (tag 34)")
    if not chuid.issuer_signature:
        raise CardDataError("CHUID has no signature (tag 3E)")
    return chuid


@dataclass(frozen=True)
class Cbeff:
    header: bytes
    bdb: bytes
    signature_block: bytes
    fascn: bytes
    creation: datetime
    not_before: datetime
    not_after: datetime

    @property
    def signed_content(self) -> bytes:
        """SP 800-76-2 §9.2: the signature covers the CBEFF header and the BDB."""
        return self.header + self.bdb


def parse_biometric(data: bytes) -> Cbeff:
    """Parse a fingerprint or facial image object (value of 53: BC {CBEFF}, FE)."""
    try:
        fields = tlv_map(data)
    except TlvError as exc:
        raise CardDataError(f"biometric object is not well-formed TLV: {exc}") from exc
    record = fields.get(0xBC)
    if record is None:
        raise CardDataError("biometric object has no CBEFF record (tag BC)")
    if len(record) < CBEFF_HEADER_LEN:
        raise CardDataError("CBEFF record shorter than its header")
    header = record[:CBEFF_HEADER_LEN]
    bdb_len = int.from_bytes(header[2:6], "big")
    sb_len = int.from_bytes(header[6:8], "big")
    if CBEFF_HEADER_LEN + bdb_len + sb_len != len(record):
        raise CardDataError("CBEFF lengths do not add up to the record")
    if sb_len == 0:
        raise CardDataError("CBEFF record is not signed")
    bdb = record[CBEFF_HEADER_LEN:CBEFF_HEADER_LEN + bdb_len]
    return Cbeff(
        header=header,
        bdb=bdb,
        signature_block=record[CBEFF_HEADER_LEN + bdb_len:],
        fascn=header[59:84],
        creation=_cbeff_time(header[12:20]),
        not_before=_cbeff_time(header[20:28]),
        not_after=_cbeff_time(header[28:36]),
    )


def _cbeff_time(raw: bytes) -> datetime:
    """SP 800-76-2 Table 8: YYYY (2 bytes, one per two digits) MM DD hh mm ss 'Z'."""
    if len(raw) != 8 or raw[7] != 0x5A:
        raise CardDataError("CBEFF date is not in the YYYYMMDDhhmmssZ binary form")
    try:
        return datetime(raw[0] * 100 + raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], tzinfo=timezone.utc)
    except ValueError as exc:
        raise CardDataError(f"CBEFF date out of range: {exc}") from exc


def facial_image_data(bdb: bytes) -> bytes:
    """The image (JPEG / JPEG 2000) inside an ISO/IEC 19794-5 facial record, or the
    whole BDB when it does not have that shape."""
    try:
        if bdb[:4] != b"FAC\x00":
            return bdb
        pos = 14  # general record header
        n_points = int.from_bytes(bdb[pos + 4:pos + 6], "big")
        start = pos + 20 + 8 * n_points + 12
        return bdb[start:] if start < len(bdb) else bdb
    except IndexError:
        return bdb


class _DataGroupHash(core.Sequence):
    _fields = [("data_group_number", core.Integer), ("data_group_hash_value", core.OctetString)]


class _DataGroupHashes(core.SequenceOf):
    _child_spec = _DataGroupHash


class LdsSecurityObject(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("hash_algorithm", algos.DigestAlgorithm),
        ("data_group_hash_values", _DataGroupHashes),
    ]


@dataclass(frozen=True)
class SecurityObject:
    mapping: dict[int, int]  # data group number -> container ID
    signature: bytes  # tag BB: CMS SignedData encapsulating an LDSSecurityObject


def parse_security_object(data: bytes) -> SecurityObject:
    try:
        fields = tlv_map(data)
    except TlvError as exc:
        raise CardDataError(f"Security Object is not well-formed TLV: {exc}") from exc
    if 0xBA not in fields or 0xBB not in fields:
        raise CardDataError("Security Object lacks its mapping (BA) or signature (BB)")
    raw = fields[0xBA]
    if len(raw) % 3:
        raise CardDataError("Security Object mapping is not made of 3-byte entries")
    mapping = {}
    for i in range(0, len(raw), 3):
        group = raw[i]
        if group in mapping:
            raise CardDataError(f"data group {group} mapped twice")
        mapping[group] = int.from_bytes(raw[i + 1:i + 3], "big")
    return SecurityObject(mapping, fields[0xBB])


def parse_lds(content: bytes) -> tuple[str, dict[int, bytes]]:
    """(hash algorithm name, {data group: hash}) of an LDSSecurityObject."""
    try:
        lds = LdsSecurityObject.load(content)
        algo = lds["hash_algorithm"]["algorithm"].native
        hashes: dict[int, bytes] = {}
        for item in lds["data_group_hash_values"]:
            group = item["data_group_number"].native
            if group in hashes:
                raise CardDataError(f"data group {group} hashed twice")
            hashes[group] = item["data_group_hash_value"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise CardDataError(f"LDS security object does not parse: {exc}") from exc
    return algo, hashes


@dataclass(frozen=True)
class CertIdentifiers:
    fascn: bytes | None
    uuid: bytes | None


def cert_identifiers(cert: x509.Certificate) -> CertIdentifiers:
    """FASC-N (pivFASC-N otherName) and UUID (``urn:uuid:`` URI) of the subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return CertIdentifiers(None, None)
    fascn = None
    for name in san.get_values_for_type(x509.OtherName):
        if name.type_id.dotted_string == OID_PIV_FASCN:
            try:
                fascn = core.OctetString.load(name.value).native
            except ValueError as exc:
                raise CardDataError("pivFASC-N otherName is not an OCTET STRING") from exc
    card_uuid = None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.lower().startswith("urn:uuid:"):
            try:
                card_uuid = uuid.UUID(uri[9:]).bytes
            except ValueError as exc:
                raise CardDataError(f"bad UUID URI {uri!r} in subjectAltName") from exc
    return CertIdentifiers(fascn, card_uuid)


def signed_attribute_octets(attributes: dict[str, list[bytes]], oid: str, length: int) -> bytes | None:
    """The single OCTET STRING value (of ``length`` bytes) of a signed attribute, or None
    if the attribute is absent."""
    values = attributes.get(oid)
    if not values:
        return None
    if len(values) != 1:
        raise CardDataError(f"signed attribute {oid} has {len(values)} values")
    try:
        value = core.OctetString.load(values[0]).native
    except ValueError as exc:
        raise CardDataError(f"signed attribute {oid} is not an OCTET STRING") from exc
    if len(value) != length:
        raise CardDataError(f"signed attribute {oid} is {len(value)} bytes, not {length}")
    return value


def fascn_difference(found: bytes, expected: bytes) -> str:
    """Which FASC-N fields differ (``credential number 000046 vs 000047``), for details."""
    try:
        a, b = FascN.from_bytes(found).to_dict(), FascN.from_bytes(expected).to_dict()
    except (FascnError, ValueError):
        return f"{found.hex().upper()} vs {expected.hex().upper()}"
    fields = [f"{k.replace('_', ' ')} {a[k]} vs {b[k]}" for k in a if a[k] != b.get(k)]
    return ", ".join(fields) or f"{found.hex().upper()} vs {expected.hex().upper()}"
