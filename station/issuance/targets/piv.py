"""Issuance onto a PIV-applet hardware token in a PC/SC reader (USB/contact or NFC), named
``piv:reader=<reader name>[;serial=<token serial>][?pin-source=…]`` (docs/piv-tokens.md).

Every device step opens the reader exclusively inside a PC/SC transaction and resets the
token when it ends (:func:`station.devices.pcsc.piv_session`): no PIN stays verified and no
management key stays authenticated between steps, and a cancel lands between two steps.

- The transport PIN is the URI's (``pin-source``/``pin-value``), else the factory PIN
  (123456, what PIV tokens ship with).
- The management key is the token's own key the station keeps in the OS keyring
  (``piv-management-key:<serial>``), else the factory key. A token that answers GET
  VERSION (YubiKey-compatible) has its factory key replaced by a random per-token key
  (AES-192 from firmware 5.4, else 3DES) the first time the station manages it: written to
  the keyring first, then set on the token, so a crash between the two leaves a key the
  station still knows (it falls back to the factory key once, then rotates again).
- The key is generated in slot 9A (P-256 by default), with PIN policy "once" where the token
  has policies; the request is signed on the token; the certificate goes into the 9A
  container, beside a fresh CHUID (new card UUID, the FASC-N of a non-PIV token) and a
  Discovery Object whose PIN usage policy is the application PIN's (SP 800-157r1 App. B).
- Activation: CHANGE REFERENCE DATA replaces the transport PIN with the applicant's; the
  PUK is replaced by a random one, escrowed in the keyring (``piv-puk:<serial>``) for a
  supervisor-assisted unblock, or discarded (``[targets] piv_puk = "discard"``); the choice
  is in the target's state, recorded with the request.
- Over a contactless interface a token that enforces SP 800-73-4's contactless rules refuses
  the management key or the PIN: the station stops before anything is written and says to use
  the USB/contact interface.

A PIV token carries AAL3 only when the station verifies its attestation of the key (a token
that answers ATTEST and ``[targets] attestation_roots`` configured; targets/attestation.py):
otherwise it is offered at AAL2, and AAL3 is refused with the reason.
"""

from __future__ import annotations

import os
import secrets as random
import uuid
from contextlib import contextmanager
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

from station.devices import pcsc
from station.devices.connection import Interface
from station.devices.csr import certification_request
from station.devices.errors import (CardError, FileNotFound, InterfaceRestricted, NoCard, NoReader, PinBlocked, PinIncorrect,
                                   SecurityStatusNotSatisfied, TransportError)
from station.devices.piv import mgmkey
from station.devices.piv.chuid import Chuid
from station.devices.piv.constants import (AES_DEFAULT_FROM, AES_MANAGEMENT_KEY_FROM, ATTESTATION_OBJECT, Algorithm, KeyRef,
                                           ObjectId, PinPolicyOnKey, Slot)
from station.devices.piv.containers import CertificateContainer, DiscoveryObject
from station.devices.piv.fascn import FascN
from station.devices.piv.session import algorithm_for_key, encode_public_key
from station.devices.pkcs11.uri import pin_from_query
from station.issuance.targets import attestation
from station.issuance.targets.base import DeviceDescription, DeviceIdentity, DeviceMustBeReset, Target, TargetError
from station.issuance.targets.piv_uri import PivUri, PivUriError
from station.secret_store import SecretMissing

FACTORY_PIN, FACTORY_PUK = "123456", "12345678"
SLOT = Slot.AUTHENTICATION
ALGORITHMS = {"P-256": Algorithm.ECC_P256, "P-384": Algorithm.ECC_P384, "RSA-2048": Algorithm.RSA_2048}
APPLICATION_PIN_ONLY = b"\x40\x10"  # Discovery: the PIV application PIN satisfies the rules and is primary


def open_piv(uri: str, *, secrets=None, puk_handling: str = "escrow", attestation_roots=(),
             pin_entry: Callable[[], str] | None = None, **_options) -> PivTarget:
    """The ``piv:`` factory of the target registry. ``secrets`` (the station's SecretStore)
    keeps per-token management keys and escrowed PUKs (without it the token keeps its factory
    management key); ``attestation_roots`` are the certificates a token's attestation must
    chain to (none: no attestation is verified, and the token is offered at AAL2 only)."""
    return PivTarget(PivUri.parse(uri), secrets=secrets, puk_handling=puk_handling, attestation_roots=attestation_roots)


