"""The virtual card's SP 800-73-4 rules at APDU level: reference data formats, 9C's PIN Always,
both forms of management-key authentication, "Always" readable objects, key-generation policies."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from station.devices import errors
from station.devices.piv import Algorithm, KeyRef, ObjectId, PivSession, Slot
from station.devices.piv.mgmkey import DEFAULT_MANAGEMENT_KEY, encrypt_block
from station.devices.piv.session import algorithm_for_key
from station.devices.virtual import VirtualConnection, VirtualPivCard, blank_token, load_card_image
from tests.conftest import GOLDEN, TEST_PIN

SELECT = bytes.fromhex("00A4040009A00000030800001000")
GENERATE_P256 = bytes.fromhex("0047009A05AC03800111")
FF = b"\xff"


def padded(secret: bytes) -> bytes:
    return secret.ljust(8, FF)


def apdu(ins: int, p1: int, p2: int, data: bytes) -> bytes:
    return bytes([0x00, ins, p1, p2, len(data)]) + data


def selected(card: VirtualPivCard) -> VirtualPivCard:
    assert card.transmit(SELECT)[1] == 0x9000
    return card


@pytest.fixture
def golden():
    return selected(load_card_image(GOLDEN, pin=TEST_PIN))


@pytest.mark.parametrize("new", [b"1234", b"12345", b"12ab56", b"Ab12cd34", b"123\xff4567", b"\x00" * 8])
def test_malformed_new_pin_is_6a80_and_spends_no_try(golden, new):
    change = apdu(0x24, 0x00, KeyRef.PIN, padded(TEST_PIN.encode()) + padded(new))
    assert golden.transmit(change) == (b"", 0x6A80)
    wrong_old = apdu(0x24, 0x00, KeyRef.PIN, padded(b"999999") + padded(new))
    for _ in range(6):
        assert golden.transmit(wrong_old) == (b"", 0x6A80)
    assert golden.pin_tries == 5
    puk = padded(b"12345678")
    for _ in range(4):  # more than the PUK's 3 tries: none is spent
        assert golden.transmit(apdu(0x2C, 0x00, KeyRef.PIN, padded(b"87654321") + padded(new)))[1] == 0x6A80
    assert golden.transmit(apdu(0x2C, 0x00, KeyRef.PIN, puk + padded(b"24681357")))[1] == 0x9000
    s = PivSession(VirtualConnection(golden))
    s.verify("24681357")
    with pytest.raises(errors.PinIncorrect):
        s.verify(TEST_PIN)  # the malformed values never became the PIN


def test_pin_of_6_to_8_digits_is_accepted_and_a_puk_is_any_8_bytes(golden):
    assert golden.transmit(apdu(0x24, 0x00, KeyRef.PIN, padded(TEST_PIN.encode()) + b"13572468"))[1] == 0x9000
    # SP 800-73-4 Part 2 §2.4.3: the PUK may be any 8-byte value, so "123" padded with FF is one
    new_puk = padded(b"123")
    assert golden.transmit(apdu(0x24, 0x00, KeyRef.PUK, padded(b"12345678") + new_puk))[1] == 0x9000
    assert golden.transmit(apdu(0x2C, 0x00, KeyRef.PIN, new_puk + padded(b"246813")))[1] == 0x9000
    assert golden.transmit(apdu(0x20, 0x00, KeyRef.PIN, padded(b"246813")))[1] == 0x9000


def test_a_token_takes_the_derived_piv_alphabet_a_card_does_not(golden):
    new = padded(b"123456") + padded(b"Ab12cd")
    assert selected(blank_token()).transmit(apdu(0x24, 0x00, KeyRef.PIN, new))[1] == 0x9000
    assert golden.transmit(apdu(0x24, 0x00, KeyRef.PIN, padded(TEST_PIN.encode()) + padded(b"Ab12cd")))[1] == 0x6A80


def _sign(s: PivSession, card: VirtualPivCard, slot: Slot) -> bytes:
    return s.sign(slot, algorithm_for_key(card.keys[slot].public_key()), b"challenge")


@pytest.mark.parametrize("extended", [True, False], ids=["extended", "chained"])
def test_pin_always_is_9c_alone_and_needs_a_verify_just_before(golden, extended):
    s = PivSession(VirtualConnection(golden), extended=extended)
    s.verify(TEST_PIN)
    _sign(s, golden, Slot.SIGNATURE)
    _sign(s, golden, Slot.AUTHENTICATION)  # 9C's use leaves the PIN verified for 9A and 9D
    _sign(s, golden, Slot.CARD_AUTH)
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        _sign(s, golden, Slot.SIGNATURE)  # the VERIFY was spent
    s.verify(TEST_PIN)
    s.read_chuid()
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        _sign(s, golden, Slot.SIGNATURE)  # a command came between
    s.verify(TEST_PIN)
    _sign(s, golden, Slot.SIGNATURE)
    _sign(s, golden, Slot.AUTHENTICATION)


def _external_authenticate(card: VirtualPivCard, p1: int, key: bytes, algorithm: Algorithm) -> tuple[bytes, int]:
    reply, sw = card.transmit(apdu(0x87, p1, KeyRef.MANAGEMENT, bytes.fromhex("7C028100")))
    assert sw == 0x9000 and reply[:4] == bytes([0x7C, len(reply) - 2, 0x81, len(reply) - 4])
    response = encrypt_block(algorithm, key, reply[4:])
    return card.transmit(apdu(0x87, p1, KeyRef.MANAGEMENT, bytes([0x7C, len(response) + 2, 0x82, len(response)]) + response))


@pytest.mark.parametrize("p1", [0x03, 0x00], ids=["03", "00 (3-key TDEA, SP 800-78-4 Table 6-2)"])
def test_external_management_key_authentication_with_a_card_challenge(p1):
    token = selected(blank_token())
    assert token.transmit(GENERATE_P256)[1] == 0x6982
    assert _external_authenticate(token, p1, DEFAULT_MANAGEMENT_KEY, Algorithm.TDEA_3KEY) == (b"", 0x9000)
    reply, sw = token.transmit(GENERATE_P256)
    assert sw == 0x9000 and reply[:2] == b"\x7f\x49"
    assert isinstance(token.keys[Slot.AUTHENTICATION], ec.EllipticCurvePrivateKey)


def test_external_authentication_refuses_a_wrong_answer_or_no_challenge():
    token = selected(blank_token())
    assert _external_authenticate(token, 0x03, bytes(24), Algorithm.TDEA_3KEY) == (b"", 0x6982)
    assert token.transmit(apdu(0x87, 0x03, KeyRef.MANAGEMENT, bytes.fromhex("7C0A8208") + bytes(8))) == (b"", 0x6A80)
    assert token.transmit(GENERATE_P256)[1] == 0x6982


def test_wrong_management_algorithm_is_6a86():
    aes = selected(VirtualPivCard(management_key=bytes(range(16)), management_algorithm=Algorithm.AES_128))
    for p1 in (0x00, 0x03, 0x0A):  # 00 is 3-key TDEA: wrong for an AES key
        assert aes.transmit(apdu(0x87, p1, KeyRef.MANAGEMENT, bytes.fromhex("7C028100"))) == (b"", 0x6A86)
    assert _external_authenticate(aes, 0x08, bytes(range(16)), Algorithm.AES_128) == (b"", 0x9000)


def test_retired_key_management_and_sm_signer_certificates_need_no_pin(golden):
    golden.objects[0x5FC10D] = b"\x70\x01\x00"
    golden.objects[0x5FC120] = b"\x70\x01\x20"
    golden.objects[ObjectId.X509_SM_CERT_SIGNER] = b"\x70\x01\x22"
    s = PivSession(VirtualConnection(golden))
    assert s.get_data(0x5FC10D) == b"\x70\x01\x00" and s.get_data(0x5FC120) == b"\x70\x01\x20"
    assert s.get_data(ObjectId.X509_SM_CERT_SIGNER) == b"\x70\x01\x22"
    for absent in (0x5FC10E, 0x5FC11F):
        with pytest.raises(errors.FileNotFound):
            s.get_data(absent)
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        s.get_data(ObjectId.FACIAL_IMAGE)  # present and PIN-protected


def test_absent_pin_protected_object_is_6a82():
    s = PivSession(VirtualConnection(VirtualPivCard()))
    with pytest.raises(errors.FileNotFound):
        s.get_data(ObjectId.FACIAL_IMAGE)


GENERATE_WITH_POLICY = bytes.fromhex("AC09800111AA0102AB0101")


@pytest.mark.parametrize("template", ["AC06800111AA0102", "AC06800111AB0101", "AC09800111AA0102AB0101"])
def test_yubikey_pin_and_touch_policies_are_refused_by_a_piv_card(template):
    token = selected(VirtualPivCard())
    assert _external_authenticate(token, 0x03, DEFAULT_MANAGEMENT_KEY, Algorithm.TDEA_3KEY)[1] == 0x9000
    assert token.transmit(apdu(0x47, 0x00, Slot.AUTHENTICATION, bytes.fromhex(template))) == (b"", 0x6A80)
    assert Slot.AUTHENTICATION not in token.keys


def test_key_policies_are_a_subclass_hook():
    class PolicyToken(VirtualPivCard):
        def _accept_key_policies(self, slot, template):
            self.policies = {slot: template}

    token = selected(PolicyToken())
    assert _external_authenticate(token, 0x03, DEFAULT_MANAGEMENT_KEY, Algorithm.TDEA_3KEY)[1] == 0x9000
    reply, sw = token.transmit(apdu(0x47, 0x00, Slot.AUTHENTICATION, GENERATE_WITH_POLICY))
    assert sw == 0x9000 and reply[:2] == b"\x7f\x49"
    assert token.policies[Slot.AUTHENTICATION][0xAA] == b"\x02"
