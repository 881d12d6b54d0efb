"""The PKCS#11 issuance target on SoftHSM2: generate, prove possession, install, activate, self-test."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from station.devices.errors import PinIncorrect
from station.issuance import selftest
from station.issuance.targets import TargetError, open_target
from tests.conftest import SOFTHSM_MODULE, init_softhsm_token

AAL2 = "2.16.840.1.101.3.2.1.3.40"
NEW_PIN = "k9Pz4mQ1"


class LocalCa:
    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Test Derived CA {uuid.uuid4().hex[:6]}")])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
                     .not_valid_after(now + dt.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(self.key, hashes.SHA256()))

    def issue(self, csr_der: bytes, policy: str = AAL2) -> x509.Certificate:
        csr = x509.load_der_x509_csr(csr_der)
        assert csr.is_signature_valid
        now = dt.datetime.now(dt.timezone.utc)
        return (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.cert.subject).public_key(csr.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(policy), None)]), critical=False)
                .sign(self.key, hashes.SHA256()))


@pytest.fixture
def target_uri(softhsm_conf):
    return init_softhsm_token(f"d-{uuid.uuid4().hex[:8]}", "55667788")


def test_full_target_sequence_and_self_test(target_uri):
    ca = LocalCa()
    target = open_target(target_uri)
    desc = target.describe()
    assert desc.kind == "pkcs11" and not desc.hardware and "55667788" not in desc.identity
    target.generate_key("P-256")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Applicant")])
    cert = ca.issue(target.proof_of_possession(subject))
    target.install_certificate(cert, [ca.cert])
    assert target.installed_certificate() == cert
    assert not target.activation_secret_set(NEW_PIN)
    target.set_activation_secret(NEW_PIN)
    assert target.activation_secret_set(NEW_PIN)
    result = selftest.run(target, NEW_PIN, cert, ca.cert, AAL2)
    assert result.passed and result.label == "pass" and set(result.checks) == {"signature", "chain", "validity", "policy"}

    other = LocalCa()
    bad = selftest.run(target, NEW_PIN, cert, other.cert, "2.16.840.1.101.3.2.1.3.41")
    assert not bad.passed and bad.checks == {"signature": True, "chain": False, "validity": True, "policy": False}
    with pytest.raises(PinIncorrect):
        selftest.run(target, "Wr0ngPin", cert, ca.cert, AAL2)


def test_restore_finds_key_and_certificate_after_a_crash(target_uri):
    ca = LocalCa()
    first = open_target(target_uri)
    first.generate_key("P-384")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Applicant")])
    cert = ca.issue(first.proof_of_possession(subject))
    first.install_certificate(cert, [ca.cert])
    saved = first.state()
    assert saved == {"key_id": first.key_id.hex(), "key": "generated"}

    resumed = open_target(target_uri)
    resumed.restore(saved)
    assert resumed.installed_certificate() == cert and resumed.public_key == cert.public_key()
    resumed.install_certificate(cert, [ca.cert])  # idempotent on resume
    resumed.set_activation_secret(NEW_PIN)
    assert selftest.run(resumed, NEW_PIN, cert, ca.cert, AAL2).passed


def test_hardware_flag_comes_from_configuration(target_uri):
    assert open_target(target_uri, hardware_modules={SOFTHSM_MODULE}).describe().hardware
    with pytest.raises(TargetError, match="unknown target"):
        open_target("carrier-pigeon:abc")
    with pytest.raises(TargetError, match="generate the key first"):
        open_target(target_uri).proof_of_possession(x509.Name([]))


def test_a_token_removed_and_another_plugged_in(softhsm_conf):
    """The module's slot list dates from when it was loaded: a removed token's slot goes stale
    (SoftHSM answers CKR_GENERAL_ERROR for it), a new token is unknown. One reload finds it."""
    import subprocess

    first_label = f"gone-{uuid.uuid4().hex[:6]}"
    first = open_target(init_softhsm_token(first_label, "55667788"))
    first.generate_key("P-256")  # holds a login on the first token
    subprocess.run(["softhsm2-util", "--delete-token", "--token", first_label], check=True, capture_output=True, timeout=30)
    second = open_target(init_softhsm_token(f"new-{uuid.uuid4().hex[:6]}", "55667788"))
    assert second.describe().details["label"].startswith("new-")
    second.generate_key("P-256")
    assert second.token.key_info("55667788", second.key_id).local
    first.close()  # its session went with the reload: closing is a no-op, not an error


def private_keys_on(uri: str) -> int:
    import subprocess

    label = uri.split("token=")[1].split("?")[0]
    out = subprocess.run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", label, "--login", "--pin", "55667788",
                          "--list-objects", "--type", "privkey"], capture_output=True, text=True, timeout=30, check=True).stdout
    return out.count("Private Key Object")


def test_a_crash_during_key_generation_leaves_no_stray_key(target_uri):
    """The key's CKA_ID is chosen and recorded before C_GenerateKeyPair: resuming from that
    record finds the key the crashed run made instead of generating a second one."""
    first = open_target(target_uri)
    first.plan_key("P-256")
    planned = first.state()
    assert set(planned) == {"key_id"}  # what the engine records before the token works
    made = first.generate_key("P-256")
    first.close()  # ... and the process dies before recording that the key exists

    resumed = open_target(target_uri)
    resumed.restore(planned)
    assert resumed.public_key == made  # found, not made again
    assert resumed.generate_key("P-256") == made
    assert resumed.state() == {"key_id": planned["key_id"], "key": "generated"}
    assert private_keys_on(target_uri) == 1

    fresh = open_target(target_uri)  # planned, crashed before the token made it: made now, once
    fresh.plan_key("P-256")
    again = open_target(target_uri)
    again.restore(fresh.state())
    assert again.public_key is None
    again.generate_key("P-256")
    assert private_keys_on(target_uri) == 2 and again.key_id == fresh.key_id
