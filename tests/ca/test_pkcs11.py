"""CA keys in a PKCS#11 token (SoftHSM2): RFC 7512 URIs and signing through the Signer interface."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from .ca_helpers import new_key
from station.ca.ca import IssuingCA, Revocation, self_signed_ca_certificate
from station.ca.pkcs11_signer import Pkcs11Signer, generate_on_token, parse_key_uri, uri_pin, without_pin
from station.ca.profile import ProfileSettings, plan_certificate
from station.ca.signer import SignerError

NAME = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"), x509.NameAttribute(NameOID.COMMON_NAME, "HSM CA")])
SETTINGS = ProfileSettings(ca_issuers_url="http://pki.test/ca.p7c", crl_url="http://pki.test/ca.crl")


def test_uri_parsing():
    uri = parse_key_uri("pkcs11:token=My%20Token;object=ca%3Bkey;id=%01%02?module-path=/usr/lib/p11.so&pin-value=12%2634")
    assert uri.path["token"] == "My Token" and uri.object == "ca;key"
    assert uri.path["id"].encode("latin-1") == b"\x01\x02"
    assert uri.query["module-path"] == "/usr/lib/p11.so"
    assert uri_pin(uri) == "12&34"
    stripped = without_pin("pkcs11:token=T;object=k?module-path=/m.so&pin-value=1234")
    assert "1234" not in stripped and parse_key_uri(stripped).query == {"module-path": "/m.so"}
    assert "secret" not in without_pin("pkcs11:token=T;object=k?pin-source=file:/run/secret")


@pytest.mark.parametrize("bad", ["file:/x", "pkcs11:token=T", "pkcs11:token"])
def test_bad_uris_refused(bad):
    with pytest.raises(SignerError):
        parse_key_uri(bad)


@pytest.mark.parametrize("algorithm,hash_name", [("P-256", "sha256"), ("P-384", "sha384"), ("RSA-2048", "sha256")])
def test_token_ca_signs_certificates_and_crls(softhsm, pki, algorithm, hash_name):
    uri = softhsm()
    generate_on_token(uri, None, algorithm=algorithm)
    signer = Pkcs11Signer(uri, None)
    try:
        ca = IssuingCA(self_signed_ca_certificate(NAME, signer), signer)
        ca.certificate.verify_directly_issued_by(ca.certificate)
        key = new_key()
        plan = plan_certificate(issuer=ca.certificate, subject_key=key.public_key(), piv_auth=pki.piv_auth(), aal="AAL2", target="software", settings=SETTINGS)
        cert = ca.issue(plan)
        cert.verify_directly_issued_by(ca.certificate)
        assert cert.signature_hash_algorithm.name == hash_name
        now = dt.datetime.now(dt.timezone.utc)
        crl = ca.crl([Revocation(cert.serial_number, now, x509.ReasonFlags.key_compromise)], number=7, this_update=now, next_update=now + dt.timedelta(days=1))
        assert crl.is_signature_valid(ca.certificate.public_key())
        assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    finally:
        signer.close()


def test_generate_refuses_an_existing_label(softhsm):
    uri = softhsm()
    generate_on_token(uri, None)
    with pytest.raises(SignerError) as err:
        generate_on_token(uri, None)
    assert err.value.code == "ca.exists"


def test_wrong_pin_and_missing_key_are_typed_errors(softhsm):
    uri = softhsm()
    generate_on_token(uri, None)
    with pytest.raises(SignerError) as err:
        Pkcs11Signer(without_pin(uri), "000000")
    assert err.value.code == "ca.pkcs11_pin"
    with pytest.raises(SignerError) as err:
        Pkcs11Signer(softhsm("no-such-key"), None)
    assert err.value.code == "ca.pkcs11" and "no-such-key" in str(err.value)


def test_signer_output_is_checked(softhsm):
    """A token key that does not match the certificate's key is caught when signing."""
    from station.ca.signer import sign_certificate

    uri_a, uri_b = softhsm(), softhsm()
    generate_on_token(uri_a, None)
    generate_on_token(uri_b, None)
    a, b = Pkcs11Signer(uri_a, None), Pkcs11Signer(uri_b, None)
    try:
        class Mixed:  # public key of A, signatures of B
            public_key = a.public_key
            sign = b.sign

            def describe(self):
                return "mixed"

        now = dt.datetime.now(dt.timezone.utc)
        builder = (
            x509.CertificateBuilder().subject_name(NAME).issuer_name(NAME).public_key(a.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        )  # fmt: skip
        with pytest.raises(SignerError) as err:
            sign_certificate(builder, Mixed())
        assert err.value.code == "ca.bad_token_signature"
        assert isinstance(sign_certificate(builder, a), x509.Certificate)
    finally:
        a.close()
        b.close()


def test_token_ca_keeps_signing_after_a_new_target_token_reloads_the_module(softhsm, softhsm_conf):
    """Finding a token initialized after the module was loaded re-initializes the module, which
    closes every session of it, the CA's too: the CA logs in again and signs."""
    import uuid

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from station.devices.pkcs11 import Pkcs11Token
    from tests.conftest import init_softhsm_token

    uri = softhsm()
    generate_on_token(uri, None)
    signer = Pkcs11Signer(uri, None)
    try:
        signer.sign(b"before", hashes.SHA256())
        target = Pkcs11Token(init_softhsm_token(f"late-{uuid.uuid4().hex[:6]}", "55667788"))  # unknown: reload
        assert target.describe()["label"].startswith("late-")
        signature = signer.sign(b"after", hashes.SHA256())
        signer.public_key().verify(signature, b"after", ec.ECDSA(hashes.SHA256()))
    finally:
        signer.close()
    idle = Pkcs11Signer(uri, None)
    Pkcs11Token(init_softhsm_token(f"late-{uuid.uuid4().hex[:6]}", "55667788"))  # its session goes with the reload
    idle.close()  # and closing it is not an error
