"""VirtualPivToken at APDU level: the vendor commands, management key algorithms by firmware,
RESET's precondition and the PIN policies. The host side here is written from the published
encodings (cipher blocks with ``cryptography``, APDUs by hand), not with the token's code."""

from __future__ import annotations

import hashlib
import os

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from station.devices import tlv
from station.devices.virtual import VirtualPivCard, VirtualPivToken, blank_token

DEFAULT_KEY = bytes.fromhex("010203040506070801020304050607080102030405060708")
SELECT = bytes.fromhex("00A4040009A00000030800001000")
TDES, AES128, AES192, AES256 = 0x03, 0x08, 0x0A, 0x0C


def tx(card, hexstr: str, data: bytes = b"") -> tuple[bytes, int]:
    header = bytes.fromhex(hexstr)
    reply, sw = card.transmit(header + (bytes([len(data)]) + data if data else b""))
    while sw >> 8 == 0x61:  # GET RESPONSE for the rest
        more, sw = card.transmit(bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF]))
        reply += more
    return reply, sw


def tlvs(data: bytes) -> dict[int, bytes]:
    """One-byte tags, one-byte lengths: enough for the replies read here."""
    out, pos = {}, 0
    while pos < len(data):
        tag, length = data[pos], data[pos + 1]
        out[tag] = data[pos + 2 : pos + 2 + length]
        pos += 2 + length
    return out


def token(firmware=(5, 4, 3)) -> VirtualPivToken:
    t = blank_token(firmware=firmware, serial=13572468)
    assert t.transmit(SELECT)[1] == 0x9000
    return t


def _cipher(alg: int, key: bytes) -> Cipher:
    return Cipher(TripleDES(key) if alg == TDES else algorithms.AES(key), modes.ECB())


def authenticate(card, alg: int, key: bytes) -> int:
    """Mutual authentication of the management key as yubikit does it (witness first).
    Returns the final status word (or the first step's when that fails)."""
    reply, sw = tx(card, f"0087{alg:02X}9B", bytes.fromhex("7C028000"))
    if sw != 0x9000:
        return sw
    witness = reply[4:]
    dec = _cipher(alg, key).decryptor()
    plain = dec.update(witness) + dec.finalize()
    challenge = os.urandom(len(witness))
    body = bytes([0x80, len(plain)]) + plain + bytes([0x81, len(challenge)]) + challenge
    reply, sw = tx(card, f"0087{alg:02X}9B", bytes([0x7C, len(body)]) + body)
    if sw == 0x9000:
        enc = _cipher(alg, key).encryptor()
        assert reply[4:] == enc.update(challenge) + enc.finalize()  # the token knows the key too
    return sw


def witness_length(card, alg: int) -> int:
    reply, sw = tx(card, f"0087{alg:02X}9B", bytes.fromhex("7C028000"))
    assert sw == 0x9000
    assert reply[:3] == bytes([0x7C, len(reply) - 2, 0x80])
    return reply[3]


def verify(card, pin: str = "123456") -> int:
    return tx(card, "00200080", pin.encode().ljust(8, b"\xff"))[1]


def generate(card, slot: int, *extra: bytes) -> tuple[bytes, int]:
    body = bytes.fromhex("800111") + b"".join(extra)
    return tx(card, f"004700{slot:02X}", bytes([0xAC, len(body)]) + body)


def sign(card, slot: int, message: bytes = b"derived PIV") -> tuple[bytes, int]:
    digest = hashlib.sha256(message).digest()
    body = bytes.fromhex("8200") + bytes([0x81, len(digest)]) + digest
    return tx(card, f"008711{slot:02X}", bytes([0x7C, len(body)]) + body)


def test_firmware_before_5_7_has_a_3des_management_key_with_8_byte_challenges():
    t = token((5, 4, 3))
    meta = tlvs(tx(t, "00F7009B00")[0])
    assert meta[0x01] == bytes([TDES]) and meta[0x05] == b"\x01" and meta[0x02] == b"\x00\x01"
    assert witness_length(t, TDES) == 8
    assert authenticate(t, AES192, DEFAULT_KEY) == 0x6A86
    assert authenticate(t, TDES, bytes(24)) == 0x6982
    assert authenticate(t, TDES, DEFAULT_KEY) == 0x9000
    assert generate(t, 0x9A)[1] == 0x9000  # authenticated


