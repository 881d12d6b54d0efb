"""A PKCS#11 token as an issuance target's device: keys generated on the token.

Key pairs are generated inside the token, private keys sensitive and never extractable
(``CKA_SENSITIVE``, ``CKA_EXTRACTABLE=false``; the token then reports ``CKA_LOCAL``,
``CKA_NEVER_EXTRACTABLE``, ``CKA_ALWAYS_SENSITIVE``) and good for signatures only
(``CKA_DERIVE``, ``CKA_DECRYPT``, ``CKA_UNWRAP`` false: the certificate's key usage is
digitalSignature). Signing hashes on the host: ECDSA with
``CKM_ECDSA`` over a SHA-256/384 digest (SoftHSM 2.6 lacks ``CKM_ECDSA_SHA256``), RSA with
``CKM_RSA_PKCS`` over a DigestInfo. The CSR is built here and signed on the token.

This module is the station's only caller of python-pkcs11: the issuance targets use
:class:`Pkcs11Token` directly, and the CA's key (:mod:`station.ca.pkcs11_signer`) is a thin
signer over it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from contextlib import nullcontext
from dataclasses import dataclass
from enum import Enum

import pkcs11
from asn1crypto import x509 as asn1x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_der_public_key
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11exc
from pkcs11.util.ec import encode_ec_public_key, encode_ecdsa_signature, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

from station.devices.csr import certification_request
from station.devices.errors import PinBlocked, PinIncorrect
from station.devices.pkcs1 import digest_info
from station.devices.pkcs11.remnants import Remnants
from station.devices.pkcs11.uri import Pkcs11Uri
from station.errors import StationError

ALGORITHMS = {"P-256": ("secp256r1", "sha256"), "P-384": ("secp384r1", "sha384"), "RSA-2048": (2048, "sha256"),
              "RSA-3072": (3072, "sha256")}
_LIBS: dict[str, pkcs11.lib] = {}
_HELD: dict[tuple[str, str, str], tuple[bytes, object]] = {}  # (module, label, serial) -> (PIN, logged-in session)


class Pkcs11Error(StationError):
    class Code(str, Enum):
        PKCS11 = "pkcs11"
        MODULE = "pkcs11.module"
        NO_TOKEN = "no-token"
        NO_KEY = "no-key"
        PIN_FORMAT = "pin-format"

    code = Code.PKCS11.value
    hint = "check the token is plugged in and the pkcs11: URI names its module and label"


PIN_INCORRECT_HINT = "type the token's PIN again carefully; when no try is left the PIN is locked"
PIN_LOCKED_HINT = "the token's PIN is locked; re-initialize the token with its SO PIN"


def _translate(exc: Exception, what: str) -> StationError:
    if isinstance(exc, p11exc.PinIncorrect):
        return PinIncorrect(None, f"{what}: the token refused the PIN", hint=PIN_INCORRECT_HINT)
    if isinstance(exc, p11exc.PinLocked):
        return PinBlocked(f"{what}: the token PIN is locked", hint=PIN_LOCKED_HINT)
    if isinstance(exc, (p11exc.PinLenRange, p11exc.PinInvalid)):
        return Pkcs11Error(f"{what}: the token does not accept a PIN of that form", code=Pkcs11Error.Code.PIN_FORMAT)
    if isinstance(exc, (p11exc.NoSuchToken, p11exc.TokenNotPresent)):
        return Pkcs11Error(f"{what}: the token is not present", code=Pkcs11Error.Code.NO_TOKEN, hint="insert the token")
    return Pkcs11Error(f"{what} failed: {type(exc).__name__}")


def library(module_path: str) -> pkcs11.lib:
    """The PKCS#11 module, loaded and initialized once per process."""
    if module_path not in _LIBS:
        try:
            _LIBS[module_path] = pkcs11.lib(module_path)
        except p11exc.PKCS11Error:
            raise Pkcs11Error(f"{module_path} is not a PKCS#11 module", code=Pkcs11Error.Code.MODULE,
                              hint="set module-path= to the token's PKCS#11 library, e.g. opensc-pkcs11.so") from None
    return _LIBS[module_path]


