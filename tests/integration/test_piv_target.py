"""The PIV token target over the suite's real pcscd: a blank virtual token in the second
reader is given a key in 9A, its certificate, a CHUID and Discovery Object, the applicant's
PIN and a fresh PUK; OpenSC, which no one here wrote, reads the certificate byte for byte
and signs with the new PIN."""

from __future__ import annotations

import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from station.devices import pcsc
from station.devices.connection import Interface
from station.devices.errors import PinBlocked, PinIncorrect
from station.devices.piv import Slot
from station.devices.piv.constants import KeyRef
from station.devices.piv.fascn import FascN
from station.devices.virtual import blank_token
from station.issuance import selftest
from station.issuance.targets import TargetError, open_target
from station.issuance.targets.base import DeviceMustBeReset
from station.issuance.targets.piv import PivUri, PivUriError
from station.secret_store import DemoFileStore
from tests.integration.test_pkcs11_target import AAL2, LocalCa

OPENSC_PKCS11 = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
NEW_PIN = "k9Pz4mQ1"
SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Applicant")])


@pytest.fixture
def token_reader(pcscd, insert_card):
    def insert(token=None):
        insert_card(token or blank_token(), slot=1)
        return pcscd.reader(1)
    return insert


@pytest.fixture
def store(tmp_path):
    return DemoFileStore(tmp_path / "secrets.json")


def uri(reader: str) -> str:
    return "piv:reader=" + reader.replace(" ", "%20")


def issue(target, ca):
    target.plan_key("P-256")
    target.generate_key("P-256")
    cert = ca.issue(target.proof_of_possession(SUBJECT))
    target.install_certificate(cert, [ca.cert])
    return cert


def test_a_blank_token_is_issued_activated_and_self_tested_and_opensc_agrees(token_reader, store, pcscd):
    reader, ca = token_reader(), LocalCa()
    target = open_target(uri(reader), secrets=store)
    desc = target.describe()
    assert desc.kind == "piv-token" and desc.smart_card and desc.device.kind == "piv" and desc.details["interface"] == "contact"
    cert = issue(target, ca)
    assert target.installed_certificate() == cert
    assert not target.activation_secret_set(NEW_PIN)  # the transport (factory) PIN is still set
    target.set_activation_secret(NEW_PIN)
    assert target.activation_secret_set(NEW_PIN)
    result = selftest.run(target, NEW_PIN, cert, ca.cert, AAL2)
    assert result.passed and set(result.checks) == {"signature", "chain", "validity", "policy"}
    with pytest.raises(PinIncorrect):
        target.sign_challenge("123456", b"challenge")  # the factory PIN no longer opens it

    with pcsc.piv_session(reader) as session:  # a coherent token for middleware
        chuid = session.read_chuid()
        assert FascN.from_bytes(chuid.fascn).agency_code == "9999" and chuid.card_uuid is not None
        assert chuid.expiry == cert.not_valid_after_utc.date()
        assert session.read_discovery().pin_usage_policy[0] == 0x40  # the application PIN, SP 800-157r1 App. B
        with pytest.raises(PinIncorrect):  # the factory PUK was replaced
            session.change_reference_data(KeyRef.PUK, "12345678", "87654321")

    pem = subprocess.run(["pkcs15-tool", "--reader", "1", "--read-certificate", "01"], env=pcscd.env,
                         capture_output=True, text=True, timeout=60)
    assert pem.returncode == 0, pem.stderr
    assert x509.load_pem_x509_certificate(pem.stdout.encode()).public_bytes(Encoding.DER) == cert.public_bytes(Encoding.DER)
    message = b"signed through OpenSC with the applicant's new PIN"
    signed = subprocess.run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--slot-index", "1", "--login", "--pin", NEW_PIN,
                             "--sign", "--id", "01", "--mechanism", "ECDSA", "--signature-format", "sequence",
                             "--input-file", "/dev/stdin", "--output-file", "/dev/stdout"],
                            input=_sha256(message), env=pcscd.env, capture_output=True, timeout=60)
    assert signed.returncode == 0, signed.stderr.decode()
    cert.public_key().verify(signed.stdout, message, ec.ECDSA(hashes.SHA256()))


