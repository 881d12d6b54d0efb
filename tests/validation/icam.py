"""The GSA ICAM test card set, read in place from ../shared/icam-test-pki, and what
EXPECTED.md says about each card."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.conftest import CARDS, ICAM, REPO
from tests.conftest import card_folders as card_dirs

__all__ = ["CARDS", "ICAM", "REPO", "card_dirs", "card_signer"]


def card_signer(card: Path):
    """sign(challenge) with the card's PIV Authentication key (its .p12 beside the
    certificate), standing in for GENERAL AUTHENTICATE on key 9A."""
    p12 = sorted(card.glob("3 - ICAM_PIV_*.p12"))[0]
    key, _, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), None)

    def sign(challenge: bytes) -> bytes:
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(challenge, padding.PKCS1v15(), hashes.SHA256())
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key.sign(challenge, ec.ECDSA(hashes.SHA256()))

    return sign
