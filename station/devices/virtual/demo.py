"""A fresh demo PIV card with its own demo PKI (for ``make demo`` and training).

The demo PKI is one root CA that issues the PIV Authentication, Card Authentication and
content-signer certificates; the CHUID carries a CMS signature by the content signer
(SP 800-73-4 Part 1 §3.1.2: detached, eContentType id-PIV-CHUIDSecurityObject).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import uuid
from dataclasses import dataclass

from asn1crypto import algos, cms, x509 as asn1x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID, ObjectIdentifier

from station.devices.connection import Interface
from station.devices.piv.chuid import Chuid
from station.devices.piv.constants import ObjectId, Slot
from station.devices.piv.containers import CertificateContainer, DiscoveryObject
from station.devices.piv.fascn import FascN
from station.devices.virtual.card import VirtualPivCard

OID_FASCN = ObjectIdentifier("2.16.840.1.101.3.6.6")
OID_PIV_CONTENT_SIGNING = ObjectIdentifier("2.16.840.1.101.3.6.7")
OID_CHUID_CONTENT = "2.16.840.1.101.3.6.1"
OID_COMMON_AUTHENTICATION = ObjectIdentifier("2.16.840.1.101.3.2.1.3.13")
OID_COMMON_CARD_AUTH = ObjectIdentifier("2.16.840.1.101.3.2.1.3.17")


@dataclass
class DemoCard:
    card: VirtualPivCard
    root: x509.Certificate
    fascn: FascN
    card_uuid: uuid.UUID


def _name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "U.S. Government"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Demo Agency"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def _certificate(subject, key, issuer, issuer_key, *, ca=False, extensions=(), days=365 * 3):
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _key_usage(**flags) -> x509.KeyUsage:
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]
    return x509.KeyUsage(**{n: flags.get(n, False) for n in names})


def sign_chuid_cms(content: bytes, signer_cert: x509.Certificate, signer_key) -> bytes:
    """A detached CMS SignedData over the CHUID fields, signed with ECDSA P-256/SHA-256."""
    digest = hashlib.sha256(content).digest()
    signed_attrs = cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": [OID_CHUID_CONTENT]}),
        cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
        cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": dt.datetime.now(dt.timezone.utc)})]}),
    ])
    signature = signer_key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
    cert = asn1x509.Certificate.load(signer_cert.public_bytes(Encoding.DER))
    signer = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber(
            {"issuer": cert.issuer, "serial_number": cert.serial_number})}),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
        "signed_attrs": signed_attrs,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
        "signature": signature,
    })
    signed_data = cms.SignedData({
        "version": "v3",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
        "encap_content_info": cms.EncapsulatedContentInfo({"content_type": OID_CHUID_CONTENT}),
        "certificates": [cms.CertificateChoices({"certificate": cert})],
        "signer_infos": [signer],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def make_demo_card(
    *, pin: str = "123456", name: str = "Demo Cardholder", interface: Interface = Interface.CONTACT
) -> DemoCard:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Station Demo PKI"),
                           x509.NameAttribute(NameOID.COMMON_NAME, "Station Demo PIV Root CA")])
    root = _certificate(root_name, root_key, root_name, root_key, ca=True, days=365 * 10,
                        extensions=[(_key_usage(key_cert_sign=True, crl_sign=True), True)])
    serial = int.from_bytes(os.urandom(3), "big") % 1_000_000
    fascn = FascN("9999", "0001", f"{serial:06d}", "1", "1", f"{serial:010d}", "1", "9999", "1")
    card_uuid = uuid.uuid4()
    san = x509.SubjectAlternativeName([
        x509.OtherName(OID_FASCN, b"\x04\x19" + fascn.to_bytes()),
        x509.UniformResourceIdentifier(card_uuid.urn),
    ])
    keys = {slot: ec.generate_private_key(ec.SECP256R1()) for slot in (Slot.AUTHENTICATION, Slot.CARD_AUTH)}
    auth = _certificate(_name(name), keys[Slot.AUTHENTICATION], root_name, root_key, extensions=[
        (_key_usage(digital_signature=True), True), (san, False),
        (x509.CertificatePolicies([x509.PolicyInformation(OID_COMMON_AUTHENTICATION, None)]), False)])
    card_auth = _certificate(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(card_uuid))]),
                             keys[Slot.CARD_AUTH], root_name, root_key, extensions=[
        (_key_usage(digital_signature=True), True), (san, False),
        (x509.CertificatePolicies([x509.PolicyInformation(OID_COMMON_CARD_AUTH, None)]), False)])
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = _certificate(_name("Demo PIV Content Signer"), signer_key, root_name, root_key, extensions=[
        (_key_usage(digital_signature=True), True), (x509.ExtendedKeyUsage([OID_PIV_CONTENT_SIGNING]), False)])
    unsigned = Chuid(fascn=fascn.to_bytes(), card_uuid=card_uuid,
                     expiry=(dt.date.today() + dt.timedelta(days=365 * 5)), cardholder_uuid=uuid.uuid4())
    chuid = dataclasses.replace(unsigned, issuer_signature=sign_chuid_cms(unsigned.signed_content(), signer, signer_key))
    objects = {
        ObjectId.DISCOVERY: DiscoveryObject().to_bytes(),
        ObjectId.CHUID: chuid.to_bytes(),
        ObjectId.X509_PIV_AUTHENTICATION: CertificateContainer(auth.public_bytes(Encoding.DER)).to_bytes(),
        ObjectId.X509_CARD_AUTHENTICATION: CertificateContainer(card_auth.public_bytes(Encoding.DER)).to_bytes(),
    }
    card = VirtualPivCard(objects, keys, pin=pin, interface=interface, label=f"demo card ({name})")
    return DemoCard(card, root, fascn, card_uuid)