def test_the_state_finds_the_key_again_and_a_resumed_run_installs_once(token_reader, store):
    reader, ca = token_reader(), LocalCa()
    first = open_target(uri(reader), secrets=store)
    first.plan_key("P-384")
    public = first.generate_key("P-384")
    saved = first.state()
    assert saved["algorithm"] == "ECC_P384" and saved["key"] == "generated" and "123456" not in str(saved)
    second = open_target(uri(reader), secrets=store)
    second.restore(saved)
    assert second.public_key == public
    cert = ca.issue(second.proof_of_possession(SUBJECT))  # signed by the key the first run made
    assert cert.public_key() == public
    second.install_certificate(cert, [ca.cert])
    second.install_certificate(cert, [ca.cert])  # idempotent
    assert second.locate_credential() == cert


def test_cancel_with_the_transport_pin_overwrites_the_key_and_after_activation_asks_for_a_reset(token_reader, store):
    reader, ca = token_reader(), LocalCa()
    target = open_target(uri(reader), secrets=store)
    cert = issue(target, ca)
    target.discard_key()
    assert target.installed_certificate() is None
    with pcsc.piv_session(reader) as session:
        session.verify("123456", token=True)
        other = session.sign(Slot.AUTHENTICATION, target.algorithm, b"x")
    with pytest.raises(Exception):
        cert.public_key().verify(other, b"x", ec.ECDSA(hashes.SHA256()))  # the request's key is gone
    again = open_target(uri(reader), secrets=store)
    issue(again, ca)
    again.set_activation_secret(NEW_PIN)
    with pytest.raises(DeviceMustBeReset):
        again.discard_key()


def test_a_token_that_keeps_the_contactless_rules_is_refused_with_nothing_written(token_reader, store):
    from station.devices.virtual import VirtualPivCard

    token = VirtualPivCard(interface=Interface.CONTACTLESS, label="blank card keeping SP 800-73-4's contactless rules")
    target = open_target(uri(token_reader(token)), secrets=store)
    target.plan_key("P-256")
    with pytest.raises(TargetError, match="contactless") as refused:
        target.generate_key("P-256")
    assert "USB/contact" in refused.value.hint
    with pytest.raises(TargetError, match="contactless"):
        target.generate_key("P-256")  # asked again, the same token is refused again
    assert token.objects == {} and token.keys == {}  # nothing written: no key, no object


def test_a_token_that_allows_management_over_nfc_is_issued_over_it(token_reader, store):
    token, ca = blank_token(interface=Interface.CONTACTLESS), LocalCa()  # YubiKey-like: NFC works as USB
    target = open_target(uri(token_reader(token)), secrets=store)
    assert target.describe().details["interface"] == "contactless"
    cert = issue(target, ca)
    target.set_activation_secret(NEW_PIN)
    assert selftest.run(target, NEW_PIN, cert, ca.cert, AAL2).passed


def test_uri_errors_name_no_query_text():
    assert PivUri.parse("piv:reader=A%20B;serial=7").reader == "A B"
    with pytest.raises(PivUriError) as bad:
        PivUri.parse("piv:reader=A?pin=123456")
    assert "123456" not in str(bad.value)
    with pytest.raises(PivUriError, match="no reader"):
        PivUri.parse("piv:serial=7")
    assert "pin-value" not in str(PivUri.parse("piv:reader=A?pin-value=123456"))