def test_firmware_5_7_has_an_aes192_management_key_with_16_byte_challenges():
    t = token((5, 7, 1))
    assert tx(t, "00FD0000")[0] == bytes([5, 7, 1])
    assert tlvs(tx(t, "00F7009B00")[0])[0x01] == bytes([AES192])
    assert witness_length(t, AES192) == 16
    assert authenticate(t, TDES, DEFAULT_KEY) == 0x6A86
    assert generate(t, 0x9A)[1] == 0x6982
    assert authenticate(t, AES192, DEFAULT_KEY) == 0x9000
    assert generate(t, 0x9A)[1] == 0x9000


def test_set_management_key_to_aes256_with_touch():
    t = token((5, 4, 3))
    new = bytes(range(32))
    body = bytes([AES256, 0x9B, 32]) + new
    assert tx(t, "00FFFFFE", body)[1] == 0x6982  # not authenticated
    assert authenticate(t, TDES, DEFAULT_KEY) == 0x9000
    assert tx(t, "00FFFFFE", bytes([AES256, 0x9B, 24]) + new[:24])[1] == 0x6A80  # wrong length
    assert tx(t, "00FFFFFE", body)[1] == 0x9000
    meta = tlvs(tx(t, "00F7009B00")[0])
    assert meta[0x01] == bytes([AES256]) and meta[0x02] == b"\x00\x02" and meta[0x05] == b"\x00"
    t.power_on()
    t.transmit(SELECT)
    assert authenticate(t, TDES, DEFAULT_KEY) == 0x6A86
    assert witness_length(t, AES256) == 16
    assert authenticate(t, AES256, new) == 0x9000
    old = token((5, 3, 0))  # AES management keys came with 5.4
    assert authenticate(old, TDES, DEFAULT_KEY) == 0x9000
    assert tx(old, "00FFFFFF", body)[1] == 0x6A80
    assert tx(old, "00FFFFFF", bytes([TDES, 0x9B, 24]) + new[:24])[1] == 0x9000


def test_reset_is_refused_unless_pin_and_puk_are_both_blocked():
    t = token()
    assert authenticate(t, TDES, DEFAULT_KEY) == 0x9000
    assert generate(t, 0x9A)[1] == 0x9000
    assert tx(t, "00FB0000")[1] == 0x6985
    for left in (2, 1, 0):
        assert verify(t, "000000") == 0x63C0 | left
    assert tx(t, "00FB0000")[1] == 0x6985  # the PUK still has tries
    for _ in range(3):
        tx(t, "002C0080", b"00000000" + b"999999\xff\xff")
    assert tlvs(tx(t, "00F7008100")[0])[0x06] == b"\x03\x00"
    assert tx(t, "00FB0000")[1] == 0x9000
    assert tlvs(tx(t, "00F7008000")[0]) == {0x01: b"\xff", 0x05: b"\x01", 0x06: b"\x03\x03"}
    assert tx(t, "00F7009A00")[1] == 0x6A88 and not t.keys
    assert tx(t, "00F700F900")[1] == 0x9000  # the attestation key stays
    assert verify(t) == 0x9000 and authenticate(t, TDES, DEFAULT_KEY) == 0x9000


def test_pin_policy_always_needs_a_verify_before_each_signature():
    t = token()
    authenticate(t, TDES, DEFAULT_KEY)
    public, sw = generate(t, 0x9A, bytes.fromhex("AA0103"))
    assert sw == 0x9000
    assert tlvs(tx(t, "00F7009A00")[0])[0x02] == b"\x03\x01"
    assert sign(t, 0x9A)[1] == 0x6982
    assert verify(t) == 0x9000
    signature, sw = sign(t, 0x9A)
    assert sw == 0x9000
    point = public[5:]  # 7F49 41 86 41 <point>
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    key.verify(signature[4:], hashlib.sha256(b"derived PIV").digest(), ec.ECDSA(Prehashed(hashes.SHA256())))
    assert sign(t, 0x9A)[1] == 0x6982  # spent
    assert tx(t, "0020008000")[1] == 0x9000  # a status VERIFY does not count
    assert sign(t, 0x9A)[1] == 0x6982
    assert verify(t) == 0x9000 and sign(t, 0x9A)[1] == 0x9000


