"""Strict BER-TLV as used by PIV data objects (SP 800-73-4 Part 1 §3, ISO/IEC 7816-4 §5.2).

Tags are ints (``0x5FC102``, ``0x7F49``). Every length is bounds-checked; malformed input
raises :class:`TlvError`, never ``IndexError``, and parsing always terminates because every
step consumes at least two bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from station.devices.errors import TlvError

MAX_TAG_BYTES = 3


@dataclass(frozen=True)
class Tlv:
    tag: int
    value: bytes

    def encode(self) -> bytes:
        return encode_tlv(self.tag, self.value)


def encode_tag(tag: int) -> bytes:
    if tag < 0:
        raise TlvError(f"negative tag {tag}")
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    if length <= 0xFF:
        return bytes([0x81, length])
    if length <= 0xFFFF:
        return b"\x82" + length.to_bytes(2, "big")
    if length <= 0xFFFFFF:
        return b"\x83" + length.to_bytes(3, "big")
    raise TlvError(f"length {length} too large for BER-TLV")


def encode_tlv(tag: int, value: bytes) -> bytes:
    return encode_tag(tag) + encode_length(len(value)) + bytes(value)


def encode_tlvs(items: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(encode_tlv(t, v) for t, v in items)


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("truncated TLV: tag missing")
    first = data[pos]
    tag = first
    pos += 1
    if first & 0x1F == 0x1F:  # multi-byte tag
        count = 1
        while True:
            if pos >= len(data):
                raise TlvError("truncated TLV: tag runs past the end")
            b = data[pos]
            tag = (tag << 8) | b
            pos += 1
            count += 1
            if count > MAX_TAG_BYTES:
                raise TlvError("TLV tag longer than 3 bytes")
            if not b & 0x80:
                break
    return tag, pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("truncated TLV: length missing")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    n = first & 0x7F
    if n == 0:
        raise TlvError("indefinite TLV length is not allowed")
    if n > 3:
        raise TlvError(f"TLV length field of {n} bytes is not allowed")
    if pos + n > len(data):
        raise TlvError("truncated TLV: length field runs past the end")
    return int.from_bytes(data[pos : pos + n], "big"), pos + n


def read_tlv(data: bytes, pos: int = 0) -> tuple[Tlv, int]:
    """Parse one TLV at ``pos``; return it and the offset just after it."""
    tag, pos = _read_tag(data, pos)
    length, pos = _read_length(data, pos)
    end = pos + length
    if end > len(data):
        raise TlvError(f"TLV {tag:X} claims {length} bytes, only {len(data) - pos} remain")
    return Tlv(tag, bytes(data[pos:end])), end


def parse_tlvs(data: bytes) -> list[Tlv]:
    """Parse a buffer that must consist of whole TLVs and nothing else."""
    data = bytes(data)
    items: list[Tlv] = []
    pos = 0
    while pos < len(data):
        item, pos = read_tlv(data, pos)
        items.append(item)
    return items


def parse_tlv(data: bytes, expected_tag: int | None = None) -> Tlv:
    """Parse a buffer holding exactly one TLV (optionally of ``expected_tag``)."""
    item, end = read_tlv(bytes(data), 0)
    if end != len(data):
        raise TlvError(f"{len(data) - end} bytes of trailing data after TLV {item.tag:X}")
    if expected_tag is not None and item.tag != expected_tag:
        raise TlvError(f"expected tag {expected_tag:X}, found {item.tag:X}")
    return item


def unwrap(data: bytes, tag: int) -> bytes:
    """The value of a buffer that is exactly one TLV with ``tag``."""
    return parse_tlv(data, tag).value


def tlv_map(data: bytes) -> dict[int, bytes]:
    """Parse whole TLVs into ``{tag: value}``; a repeated tag is malformed data."""
    out: dict[int, bytes] = {}
    for item in parse_tlvs(data):
        if item.tag in out:
            raise TlvError(f"tag {item.tag:X} appears twice")
        out[item.tag] = item.value
    return out
