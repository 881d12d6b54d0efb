"""PivSession against the in-process virtual card: every command of the subset."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from station.devices import errors
from station.devices.connection import Interface
from station.devices.piv import Algorithm, KeyRef, ObjectId, PivSession, Slot
from station.devices.piv.mgmkey import DEFAULT_MANAGEMENT_KEY, ManagementKeyError
from station.devices.virtual import VirtualConnection, VirtualPivCard, blank_token, load_card_image
from tests.conftest import CARDS, GOLDEN, TEST_PIN, card_folders


@pytest.fixture
def golden():
    return load_card_image(GOLDEN, pin=TEST_PIN)


def session(card, **kw):
    return PivSession(VirtualConnection(card), **kw)


def verify_signature(cert: x509.Certificate, signature: bytes, message: bytes):
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    else:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


def test_select_returns_application_property_template(golden):
    s = session(golden)
    assert s.application_property_template[0] == 0x61


def test_derived_piv_aid_is_selectable():
    s = PivSession(VirtualConnection(blank_token()), aid=bytes.fromhex("A0000003080000200001"))
    assert s.aid.hex().upper() == "A0000003080000200001"


def test_read_all_objects_of_golden_card(golden):
    s = session(golden)
    assert s.read_chuid().card_uuid.hex == "94e28c6884db44db8a0ef502d6689b14"
    for slot in Slot:
        assert s.read_certificate(slot).serial_number > 0
    assert s.read_discovery().pin_policy.value == "application"
    assert s.get_data(ObjectId.SECURITY_OBJECT)[:1] == b"\xba"  # BA mapping, BB LDS object
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        s.get_data(ObjectId.FACIAL_IMAGE)  # PIN-protected
    s.verify(TEST_PIN)
    assert len(s.get_data(ObjectId.FACIAL_IMAGE)) > 1000
    assert len(s.get_data(ObjectId.FINGERPRINTS)) > 100
    assert s.get_data(ObjectId.PRINTED_INFORMATION)
    assert s.get_data(ObjectId.CARD_CAPABILITY_CONTAINER)


def test_pin_status_spends_no_try_and_wrong_pin_counts_down(golden):
    s = session(golden)
    assert s.get_pin_status().retries_left == 5
    assert s.get_pin_status().retries_left == 5
    with pytest.raises(errors.PinIncorrect) as info:
        s.verify("999999")
    assert info.value.retries_left == 4
    assert s.get_pin_status().retries_left == 4
    s.verify(TEST_PIN)
    assert s.get_pin_status().verified
    assert golden.pin_tries == 5  # a correct PIN resets the counter


def test_pin_blocks_after_last_try_and_puk_unblocks(golden):
    s = session(golden)
    golden.set_pin_tries(1)
    with pytest.raises(errors.PinIncorrect) as info:
        s.verify("999999")
    assert info.value.retries_left == 0
    with pytest.raises(errors.PinBlocked):
        s.verify(TEST_PIN)
    assert s.get_pin_status().blocked
    s.reset_retry_counter("12345678", "13572468")
    s.verify("13572468")


def test_pin_never_appears_in_errors(golden):
    s = session(golden)
    with pytest.raises(errors.PinIncorrect) as info:
        s.verify("987654")
    assert "987654" not in str(info.value) and "987654" not in repr(info.value.args)
    with pytest.raises(errors.InvalidPinFormat) as info:
        s.verify("12ab")
    assert "12ab" not in str(info.value)
    assert TEST_PIN not in repr(golden)


def test_global_pin_card_28():
    card = load_card_image(CARDS / "28_Disco_Object_Present_Global_PIN_Primary", pin=TEST_PIN)
    s = session(card)
    assert s.read_discovery().pin_policy.value == "global"
    assert s.get_pin_status(KeyRef.GLOBAL_PIN).retries_left == 5
    s.verify(TEST_PIN, KeyRef.GLOBAL_PIN)
    cert = s.read_certificate(Slot.AUTHENTICATION)
    from station.devices.piv.session import algorithm_for_key

    sig = s.sign(Slot.AUTHENTICATION, algorithm_for_key(cert.public_key()), b"challenge")
    verify_signature(cert, sig, b"challenge")


def test_no_global_pin_on_app_pin_only_card(golden):
    with pytest.raises(errors.ReferenceNotFound):
        session(golden).verify(TEST_PIN, KeyRef.GLOBAL_PIN)


@pytest.mark.parametrize("folder", [f for f in card_folders() if f.name.startswith(("46_Golden_FIPS_201-2_PIV", "01_", "53_"))], ids=lambda p: p.name)
def test_sign_with_9a_and_9e_verifies_against_certificates(folder):
    from station.devices.piv.session import algorithm_for_key

    s = session(load_card_image(folder, pin=TEST_PIN))
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        cert = s.read_certificate(Slot.AUTHENTICATION)
        s.sign(Slot.AUTHENTICATION, algorithm_for_key(cert.public_key()), b"x")
    s.verify(TEST_PIN)
    for slot in (Slot.AUTHENTICATION, Slot.CARD_AUTH):
        cert = s.read_certificate(slot)
        sig = s.sign(slot, algorithm_for_key(cert.public_key()), b"fresh challenge")
        verify_signature(cert, sig, b"fresh challenge")


@pytest.mark.parametrize("algorithm, key", [
    (Algorithm.TDEA_3KEY, DEFAULT_MANAGEMENT_KEY),
    (Algorithm.AES_128, bytes(range(16))),
    (Algorithm.AES_192, bytes(range(24))),
    (Algorithm.AES_256, bytes(range(32))),
])
def test_management_key_authentication(algorithm, key):
    card = VirtualPivCard(management_key=key, management_algorithm=algorithm)
    s = session(card)
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        s.generate_asymmetric_key_pair(Slot.AUTHENTICATION, Algorithm.ECC_P256)
    s.authenticate_management_key(key, algorithm)
    assert isinstance(s.generate_asymmetric_key_pair(Slot.AUTHENTICATION, Algorithm.ECC_P256), ec.EllipticCurvePublicKey)


def test_wrong_management_key_is_refused():
    s = session(blank_token())
    with pytest.raises((errors.SecurityStatusNotSatisfied, ManagementKeyError)):
        s.authenticate_management_key(bytes(24), Algorithm.TDEA_3KEY)
    with pytest.raises(ManagementKeyError, match="24 bytes"):
        s.authenticate_management_key(bytes(10), Algorithm.TDEA_3KEY)


@pytest.mark.parametrize("algorithm", [Algorithm.ECC_P256, Algorithm.ECC_P384, Algorithm.RSA_2048])
def test_provision_a_blank_token(algorithm):
    """What a PIV-applet target does: generate on the token, PUT DATA, change PIN, sign."""
    token = blank_token()
    s = session(token)
    s.authenticate_management_key(DEFAULT_MANAGEMENT_KEY)
    public_key = s.generate_asymmetric_key_pair(Slot.AUTHENTICATION, algorithm)
    from tests.unit.certs import self_signed_for

    cert = self_signed_for(public_key)
    s.put_certificate(Slot.AUTHENTICATION, cert, compress=True)
    assert s.read_certificate(Slot.AUTHENTICATION) == cert
    s.change_reference_data(KeyRef.PIN, "123456", "Ab12cd34", token=True)
    with pytest.raises(errors.PinIncorrect):
        s.verify("123456")
    s.verify("Ab12cd34", token=True)
    sig = s.sign(Slot.AUTHENTICATION, algorithm, b"self-test")
    verify_signature(cert, sig, b"self-test")
    s.change_reference_data(KeyRef.PUK, "12345678", "87654321")
    s.reset_retry_counter("87654321", "24682468")
    s.verify("24682468")


def test_put_data_chuid_and_read_back():
    from tests.unit.certs import sample_chuid

    s = session(blank_token())
    s.authenticate_management_key(DEFAULT_MANAGEMENT_KEY)
    chuid = sample_chuid()
    s.put_data(ObjectId.CHUID, chuid.to_bytes())
    assert s.read_chuid() == chuid


def test_contactless_restrictions():
    card = load_card_image(GOLDEN, pin=TEST_PIN, interface=Interface.CONTACTLESS)
    s = session(card)
    assert s.interface is Interface.CONTACTLESS
    assert s.read_chuid().fascn
    assert s.read_certificate(Slot.CARD_AUTH)
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        s.read_certificate(Slot.AUTHENTICATION)
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        s.verify(TEST_PIN)
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        s.sign(Slot.AUTHENTICATION, Algorithm.RSA_2048, b"x")
    cert = s.read_certificate(Slot.CARD_AUTH)
    from station.devices.piv.session import algorithm_for_key

    verify_signature(cert, s.sign(Slot.CARD_AUTH, algorithm_for_key(cert.public_key()), b"x"), b"x")


def test_card_removed_mid_session(golden):
    conn = VirtualConnection(golden)
    s = PivSession(conn)
    conn.remove()
    with pytest.raises(errors.CardRemoved) as info:
        s.read_chuid()
    assert info.value.code == "card-removed"


def test_not_a_piv_card():
    class Other(VirtualPivCard):
        def transmit(self, apdu):
            return b"", 0x6A82

    with pytest.raises(errors.NotPivCard) as info:
        session(Other())
    assert info.value.code == "not-piv"


def test_extended_length_mode_reads_in_one_exchange(golden):
    s = session(golden, extended=True)
    before = s.protocol.apdu_count
    s.read_certificate(Slot.AUTHENTICATION)
    assert s.protocol.apdu_count - before == 1


@pytest.mark.parametrize("folder", card_folders(), ids=lambda p: p.name)
def test_every_card_image_loads_and_reads(folder):
    from station.devices.piv.summary import summarize

    info = summarize(session(load_card_image(folder, pin=TEST_PIN)))
    assert len(info["fascn"]) == 50 and info["pin_retries"] == 5
    assert {c["slot"] for c in info["certificates"]} >= {"9A"}


def test_named_readers_and_pin_reference(golden):
    s = session(golden)
    assert s.pin_key_reference() == KeyRef.PIN
    assert s.read_security_object()[:1] == b"\xba" and s.read_ccc()
    s.verify(TEST_PIN)
    assert s.read_facial_image() == golden.objects[ObjectId.FACIAL_IMAGE]
    assert s.read_fingerprints() == golden.objects[ObjectId.FINGERPRINTS]
    assert s.read_printed_information() == golden.objects[ObjectId.PRINTED_INFORMATION]
    global_card = load_card_image(CARDS / "28_Disco_Object_Present_Global_PIN_Primary", pin=TEST_PIN)
    assert session(global_card).pin_key_reference() == KeyRef.GLOBAL_PIN


def test_short_apdus_chain_commands_to_the_card_and_collect_61xx(golden):
    """With extended length off, a 1 KiB PUT DATA goes as a CLA 10 chain and the read comes
    back through GET RESPONSE; the virtual card reassembles both ways."""
    seen = []
    conn = VirtualConnection(blank_token(), tap=lambda apdu, c: seen.append(apdu[:2]))
    s = PivSession(conn, extended=False)
    s.authenticate_management_key(DEFAULT_MANAGEMENT_KEY)
    s.put_data(ObjectId.PRINTED_INFORMATION, bytes(range(256)) * 4)
    assert [cla for cla, ins in seen if ins == 0xDB] == [0x10, 0x10, 0x10, 0x10, 0x00]
    s.verify("123456")
    seen.clear()
    assert s.get_data(ObjectId.PRINTED_INFORMATION) == bytes(range(256)) * 4
    assert [ins for _, ins in seen] == [0xCB, 0xC0, 0xC0, 0xC0, 0xC0]


class Replies(VirtualPivCard):
    """A card that answers SELECT normally and everything else from a script."""

    def __init__(self, reply):
        super().__init__()
        self.reply = reply

    def transmit(self, apdu):
        if apdu[1] == 0xA4:
            return super().transmit(apdu)
        return self.reply(apdu)


@pytest.mark.parametrize("reply, exc", [
    ((bytes.fromhex("5305300102"), 0x9000), errors.TlvError),            # length past the end
    ((bytes.fromhex("53"), 0x9000), errors.TlvError),                    # truncated TLV
    ((bytes.fromhex("7E00"), 0x9000), errors.TlvError),                  # wrong tag
    ((bytes.fromhex("5302FE00"), 0x9000), errors.TlvError),              # CHUID without FASC-N
    ((b"", 0x6A82), errors.FileNotFound),
    ((b"", 0x6982), errors.SecurityStatusNotSatisfied),
    ((b"\x00" * 256, 0x6100), errors.ProtocolError),                     # endless 61xx
])
def test_malformed_card_replies_give_typed_errors(reply, exc):
    s = session(Replies(lambda apdu: reply))
    with pytest.raises(exc):
        s.read_chuid()


@pytest.mark.parametrize("sw, exc, tries", [(0x63C0, errors.PinIncorrect, 0), (0x63C2, errors.PinIncorrect, 2),
                                            (0x6983, errors.PinBlocked, None)])
def test_verify_status_words(sw, exc, tries):
    s = session(Replies(lambda apdu: (b"", sw)))
    with pytest.raises(exc) as info:
        s.verify(TEST_PIN)
    if tries is not None:
        assert info.value.retries_left == tries


def test_garbage_certificate_container_is_a_typed_error():
    from station.devices.piv.containers import ContainerError

    s = session(Replies(lambda apdu: (bytes.fromhex("530A7003AABBCC710100FE00"), 0x9000)))
    with pytest.raises(ContainerError):
        s.read_certificate(Slot.AUTHENTICATION)


def test_virtual_card_rsa_fast_path_equals_raw_rsa(golden):
    import hashlib

    from station.devices.pkcs1 import emsa_pkcs1_v15
    from station.devices.virtual.card import _pkcs1_fast_path

    key = golden.keys[Slot.AUTHENTICATION]
    n = key.private_numbers()
    for name in ("sha256", "sha384"):
        block = emsa_pkcs1_v15(name, hashlib.new(name, b"challenge").digest(), 256)
        raw = pow(int.from_bytes(block, "big"), n.d, n.public_numbers.n).to_bytes(256, "big")
        assert _pkcs1_fast_path(key, block) == raw
    assert _pkcs1_fast_path(key, b"\x00\x02" + b"\x11" * 254) is None  # not a signature block
