"""Card management key (key reference 9B) block ciphers: 3DES and AES (SP 800-78-4 §5)."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # cryptography >= 43 moved 3DES to the decrepit package
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover
    TripleDES = algorithms.TripleDES

from station.devices.piv.constants import Algorithm
from station.errors import StationError

# The well-known default management key of PIV tokens as shipped (YubiKey, OpenSC's piv-tool).
DEFAULT_MANAGEMENT_KEY = bytes.fromhex("010203040506070801020304050607080102030405060708")

KEY_LENGTHS = {
    Algorithm.TDEA_3KEY: 24,
    Algorithm.AES_128: 16,
    Algorithm.AES_192: 24,
    Algorithm.AES_256: 32,
}


class ManagementKeyError(StationError):
    code = "management-key"
    hint = "check the token's management key and its algorithm"


def block_size(algorithm: Algorithm) -> int:
    return 8 if algorithm == Algorithm.TDEA_3KEY else 16


def check_key(algorithm: Algorithm, key: bytes) -> None:
    if algorithm not in KEY_LENGTHS:
        raise ManagementKeyError(f"algorithm {algorithm!r} is not a management key algorithm")
    if len(key) != KEY_LENGTHS[algorithm]:
        raise ManagementKeyError(f"a {algorithm.name} management key is {KEY_LENGTHS[algorithm]} bytes, got {len(key)}")


def _cipher(algorithm: Algorithm, key: bytes) -> Cipher:
    check_key(algorithm, key)
    algo = TripleDES(key) if algorithm == Algorithm.TDEA_3KEY else algorithms.AES(key)
    return Cipher(algo, modes.ECB())


def encrypt_block(algorithm: Algorithm, key: bytes, block: bytes) -> bytes:
    enc = _cipher(algorithm, key).encryptor()
    return enc.update(block) + enc.finalize()


def decrypt_block(algorithm: Algorithm, key: bytes, block: bytes) -> bytes:
    dec = _cipher(algorithm, key).decryptor()
    return dec.update(block) + dec.finalize()
