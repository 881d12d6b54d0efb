"""A CA key inside a PKCS#11 token, named by an RFC 7512 ``pkcs11:`` URI.

URIs are parsed by :mod:`station.devices.pkcs11.uri` (shared with the token targets). Path
attributes used: ``token``, ``serial`` (which token) and ``object``, ``id`` (which key; prefer
``object``: the shared parser decodes values as UTF-8); ``module-path`` names the library. A PIN given in the
URI (``pin-value``/``pin-source``) is taken out by :func:`without_pin` before the URI is
stored; the station keeps the CA token's PIN in the OS keyring.

ECDSA is done as host-side hashing plus ``CKM_ECDSA`` (SoftHSM 2.6 has no
``CKM_ECDSA_SHA256``); RSA uses ``CKM_SHA256_RSA_PKCS``/``CKM_SHA384_RSA_PKCS``.
"""

from __future__ import annotations

import threading

import pkcs11
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from station.ca.signer import CAPublicKey, SignerError
from station.devices.pkcs11.uri import Pkcs11Uri, UriError

_TOKEN_ATTRS = {"token": "token_label", "serial": "token_serial"}  # what python-pkcs11's get_token selects by


class Pkcs11Error(SignerError):
    code = "ca.pkcs11"
    hint = "check the CA key's pkcs11: URI, its token and its PIN in the keyring"


def parse_key_uri(text: str) -> Pkcs11Uri:
    """An RFC 7512 URI (parsed by :mod:`station.devices.pkcs11.uri`) that names a key."""
    try:
        uri = Pkcs11Uri.parse(text)
    except UriError as exc:
        raise Pkcs11Error(str(exc), code="ca.pkcs11_uri", hint=exc.hint) from exc
    if uri.object is None and "id" not in uri.path:
        raise Pkcs11Error(
            f"the PKCS#11 URI names no key: {uri}", code="ca.pkcs11_uri", hint="add object=<label> or id=<bytes> to the URI"
        )
    return uri


def uri_pin(uri: Pkcs11Uri) -> str | None:
    """The PIN the URI carries (pin-value or pin-source), if any."""
    if not uri.has_pin:
        return None
    try:
        return uri.pin()
    except UriError as exc:
        raise Pkcs11Error(str(exc), code="ca.pkcs11_pin", hint=exc.hint) from exc


def without_pin(text: str) -> str:
    """The URI to store: no pin-value and no pin-source (the PIN goes to the keyring)."""
    uri = parse_key_uri(text)
    return str(Pkcs11Uri(uri.path, {k: v for k, v in uri.query.items() if k not in ("pin-value", "pin-source")}))


def _token(uri: Pkcs11Uri, module: str | None) -> pkcs11.Token:
    module = uri.query.get("module-path") or module
    if not module:
        raise Pkcs11Error(
            "no PKCS#11 module for the CA key", code="ca.pkcs11_module", hint="add ?module-path=/path/to/module.so to the URI"
        )
    kwargs = {_TOKEN_ATTRS[k]: v for k, v in uri.path.items() if k in _TOKEN_ATTRS}
    if "token_serial" in kwargs:
        kwargs["token_serial"] = kwargs["token_serial"].encode()
    try:
        lib = pkcs11.lib(module)
        try:
            return lib.get_token(**kwargs)
        except (pkcs11.NoSuchToken, pkcs11.TokenNotPresent):
            # a token initialised or plugged in after the module was loaded: rescan once
            # (as station.devices.pkcs11.token does)
            lib.reinitialize()
            return lib.get_token(**kwargs)
    except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
        raise Pkcs11Error(f"cannot find the token named by {uri}: {type(exc).__name__} {exc}", hint="check the token label/serial and module") from exc


def _open(token: pkcs11.Token, pin: str | None, *, rw: bool = False) -> pkcs11.Session:
    """A session logged in as the user; PKCS#11 login is per application, so a second session
    while another one is logged in is opened without logging in again."""
    try:
        return token.open(rw=rw, user_pin=pin)
    except pkcs11.UserAlreadyLoggedIn:
        return token.open(rw=rw)


def _public_key_from(pub: pkcs11.PublicKey) -> CAPublicKey:
    if pub.key_type == KeyType.EC:
        return serialization.load_der_public_key(encode_ec_public_key(pub))  # type: ignore[return-value]
    n = int.from_bytes(pub[Attribute.MODULUS], "big")
    e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


