"""TEST ONLY: Android Key Attestation chains made without a phone, under a test root whose
private key is committed in the clear.

The reference phone client sends these with ``--aal3-test-attestation``; the unit tests use
them too. The root (``station/resources/test-attestation/root.pem``, a P-256 key, valid
2025-01-01 to 2045-01-01) is in no configuration the station ships, and nothing in production
trusts it: anyone can sign with ``root-key.pem``. A station accepts these chains only when its
configuration lists ``TEST_ROOT_CERT`` among the phone attestation roots.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from station.enrollment.android_attestation import KEY_DESCRIPTION_OID, KeyDescription

TEST_ROOT_CERT = Path(__file__).resolve().parents[1] / "resources" / "test-attestation" / "root.pem"
TEST_ROOT_KEY = TEST_ROOT_CERT.with_name("root-key.pem")


def make_test_attestation(public_key, challenge: bytes, *, security_level: str = "TrustedEnvironment",
                          now: datetime | None = None) -> list[x509.Certificate]:
    """``[leaf, intermediate]``, as a phone returns its chain without the root: the leaf certifies
    ``public_key`` with a KeyDescription (versions 200, both security levels ``security_level``:
    ``Software``, ``TrustedEnvironment`` or ``StrongBox``; ``challenge``; empty uniqueId and
    authorization lists); the intermediate is a fresh P-256 key signed by the test root. Both are
    valid for one day from an hour before ``now`` (default: the current time)."""
    now = now or datetime.now(timezone.utc)
    root = x509.load_pem_x509_certificate(TEST_ROOT_CERT.read_bytes())
    root_key = serialization.load_pem_private_key(TEST_ROOT_KEY.read_bytes(), password=None)
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    description = KeyDescription({
        "attestationVersion": 200, "attestationSecurityLevel": security_level,
        "keyMintVersion": 200, "keyMintSecurityLevel": security_level,
        "attestationChallenge": challenge, "uniqueId": b"", "softwareEnforced": [], "hardwareEnforced": [],
    }).dump()
    intermediate = (_builder(root.subject, "TEST Android attestation intermediate", intermediate_key.public_key(), now)
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .sign(root_key, hashes.SHA256()))
    leaf = (_builder(intermediate.subject, "Android Keystore Key", public_key, now)
            .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(KEY_DESCRIPTION_OID), description), critical=False)
            .sign(intermediate_key, hashes.SHA256()))
    return [leaf, intermediate]


def _builder(issuer: x509.Name, common_name: str, public_key, now: datetime) -> x509.CertificateBuilder:
    start = now - timedelta(hours=1)  # a phone's clock a little ahead of the station's
    return (x509.CertificateBuilder().issuer_name(issuer)
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + timedelta(days=1)))
