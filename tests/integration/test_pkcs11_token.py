"""PKCS#11 tokens on SoftHSM2, with OpenSC's pkcs11-tool as the witness."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID

from station.devices.pkcs11 import Pkcs11Error, Pkcs11Token, Pkcs11Uri, UriError
from station.devices.errors import PinIncorrect
from tests.conftest import SOFTHSM_MODULE, init_softhsm_token
from tests.unit.certs import self_signed_for

TRANSPORT_PIN = "11223344"


@pytest.fixture
def token(softhsm_conf):
    label = f"t-{uuid.uuid4().hex[:8]}"
    return Pkcs11Token(init_softhsm_token(label, TRANSPORT_PIN)), label


def verify(public_key, signature, message, hash_algorithm=hashes.SHA256()):
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, message, ec.ECDSA(hash_algorithm))
    else:
        public_key.verify(signature, message, padding.PKCS1v15(), hash_algorithm)


@pytest.mark.parametrize("algorithm", ["P-256", "P-384", "RSA-2048"])
def test_key_generated_on_token_signs_csr_and_holds_certificate(token, softhsm_conf, algorithm):
    tok, label = token
    key_id, public_key = tok.generate_key(TRANSPORT_PIN, algorithm, "Derived PIV Authentication key")
    info = tok.key_info(TRANSPORT_PIN, key_id)
    assert info.sensitive and not info.extractable and info.local and info.never_extractable

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Applicant")])
    csr = x509.load_der_x509_csr(tok.certification_request(TRANSPORT_PIN, key_id, public_key, subject))
    assert csr.is_signature_valid and csr.public_key() == public_key and csr.subject == subject

    cert = self_signed_for(public_key)
    tok.install_certificate(TRANSPORT_PIN, key_id, cert, "Derived PIV Authentication")
    tok.install_certificate(TRANSPORT_PIN, key_id, cert, "Derived PIV Authentication")  # idempotent
    assert tok.certificate(key_id) == cert

    listing = subprocess.run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", label, "--login",
                              "--pin", TRANSPORT_PIN, "--list-objects"], capture_output=True, text=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    out = listing.stdout
    assert out.count("Certificate Object") == 1
    assert out.count(f"ID:         {key_id.hex()}") == 3  # private key, public key, certificate
    private = out[out.index("Private Key Object"):].split("\n\n")[0]
    assert "sensitive" in private and "never extractable" in private and "local" in private


def test_new_pin_replaces_transport_pin(token):
    tok, _ = token
    key_id, public_key = tok.generate_key(TRANSPORT_PIN, "P-256", "k")
    tok.change_pin(TRANSPORT_PIN, "Xy7Kq2")
    with pytest.raises(PinIncorrect) as info:
        tok.sign(TRANSPORT_PIN, key_id, b"x")
    assert TRANSPORT_PIN not in str(info.value)
    # the same wrong-PIN error as a PIV card's, with its code; a token does not say the tries left
    assert info.value.code == "pin-incorrect" and info.value.retries_left is None and info.value.sw is None
    verify(public_key, tok.sign("Xy7Kq2", key_id, b"self-test"), b"self-test")


def test_wrong_transport_pin_and_missing_token(token, softhsm_conf):
    tok, _ = token
    with pytest.raises(PinIncorrect):
        tok.generate_key("00000000", "P-256", "k")
    with pytest.raises(Pkcs11Error) as info:
        Pkcs11Token(f"pkcs11:token=absent?module-path={SOFTHSM_MODULE}")
    assert info.value.code == "no-token"
    with pytest.raises(Pkcs11Error, match="unsupported key algorithm"):
        tok.generate_key(TRANSPORT_PIN, "P-521", "k")


def test_uri_parsing_and_pin_sources(tmp_path):
    uri = Pkcs11Uri.parse(f"pkcs11:token=My%20Token;object=key?module-path={SOFTHSM_MODULE}&pin-value=1234%2056")
    assert uri.token == "My Token" and uri.object == "key" and uri.pin() == "1234 56"
    assert "1234" not in str(uri) and "1234" not in repr(uri) and str(uri).startswith("pkcs11:token=My%20Token")
    pin_file = tmp_path / "pin"
    pin_file.write_text("777888\n")
    assert Pkcs11Uri.parse(f"pkcs11:token=t?pin-source=file:{pin_file}").pin() == "777888"
    for bad, why in [("token=t", "starts with"), ("pkcs11:tokn=t", "unknown"), ("pkcs11:token", "no value"),
                     ("pkcs11:token=a;token=b", "twice"), ("pkcs11:token=t?module-path=/nope.so", None)]:
        with pytest.raises(UriError, match=why):
            u = Pkcs11Uri.parse(bad)
            u.module_path
    with pytest.raises(UriError, match="no PIN"):
        Pkcs11Uri.parse("pkcs11:token=t").pin()


def test_uri_id_is_binary():
    """RFC 7512 §2.3: ``id`` is the CKA_ID's bytes, percent-encoded, any byte value."""
    uri = Pkcs11Uri.parse("pkcs11:token=T%C3%A9st;id=%01%7F%80%A0%FF;type=private")
    assert uri.key_id == bytes([0x01, 0x7F, 0x80, 0xA0, 0xFF]) and uri.token == "T\u00e9st"
    assert Pkcs11Uri.parse(str(uri)).key_id == uri.key_id and "id=%01%7F%80%A0%FF" in str(uri)
    assert Pkcs11Uri.parse("pkcs11:object=k").key_id is None
    with pytest.raises(UriError, match="percent-encoding"):
        Pkcs11Uri.parse("pkcs11:token=%FF")  # a label is UTF-8 text


@pytest.mark.parametrize("text", [
    f"pkcs11:token=t?module-path={SOFTHSM_MODULE}&pin-value55667788",     # the typo that printed the PIN
    f"pkcs11:token=t?module-path={SOFTHSM_MODULE}&pinvalue=55667788",
    f"pkcs11:token=t?module-path={SOFTHSM_MODULE}&55667788",
    "pkcs11:token=t?module-path=/opt/55667788/p11.so",
    "pkcs11:token=t?pin-source=file:/run/55667788/pin",
    "pkcs11:token=t?pin-source=keyring:55667788/x",
    "pkcs11:token=t?pin-source=55667788:x",
])
def test_uri_errors_never_repeat_query_text(text, secret_service):
    errors = []
    for step in (lambda: Pkcs11Uri.parse(text).module_path, lambda: Pkcs11Uri.parse(text).pin()):
        try:
            step()
        except UriError as exc:
            errors.append(exc.one_line())
    assert errors and not [e for e in errors if "55667788" in e]


def test_missing_pin_comes_from_the_callers_entry():
    asked = []
    uri = Pkcs11Uri.parse(f"pkcs11:token=t?module-path={SOFTHSM_MODULE}")
    assert uri.pin(lambda: asked.append(1) or "55667788") == "55667788" and asked == [1]
    assert Pkcs11Uri.parse("pkcs11:token=t?pin-value=1234").pin(lambda: "other") == "1234"
    with pytest.raises(UriError, match="carries no PIN") as info:
        uri.pin()
    assert "pin-source" in info.value.hint