class Pkcs11Signer:
    """Signs with a private key object in a token; keeps one logged-in session open, and logs
    in again once when that session is gone (the module was re-initialized to find a newly
    plugged-in token, which closes every session of the module, or the token was re-inserted)."""

    _SESSION_GONE = (pkcs11.SessionHandleInvalid, pkcs11.SessionClosed, pkcs11.UserNotLoggedIn,
                     pkcs11.DeviceRemoved, pkcs11.TokenNotPresent)

    def __init__(self, uri: str, pin: str | None, *, module: str | None = None):
        self.uri = parse_key_uri(uri)
        self._pin = pin if pin is not None else uri_pin(self.uri)  # the logged-in session holds as much
        self._module = module
        self._lock = threading.Lock()
        self._connect()

    def _connect(self) -> None:
        token = _token(self.uri, self._module)
        try:
            self._session = _open(token, self._pin)
        except pkcs11.PinIncorrect as exc:
            raise Pkcs11Error("the token refused the PIN", code="ca.pkcs11_pin", hint="fix the token PIN in the keyring") from exc
        except pkcs11.PKCS11Error as exc:
            raise Pkcs11Error(f"cannot log in to the token of {self.uri}: {type(exc).__name__} {exc}") from exc
        try:
            find = {"label": self.uri.object, "id": self.uri.key_id}
            self._key = self._session.get_key(object_class=ObjectClass.PRIVATE_KEY, **find)
            self._public = _public_key_from(self._session.get_key(object_class=ObjectClass.PUBLIC_KEY, **find))
        except pkcs11.PKCS11Error as exc:
            self._session.close()  # no logged-in session left behind
            raise Pkcs11Error(f"cannot use the key {self.uri}: {type(exc).__name__} {exc}") from exc

    def public_key(self) -> CAPublicKey:
        return self._public

    def sign(self, data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        with self._lock:
            try:
                try:
                    return self._sign(data, algorithm)
                except self._SESSION_GONE:
                    self._connect()
                    return self._sign(data, algorithm)
            except pkcs11.PKCS11Error as exc:
                raise Pkcs11Error(f"the token failed to sign: {type(exc).__name__} {exc}") from exc

    def _sign(self, data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        if isinstance(self._public, ec.EllipticCurvePublicKey):
            digest = hashes.Hash(algorithm)
            digest.update(data)
            raw = self._key.sign(digest.finalize(), mechanism=Mechanism.ECDSA)
            half = len(raw) // 2
            return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
        mech = Mechanism.SHA384_RSA_PKCS if isinstance(algorithm, hashes.SHA384) else Mechanism.SHA256_RSA_PKCS
        return self._key.sign(data, mechanism=mech)

    def describe(self) -> str:
        return f"PKCS#11 key {without_pin(str(self.uri))}"

    def close(self) -> None:
        try:
            self._session.close()
        except self._SESSION_GONE:
            pass  # closed already, with the module's other sessions


_CURVES = {"P-256": "secp256r1", "P-384": "secp384r1"}


def generate_on_token(uri: str, pin: str | None, *, algorithm: str = "P-256", module: str | None = None) -> None:
    """Make a non-extractable, sensitive signing key pair in the token under the URI's label/id."""
    parsed = parse_key_uri(uri)
    pin = pin if pin is not None else uri_pin(parsed)
    token = _token(parsed, module)
    label = parsed.object
    key_id = parsed.key_id or (label.encode() if label else None)
    named = {Attribute.LABEL: label} if label else {Attribute.ID: key_id}
    private_template = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True}
    try:
        with _open(token, pin, rw=True) as session:
            for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
                if list(session.get_objects({Attribute.CLASS: cls, **named})):
                    raise Pkcs11Error(
                        f"the token already holds a key named by {without_pin(uri)}",
                        code="ca.exists",
                        hint="name another object, or import the existing key with --import-ca/--import-key",
                    )
            if algorithm in _CURVES:
                params = session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[algorithm])}, local=True
                )
                params.generate_keypair(store=True, label=label, id=key_id, private_template=private_template)
            elif algorithm in ("RSA-2048", "RSA-3072"):
                session.generate_keypair(
                    KeyType.RSA, int(algorithm[4:]), store=True, label=label, id=key_id, private_template=private_template
                )
            else:
                raise Pkcs11Error(f"unsupported CA key algorithm {algorithm}", code="ca.key_type")
    except pkcs11.PinIncorrect as exc:
        raise Pkcs11Error("the token refused the PIN", code="ca.pkcs11_pin") from exc
    except pkcs11.PKCS11Error as exc:
        raise Pkcs11Error(f"key generation on the token failed: {type(exc).__name__} {exc}") from exc
