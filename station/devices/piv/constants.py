"""Identifiers of SP 800-73-4 Part 1 (data objects, key references, algorithms, AIDs)."""

from __future__ import annotations

import enum

PIV_AID = bytes.fromhex("A000000308000010000100")
# SELECT may use the truncated AID (right-truncation, ISO 7816-4); cards answer to both.
PIV_AID_SHORT = bytes.fromhex("A00000030800001000")
# SP 800-157r1 Appendix B: the Derived PIV Application on removable tokens.
DERIVED_PIV_AID = bytes.fromhex("A0000003080000200001")
DERIVED_PIV_AID_FULL = bytes.fromhex("A000000308000020000100")

INS_SELECT = 0xA4
INS_GET_DATA = 0xCB
INS_VERIFY = 0x20
INS_CHANGE_REFERENCE_DATA = 0x24
INS_RESET_RETRY_COUNTER = 0x2C
INS_GENERAL_AUTHENTICATE = 0x87
INS_GENERATE_ASYMMETRIC_KEY_PAIR = 0x47
INS_PUT_DATA = 0xDB
INS_GET_RESPONSE = 0xC0
# YubiKey-compatible tokens' vendor instructions (yubikit's names; STANDARDS.md "Tokens"): the
# host side (piv/session.py) sends them, the virtual token (virtual/token.py) answers them
INS_GET_METADATA = 0xF7
INS_GET_SERIAL = 0xF8
INS_ATTEST = 0xF9
INS_SET_PIN_RETRIES = 0xFA
INS_RESET = 0xFB
INS_GET_VERSION = 0xFD
INS_IMPORT_KEY = 0xFE
INS_SET_MANAGEMENT_KEY = 0xFF
ATTESTATION_OBJECT = 0x5FFF01  # the certificate of the token's attestation key (slot F9)
AES_MANAGEMENT_KEY_FROM = (5, 4, 0)  # firmware that takes AES management keys
AES_DEFAULT_FROM = (5, 7, 0)  # firmware whose factory management key is AES-192 (same value), not 3DES
# Yubico's attestation certificate extensions (docs.yubico.com/hardware/oid/oid-piv-arc)
OID_FIRMWARE = "1.3.6.1.4.1.41482.3.3"
OID_SERIAL = "1.3.6.1.4.1.41482.3.7"
OID_POLICY = "1.3.6.1.4.1.41482.3.8"  # PIN policy, touch policy
OID_FORM_FACTOR = "1.3.6.1.4.1.41482.3.9"

TAG_DYNAMIC_AUTH = 0x7C
TAG_AUTH_WITNESS = 0x80
TAG_AUTH_CHALLENGE = 0x81
TAG_AUTH_RESPONSE = 0x82
TAG_AUTH_EXPONENTIATION = 0x85
# GENERATE ASYMMETRIC KEY PAIR template tags of YubiKey's PIV (not SP 800-73-4).
TAG_PIN_POLICY = 0xAA
TAG_TOUCH_POLICY = 0xAB


class ObjectId(enum.IntEnum):
    """BER-TLV tags of the PIV data objects (SP 800-73-4 Part 1 Table 3)."""

    CARD_CAPABILITY_CONTAINER = 0x5FC107
    CHUID = 0x5FC102
    X509_PIV_AUTHENTICATION = 0x5FC105
    FINGERPRINTS = 0x5FC103
    SECURITY_OBJECT = 0x5FC106
    FACIAL_IMAGE = 0x5FC108
    PRINTED_INFORMATION = 0x5FC109
    X509_DIGITAL_SIGNATURE = 0x5FC10A
    X509_KEY_MANAGEMENT = 0x5FC10B
    X509_CARD_AUTHENTICATION = 0x5FC101
    KEY_HISTORY = 0x5FC10C
    DISCOVERY = 0x7E
    BIOMETRIC_GROUP_TEMPLATE = 0x7F61
    X509_SM_CERT_SIGNER = 0x5FC122

    @property
    def tag_bytes(self) -> bytes:
        return self.value.to_bytes(3 if self.value > 0xFFFF else (2 if self.value > 0xFF else 1), "big")


# The 20 retired key management certificates (Table 3: '5FC10D' to '5FC120').
RETIRED_KEY_MANAGEMENT = range(0x5FC10D, 0x5FC121)


class Slot(enum.IntEnum):
    """Key references of the asymmetric keys (SP 800-78-4 Table 6-1)."""

    AUTHENTICATION = 0x9A
    SIGNATURE = 0x9C
    KEY_MANAGEMENT = 0x9D
    CARD_AUTH = 0x9E

    @property
    def object_id(self) -> ObjectId:
        return _SLOT_OBJECTS[self]

    @classmethod
    def parse(cls, text: str) -> "Slot":
        try:
            return cls(int(text, 16))
        except ValueError:
            raise ValueError(f"unknown PIV key slot {text!r}; use 9A, 9C, 9D or 9E") from None

    def __str__(self) -> str:
        return f"{self.value:02X}"


_SLOT_OBJECTS = {
    Slot.AUTHENTICATION: ObjectId.X509_PIV_AUTHENTICATION,
    Slot.SIGNATURE: ObjectId.X509_DIGITAL_SIGNATURE,
    Slot.KEY_MANAGEMENT: ObjectId.X509_KEY_MANAGEMENT,
    Slot.CARD_AUTH: ObjectId.X509_CARD_AUTHENTICATION,
}


class KeyRef(enum.IntEnum):
    """Key references of the authenticators (SP 800-73-4 Part 1 Table 4)."""

    GLOBAL_PIN = 0x00
    PIN = 0x80
    PUK = 0x81
    MANAGEMENT = 0x9B


class Algorithm(enum.IntEnum):
    """Cryptographic mechanism identifiers (SP 800-78-4 Table 6-2)."""

    TDEA_3KEY = 0x03
    RSA_1024 = 0x06
    RSA_2048 = 0x07
    AES_128 = 0x08
    AES_192 = 0x0A
    AES_256 = 0x0C
    ECC_P256 = 0x11
    ECC_P384 = 0x14

    @property
    def is_rsa(self) -> bool:
        return self in (Algorithm.RSA_1024, Algorithm.RSA_2048)

    @property
    def is_ec(self) -> bool:
        return self in (Algorithm.ECC_P256, Algorithm.ECC_P384)

    @property
    def is_symmetric(self) -> bool:
        return self in (Algorithm.TDEA_3KEY, Algorithm.AES_128, Algorithm.AES_192, Algorithm.AES_256)


class PinPolicyOnKey(enum.IntEnum):
    """A YubiKey-compatible token's PIN policy for a key (GENERATE tag AA; GET METADATA; the
    attestation's policy extension). Not the Discovery Object's :class:`~station.devices.piv.containers.PinPolicy`."""

    DEFAULT = 0x00
    NEVER = 0x01
    ONCE = 0x02
    ALWAYS = 0x03


class TouchPolicy(enum.IntEnum):
    """A YubiKey-compatible token's touch policy for a key (GENERATE tag AB)."""

    DEFAULT = 0x00
    NEVER = 0x01
    ALWAYS = 0x02
    CACHED = 0x03
