"""Answer-to-Reset parsing (ISO/IEC 7816-3 §8.2, 7816-4 §8.1.1): just what the station uses."""

from __future__ import annotations


def historical_bytes(atr: bytes) -> bytes:
    """The historical bytes T1..TK of an ATR (empty if the ATR is malformed)."""
    if len(atr) < 2:
        return b""
    k = atr[1] & 0x0F
    pos, indicator = 2, atr[1]
    while True:
        pos += bin(indicator & 0xF0).count("1")
        if not indicator & 0x80:
            break
        if pos - 1 >= len(atr):
            return b""
        indicator = atr[pos - 1]
    return bytes(atr[pos : pos + k]) if pos + k <= len(atr) else b""


def supports_extended_length(atr: bytes) -> bool:
    """True when the card capabilities (compact-TLV tag 7, third byte, bit 0x40) announce
    extended Lc/Le fields (ISO/IEC 7816-4 §8.1.1.2.7, Table 118)."""
    hist = historical_bytes(atr)
    if not hist or hist[0] != 0x80:
        return False
    pos = 1
    while pos < len(hist):
        tag, length = hist[pos] >> 4, hist[pos] & 0x0F
        value = hist[pos + 1 : pos + 1 + length]
        if tag == 0x7 and len(value) == 3:
            return bool(value[2] & 0x40)
        pos += 1 + length
    return False