def test_pin_policies_never_and_once_and_the_slot_defaults():
    t = token()
    authenticate(t, TDES, DEFAULT_KEY)
    assert generate(t, 0x9A, bytes.fromhex("AA0101"))[1] == 0x9000
    assert generate(t, 0x9D)[1] == 0x9000
    assert generate(t, 0x9C)[1] == 0x9000
    assert generate(t, 0x9E, bytes.fromhex("AB0103"))[1] == 0x9000
    policies = {s: tlvs(tx(t, f"00F700{s:02X}00")[0])[0x02] for s in (0x9A, 0x9C, 0x9D, 0x9E)}
    assert policies == {0x9A: b"\x01\x01", 0x9C: b"\x03\x01", 0x9D: b"\x02\x01", 0x9E: b"\x01\x03"}
    assert sign(t, 0x9A)[1] == 0x9000  # never: no PIN at all
    assert sign(t, 0x9D)[1] == 0x6982
    assert verify(t) == 0x9000
    assert sign(t, 0x9D)[1] == 0x9000 and sign(t, 0x9D)[1] == 0x9000  # once: the whole session
    assert sign(t, 0x9C)[1] == 0x9000 and sign(t, 0x9C)[1] == 0x6982  # 9C: always
    assert generate(t, 0x9A, bytes.fromhex("AA0104"))[1] == 0x6A80  # match policies need a sensor


def test_set_pin_retries_needs_management_key_and_pin_and_resets_both():
    t = token()
    assert tx(t, "00240080", b"123456\xff\xff" + b"24682468")[1] == 0x9000
    t.power_on()
    t.transmit(SELECT)
    assert tx(t, "00FA0504")[1] == 0x6982
    authenticate(t, TDES, DEFAULT_KEY)
    assert tx(t, "00FA0504")[1] == 0x6982  # PIN not verified
    assert verify(t, "24682468") == 0x9000
    assert tx(t, "00FA0504")[1] == 0x9000
    assert tlvs(tx(t, "00F7008000")[0])[0x06] == b"\x05\x05"
    assert tlvs(tx(t, "00F7008100")[0])[0x06] == b"\x04\x04"
    assert verify(t, "24682468") == 0x63C4 and verify(t) == 0x9000


def test_import_key_is_not_attested_and_a_generated_one_is():
    t = token((5, 7, 1))
    authenticate(t, AES192, DEFAULT_KEY)
    imported = ec.generate_private_key(ec.SECP256R1())
    body = bytes([0x06, 32]) + imported.private_numbers().private_value.to_bytes(32, "big") + bytes.fromhex("AA0101")
    assert tx(t, "00FE119D", body)[1] == 0x9000
    meta = tlvs(tx(t, "00F7009D00")[0])
    assert meta[0x03] == b"\x02" and meta[0x02] == b"\x01\x01"
    assert meta[0x04] == bytes([0x86, 65]) + imported.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert tx(t, "00F99D00")[1] == 0x6A80  # imported
    assert tx(t, "00F99A00")[1] == 0x6A88  # empty
    assert generate(t, 0x9A)[1] == 0x9000
    der, sw = tx(t, "00F99A00")
    assert sw == 0x9000
    cert = x509.load_der_x509_certificate(der)
    container, sw = tx(t, "00CB3FFF", bytes.fromhex("5C035FFF01"))  # free to read, as on a YubiKey
    assert sw == 0x9000
    f9 = x509.load_der_x509_certificate(tlv.tlv_map(tlv.unwrap(container, 0x53))[0x70])
    cert.verify_directly_issued_by(f9)
    f9.verify_directly_issued_by(t.attestation_root)
    assert cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.7")).value.value == \
        bytes.fromhex("0204") + (13572468).to_bytes(4, "big")


def test_firmware_gates_vendor_commands_and_the_plain_card_has_none():
    assert tx(token((5, 2, 7)), "00F7008000")[1] == 0x6D00  # metadata from 5.3
    assert tx(token((4, 3, 5)), "00F8000000")[1] == 0x6D00  # serial in PIV from 5.0
    assert tx(token((5, 4, 3)), "00F8000000")[0] == (13572468).to_bytes(4, "big")
    card = VirtualPivCard()
    card.transmit(SELECT)
    for ins in (0xFD, 0xF8, 0xF7, 0xFB, 0xFF, 0xF9):
        assert tx(card, f"00{ins:02X}0000")[1] == 0x6D00


def test_the_attestation_root_is_the_token_s_own_and_stable_per_serial():
    root = blank_token(serial=1).attestation_root
    assert root.public_key() == blank_token(serial=1).attestation_root.public_key()
    assert root.public_key() != blank_token(serial=2).attestation_root.public_key()
    assert "13572468" in token().attestation_root.subject.rfc4514_string()
