"""Test material: a stand-in PIV issuer with PIV Authentication certificates, CSRs, requests."""

from __future__ import annotations

import datetime as dt
import os
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from station.ca.profile import CsrProof
from station.records.models import Operator
from station.terms import AuthMethod, Role
from station.service import issuance, operators

SOFTHSM_MODULE = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"
TOKEN_PIN = "123456"
TOKEN_LABEL = f"ca-suite-{uuid.uuid4().hex[:6]}"  # unique: other suites add tokens to the same SoftHSM
REGISTRAR = "registrar@station.test"
APPROVER = "approver@station.test"
PIV_AUTH_POLICY = x509.ObjectIdentifier("2.16.840.1.101.3.2.1.3.13")


def new_pg_database(server_url: str) -> str:
    """A new, empty database on the throwaway server; returns its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def piv_subject(name: str = "Jane Q. Public") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "U.S. Government"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Department of Testing"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )


class Pki:
    """A PIV card issuer standing in for an agency's: issues PIV Authentication certificates."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"), x509.NameAttribute(NameOID.COMMON_NAME, "Test PIV Issuer")])
        self.name = name
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - dt.timedelta(days=1))
            .not_valid_after(now() + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def piv_auth(self, *, name: str = "Jane Q. Public", days_left: float = 5 * 365, days_old: float = 30) -> x509.Certificate:
        card_key = ec.generate_private_key(ec.SECP256R1())
        return (
            x509.CertificateBuilder()
            .subject_name(piv_subject(name))
            .issuer_name(self.name)
            .public_key(card_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - dt.timedelta(days=days_old))
            .not_valid_after(now() + dt.timedelta(days=days_left))
            .add_extension(x509.CertificatePolicies([x509.PolicyInformation(PIV_AUTH_POLICY, None)]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uuid.uuid4().urn)]), critical=False)
            .sign(self.key, hashes.SHA256())
        )


def new_key(kind: str = "P-256"):
    if kind == "P-256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "P-384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "P-521":
        return ec.generate_private_key(ec.SECP521R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=int(kind.removeprefix("RSA-")))


def csr(key, *, subject: x509.Name | None = None, extensions=(), algorithm=None) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")]))
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    signed = builder.sign(key, algorithm if algorithm is not None else (None if kind_of(key) == "ed" else hashes.SHA256()))
    return signed.public_bytes(serialization.Encoding.PEM)


def kind_of(key) -> str:
    return "ec" if isinstance(key, ec.EllipticCurvePrivateKey) else "rsa" if isinstance(key, rsa.RSAPrivateKey) else "ed"


def ensure_operators(station) -> None:
    with station.db.transaction() as s:
        have = set(s.execute(select(Operator.identity)).scalars())
    if REGISTRAR not in have:
        operators.add_operator(station, REGISTRAR, display_name="Reg", roles=[Role.REGISTRAR], auth_method=AuthMethod.PIV, actor="test")
    if APPROVER not in have:
        operators.add_operator(station, APPROVER, display_name="App", roles=[Role.SUPERVISOR], auth_method=AuthMethod.PIV, actor="test")


def approved_request(station, piv_cert: x509.Certificate, *, aal="AAL2", target="software") -> int:
    ensure_operators(station)
    _, pac_id = issuance.record_applicant(station, piv_cert, actor=REGISTRAR, fascn=os.urandom(25).hex(), cardholder_uuid=str(uuid.uuid4()))
    req = issuance.open_request(station, pac_id, aal=aal, target_kind=target, registrar=REGISTRAR)
    issuance.approve_request(station, req, approver=APPROVER)
    return req


def issue(station, pki: Pki, *, aal="AAL2", target="software", key_kind="P-256", piv_cert=None):
    piv_cert = piv_cert or pki.piv_auth()
    key = new_key(key_kind)
    req = approved_request(station, piv_cert, aal=aal, target=target)
    issued = issuance.issue_certificate(station, req, CsrProof(csr(key)), actor=REGISTRAR)
    return issued, key, piv_cert, req
