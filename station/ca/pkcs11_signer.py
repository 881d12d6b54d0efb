"""A CA key inside a PKCS#11 token, named by an RFC 7512 ``pkcs11:`` URI.

A thin signer over :class:`station.devices.pkcs11.Pkcs11Token`, the station's one PKCS#11
layer (library loading and reload, token lookup, login, keys generated on the token, signing
with host-side hashing and ``CKM_ECDSA`` / ``CKM_RSA_PKCS`` over a DigestInfo). This module
adds what is the CA's own: the URI must name a key (``object`` or ``id``; prefer ``object``:
the shared parser decodes values as UTF-8), a PIN given in the URI (``pin-value``/
``pin-source``) is taken out by :func:`without_pin` before the URI is stored (the station keeps
the CA token's PIN in the OS keyring), and the token's failures become :class:`SignerError`
with the ``ca.pkcs11*`` codes.
"""

from __future__ import annotations

import threading

from cryptography.hazmat.primitives import hashes

from station.ca.signer import CAPublicKey, SignerError
from station.devices.errors import PinBlocked, PinIncorrect
from station.devices.pkcs11.token import ALGORITHMS, Pkcs11Error, Pkcs11Token
from station.devices.pkcs11.uri import Pkcs11Uri, UriError
from station.errors import StationError

HINT = "check the CA key's pkcs11: URI, its token and its PIN in the keyring"


def _ca_error(exc: StationError, what: str, *, pin_hint: str | None = None) -> SignerError:
    """A failure of the token layer, as the CA tells it."""
    if isinstance(exc, PinIncorrect):
        return SignerError("the token refused the PIN", code=SignerError.Code.PKCS11_PIN, hint=pin_hint or HINT)
    if isinstance(exc, UriError):
        return SignerError(str(exc), code=SignerError.Code.PKCS11_URI, hint=exc.hint)
    return SignerError(f"{what}: {exc}", code=SignerError.Code.PKCS11, hint=HINT)


_TOKEN_ERRORS = (Pkcs11Error, UriError, PinIncorrect, PinBlocked)


def parse_key_uri(text: str) -> Pkcs11Uri:
    """An RFC 7512 URI (parsed by :mod:`station.devices.pkcs11.uri`) that names a key."""
    try:
        uri = Pkcs11Uri.parse(text)
    except UriError as exc:
        raise SignerError(str(exc), code=SignerError.Code.PKCS11_URI, hint=exc.hint) from exc
    if uri.object is None and "id" not in uri.path:
        raise SignerError(
            f"the PKCS#11 URI names no key: {uri}", code=SignerError.Code.PKCS11_URI,
            hint="add object=<label> or id=<bytes> to the URI",
        )
    return uri


def uri_pin(uri: Pkcs11Uri) -> str | None:
    """The PIN the URI carries (pin-value or pin-source), if any."""
    if not uri.has_pin:
        return None
    try:
        return uri.pin()
    except UriError as exc:
        raise SignerError(str(exc), code=SignerError.Code.PKCS11_PIN, hint=exc.hint) from exc


def without_pin(text: str) -> str:
    """The URI to store: no pin-value and no pin-source (the PIN goes to the keyring)."""
    uri = parse_key_uri(text)
    return str(Pkcs11Uri(uri.path, {k: v for k, v in uri.query.items() if k not in ("pin-value", "pin-source")}))


def _token(uri: Pkcs11Uri, pin: str | None) -> Pkcs11Token:
    if not uri.query.get("module-path"):
        raise SignerError(
            "no PKCS#11 module for the CA key", code=SignerError.Code.PKCS11_MODULE,
            hint="add ?module-path=/path/to/module.so to the URI",
        )
    if pin is None:
        raise SignerError("no PIN for the CA key's token", code=SignerError.Code.PKCS11_PIN, hint=HINT)
    try:
        return Pkcs11Token(uri)
    except _TOKEN_ERRORS as exc:
        raise _ca_error(exc, f"cannot find the token named by {uri}") from exc


class Pkcs11Signer:
    """Signs with a private key object in a token. The login is held (one logged-in session,
    :meth:`Pkcs11Token.hold_login`) and taken again, with the token found again, once when it
    is gone (the module was re-initialized to find a newly plugged-in token, which closes every
    session of the module, or the token was re-inserted)."""

    def __init__(self, uri: str, pin: str | None):
        self.uri = parse_key_uri(uri)
        self._pin = pin if pin is not None else uri_pin(self.uri)  # the held login holds as much
        self._lock = threading.Lock()
        self._connect()

    def _connect(self) -> None:
        self._token = _token(self.uri, self._pin)
        try:
            self._token.hold_login(self._pin)
            self._key_id = self._token.find_key(self._pin, key_id=self.uri.key_id, label=self.uri.object)
            self._public: CAPublicKey = self._token.public_key(self._key_id)
        except _TOKEN_ERRORS as exc:
            self._token.release()  # no logged-in session left behind
            raise _ca_error(exc, f"cannot use the key {self.uri}", pin_hint="fix the token PIN in the keyring") from exc

    def public_key(self) -> CAPublicKey:
        return self._public

    def sign(self, data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        with self._lock:
            try:
                try:
                    return self._sign(data, algorithm)
                except Pkcs11Error:
                    self._connect()  # the login or the token's slot went with a module reload
                    return self._sign(data, algorithm)
            except _TOKEN_ERRORS as exc:
                raise _ca_error(exc, "the token failed to sign") from exc

    def _sign(self, data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        self._token.hold_login(self._pin)
        return self._token.sign(self._pin, self._key_id, data, algorithm.name)

    def describe(self) -> str:
        return f"PKCS#11 key {without_pin(str(self.uri))}"

    def close(self) -> None:
        self._token.release()  # closed already with the module's other sessions: no error


def generate_on_token(uri: str, pin: str | None, *, algorithm: str = "P-256") -> None:
    """Make a non-extractable, sensitive signing key pair in the token under the URI's label/id."""
    parsed = parse_key_uri(uri)
    pin = pin if pin is not None else uri_pin(parsed)
    if algorithm not in ALGORITHMS:
        raise SignerError(f"unsupported CA key algorithm {algorithm}", code=SignerError.Code.KEY_TYPE)
    token = _token(parsed, pin)
    label = parsed.object
    key_id = parsed.key_id or (label.encode() if label else None)
    try:
        if token.holds_key(pin, **({"label": label} if label else {"key_id": key_id})):
            raise SignerError(
                f"the token already holds a key named by {without_pin(uri)}",
                code=SignerError.Code.EXISTS,
                hint="name another object, or import the existing key with --import-ca/--import-key",
            )
        token.generate_key(pin, algorithm, label, key_id)
    except _TOKEN_ERRORS as exc:
        raise _ca_error(exc, "key generation on the token failed") from exc
