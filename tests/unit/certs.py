"""Small certificate and CHUID builders for tests."""

import datetime as dt
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from station.devices.piv import Chuid, FascN

_ISSUER_KEY = ec.generate_private_key(ec.SECP256R1())


def self_signed_for(public_key) -> x509.Certificate:
    """A certificate for ``public_key``, signed by a throwaway test issuer."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token")])
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public_key)
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(_ISSUER_KEY, hashes.SHA256())
    )


def sample_chuid() -> Chuid:
    fascn = FascN("1234", "5678", "000001", "1", "1", "0000000001", "1", "1234", "1")
    return Chuid(fascn.to_bytes(), uuid.uuid4(), dt.date(2030, 1, 31), b"\x30\x00", uuid.uuid4())
