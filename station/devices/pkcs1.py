"""EMSA-PKCS1-v1_5 pieces built on the host for devices that do raw RSA (RFC 8017 §9.2)."""

from __future__ import annotations

DIGEST_INFO_PREFIX = {  # RFC 8017 §9.2 note 1
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def digest_info(hash_name: str, digest: bytes) -> bytes:
    """The DER DigestInfo of ``digest`` (what CKM_RSA_PKCS signs)."""
    return DIGEST_INFO_PREFIX[hash_name] + digest


def emsa_pkcs1_v15(hash_name: str, digest: bytes, modulus_bytes: int) -> bytes:
    """The full encoded block ``00 01 FF.. 00 DigestInfo`` (what a PIV card exponentiates)."""
    t = digest_info(hash_name, digest)
    if modulus_bytes < len(t) + 11:
        raise ValueError("modulus too short for PKCS#1 v1.5 with this hash")
    return b"\x00\x01" + b"\xff" * (modulus_bytes - len(t) - 3) + b"\x00" + t
