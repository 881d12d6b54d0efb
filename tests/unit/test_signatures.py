"""The one signature check (station/signatures.py): EC and RSA PKCS#1 v1.5, nothing else."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from station.signatures import UnsupportedKeyType, sign_data, verify_signature


@pytest.mark.parametrize("key", [ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1()),
                                 rsa.generate_private_key(public_exponent=65537, key_size=2048)])
@pytest.mark.parametrize("hash_algorithm", [hashes.SHA256(), hashes.SHA384()])
def test_what_is_signed_verifies_and_nothing_else(key, hash_algorithm):
    signature = sign_data(key, b"challenge", hash_algorithm)
    verify_signature(key.public_key(), signature, b"challenge", hash_algorithm)
    with pytest.raises(InvalidSignature):
        verify_signature(key.public_key(), signature, b"challengE", hash_algorithm)
    with pytest.raises(InvalidSignature):
        verify_signature(key.public_key(), signature, b"challenge",
                         hashes.SHA384() if isinstance(hash_algorithm, hashes.SHA256) else hashes.SHA256())


def test_another_kind_of_key_is_refused_by_name():
    key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(UnsupportedKeyType) as info:
        verify_signature(key.public_key(), key.sign(b"x"), b"x", hashes.SHA256())
    assert info.value.code == "signature.key_type" and "Ed25519PublicKey" in str(info.value)
    with pytest.raises(UnsupportedKeyType):
        sign_data(key, b"x", hashes.SHA256())