class PivTarget(Target):
    kind = "piv"
    replaces_credential = True  # one PIV Authentication key, in 9A

    def __init__(self, uri: PivUri, *, secrets=None, puk_handling: str = "escrow", attestation_roots=()):
        if puk_handling not in ("escrow", "discard"):
            raise TargetError(f"[targets] piv_puk must be 'escrow' or 'discard', not {puk_handling!r}")
        self.uri = uri
        self.secrets = secrets
        self.puk_handling = puk_handling
        self.attestation_roots = list(attestation_roots)
        self.attested: dict[str, str] = {}  # a verified attestation's facts, recorded with the request
        self.algorithm: Algorithm | None = None
        self.public_key = None
        self.version: tuple[int, int, int] | None = None
        self.serial = ""
        self._interface = None
        self._puk_done = ""  # "escrowed" / "discarded" once activation replaced the PUK

    # --- the token, one step at a time --------------------------------------------------------------
    @contextmanager
    def _session(self, what: str):
        """The token for one step; its errors in the registrar's words."""
        self._check_cancel(f"before {what}")
        try:
            with pcsc.piv_session(self.uri.reader, cancel=self.cancel) as session:
                if self.version is None:
                    self._meet(session)
                elif self.vendor:
                    self._same_token(session)
                yield session
        except InterfaceRestricted:
            raise _contactless() from None
        except (NoCard, NoReader, TransportError) as exc:  # not in its reader, pulled out, the reader gone
            raise TargetError(f"the PIV token is not in {self.uri.reader} ({exc})",
                              hint="put the token back in its reader and go on: the request goes on where it stopped") from None

    def _same_token(self, session) -> None:
        serial = str(session.get_serial())
        if serial != self.serial:
            raise TargetError(f"the token in {self.uri.reader} is another one (serial {serial}, not {self.serial})",
                              hint="put back the token this request is for, and go on")

    def _meet(self, session) -> None:
        """Once per target: which token this is, and whether it lets the station work over the
        interface it is on (a token keeping SP 800-73-4's contactless rules refuses even to say
        how many PIN tries are left over NFC: refused here, before anything is written). Met
        only once every check passed: a refused token is checked afresh by the next step."""
        version = session.get_version() or (0, 0, 0)
        serial = str(session.get_serial()) if version != (0, 0, 0) else ""
        if self.uri.serial and serial != self.uri.serial:
            raise TargetError(f"the token in {self.uri.reader} is serial {serial or 'unknown'}, not {self.uri.serial}",
                              hint="insert the token the request names")
        if session.interface is Interface.CONTACTLESS:
            try:
                session.get_pin_status()
            except SecurityStatusNotSatisfied:
                raise _contactless() from None
        self.version, self.serial = version, serial

    @property
    def vendor(self) -> bool:
        """Answers the YubiKey-compatible vendor commands (GET VERSION ...)."""
        return bool(self.version and self.version != (0, 0, 0))

    def _transport_pin(self) -> str:
        return pin_from_query(self.uri.query, lambda: FACTORY_PIN)

    def _stored(self, kind: str) -> str | None:
        if self.secrets is None or not self.serial:
            return None
        try:
            return self.secrets.get(f"{kind}:{self.serial}")
        except SecretMissing:  # none yet: the token is on its factory key (a keyring that fails says so)
            return None

    def _manage(self, session) -> None:
        """Authenticate with the management key: the token's own (keyring), else the factory
        key; a token still on its factory key gets its own first (see the module's text)."""
        stored = self._stored("piv-management-key")
        if stored:
            name, _, hexkey = stored.partition(":")
            try:
                session.authenticate_management_key(bytes.fromhex(hexkey), Algorithm[name])
                return
            except (CardError, mgmkey.ManagementKeyError):
                session.reset()  # a key written to the keyring but never set on the token: the factory key
        factory = Algorithm.AES_192 if self.version >= AES_DEFAULT_FROM else Algorithm.TDEA_3KEY
        try:
            session.authenticate_management_key(mgmkey.DEFAULT_MANAGEMENT_KEY, factory)
        except (CardError, mgmkey.ManagementKeyError):
            raise TargetError("the token does not take the management key the station has for it",
                              hint="reset the token's PIV application (e.g. ykman piv reset) and issue again") from None
        if self.vendor and self.secrets is not None and self.serial:
            algorithm = Algorithm.AES_192 if self.version >= AES_MANAGEMENT_KEY_FROM else Algorithm.TDEA_3KEY
            key = os.urandom(24)
            self.secrets.put(f"piv-management-key:{self.serial}", f"{algorithm.name}:{key.hex()}")
            session.set_management_key(algorithm, key)

    # --- the engine's steps ------------------------------------------------------------------------------
    @property
    def attests(self) -> bool:
        """The station verifies this token's attestation of its key (a vendor token, and roots to
        verify it against): what lets the token carry AAL3."""
        return self.vendor and bool(self.attestation_roots)

    def describe(self) -> DeviceDescription:
        """The token as first met (GET VERSION, GET SERIAL); every later step's session checks
        the serial again in the same exclusive session it acts in (``_same_token``), so a token
        swapped in the reader is refused by the very step that would have used it."""
        if self.version is None:  # first contact; after it every step's session checks the serial itself
            with self._session("reading the token") as session:
                self._interface = session.interface
        interface = self._interface
        model = f"PIV token, firmware {'.'.join(map(str, self.version))}" if self.vendor else "PIV token"
        device = DeviceIdentity("piv", self.uri.reader, "", model, self.serial)
        details = {"reader": self.uri.reader, "interface": interface.value}
        why = "" if self.attests else (
            "AAL3 on a PIV token needs an attestation of its key the station can verify: "
            + ("this token does not attest its keys" if not self.vendor else "no [targets] attestation_roots are configured"))
        return DeviceDescription("piv-token", self.attests, device, str(self.uri), smart_card=True, details=details,
                                 not_hardware_because=why)

    def plan_key(self, algorithm: str) -> None:
        if algorithm not in ALGORITHMS:
            raise TargetError(f"a PIV token makes {', '.join(ALGORITHMS)} keys, not {algorithm}")
        self.algorithm, self.public_key = ALGORITHMS[algorithm], None

    def generate_key(self, algorithm: str):
        """Generate the key in 9A (a key left there by an earlier run is replaced: a PIV slot
        holds one key, so nothing is orphaned)."""
        if self.algorithm is None:
            self.plan_key(algorithm)
        with self._session("generating the key on the token") as session:
            if self.public_key is not None and self.vendor and self._holds(session, self.public_key):
                return self.public_key
            if session.get_pin_status().blocked:  # a reused token: nothing is made that its PIN cannot then use
                raise PinBlocked("the token's PIN is blocked; nothing was written to it",
                                 hint="unblock it with its PUK (or reset the token's PIV application), then issue again")
            self._manage(session)
            self._check_cancel("before generating the key on the token")
            policy = PinPolicyOnKey.ONCE if self.vendor else None
            public_key = session.generate_asymmetric_key_pair(SLOT, self.algorithm, pin_policy=policy)
            self.attested = self._attest(session, public_key) if self.attests else {}
            self.public_key = public_key
        return self.public_key

    def _attest(self, session, public_key) -> dict[str, str]:
        """ATTEST 9A and verify it (station.issuance.targets.attestation); refused: the request
        stops here, before the key is certified."""
        self._check_cancel("before asking the token to attest the key")
        try:
            certificate = session.attest(SLOT)
            intermediate = CertificateContainer.from_bytes(session.get_data(ATTESTATION_OBJECT)).certificate
        except (CardError, ValueError) as exc:
            raise attestation.AttestationError(f"the token did not attest the key it generated ({exc})") from None
        return attestation.verify(certificate, intermediate, self.attestation_roots, public_key).facts()

    @staticmethod
    def _holds(session, public_key) -> bool:
        """The token's 9A key is ``public_key`` (GET METADATA)."""
        try:
            return session.get_metadata(SLOT).get(0x04) == encode_public_key(public_key)[3:]
        except CardError:
            return False

    def proof_of_possession(self, subject: x509.Name) -> bytes:
        if self.public_key is None:
            raise TargetError("the public key is unknown; generate the key first")
        with self._session("signing the certification request on the token") as session:
            session.verify(self._transport_pin(), token=True)
            return certification_request(self.public_key, subject,
                                         lambda data, hash_name: session.sign(SLOT, self.algorithm, data, _HASHES[hash_name]()))

    def install_certificate(self, certificate: x509.Certificate, chain: list[x509.Certificate]) -> None:
        """The certificate into the 9A container, with a fresh CHUID and Discovery Object."""
        with self._session("storing the certificate on the token") as session:
            self._manage(session)
            self._check_cancel("before storing the certificate on the token")
            session.put_certificate(SLOT, certificate)
            expiry = certificate.not_valid_after_utc.date()
            chuid = Chuid(fascn=NON_PIV_FASCN, card_uuid=uuid.uuid4(), expiry=expiry)
            session.put_data(ObjectId.CHUID, chuid.to_bytes())
            session.put_data(ObjectId.DISCOVERY, DiscoveryObject(pin_usage_policy=APPLICATION_PIN_ONLY).to_bytes())

    def installed_certificate(self) -> x509.Certificate | None:
        with self._session("reading the certificate on the token") as session:
            try:
                return session.read_certificate(SLOT)
            except FileNotFound:
                return None

    def locate_credential(self) -> x509.Certificate | None:
        cert = self.installed_certificate()
        if cert is not None:
            self.public_key = cert.public_key()
        return cert

    def set_activation_secret(self, new_pin: str) -> None:
        """The applicant's PIN replaces the transport PIN; then the PUK is replaced by a random
        one, escrowed or discarded as configured."""
        with self._session("setting the applicant's PIN on the token") as session:
            session.change_reference_data(KeyRef.PIN, self._transport_pin(), new_pin, token=True)
            self._replace_puk(session)

    def _replace_puk(self, session) -> None:
        """Only the factory PUK is replaced: a token that says (GET METADATA) its PUK is not the
        factory one keeps it, and no PUK try is spent finding out (a re-issued token, whose PUK
        the station set the first time)."""
        if self.vendor and session.get_metadata(KeyRef.PUK).get(0x05, b"\x01") == b"\x00":
            return
        puk = "".join(random.choice("0123456789") for _ in range(8))
        if self.puk_handling == "escrow" and self.secrets is not None and self.serial:
            self.secrets.put(f"piv-puk:{self.serial}", puk)
        try:
            session.change_reference_data(KeyRef.PUK, FACTORY_PUK, puk)
        except PinIncorrect:
            return  # not the factory PUK: the token's issuer set its own; it stays as it is
        self._puk_done = "escrowed" if self.puk_handling == "escrow" and self.secrets is not None and self.serial else "discarded"

    def activation_secret_set(self, new_pin: str) -> bool:
        with self._session("checking the applicant's PIN on the token") as session:
            try:
                session.verify(new_pin, token=True)
                return True
            except PinIncorrect:
                return False

    def sign_challenge(self, pin: str, challenge: bytes) -> bytes:
        with self._session("signing the test challenge on the token") as session:
            session.verify(pin, token=True)
            try:
                return session.sign(SLOT, self.algorithm or algorithm_for_key(self.public_key), challenge)
            except SecurityStatusNotSatisfied:
                raise PinBlocked("the token refused to sign after the PIN was verified") from None

    def discard_key(self) -> None:
        """A PIV slot cannot be emptied by SP 800-73-4 commands: with the transport PIN still
        set, the request's key in 9A is overwritten by a fresh key no one is told about and the
        certificate container is emptied; once the applicant's PIN is set the token must be reset."""
        if self.algorithm is None:
            return
        with self._session("removing the request's key from the token") as session:
            try:
                session.verify(self._transport_pin(), token=True)
            except (PinIncorrect, PinBlocked):
                raise DeviceMustBeReset("the token no longer takes its transport PIN (the applicant's PIN is set): "
                                        "the key made for the request stays on it: the device must be reset") from None
            self._manage(session)
            session.generate_asymmetric_key_pair(SLOT, self.algorithm)
            session.put_data(SLOT.object_id, b"")
        self.public_key = None

    def state(self) -> dict[str, str]:
        if self.algorithm is None:
            return {}
        state = {"slot": f"{int(SLOT):02x}", "algorithm": self.algorithm.name}
        if self.public_key is not None:
            state["key"] = "generated"
            state["public_key"] = self.public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo).hex()
        if self._puk_done:
            state["puk"] = self._puk_done
        return {**state, **self.attested}

    def restore(self, state: dict[str, str]) -> None:
        if "algorithm" in state:
            self.algorithm = Algorithm[state["algorithm"]]
        if "public_key" in state:
            self.public_key = load_der_public_key(bytes.fromhex(state["public_key"]))
        self._puk_done = state.get("puk", "")
        self.attested = {k: v for k, v in state.items() if k.startswith("attest")}


def _contactless() -> TargetError:
    return TargetError("the token refuses the PIN and card management over its contactless (NFC) interface; "
                       "nothing was written to it", hint="put the token in a USB/contact reader and go on")


_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384}
# SP 800-73-4 Part 1 §3.1.2: a card that is not a PIV Card (here: a derived credential's
# token) has agency code 9999, system code 9999 and credential number 999999 in its FASC-N
NON_PIV_FASCN = FascN(agency_code="9999", system_code="9999", credential_number="999999", credential_series="0",
                      individual_credential_issue="1", person_identifier="0000000000", organizational_category="1",
                      organizational_identifier="0000", association_category="1").to_bytes()


__all__ = ["PivTarget", "PivUri", "PivUriError", "open_piv"]
