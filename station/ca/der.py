"""Just enough DER to put a signature made elsewhere (a PKCS#11 token) onto a TBS structure.

Certificates and CRLs are ``SEQUENCE { tbs, signatureAlgorithm, signatureValue BIT STRING }``
(RFC 5280 §4.1, §5.1); everything else is encoded by :mod:`cryptography`.
"""

from __future__ import annotations


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + encode_length(len(value)) + value


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the element at ``offset``."""
    tag = data[offset]
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    return tag, pos, pos + length


def sequence_elements(der: bytes) -> list[bytes]:
    """The encoded elements of a top-level SEQUENCE."""
    tag, start, end = read_tlv(der)
    if tag != 0x30:
        raise ValueError("not a SEQUENCE")
    out = []
    pos = start
    while pos < end:
        _, _, elem_end = read_tlv(der, pos)
        out.append(der[pos:elem_end])
        pos = elem_end
    return out


def signed_structure(tbs: bytes, algorithm_identifier: bytes, signature: bytes) -> bytes:
    """``SEQUENCE { tbs, algorithm, BIT STRING signature }`` (no unused bits)."""
    return tlv(0x30, tbs + algorithm_identifier + tlv(0x03, b"\x00" + signature))
