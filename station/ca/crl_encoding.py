"""Fast CRLs: :mod:`cryptography` encodes the frame, this module the list of revoked certificates.

Building 100,000 ``RevokedCertificate`` objects through :mod:`cryptography`'s builders costs
more than the rest of the CRL together. A revoked entry is a tiny fixed structure (RFC 5280
§5.1)::

    SEQUENCE { userCertificate INTEGER, revocationDate Time,
               crlEntryExtensions SEQUENCE { SEQUENCE { id-ce-cRLReasons, OCTET STRING { ENUMERATED } } } OPTIONAL }

so the station encodes the entries itself and splices them into the TBSCertList that
:mod:`cryptography` built without entries (between nextUpdate and the ``[0]`` crlExtensions).
The result is byte-identical to what the builder makes with the same entries (a test checks).
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from station.ca.der import encode_length, read_tlv, sequence_elements, tlv

_REASON_CODES = {
    x509.ReasonFlags.unspecified: 0,
    x509.ReasonFlags.key_compromise: 1,
    x509.ReasonFlags.ca_compromise: 2,
    x509.ReasonFlags.affiliation_changed: 3,
    x509.ReasonFlags.superseded: 4,
    x509.ReasonFlags.cessation_of_operation: 5,
    x509.ReasonFlags.certificate_hold: 6,
    x509.ReasonFlags.remove_from_crl: 8,
    x509.ReasonFlags.privilege_withdrawn: 9,
    x509.ReasonFlags.aa_compromise: 10,
}
_CRL_REASON_OID = bytes.fromhex("0603551d15")  # 2.5.29.21


def encode_time(when: dt.datetime) -> bytes:
    """UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5)."""
    when = when.astimezone(dt.timezone.utc)
    if when.year < 2050:
        return tlv(0x17, when.strftime("%y%m%d%H%M%SZ").encode())
    return tlv(0x18, when.strftime("%Y%m%d%H%M%SZ").encode())


def encode_serial(serial: int) -> bytes:
    if serial < 0:
        raise ValueError("serial numbers are positive")
    return tlv(0x02, serial.to_bytes(serial.bit_length() // 8 + 1, "big"))


def _reason_extensions(reason: x509.ReasonFlags) -> bytes:
    if reason is x509.ReasonFlags.unspecified:
        return b""  # RFC 5280 §5.3.1: omit rather than use unspecified
    value = tlv(0x04, tlv(0x0A, bytes([_REASON_CODES[reason]])))
    return tlv(0x30, tlv(0x30, _CRL_REASON_OID + value))


def encode_revoked(entries: list[tuple[int, dt.datetime, x509.ReasonFlags]]) -> bytes:
    """``revokedCertificates`` (empty bytes for no entries: the field is then absent)."""
    if not entries:
        return b""
    times: dict[dt.datetime, bytes] = {}
    reasons: dict[x509.ReasonFlags, bytes] = {}
    parts = []
    for serial, when, reason in entries:
        t = times.get(when) or times.setdefault(when, encode_time(when))
        r = reasons.get(reason)
        if r is None:
            r = reasons.setdefault(reason, _reason_extensions(reason))
        body = encode_serial(serial) + t + r
        parts.append(b"\x30" + encode_length(len(body)) + body)
    return tlv(0x30, b"".join(parts))


def splice_revoked(tbs_without_entries: bytes, revoked: bytes) -> bytes:
    """Insert the encoded revoked list into a TBSCertList made with no entries."""
    elements = sequence_elements(tbs_without_entries)
    # version, signature, issuer, thisUpdate, nextUpdate, [0] crlExtensions
    if len(elements) != 6 or read_tlv(elements[5])[0] != 0xA0:
        raise ValueError("unexpected TBSCertList layout")
    return tlv(0x30, b"".join(elements[:5]) + revoked + elements[5])
