"""The CA and audit keys as kept in the station home.

* ``[ca] key = "file:ca/ca-key.p8"``: an encrypted PKCS#8 file; its passphrase (random,
  made by the station) is in the OS keyring as ``ca-key-passphrase``.
* ``[ca] key = "pkcs11:token=…;object=…?module-path=…"``: a key in a PKCS#11 token; the URI
  is stored without any PIN, the PIN is in the OS keyring as ``ca-token-pin``.
* The audit key (signs audit chain heads) is always an encrypted PKCS#8 file,
  ``audit/audit-key.p8``, passphrase ``audit-key-passphrase``; its public key sits beside it.

No private key is ever written in the clear, and no passphrase or PIN goes into station.toml.
This module asks nobody: a token PIN or a key file's passphrase that is needed and not given
comes from the provider the caller passes in (:data:`PinProvider`, :data:`PassphraseProvider`;
the command line's read the environment, then ask on the terminal).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from station.ca.ca import CAError, IssuingCA, check_ca_certificate, self_signed_ca_certificate
from station.ca.pkcs11_signer import Pkcs11Signer, generate_on_token, parse_key_uri, uri_pin, without_pin
from station.ca.signer import CAPrivateKey, PrivateKeySigner, Signer, encrypt_pkcs8, load_encrypted_pkcs8
from station.home import StationHome, write_private
from station.secret_store import SecretStore, new_passphrase

CA_CERT = "ca/ca-cert.pem"
CA_KEY = "ca/ca-key.p8"
AUDIT_KEY = "audit/audit-key.p8"
AUDIT_PUBLIC_KEY = "audit/audit-key.pub.pem"

CA_KEY_PASSPHRASE = "ca-key-passphrase"
CA_TOKEN_PIN = "ca-token-pin"
AUDIT_KEY_PASSPHRASE = "audit-key-passphrase"

KEY_ALGORITHMS = ("P-256", "P-384", "RSA-2048", "RSA-3072")

PinProvider = Callable[[], "str | None"]
"""The CA token's PIN when the URI carries none; None when nobody can give it."""
PassphraseProvider = Callable[[Path], "str | None"]
"""The passphrase of an encrypted key file being imported; None when nobody can give it."""


class CAExists(CAError):
    code = "ca.exists"
    hint = "this station home already has an issuing CA; use another --home, or remove it deliberately"


def generate_private_key(algorithm: str) -> CAPrivateKey:
    if algorithm == "P-256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "P-384":
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm in ("RSA-2048", "RSA-3072"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[4:]))
    raise CAError(f"unsupported key algorithm {algorithm}", code=CAError.Code.KEY_TYPE,
                  hint=f"choose one of {', '.join(KEY_ALGORITHMS)}")


def store_file_key(home: StationHome, relative: str, key: CAPrivateKey, store: SecretStore, secret_name: str) -> None:
    passphrase = new_passphrase()
    store.put(secret_name, passphrase)
    write_private(home.path(relative), encrypt_pkcs8(key, passphrase), exclusive=True)


def load_file_key(home: StationHome, relative: str, store: SecretStore, secret_name: str) -> PrivateKeySigner:
    path = home.path(relative)
    return load_encrypted_pkcs8(path.read_bytes(), store.get(secret_name), str(path))


def token_pin(uri: str, ask_pin: PinProvider | None = None) -> str:
    """The token PIN for init/import: from the URI, else from ``ask_pin``."""
    pin = uri_pin(parse_key_uri(uri))
    if pin:
        return pin
    if ask_pin is not None and (pin := ask_pin()) is not None:
        return pin
    raise CAError(
        "no PIN for the PKCS#11 token",
        code=CAError.Code.PKCS11_PIN,
        hint="set STATION_PKCS11_PIN, or run init from a terminal to be asked",
    )


def _refuse_existing(home: StationHome) -> None:
    for relative in (CA_CERT, CA_KEY):
        if home.path(relative).exists():
            raise CAExists(f"{home.path(relative)} already exists")


def _write_cert(home: StationHome, certs: list[x509.Certificate]) -> None:
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    write_private(home.path(CA_CERT), pem, exclusive=True)
    os.chmod(home.path(CA_CERT), 0o644)


