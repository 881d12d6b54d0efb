"""The enrollment service's own TLS certificate: made at ``station init``, pinned by the QR code.

A self-signed P-256 certificate whose subject alternative names are the configured enrollment
host (an IP address or a DNS name) and, for the demo, 127.0.0.1. The key is stored encrypted
with a random passphrase kept in the station's secret store (the OS keyring), like the CA key.
A phone trusts this certificate only through the fingerprint the QR code carries
(RFC 7030 §4.1.1's out-of-band confirmation), never through a public CA.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from station.home import StationHome, write_private

TLS_CERT = "enrollment/tls-cert.pem"
TLS_KEY = "enrollment/tls-key.pem"
TLS_KEY_PASSPHRASE = "enrollment-tls-key-passphrase"  # the secret store's entry
VALIDITY_DAYS = 825


@dataclass(frozen=True)
class TlsIdentity:
    cert_path: Path
    key_path: Path
    passphrase: str
    certificate: x509.Certificate

    @property
    def fingerprint(self) -> str:
        """The QR code's ``fp``: lowercase hex SHA-256 of the certificate's DER."""
        return fingerprint(self.certificate)


def fingerprint(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _san(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for name in dict.fromkeys([host, "127.0.0.1"]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    return names


def create(home: StationHome, secrets_store, host: str, station_id: str) -> TlsIdentity:
    """A new TLS certificate and key for ``host`` (the passphrase into ``secrets_store``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Derived PIV Station enrollment {station_id[:8]}")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=VALIDITY_DAYS))
            .add_extension(x509.SubjectAlternativeName(_san(host)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    passphrase = secrets.token_urlsafe(32)
    secrets_store.put(TLS_KEY_PASSPHRASE, passphrase)
    write_private(home.path(TLS_KEY), key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.BestAvailableEncryption(passphrase.encode())))
    write_private(home.path(TLS_CERT), cert.public_bytes(serialization.Encoding.PEM))
    return TlsIdentity(home.path(TLS_CERT), home.path(TLS_KEY), passphrase, cert)


def load(home: StationHome, secrets_store) -> TlsIdentity | None:
    """The station's TLS identity, or None when ``station init`` made none (an older home)."""
    cert_path, key_path = home.path(TLS_CERT), home.path(TLS_KEY)
    if not (cert_path.is_file() and key_path.is_file()):
        return None
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return TlsIdentity(cert_path, key_path, secrets_store.get(TLS_KEY_PASSPHRASE), cert)
