"""Load a card image folder in the GSA ICAM layout into a :class:`VirtualPivCard`.

Files are named ``N - Name``: ``1 - Discovery Object`` (whole 7E TLV; ``7E 00`` means
absent), ``2 - Security Object``, 3-6 certificate (PEM) and key (.p12, no password) for slots
9A, 9C, 9D, 9E, ``7 - CCC``, ``8 - CHUID Object``, ``9 - Fingerprints``, ``10 - Face Object``,
``11 - Printed Information``. Data objects hold the value of tag 53. Where a folder holds several certificates for one slot, the one named
``N - ICAM_PIV_*`` is the card's own (the card builder's output name); otherwise the first by
name. The key comes from the .p12 beside the chosen certificate.
"""

from __future__ import annotations

import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from station.devices.connection import Interface
from station.devices.piv.constants import ObjectId, Slot
from station.devices.piv.containers import CertificateContainer
from station.devices.piv.session import TOKEN_PIN_CHARS
from station.devices.virtual.card import VirtualPivCard
from station.errors import StationError

# The card builder's file names; other files with the same number ("10 - Face Object
# Untampered", "1 - Discovery Object No Tag") are its alternates, not loaded on the card.
DATA_FILES = {
    "1 - Discovery Object": ObjectId.DISCOVERY,
    "2 - Security Object": ObjectId.SECURITY_OBJECT,
    "7 - CCC": ObjectId.CARD_CAPABILITY_CONTAINER,
    "8 - CHUID Object": ObjectId.CHUID,
    "9 - Fingerprints": ObjectId.FINGERPRINTS,
    "10 - Face Object": ObjectId.FACIAL_IMAGE,
    "11 - Printed Information": ObjectId.PRINTED_INFORMATION,
}
CERT_FILES = {3: Slot.AUTHENTICATION, 4: Slot.SIGNATURE, 5: Slot.KEY_MANAGEMENT, 6: Slot.CARD_AUTH}
MAX_OBJECT = 64 * 1024
_NAME = re.compile(r"^(\d+) - (.+)$")


class CardImageError(StationError):
    code = "card-image"
    hint = "point --from at a card folder in the GSA ICAM layout (files named 'N - Name')"


def _numbered(folder: Path) -> dict[int, list[Path]]:
    out: dict[int, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        m = _NAME.match(path.name)
        if m and path.is_file():
            out.setdefault(int(m.group(1)), []).append(path)
    return out


def _choose_certificate(paths: list[Path]) -> Path | None:
    certs = [p for p in paths if p.suffix.lower() in (".crt", ".pem", ".cer")]
    if not certs:
        return None
    own = [p for p in certs if _NAME.match(p.name).group(2).startswith("ICAM_PIV_")]
    return (own or certs)[0]


def _load_certificate(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    try:
        return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError:
        raise CardImageError(f"{path.name} is not a certificate") from None


def read_card_image(folder: str | Path) -> tuple[dict[int, bytes], dict[int, object]]:
    """The objects (tag -> container content) and keys (slot -> private key) of a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CardImageError(f"{folder} is not a folder")
    files = _numbered(folder)
    if not files:
        raise CardImageError(f"{folder} holds no card objects")
    objects: dict[int, bytes] = {}
    keys: dict[int, object] = {}
    for name, tag in DATA_FILES.items():
        path = folder / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if len(data) > MAX_OBJECT:
            raise CardImageError(f"{name} is larger than any PIV object")
        if tag == ObjectId.DISCOVERY and data in (b"", b"\x7e\x00"):
            continue  # a zero-length Discovery Object is an absent one
        objects[tag] = data
    for number, slot in CERT_FILES.items():
        cert_path = _choose_certificate(files.get(number, []))
        if cert_path is None:
            continue
        cert = _load_certificate(cert_path)
        objects[slot.object_id] = CertificateContainer(cert.public_bytes(Encoding.DER)).to_bytes()
        key_path = cert_path.with_suffix(".p12")
        if key_path.exists():
            try:
                key, _, _ = pkcs12.load_key_and_certificates(key_path.read_bytes(), None)
            except ValueError:
                raise CardImageError(f"{key_path.name} is not a PKCS#12 file without password") from None
            if key is not None:
                keys[slot] = key
    return objects, keys


def load_card_image(
    folder: str | Path, *, pin: str = "123456", interface: Interface = Interface.CONTACT
) -> VirtualPivCard:
    """A virtual card holding a card image. The Global PIN (when the Discovery Object says it
    is primary) is set to the same value as the application PIN."""
    objects, keys = read_card_image(folder)
    card = VirtualPivCard(objects, keys, pin=pin, interface=interface, label=Path(folder).name)
    disco = card.discovery
    if disco is not None and disco.global_pin_satisfies:
        card = VirtualPivCard(objects, keys, pin=pin, global_pin=pin, interface=interface, label=Path(folder).name)
    return card


def blank_token(*, interface: Interface = Interface.CONTACT, label: str = "blank PIV token") -> VirtualPivCard:
    """A PIV token as shipped: default PIN, PUK and management key, no keys, no objects; its PIN
    may use the Derived PIV token alphabet (SP 800-157r1 App. B)."""
    return VirtualPivCard(interface=interface, label=label, pin_characters=TOKEN_PIN_CHARS)
