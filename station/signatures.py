"""The station's one signature check, and its one signing call: ECDSA (X9.62 DER signature) or
RSA PKCS#1 v1.5 (RFC 8017 §8.2), the two kinds of key a PIV card, a token, the CA and the
audit key hold (SP 800-78-4 Table 3-1). A key of another kind is refused by name, never
checked some other way."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from station.errors import StationError


class UnsupportedKeyType(StationError):
    """A key that is neither EC nor RSA where a signature is checked or made."""

    code = "signature.key_type"
    hint = "use an EC (P-256, P-384) or RSA key"

    def __init__(self, key: object):
        super().__init__(f"a {type(key).__name__} is neither an EC nor an RSA key")


def verify_signature(public_key: object, signature: bytes, data: bytes, hash_algorithm: hashes.HashAlgorithm) -> None:
    """Check ``signature`` over ``data``: raises ``cryptography.exceptions.InvalidSignature``
    when it does not verify, :class:`UnsupportedKeyType` for a key neither EC nor RSA."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
    elif isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
    else:
        raise UnsupportedKeyType(public_key)


def sign_data(private_key: object, data: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
    """The signature :func:`verify_signature` checks, made with a key held in this process."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(data, ec.ECDSA(hash_algorithm))
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(data, padding.PKCS1v15(), hash_algorithm)
    raise UnsupportedKeyType(private_key)