def _sha256(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()


def test_a_token_pulled_after_key_generation_says_so_and_the_run_goes_on_from_its_state(store, pcscd):
    token, ca, reader = blank_token(), LocalCa(), pcscd.reader(1)
    link = pcscd.insert(token, 1)
    first = open_target(uri(reader), secrets=store)
    first.plan_key("P-256")
    public = first.generate_key("P-256")
    saved = first.state()
    pcscd.remove(link, 1)  # pulled
    with pytest.raises(TargetError, match="the PIV token is not in") as pulled:
        first.proof_of_possession(SUBJECT)
    assert "\n" not in str(pulled.value) and "put the token back" in pulled.value.hint
    link = pcscd.insert(token, 1)  # back: a new run restores the state the engine kept
    try:
        again = open_target(uri(reader), secrets=store)
        again.restore(saved)
        cert = ca.issue(again.proof_of_possession(SUBJECT))
        assert cert.public_key() == public  # the key the first run made, not a second one
        again.install_certificate(cert, [ca.cert])
        assert token.objects and len(token.keys) == 1
    finally:
        pcscd.remove(link, 1)


def test_a_management_key_the_station_does_not_know_or_a_blocked_pin_stops_before_anything_is_written(token_reader, store):
    from station.devices.piv.constants import Algorithm
    from station.devices.virtual import VirtualPivCard

    foreign = VirtualPivCard(management_key=bytes(range(24)), management_algorithm=Algorithm.TDEA_3KEY, label="someone's token")
    target = open_target(uri(token_reader(foreign)), secrets=store)
    target.plan_key("P-256")
    with pytest.raises(TargetError, match="management key") as refused:
        target.generate_key("P-256")
    assert "reset" in refused.value.hint and foreign.keys == {} and foreign.objects == {}


def test_a_reused_token_with_a_blocked_pin_is_refused_before_a_key_is_made(token_reader, store):
    token = blank_token()
    token.set_pin_tries(0)
    target = open_target(uri(token_reader(token)), secrets=store)
    target.plan_key("P-256")
    with pytest.raises(PinBlocked, match="blocked") as refused:
        target.generate_key("P-256")
    assert "PUK" in refused.value.hint and token.keys == {}


def test_yubikey_tools_read_what_the_station_wrote_and_the_token_attests_the_key(token_reader, store, pcscd):
    """yubico-piv-tool and yubikey-manager, written for YubiKeys, see the issued certificate in
    9A, a CHUID, the key generated (not imported) with PIN policy once, and ykman's attestation
    of 9A names the very public key the station certified."""
    from tests.integration.test_virtual_token import YKMAN_CANDIDATES, _tool

    token, ca = blank_token(), LocalCa()
    reader = token_reader(token)
    target = open_target(uri(reader), secrets=store, attestation_roots=[token.attestation_root])
    cert = issue(target, ca)
    assert target.state()["attested_serial"] == str(token.serial)  # verified before the key was certified
    target.set_activation_secret(NEW_PIN)
    status = subprocess.run([_tool("yubico-piv-tool", []), "-r", reader, "-a", "status"], env=pcscd.env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "Slot 9a:" in status.stdout and "CN=Applicant" in status.stdout and "CHUID:\tNo data" not in status.stdout
    ykman = _tool("ykman", YKMAN_CANDIDATES)
    info = subprocess.run([ykman, "--reader", reader, "piv", "keys", "info", "9a"], env=pcscd.env,
                          capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert "Origin:                 GENERATED" in info.stdout and "PIN required for use:   ONCE" in info.stdout
    attested = subprocess.run([ykman, "--reader", reader, "piv", "keys", "attest", "9a", "-"], env=pcscd.env,
                              capture_output=True, timeout=60)
    assert attested.returncode == 0, attested.stderr
    assert x509.load_pem_x509_certificate(attested.stdout).public_key() == cert.public_key()
    assert store.get(f"piv-management-key:{token.serial}").startswith("AES_192:")  # rotated off the factory key
    assert token.management_key != bytes.fromhex("010203040506070801020304050607080102030405060708")
    assert len(store.get(f"piv-puk:{token.serial}")) == 8 and target.state()["puk"] == "escrowed"


def test_an_attestation_that_does_not_chain_to_a_configured_root_stops_before_the_key_is_certified(token_reader, store):
    from station.issuance.targets.attestation import AttestationError

    token = blank_token()
    target = open_target(uri(token_reader(token)), secrets=store, attestation_roots=[blank_token().attestation_root])
    target.plan_key("P-256")
    assert target.describe().hardware  # it will be verified, so AAL3 may be asked for ...
    with pytest.raises(AttestationError, match="does not chain to a root"):
        target.generate_key("P-256")  # ... and it is refused here, before any request is signed
    assert target.public_key is None and "attested_serial" not in target.state()


def test_a_token_swapped_in_the_reader_is_refused_by_the_next_step(store, pcscd):
    first, second = blank_token(), blank_token()
    link = pcscd.insert(first, 1)
    target = open_target(uri(pcscd.reader(1)), secrets=store)
    assert target.describe().device.serial == str(first.serial)
    pcscd.remove(link, 1)
    link = pcscd.insert(second, 1)  # another token in the same reader, the target object kept
    try:
        with pytest.raises(TargetError, match=f"another one \\(serial {second.serial}, not {first.serial}\\)"):
            target.installed_certificate()  # the step that would use it refuses it, in its own session
        assert second.objects.keys() == blank_token(serial=1).objects.keys()  # nothing read or written on it
    finally:
        pcscd.remove(link, 1)
