"""The FASC-N (TIG SCEPACS v2.3 §6): 40 characters of 5-bit BCD with odd parity.

Each character is four data bits, least significant first, then an odd-parity bit. Layout:
``SS AGENCY(4) FS SYSTEM(4) FS CREDENTIAL(6) FS CS(1) FS ICI(1) FS PI(10) OC(1) OI(4) POA(1) ES LRC``.
"""

from __future__ import annotations

from dataclasses import dataclass

from station.errors import StationError

SS, FS, ES = 0xB, 0xD, 0xF
FASCN_LENGTH = 25

# (field name, width) in order; None marks a separator character.
_LAYOUT: list[tuple[str | None, int]] = [
    (None, SS), ("agency_code", 4), (None, FS), ("system_code", 4), (None, FS),
    ("credential_number", 6), (None, FS), ("credential_series", 1), (None, FS),
    ("individual_credential_issue", 1), (None, FS), ("person_identifier", 10),
    ("organizational_category", 1), ("organizational_identifier", 4),
    ("association_category", 1), (None, ES),
]


class FascnError(StationError):
    code = "malformed-fascn"
    hint = "the card's FASC-N is malformed: use another card or have the card re-issued"


def _encode_char(value: int) -> int:
    bits = [(value >> i) & 1 for i in range(4)]
    parity = 1 - (sum(bits) & 1)
    return sum(b << (4 - i) for i, b in enumerate(bits)) | parity


def _decode_char(code: int, index: int) -> int:
    bits = [(code >> (4 - i)) & 1 for i in range(5)]
    if sum(bits) % 2 != 1:
        raise FascnError(f"FASC-N character {index} fails its parity check")
    return bits[0] | bits[1] << 1 | bits[2] << 2 | bits[3] << 3


@dataclass(frozen=True)
class FascN:
    agency_code: str
    system_code: str
    credential_number: str
    credential_series: str
    individual_credential_issue: str
    person_identifier: str
    organizational_category: str
    organizational_identifier: str
    association_category: str

    def __post_init__(self):
        for name, width in _LAYOUT:
            if name is None:
                continue
            value = getattr(self, name)
            if len(value) != width or not value.isdigit():
                raise FascnError(f"FASC-N field {name} must be {width} digits")

    @classmethod
    def from_bytes(cls, data: bytes) -> "FascN":
        data = bytes(data)
        if len(data) != FASCN_LENGTH:
            raise FascnError(f"FASC-N is {FASCN_LENGTH} bytes, got {len(data)}")
        number = int.from_bytes(data, "big")
        chars = [_decode_char((number >> (195 - 5 * i)) & 0x1F, i) for i in range(40)]
        lrc = 0
        for c in chars[:39]:
            lrc ^= c
        if chars[39] != lrc:
            raise FascnError("FASC-N longitudinal redundancy check fails")
        fields: dict[str, str] = {}
        pos = 0
        for name, width in _LAYOUT:
            if name is None:
                if chars[pos] != width:
                    raise FascnError(f"FASC-N separator missing at character {pos}")
                pos += 1
                continue
            digits = chars[pos : pos + width]
            if any(d > 9 for d in digits):
                raise FascnError(f"FASC-N field {name} holds a non-digit")
            fields[name] = "".join(str(d) for d in digits)
            pos += width
        return cls(**fields)

    def to_bytes(self) -> bytes:
        chars: list[int] = []
        for name, width in _LAYOUT:
            if name is None:
                chars.append(width)
            else:
                chars.extend(int(d) for d in getattr(self, name))
        lrc = 0
        for c in chars:
            lrc ^= c
        chars.append(lrc)
        number = 0
        for c in chars:
            number = (number << 5) | _encode_char(c)
        return number.to_bytes(FASCN_LENGTH, "big")

    def to_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name, _ in _LAYOUT if name}

    def __str__(self) -> str:
        return self.to_bytes().hex().upper()