@dataclass(frozen=True)
class KeyInfo:
    key_id: bytes
    label: str
    sensitive: bool
    extractable: bool
    local: bool  # generated on the token
    never_extractable: bool


class Pkcs11Token:
    """One token named by a PKCS#11 URI."""

    def __init__(self, uri: Pkcs11Uri | str):
        self.uri = uri if isinstance(uri, Pkcs11Uri) else Pkcs11Uri.parse(uri)
        self.module = module = self.uri.module_path  # checked once: the property looks at the file
        lib = library(module)
        # the token by the URI's token= (label) and serial= path attributes, else the only one
        select = {name: value for name, value in (("token_label", self.uri.token),
                                                  ("token_serial", self.uri.path.get("serial"))) if value}
        if "token_serial" in select:
            select["token_serial"] = select["token_serial"].encode()
        for attempt in (1, 2):
            try:
                self.token = lib.get_token(**select)
                break
            except p11exc.MultipleTokensReturned:
                raise Pkcs11Error("several tokens match; name one with token=<label>") from None
            except p11exc.PKCS11Error as exc:
                # Not found, or a slot gone stale (SoftHSM: CKR_GENERAL_ERROR for a deleted
                # token): the slot list is from when the module was loaded; reload it once.
                if attempt == 2:
                    raise _translate(exc, f"opening token {self.uri.token!r}") from None
                for key in [k for k in _HELD if k[0] == module]:
                    del _HELD[key]  # C_Finalize closes every session of the module
                lib.reinitialize()  # a token plugged in, removed or initialized since
        # which login this token's operations share (PKCS#11 login state is per process and token)
        self._login_key = (module, self.token.label, str(self.token.serial))
        # (held session, CKA_ID, private key object) of the pair generate_key made in the held
        # session: signing in that session (the certification request) needs no search for it
        self._made: tuple[object, bytes, object] | None = None

    def describe(self) -> dict[str, str]:
        t = self.token
        return {"label": t.label.strip(), "manufacturer": t.manufacturer_id.strip(), "model": t.model.strip(),
                "serial": t.serial.decode(errors="replace").strip() if isinstance(t.serial, bytes) else str(t.serial).strip(),
                "module": self.uri.query.get("module-path", "")}

    def _open(self, pin: str):
        """A session logged in with ``pin``: the held one (left open) when it was logged in with
        the same PIN, else a new one that the caller's ``with`` closes (and logs out)."""
        held = _HELD.get(self._login_key)
        if held is not None:
            if hmac.compare_digest(pin.encode(), held[0]):
                return nullcontext(held[1])
            self.release()  # another PIN: a real C_Login, not the held login state
        try:
            return self.token.open(user_pin=pin, rw=True)
        except Exception as exc:
            raise _translate(exc, "logging in to the token") from None

    def hold_login(self, pin: str) -> None:
        """Keep one session logged in with ``pin`` for the operations that follow, until
        :meth:`release` or a login with another PIN (each C_Login costs the token a PIN check;
        SoftHSM derives a key). PKCS#11 login state belongs to the process, so the hold is
        shared by every :class:`Pkcs11Token` of this token in the process."""
        if self._login_key not in _HELD:
            _HELD[self._login_key] = (pin.encode(), self._open(pin))

    def release(self) -> None:
        """Close the held session, which logs the token out."""
        self._made = None
        held = _HELD.pop(self._login_key, None)
        if held is not None:
            try:
                held[1].close()
            except p11exc.PKCS11Error:
                pass  # gone already (token removed): nothing stays logged in

    # --- keys ----------------------------------------------------------------------------------
    def generate_key(self, pin: str, algorithm: str, label: str, key_id: bytes | None = None) -> tuple[bytes, object]:
        """Generate a key pair on the token, with ``key_id`` as its CKA_ID (default: 16 random
        bytes); returns (CKA_ID, public key)."""
        if algorithm not in ALGORITHMS:
            raise Pkcs11Error(f"unsupported key algorithm {algorithm}; use one of {', '.join(ALGORITHMS)}")
        key_id = key_id or os.urandom(16)
        private = {Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                   Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DECRYPT: False, Attribute.DERIVE: False,
                   Attribute.UNWRAP: False}
        public = {Attribute.TOKEN: True, Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False}
        param, _ = ALGORITHMS[algorithm]
        self._made = None
        with self._open(pin) as session:
            try:
                if algorithm.startswith("P-"):
                    params = session.create_domain_parameters(
                        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(param)}, local=True)
                    pub, priv = params.generate_keypair(store=True, id=key_id, label=label,
                                                        public_template=public, private_template=private)
                    der = encode_ec_public_key(pub)
                else:
                    pub, priv = session.generate_keypair(KeyType.RSA, param, store=True, id=key_id, label=label,
                                                         public_template=public, private_template=private)
                    der = encode_rsa_public_key(pub)
            except p11exc.PKCS11Error as exc:
                raise _translate(exc, "generating the key pair on the token") from None
            held = _HELD.get(self._login_key)
            if held is not None and held[1] is session:  # the session stays open: its handle stays good
                self._made = (session, key_id, priv)
        return key_id, load_der_public_key(der)

    def find_key(self, pin: str, *, key_id: bytes | None = None, label: str | None = None) -> bytes:
        """The CKA_ID of the private key named by ``key_id`` and/or ``label`` (an RFC 7512
        URI's ``id`` and ``object``)."""
        with self._open(pin) as session:
            try:
                return bytes(self._private_key(session, key_id, label=label)[Attribute.ID])
            except p11exc.PKCS11Error as exc:
                raise _translate(exc, "looking for the key on the token") from None

    def holds_key(self, pin: str, *, key_id: bytes | None = None, label: str | None = None) -> bool:
        """Whether a private or public key object with this CKA_ID and/or label exists."""
        named = {**({Attribute.ID: key_id} if key_id is not None else {}),
                 **({Attribute.LABEL: label} if label is not None else {})}
        with self._open(pin) as session:
            try:
                return any(True for kind in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY)
                           for _ in session.get_objects({Attribute.CLASS: kind, **named}))
            except p11exc.PKCS11Error as exc:
                raise _translate(exc, "looking for keys on the token") from None

    def has_private_key(self, pin: str, key_id: bytes) -> bool:
        with self._open(pin) as session:
            return any(True for _ in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key_id}))

    def destroy_key_pair(self, pin: str, key_id: bytes) -> None:
        """Remove the public and private keys stored with ``key_id``, not its certificate, and
        what a killed key generation left without a CKA_ID (:mod:`.remnants`)."""
        self._made = None
        with self._open(pin) as session:
            for kind in (ObjectClass.PUBLIC_KEY, ObjectClass.PRIVATE_KEY):
                for key in list(session.get_objects({Attribute.CLASS: kind, Attribute.ID: key_id})):
                    key.destroy()
            Remnants(self.module, session.handle).destroy()

    def destroy_credential(self, pin: str, key_id: bytes) -> None:
        """Remove everything stored with ``key_id``: the key pair and its certificate."""
        self.destroy_key_pair(pin, key_id)
        with self._open(pin) as session:  # the certificate is a public object with the key's CKA_ID
            for cert in list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key_id})):
                cert.destroy()

    def key_info(self, pin: str, key_id: bytes) -> KeyInfo:
        with self._open(pin) as session:
            key = self._private_key(session, key_id)
            return KeyInfo(key_id, key.label, bool(key[Attribute.SENSITIVE]), bool(key[Attribute.EXTRACTABLE]),
                           bool(key[Attribute.LOCAL]), bool(key[Attribute.NEVER_EXTRACTABLE]))

    @staticmethod
    def _private_key(session, key_id: bytes | None, *, label: str | None = None):
        try:
            return session.get_key(ObjectClass.PRIVATE_KEY, id=key_id, label=label)
        except p11exc.NoSuchKey:
            named = f"ID {key_id.hex()}" if key_id is not None else f"label {label!r}"
            raise Pkcs11Error(f"no private key with {named} on the token", code=Pkcs11Error.Code.NO_KEY) from None
        except p11exc.MultipleObjectsReturned:
            raise Pkcs11Error("several private keys match; name one with id= in the URI", code=Pkcs11Error.Code.NO_KEY) from None

    def sign(self, pin: str, key_id: bytes, message: bytes, hash_name: str = "sha256") -> bytes:
        """Sign on the token; ECDSA signatures come back DER-encoded (X9.62)."""
        digest = hashlib.new(hash_name, message).digest()
        with self._open(pin) as session:
            try:
                made = self._made
                made_here = made is not None and made[0] is session and made[1] == key_id
                key = made[2] if made_here else self._private_key(session, key_id)
                if key.key_type == KeyType.EC:
                    return encode_ecdsa_signature(key.sign(digest, mechanism=Mechanism.ECDSA))
                return key.sign(digest_info(hash_name, digest), mechanism=Mechanism.RSA_PKCS)
            except p11exc.PKCS11Error as exc:
                raise _translate(exc, "signing on the token") from None

    def certification_request(self, pin: str, key_id: bytes, public_key, subject: x509.Name) -> bytes:
        """A PKCS#10 request for ``public_key``, signed by its private key on the token (DER)."""
        return certification_request(public_key, subject, lambda data, hash_name: self.sign(pin, key_id, data, hash_name))

    # --- certificates and PIN ----------------------------------------------------------------------
    def install_certificate(self, pin: str, key_id: bytes, certificate: x509.Certificate, label: str) -> None:
        """Store the certificate on the token with the key's CKA_ID (replacing an earlier one)."""
        der = certificate.public_bytes(Encoding.DER)
        with self._open(pin) as session:
            for old in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key_id}):
                if old[Attribute.VALUE] == der:
                    return  # already installed: idempotent
                old.destroy()
            try:
                session.create_object({
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: False,
                    Attribute.ID: key_id,
                    Attribute.LABEL: label,
                    Attribute.SUBJECT: certificate.subject.public_bytes(),
                    Attribute.ISSUER: certificate.issuer.public_bytes(),
                    Attribute.SERIAL_NUMBER: asn1x509.Certificate.load(der)["tbs_certificate"]["serial_number"].dump(),
                    Attribute.VALUE: der,
                })
            except p11exc.PKCS11Error as exc:
                raise _translate(exc, "storing the certificate on the token") from None

    def certificate(self, key_id: bytes) -> x509.Certificate | None:
        """The certificate stored with ``key_id`` (public object: no login needed)."""
        found = self._find_certificate({Attribute.ID: key_id})
        return found[1] if found else None

    def public_key(self, key_id: bytes):
        """The public key stored with ``key_id`` (a public object: no login needed)."""
        key = self.find_public_key(key_id)
        if key is None:
            raise Pkcs11Error(f"no public key with ID {key_id.hex()} on the token", code=Pkcs11Error.Code.NO_KEY)
        return key

    def find_public_key(self, key_id: bytes):
        """The public key stored with ``key_id``, or None."""
        with self.token.open() as session:
            try:
                key = session.get_key(ObjectClass.PUBLIC_KEY, id=key_id)
            except p11exc.NoSuchKey:
                return None
            der = encode_ec_public_key(key) if key.key_type == KeyType.EC else encode_rsa_public_key(key)
        return load_der_public_key(der)

    def find_certificate(self, label: str) -> tuple[bytes, x509.Certificate] | None:
        """(CKA_ID, certificate) of the certificate object with ``label``, if any."""
        return self._find_certificate({Attribute.LABEL: label})

    def _find_certificate(self, attributes: dict) -> tuple[bytes, x509.Certificate] | None:
        """The first certificate object matching ``attributes`` (public objects: no login)."""
        with self.token.open() as session:
            for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, **attributes}):
                return bytes(obj[Attribute.ID]), x509.load_der_x509_certificate(obj[Attribute.VALUE])
        return None

    def change_pin(self, current: str, new: str) -> None:
        """C_SetPIN as the user: the current PIN is needed to set a new one."""
        with self._open(current) as session:
            try:
                session.set_pin(current, new)
            except p11exc.PKCS11Error as exc:
                raise _translate(exc, "setting the token PIN") from None
        self.release()  # a session held with the old PIN must not outlive it
