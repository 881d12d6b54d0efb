"""A PKCS#10 certification request signed by a key that stays on its device.

The request info is built here and its bytes handed to the device's own signing call
(``sign(data, hash_name) -> DER signature``): a PKCS#11 token (C_Sign) and a PIV token
(GENERAL AUTHENTICATE) prove possession the same way.
"""

from __future__ import annotations

from typing import Callable

from asn1crypto import csr as asn1csr
from asn1crypto import keys as asn1keys
from asn1crypto import x509 as asn1x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def certification_request(public_key, subject: x509.Name, sign: Callable[[bytes, str], bytes]) -> bytes:
    """The DER request for ``public_key`` and ``subject``; SHA-384 with a P-384 key, else SHA-256."""
    spki = asn1keys.PublicKeyInfo.load(public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    info = asn1csr.CertificationRequestInfo({
        "version": "v1",
        "subject": asn1x509.Name.load(subject.public_bytes()),
        "subject_pk_info": spki,
        "attributes": [],
    })
    is_ec = spki.algorithm == "ec"
    hash_name = "sha384" if is_ec and spki.curve[1] == "secp384r1" else "sha256"
    return asn1csr.CertificationRequest({
        "certification_request_info": info,
        "signature_algorithm": {"algorithm": f"{hash_name}_{'ecdsa' if is_ec else 'rsa'}"},
        "signature": sign(info.dump(), hash_name),
    }).dump()
