"""The raw bytes of a PIV card's data objects, as read (SP 800-73-4 Part 1 §3).

:class:`CardContents` is a plain record: the card layer fills it from a card read over
PC/SC, tests fill it from a GSA ICAM card image folder with :meth:`from_image_dir`. Nothing
here parses or judges; that is :mod:`station.validation.card_checks`' job.

Data objects hold the value of the ``53`` container, exactly as returned by GET DATA; the
Discovery Object is the full ``7E`` TLV; certificates are DER, already taken out of their
``70/71/FE`` certificate container. ``None`` means the card does not hold the object (an
empty container counts as absent).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

from station.errors import StationError

#: Key references of the four PIV certificates (SP 800-73-4 Part 1 Table 4b).
SLOTS = ("9A", "9C", "9D", "9E")

# GSA card image folders name files "N - Name" (see EXPECTED.md); N -> object.
# Other files with the same number ("10 - Face Object Untampered", "1 - Discovery Object No
# Tag") are the builder's alternates and are not loaded on the card.
_IMAGE_OBJECTS = {
    "1 - Discovery Object": "discovery",
    "2 - Security Object": "security_object",
    "7 - CCC": "ccc",
    "8 - CHUID Object": "chuid",
    "9 - Fingerprints": "fingerprints",
    "10 - Face Object": "facial_image",
    "11 - Printed Information": "printed_information",
}
_IMAGE_SLOTS = {3: "9A", 4: "9C", 5: "9D", 6: "9E"}


class CardImageError(StationError):
    code = "card-image"
    hint = "point at one card folder of a GSA ICAM test card set"


@dataclass
class CardContents:
    discovery: bytes | None = None
    chuid: bytes | None = None
    certificates: dict[str, bytes] = field(default_factory=dict)
    security_object: bytes | None = None
    facial_image: bytes | None = None
    fingerprints: bytes | None = None
    printed_information: bytes | None = None
    ccc: bytes | None = None

    def __repr__(self) -> str:  # sizes, not kilobytes of DER, in logs and test reports
        sizes = {name: len(value) for name, value in vars(self).items() if isinstance(value, bytes)}
        certs = {slot: len(der) for slot, der in self.certificates.items()}
        return f"CardContents(objects={sizes}, certificates={certs})"

    @classmethod
    def from_image_dir(cls, path: str | Path) -> "CardContents":
        """Build the contents of a GSA ICAM card image folder.

        Certificate files: a folder may hold several ``N - *.crt`` for one slot. The one
        used is the ``N - ICAM_PIV_*`` file, the name the card builder gives the credential
        it loads (present in every card folder). The other names are either byte-identical
        copies (``*_<card name>.crt``) or, in the ``46_..._ICI_8``/``ICI_9`` folders, the
        base card 46 credential (``ICAM_Test_Card_PIV_*_SP_800-73-4.crt``, identical in both
        folders) left beside the card's own. Without an ``ICAM_PIV_*`` file a single
        ``N - *.crt`` is used; anything else is ambiguous and refused.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise CardImageError(f"{folder} is not a directory")
        numbered: dict[int, list[Path]] = {}
        for entry in folder.iterdir():
            m = re.match(r"^(\d+) - ", entry.name)
            if m and entry.is_file():
                numbered.setdefault(int(m.group(1)), []).append(entry)
        contents = cls()
        for name, attr in _IMAGE_OBJECTS.items():
            if (folder / name).is_file():
                setattr(contents, attr, (folder / name).read_bytes() or None)
        for number, slot in _IMAGE_SLOTS.items():
            cert_file = _pick_certificate(folder, numbered.get(number, []), number)
            if cert_file is not None:
                contents.certificates[slot] = certificate_der(cert_file)
        return contents


def _pick_certificate(folder: Path, files: list[Path], number: int) -> Path | None:
    certs = sorted(f for f in files if f.suffix == ".crt")
    canonical = [f for f in certs if f.name.startswith(f"{number} - ICAM_PIV_")]
    if len(canonical) == 1:
        return canonical[0]
    if len(certs) == 1:
        return certs[0]
    if not certs:
        return None
    raise CardImageError(f"{folder.name}: cannot tell which of {len(certs)} slot-{number} certificates is loaded")


def certificate_der(path: Path) -> bytes:
    """DER bytes of the first PEM certificate block in ``path`` (or the file itself if it
    is DER). The block is base64-decoded, not parsed: a deliberately corrupted certificate
    goes on the card as it is."""
    data = path.read_bytes()
    m = re.search(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", data, re.S)
    if m is None:
        return data
    return base64.b64decode(b"".join(m.group(1).split()))
