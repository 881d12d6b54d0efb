"""The Signer interface: the CA signs through it and does not care where its key lives.

Two kinds exist: :class:`PrivateKeySigner` (a key decrypted in memory from an encrypted
PKCS#8 file) and :class:`station.ca.pkcs11_signer.Pkcs11Signer` (a key inside a PKCS#11
token). :func:`sign_certificate` and :func:`sign_crl_der` turn a :mod:`cryptography` builder into
a signed certificate or CRL with either.

For a key that :mod:`cryptography` cannot hold (a token), the builder is first signed with a
throw-away placeholder key of the same algorithm family, which yields the exact TBS bytes and
signature AlgorithmIdentifier; the token then signs the TBS bytes and the structure is
reassembled (:mod:`station.ca.der`) and checked against the CA public key.
"""

from __future__ import annotations

import functools
from enum import Enum
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from station.ca import crl_encoding, der
from station.errors import StationError
from station.signatures import sign_data, verify_signature

CAPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
CAPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class SignerError(StationError):
    class Code(str, Enum):
        SIGNER = "ca.signer"
        KEY_TYPE = "ca.key_type"
        KEY_DECRYPT = "ca.key_decrypt"
        BAD_TOKEN_SIGNATURE = "ca.bad_token_signature"
        PKCS11 = "ca.pkcs11"
        PKCS11_PIN = "ca.pkcs11_pin"
        PKCS11_URI = "ca.pkcs11_uri"
        PKCS11_MODULE = "ca.pkcs11_module"
        EXISTS = "ca.exists"

    code = Code.SIGNER.value
    hint = "check the CA key named in station.toml and its keyring entry"


@runtime_checkable
class Signer(Protocol):
    """Something that signs with the CA key: ECDSA (DER signature) or RSA PKCS#1 v1.5."""

    def public_key(self) -> CAPublicKey: ...

    def sign(self, data: bytes, algorithm: hashes.HashAlgorithm) -> bytes: ...

    def describe(self) -> str: ...


def hash_for(public_key: CAPublicKey) -> hashes.HashAlgorithm:
    """SHA-384 for P-384 and RSA-3072+, SHA-256 otherwise (never weaker than SHA-256)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return hashes.SHA384() if public_key.curve.key_size >= 384 else hashes.SHA256()
    return hashes.SHA384() if public_key.key_size >= 3072 else hashes.SHA256()


class PrivateKeySigner:
    """A key held by :mod:`cryptography` in this process (decrypted from an encrypted file)."""

    def __init__(self, key: CAPrivateKey, label: str = "file key"):
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise SignerError("the CA key must be an EC or RSA key", code=SignerError.Code.KEY_TYPE)
        self.key = key
        self.label = label

    def public_key(self) -> CAPublicKey:
        return self.key.public_key()

    def sign(self, data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        return sign_data(self.key, data, algorithm)

    def describe(self) -> str:
        return self.label


def load_encrypted_pkcs8(data: bytes, passphrase: str, label: str) -> PrivateKeySigner:
    try:
        key = serialization.load_pem_private_key(data, passphrase.encode())
    except (ValueError, TypeError) as exc:
        raise SignerError(
            f"cannot decrypt {label}: {exc}",
            code=SignerError.Code.KEY_DECRYPT,
            hint="the keyring entry does not belong to this key file",
        ) from exc
    return PrivateKeySigner(key, label)  # type: ignore[arg-type]


def encrypt_pkcs8(key: CAPrivateKey, passphrase: str) -> bytes:
    """PEM ``ENCRYPTED PRIVATE KEY`` (PKCS#8, PBES2 with AES-256-CBC)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )


@functools.cache
def _placeholder(kind: str) -> CAPrivateKey:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _placeholder_for(public_key: CAPublicKey) -> CAPrivateKey:
    return _placeholder("ec" if isinstance(public_key, ec.EllipticCurvePublicKey) else "rsa")


def _external(tbs: bytes, placeholder_der: bytes, signer: Signer, algorithm: hashes.HashAlgorithm) -> bytes:
    algorithm_identifier = der.sequence_elements(placeholder_der)[1]
    signature = signer.sign(tbs, algorithm)
    try:
        verify_signature(signer.public_key(), signature, tbs, algorithm)
    except InvalidSignature as exc:
        raise SignerError(
            f"{signer.describe()} returned a signature that does not verify",
            code=SignerError.Code.BAD_TOKEN_SIGNATURE,
            hint="check that the token key matches the CA certificate",
        ) from exc
    return der.signed_structure(tbs, algorithm_identifier, signature)


def sign_certificate(builder: x509.CertificateBuilder, signer: Signer) -> x509.Certificate:
    algorithm = hash_for(signer.public_key())
    if isinstance(signer, PrivateKeySigner):
        return builder.sign(signer.key, algorithm)
    draft = builder.sign(_placeholder_for(signer.public_key()), algorithm)
    data = _external(draft.tbs_certificate_bytes, draft.public_bytes(serialization.Encoding.DER), signer, algorithm)
    return x509.load_der_x509_certificate(data)


def sign_crl_der(builder: x509.CertificateRevocationListBuilder, signer: Signer, revoked: bytes = b"") -> bytes:
    """A signed CRL, DER. ``revoked`` is a pre-encoded revokedCertificates list
    (:mod:`station.ca.crl_encoding`) spliced into the builder's entry-less TBSCertList."""
    algorithm = hash_for(signer.public_key())
    draft = builder.sign(_placeholder_for(signer.public_key()), algorithm)
    tbs = crl_encoding.splice_revoked(draft.tbs_certlist_bytes, revoked) if revoked else draft.tbs_certlist_bytes
    return _external(tbs, draft.public_bytes(serialization.Encoding.DER), signer, algorithm)