def create_ca(
    home: StationHome, store: SecretStore, *, subject: x509.Name, key: str = "file", algorithm: str = "P-256",
    ask_pin: PinProvider | None = None,
) -> tuple[IssuingCA, str]:
    """A new self-signed issuing CA. Returns the CA and the key reference for [ca] key."""
    _refuse_existing(home)
    if key == "file":
        private = generate_private_key(algorithm)
        store_file_key(home, CA_KEY, private, store, CA_KEY_PASSPHRASE)
        signer: Signer = PrivateKeySigner(private, f"file key {home.path(CA_KEY)}")
        key_ref = f"file:{CA_KEY}"
    elif key.startswith("pkcs11:"):
        pin = token_pin(key, ask_pin)
        generate_on_token(key, pin, algorithm=algorithm)
        key_ref = without_pin(key)
        store.put(CA_TOKEN_PIN, pin)
        signer = Pkcs11Signer(key_ref, pin)
    else:
        raise CAError(f"--ca-key must be 'file' or a pkcs11: URI, not {key!r}", code=CAError.Code.KEY_REF)
    cert = self_signed_ca_certificate(subject, signer)
    _write_cert(home, [cert])
    return IssuingCA(cert, signer), key_ref


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CAError(f"cannot read the {what} {path}: {exc.strerror}", code=CAError.Code.UNREADABLE) from exc


def _read_certs(path: Path) -> list[x509.Certificate]:
    data = _read(path, "CA certificate")
    try:
        return x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data else [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise CAError(f"cannot read certificates from {path}: {exc}", code=CAError.Code.BAD_CERTIFICATE) from exc


def import_ca(home: StationHome, store: SecretStore, *, cert_path: Path, key_uri: str, ask_pin: PinProvider | None = None,
              ask_passphrase: PassphraseProvider | None = None) -> tuple[IssuingCA, str]:
    """An existing CA: its certificate (then its chain, PEM) and its key (pkcs11: URI or key file)."""
    _refuse_existing(home)
    certs = _read_certs(cert_path)
    if key_uri.startswith("pkcs11:"):
        pin = token_pin(key_uri, ask_pin)
        key_ref = without_pin(key_uri)
        token_signer = Pkcs11Signer(key_ref, pin)
        try:
            check_ca_certificate(certs[0], token_signer)
        except CAError:
            token_signer.close()
            raise
        store.put(CA_TOKEN_PIN, pin)
        signer: Signer = token_signer
    else:
        path = Path(key_uri.removeprefix("file:"))
        data = _read(path, "CA key")
        passphrase = ask_passphrase(path) if b"ENCRYPTED" in data and ask_passphrase is not None else None
        try:
            private = serialization.load_pem_private_key(data, passphrase.encode() if passphrase else None)
        except (TypeError, ValueError) as exc:
            raise CAError(
                f"cannot read the CA key {path}: {exc}",
                code=CAError.Code.KEY_DECRYPT,
                hint="for an encrypted key set STATION_IMPORT_KEY_PASSPHRASE or run from a terminal",
            ) from exc
        signer = PrivateKeySigner(private, f"file key {home.path(CA_KEY)}")  # type: ignore[arg-type]
        check_ca_certificate(certs[0], signer)
        store_file_key(home, CA_KEY, private, store, CA_KEY_PASSPHRASE)  # type: ignore[arg-type]
        key_ref = f"file:{CA_KEY}"
    _write_cert(home, certs)
    return IssuingCA(certs[0], signer, certs[1:]), key_ref


def load_ca(home: StationHome, config: dict, store: SecretStore) -> IssuingCA:
    section = config.get("ca") or {}
    if "key" not in section:
        raise CAError("the configuration names no CA key", code=CAError.Code.NOT_CONFIGURED, hint="run `station init`")
    key_ref: str = section["key"]
    if key_ref.startswith("pkcs11:"):
        signer: Signer = Pkcs11Signer(key_ref, store.get(CA_TOKEN_PIN))
    else:
        signer = load_file_key(home, key_ref.removeprefix("file:"), store, CA_KEY_PASSPHRASE)
    certs = _read_certs(home.path(section.get("certificate", CA_CERT)))
    return IssuingCA(certs[0], signer, certs[1:])


def create_audit_key(home: StationHome, store: SecretStore) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    store_file_key(home, AUDIT_KEY, private, store, AUDIT_KEY_PASSPHRASE)
    public = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_private(home.path(AUDIT_PUBLIC_KEY), public)


def load_audit_signer(home: StationHome, store: SecretStore) -> PrivateKeySigner:
    return load_file_key(home, AUDIT_KEY, store, AUDIT_KEY_PASSPHRASE)


def load_audit_public_key(home: StationHome) -> ec.EllipticCurvePublicKey:
    return serialization.load_pem_public_key(home.path(AUDIT_PUBLIC_KEY).read_bytes())  # type: ignore[return-value]
