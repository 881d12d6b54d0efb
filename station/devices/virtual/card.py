"""A software PIV card that implements the SP 800-73-4 subset the station uses.

It answers raw command APDUs (``transmit``) exactly as a card would: status words, 61xx
response chaining, command chaining, PIN/PUK retry counters and the blocked state, the Global
PIN, management-key authentication (mutual, or external with a card challenge: SP 800-73-4
Part 2 Appendix A), on-card key generation, the key access rules of Part 1 Table 4b (9C is
"PIN Always") and the contactless access rules of Part 1 §3 (no PIN and no PIV Authentication
key over contactless).
"""

from __future__ import annotations

import hmac
import os
import threading
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from station.devices import tlv
from station.devices.apdu import CommandApdu
from station.devices.connection import Interface
from station.devices.errors import ProtocolError, TlvError
from station.devices.pkcs1 import DIGEST_INFO_PREFIX, emsa_pkcs1_v15
from station.devices.piv import mgmkey
from station.devices.piv.constants import (
    DERIVED_PIV_AID_FULL,
    PIV_AID,
    RETIRED_KEY_MANAGEMENT,
    TAG_AUTH_CHALLENGE,
    TAG_AUTH_EXPONENTIATION,
    TAG_AUTH_RESPONSE,
    TAG_AUTH_WITNESS,
    TAG_DYNAMIC_AUTH,
    TAG_PIN_POLICY,
    TAG_TOUCH_POLICY,
    Algorithm,
    KeyRef,
    ObjectId,
    Slot,
)
from station.devices.piv.containers import DiscoveryObject
from station.devices.piv.session import PIN_DIGITS, algorithm_for_key, encode_public_key

# Contact ATR: T=1, IFSC 254, historical bytes 80 73 C0 21 C0 ("chaining and extended
# length supported") followed by "VPIV".
CONTACT_ATR_BODY = bytes.fromhex("3B99968131FE45" "8073C021C0") + b"VPIV"
# Contactless ATR as a PC/SC reader builds it from the ATS: 3B 8n 80 01 <historical> TCK.
CONTACTLESS_HISTORICAL = bytes.fromhex("8073C021C0") + b"VPIV"


def _with_tck(atr: bytes) -> bytes:
    tck = 0
    for b in atr[1:]:
        tck ^= b
    return atr + bytes([tck])


CONTACT_ATR = _with_tck(CONTACT_ATR_BODY)
CONTACTLESS_ATR = _with_tck(bytes([0x3B, 0x80 | len(CONTACTLESS_HISTORICAL), 0x80, 0x01]) + CONTACTLESS_HISTORICAL)

DEFAULT_PIN = "123456"
DEFAULT_PUK = "12345678"
PIN_TRIES = 5
PUK_TRIES = 3

# Objects readable without the PIN (SP 800-73-4 Part 1 Table 1, access rule "Always").
_FREE_READ = {
    ObjectId.CARD_CAPABILITY_CONTAINER, ObjectId.CHUID, ObjectId.X509_PIV_AUTHENTICATION,
    ObjectId.X509_DIGITAL_SIGNATURE, ObjectId.X509_KEY_MANAGEMENT, ObjectId.X509_CARD_AUTHENTICATION,
    ObjectId.SECURITY_OBJECT, ObjectId.DISCOVERY, ObjectId.KEY_HISTORY, ObjectId.BIOMETRIC_GROUP_TEMPLATE,
    ObjectId.X509_SM_CERT_SIGNER, *RETIRED_KEY_MANAGEMENT,
}
# Objects readable over the contactless interface without VCI.
_CONTACTLESS_READ = {
    ObjectId.CHUID, ObjectId.X509_CARD_AUTHENTICATION, ObjectId.SECURITY_OBJECT, ObjectId.DISCOVERY,
    ObjectId.CARD_CAPABILITY_CONTAINER, ObjectId.KEY_HISTORY, ObjectId.BIOMETRIC_GROUP_TEMPLATE,
}

SW_OK = 0x9000
# SP 800-78-4 Table 6-2: '00' is 3-key TDEA too (the default the 9B key answers to).
TDEA_DEFAULT = 0x00


def _pkcs1_fast_path(key, block: bytes) -> bytes | None:
    """Raw RSA of an EMSA-PKCS1-v1_5 block equals a PKCS#1 v1.5 signature of its digest, which
    OpenSSL computes far faster than Python's ``pow``; other blocks take the raw path."""
    for name, prefix in DIGEST_INFO_PREFIX.items():
        tail = b"\x00" + prefix
        digest_len = len(block) - block.rfind(tail) - len(tail) if tail in block else -1
        if digest_len > 0 and block == emsa_pkcs1_v15(name, block[-digest_len:], len(block)):
            algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[name]
            return key.sign(block[-digest_len:], padding.PKCS1v15(), Prehashed(algorithm))
    return None


class _Status(Exception):
    def __init__(self, sw: int):
        self.sw = sw


def _pad(secret: str) -> bytes:
    return secret.encode("ascii").ljust(8, b"\xff")


def _well_formed_pin(value: bytes, characters: frozenset[str]) -> bool:
    """SP 800-73-4 Part 2 §2.4.3: 6 to 8 characters, padded with FF to 8 bytes."""
    secret = value.rstrip(b"\xff").decode("latin-1")
    return len(value) == 8 and 6 <= len(secret) and set(secret) <= characters


@dataclass
class _Counter:
    """A reference value with its retry counter (PIN, Global PIN or PUK)."""

    value: bytes
    tries: int
    max_tries: int

    def check(self, candidate: bytes) -> None:
        if self.tries == 0:
            raise _Status(0x6983)
        if not hmac.compare_digest(candidate, self.value):
            self.tries -= 1
            raise _Status(0x63C0 | self.tries)
        self.tries = self.max_tries


class VirtualPivCard:
    """The card's persistent state plus its volatile security status.

    PINs live only inside their retry counters; ``repr`` shows none of them."""

    def __init__(
        self,
        objects: dict[int, bytes] | None = None,
        keys: dict[int, object] | None = None,
        *,
        pin: str = DEFAULT_PIN,
        puk: str = DEFAULT_PUK,
        global_pin: str | None = None,
        management_key: bytes = mgmkey.DEFAULT_MANAGEMENT_KEY,
        management_algorithm: Algorithm = Algorithm.TDEA_3KEY,
        interface: Interface = Interface.CONTACT,
        label: str = "virtual PIV card",
        pin_characters: frozenset[str] = PIN_DIGITS,
    ):
        self.objects: dict[int, bytes] = dict(objects or {})
        self.keys: dict[int, object] = dict(keys or {})
        mgmkey.check_key(management_algorithm, management_key)
        self.management_key = management_key
        self.management_algorithm = management_algorithm
        self.interface = interface
        self.label = label
        self.pin_characters = pin_characters
        self._pin = _Counter(_pad(pin), PIN_TRIES, PIN_TRIES)
        self._puk = _Counter(_pad(puk), PUK_TRIES, PUK_TRIES)
        self._global = _Counter(_pad(global_pin), PIN_TRIES, PIN_TRIES) if global_pin else None
        self._lock = threading.Lock()
        self.power_on()

    def __repr__(self) -> str:
        return f"<VirtualPivCard {self.label!r} {self.interface.value} objects={len(self.objects)} keys={len(self.keys)}>"

    # --- power -------------------------------------------------------------------------------
    @property
    def contactless_rules(self) -> bool:
        """SP 800-73-4's contactless access rules apply (no PIN, no card management, only the
        Card Authentication key and the free objects over NFC without VCI)."""
        return self.interface == Interface.CONTACTLESS

    @property
    def atr(self) -> bytes:
        return CONTACTLESS_ATR if self.interface == Interface.CONTACTLESS else CONTACT_ATR

    def power_on(self) -> None:
        """Cold/warm reset: the volatile security status is cleared."""
        self._selected = False
        self._pin_verified = False
        self._verified_now = False  # a VERIFY succeeded in this command...
        self._pin_always = False  # ...or in the one just before (9C's "PIN Always")
        self._mgmt_authenticated = False
        self._mgmt_nonce: tuple[int, bytes] | None = None  # (80 witness | 81 challenge, plain value)
        self._chain: tuple[int, bytearray] | None = None
        self._pending = b""

    power_off = power_on

    def set_pin_tries(self, tries: int) -> None:
        """Test hook: put the PIN retry counter at ``tries`` (0 blocks it)."""
        self._pin.tries = tries

    @property
    def pin_tries(self) -> int:
        return self._pin.tries

    # --- APDU entry point ----------------------------------------------------------------------
    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        with self._lock:
            try:
                command = CommandApdu.decode(apdu)
            except ProtocolError:
                return b"", 0x6700
            try:
                data = self._dispatch(command)
            except _Status as status:
                self._pending = b""
                return b"", status.sw
            except (TlvError, ValueError):
                self._pending = b""
                return b"", 0x6A80
            return self._respond(data, command.le)

    def _respond(self, data: bytes, le: int | None) -> tuple[bytes, int]:
        limit = 256 if le is None else le
        if len(data) <= limit:
            self._pending = b""
            return data, SW_OK
        self._pending = data[limit:]
        remaining = len(self._pending)
        return data[:limit], 0x6100 | (remaining if remaining < 256 else 0)

    def _dispatch(self, c: CommandApdu) -> bytes:
        if c.ins == 0xC0:
            if not self._pending:
                raise _Status(0x6985)
            data, self._pending = self._pending, b""
            return data
        self._pending = b""
        if c.cla & ~0x10 != 0x00:
            raise _Status(0x6E00)
        data = c.data
        if self._chain and self._chain[0] != c.ins:
            self._chain = None  # a different command abandons the chain (as PIV applets do)
        if c.cla & 0x10:
            if self._chain is None:
                self._chain = (c.ins, bytearray())
            self._chain[1].extend(data)
            if len(self._chain[1]) > 64 * 1024:
                self._chain = None
                raise _Status(0x6A84)
            return b""
        if self._chain:
            data = bytes(self._chain[1]) + data
            self._chain = None
        handler = {
            0xA4: self._select, 0xCB: self._get_data, 0x20: self._verify, 0x24: self._change_reference_data,
            0x2C: self._reset_retry_counter, 0x87: self._general_authenticate, 0x47: self._generate, 0xDB: self._put_data,
        }.get(c.ins) or self._vendor_dispatch(c.ins)
        if handler is None:
            raise _Status(0x6D00)
        if c.ins != 0xA4 and not self._selected:
            raise _Status(0x6985)
        self._pin_always, self._verified_now = self._verified_now, False
        return handler(c, data)

    def _vendor_dispatch(self, ins: int):
        """The handler of a vendor instruction, ``handler(command, data) -> reply``, or None. The
        SP 800-73-4 card has none (6D00); a token subclass adds its own (token.py)."""
        return None

    # --- commands ------------------------------------------------------------------------------
    def _select(self, c: CommandApdu, data: bytes) -> bytes:
        if c.p1 != 0x04:
            raise _Status(0x6A86)
        if len(data) < 5 or not (PIV_AID.startswith(data) or DERIVED_PIV_AID_FULL.startswith(data)):
            raise _Status(0x6A82)
        self._selected = True
        aid = PIV_AID if PIV_AID.startswith(data) else DERIVED_PIV_AID_FULL
        algorithms = b"".join(tlv.encode_tlv(0x80, bytes([a])) for a in (0x03, 0x08, 0x0A, 0x0C, 0x07, 0x11, 0x14))
        return tlv.encode_tlv(0x61, tlv.encode_tlvs([
            (0x4F, aid[5:]),
            (0x79, tlv.encode_tlv(0x4F, PIV_AID[:5])),
            (0x50, self.label.encode()[:32]),
            (0xAC, algorithms + tlv.encode_tlv(0x06, b"")),
        ]))

    def _object_tag(self, data: bytes) -> int:
        tag_bytes = tlv.unwrap(data, 0x5C)
        if not 1 <= len(tag_bytes) <= 3:
            raise _Status(0x6A80)
        return int.from_bytes(tag_bytes, "big")

    def _get_data(self, c: CommandApdu, data: bytes) -> bytes:
        if (c.p1, c.p2) != (0x3F, 0xFF):
            raise _Status(0x6A86)
        tag = self._object_tag(data)
        if self.contactless_rules and tag not in _CONTACTLESS_READ:
            raise _Status(0x6982)
        if tag not in self.objects:
            raise _Status(0x6A82)
        if self._read_needs_pin(tag) and not self._pin_verified:
            raise _Status(0x6982)
        content = self.objects[tag]
        return content if tag == ObjectId.DISCOVERY else tlv.encode_tlv(0x53, content)

    @staticmethod
    def _read_needs_pin(tag: int) -> bool:
        """SP 800-73-4 Part 1 Table 3: every object but those whose read access is "Always"."""
        return tag not in _FREE_READ

    def _put_data(self, c: CommandApdu, data: bytes) -> bytes:
        if (c.p1, c.p2) != (0x3F, 0xFF):
            raise _Status(0x6A86)
        if not self._mgmt_authenticated:
            raise _Status(0x6982)
        first, end = tlv.read_tlv(data, 0)
        if first.tag != 0x5C:
            raise _Status(0x6A80)
        tag = int.from_bytes(first.value, "big")
        rest = tlv.parse_tlv(data[end:])
        if tag == ObjectId.DISCOVERY:
            if rest.tag != 0x7E:
                raise _Status(0x6A80)
            self.objects[tag] = rest.encode()
        else:
            if rest.tag != 0x53:
                raise _Status(0x6A80)
            if rest.value:
                self.objects[tag] = rest.value
            else:
                self.objects.pop(tag, None)
        return b""

    def _counter(self, key_ref: int) -> _Counter:
        if key_ref == KeyRef.PIN:
            return self._pin
        if key_ref == KeyRef.PUK:
            return self._puk
        if key_ref == KeyRef.GLOBAL_PIN and self._global is not None:
            return self._global
        raise _Status(0x6A88)

    def _verify(self, c: CommandApdu, data: bytes) -> bytes:
        if self.contactless_rules:
            raise _Status(0x6982)
        if c.p1 == 0xFF:  # reset the security status of this reference
            self._pin_verified = False
            return b""
        if c.p1 != 0x00 or c.p2 == KeyRef.PUK:
            raise _Status(0x6A86)
        counter = self._counter(c.p2)
        if not data:
            if counter.tries == 0:
                raise _Status(0x6983)
            if self._pin_verified:
                return b""
            raise _Status(0x63C0 | counter.tries)
        if len(data) != 8:
            raise _Status(0x6A80)
        self._pin_verified = False
        counter.check(data)
        self._pin_verified = self._verified_now = True
        return b""

    def _check_new_value(self, key_ref: int, value: bytes) -> None:
        """SP 800-73-4 Part 2 §2.4.3: a new PIN is 6-8 digits padded with FF; a PUK is any 8 bytes.
        Checked before the current value, so a malformed new one spends no try."""
        if key_ref != KeyRef.PUK and not _well_formed_pin(value, self.pin_characters):
            raise _Status(0x6A80)

    def _change_reference_data(self, c: CommandApdu, data: bytes) -> bytes:
        if self.contactless_rules:
            raise _Status(0x6982)
        counter = self._counter(c.p2)
        if len(data) != 16:
            raise _Status(0x6A80)
        self._check_new_value(c.p2, data[8:])
        counter.check(data[:8])
        counter.value = data[8:]
        if c.p2 != KeyRef.PUK:
            self._pin_verified = True
        return b""

    def _reset_retry_counter(self, c: CommandApdu, data: bytes) -> bytes:
        if self.contactless_rules:
            raise _Status(0x6982)
        if c.p2 != KeyRef.PIN:
            raise _Status(0x6A86)
        if len(data) != 16:
            raise _Status(0x6A80)
        self._check_new_value(KeyRef.PIN, data[8:])
        self._puk.check(data[:8])
        self._pin.value = data[8:]
        self._pin.tries = self._pin.max_tries
        return b""

    def _general_authenticate(self, c: CommandApdu, data: bytes) -> bytes:
        fields = tlv.tlv_map(tlv.unwrap(data, TAG_DYNAMIC_AUTH))
        if c.p2 == KeyRef.MANAGEMENT:
            return self._authenticate_management(Algorithm.TDEA_3KEY if c.p1 == TDEA_DEFAULT else c.p1, fields)
        if c.p2 not in Slot._value2member_map_:
            raise _Status(0x6A86)
        slot = Slot(c.p2)
        if self.contactless_rules and slot != Slot.CARD_AUTH:
            raise _Status(0x6982)
        self._authorize_key(slot)
        key = self.keys.get(slot)
        if key is None:
            raise _Status(0x6A88)
        if c.p1 != algorithm_for_key(key.public_key()):
            raise _Status(0x6A86)
        if TAG_AUTH_EXPONENTIATION in fields and isinstance(key, ec.EllipticCurvePrivateKey):
            peer = ec.EllipticCurvePublicKey.from_encoded_point(key.curve, fields[TAG_AUTH_EXPONENTIATION])
            secret = key.exchange(ec.ECDH(), peer)
            return tlv.encode_tlv(TAG_DYNAMIC_AUTH, tlv.encode_tlv(TAG_AUTH_RESPONSE, secret))
        payload = fields.get(TAG_AUTH_CHALLENGE)
        if payload is None or TAG_AUTH_RESPONSE not in fields:
            raise _Status(0x6A80)
        return tlv.encode_tlv(TAG_DYNAMIC_AUTH, tlv.encode_tlv(TAG_AUTH_RESPONSE, self._private_operation(key, payload)))

    def _authorize_key(self, slot: Slot) -> None:
        """SP 800-73-4 Part 1 Table 4b: 9E always; 9C "PIN Always", a VERIFY in the command just
        before (one use each, the PIN stays verified for the other keys); 9A and 9D the PIN.
        A token with per-key PIN policies overrides this."""
        if slot == Slot.SIGNATURE and not self._pin_always:
            raise _Status(0x6982)
        if slot != Slot.CARD_AUTH and not self._pin_verified:
            raise _Status(0x6982)

    @staticmethod
    def _private_operation(key, payload: bytes) -> bytes:
        if isinstance(key, rsa.RSAPrivateKey):
            size = key.key_size // 8
            if len(payload) != size:
                raise _Status(0x6A80)
            signed = _pkcs1_fast_path(key, payload)
            if signed is not None:
                return signed
            n = key.private_numbers()
            c = int.from_bytes(payload, "big")
            if c >= n.public_numbers.n:
                raise _Status(0x6A80)
            m1, m2 = pow(c, n.dmp1, n.p), pow(c, n.dmq1, n.q)  # CRT (RFC 8017 §5.1.2)
            return (m2 + n.q * ((n.iqmp * (m1 - m2)) % n.p)).to_bytes(size, "big")
        field = (key.curve.key_size + 7) // 8
        if len(payload) > field:
            raise _Status(0x6A80)
        digest_alg = hashes.SHA256() if len(payload) == 32 else hashes.SHA384() if len(payload) == 48 else None
        if digest_alg is None:
            raise _Status(0x6A80)
        return key.sign(payload, ec.ECDSA(Prehashed(digest_alg)))

    def _authenticate_management(self, algorithm: int, fields: dict[int, bytes]) -> bytes:
        """SP 800-73-4 Part 2 Appendix A: mutual (`80 00` -> encrypted witness; `80 <witness>
        81 <challenge>` -> `82 <encrypted challenge>`) or external (`81 00` -> a challenge;
        `82 <encrypted challenge>` -> no data)."""
        if algorithm != self.management_algorithm:
            raise _Status(0x6A86)
        algorithm, size = self.management_algorithm, mgmkey.block_size(self.management_algorithm)
        if fields in ({TAG_AUTH_WITNESS: b""}, {TAG_AUTH_CHALLENGE: b""}):  # step 1: the card's nonce
            (tag,) = fields
            self._mgmt_authenticated = False
            nonce = os.urandom(size)
            self._mgmt_nonce = (tag, nonce)
            sent = mgmkey.encrypt_block(algorithm, self.management_key, nonce) if tag == TAG_AUTH_WITNESS else nonce
            return tlv.encode_tlv(TAG_DYNAMIC_AUTH, tlv.encode_tlv(tag, sent))
        kind, expected = self._mgmt_nonce or (None, b"")
        self._mgmt_nonce = None
        if kind == TAG_AUTH_CHALLENGE and set(fields) == {TAG_AUTH_RESPONSE}:  # external: the host's answer
            answer = mgmkey.encrypt_block(algorithm, self.management_key, expected)
            if not hmac.compare_digest(fields[TAG_AUTH_RESPONSE], answer):
                raise _Status(0x6982)
            self._mgmt_authenticated = True
            return b""
        witness, challenge = fields.get(TAG_AUTH_WITNESS), fields.get(TAG_AUTH_CHALLENGE)
        if kind != TAG_AUTH_WITNESS or witness is None or challenge is None or len(challenge) != size:
            raise _Status(0x6A80)
        if not hmac.compare_digest(witness, expected):
            raise _Status(0x6982)
        self._mgmt_authenticated = True
        response = mgmkey.encrypt_block(algorithm, self.management_key, challenge)
        return tlv.encode_tlv(TAG_DYNAMIC_AUTH, tlv.encode_tlv(TAG_AUTH_RESPONSE, response))

    def _generate(self, c: CommandApdu, data: bytes) -> bytes:
        if not self._mgmt_authenticated:
            raise _Status(0x6982)
        if c.p2 not in Slot._value2member_map_:
            raise _Status(0x6A86)
        template = tlv.tlv_map(tlv.unwrap(data, 0xAC))
        alg = template.get(0x80, b"")
        if len(alg) != 1:
            raise _Status(0x6A80)
        self._accept_key_policies(Slot(c.p2), template)
        if alg[0] == Algorithm.ECC_P256:
            key = ec.generate_private_key(ec.SECP256R1())
        elif alg[0] == Algorithm.ECC_P384:
            key = ec.generate_private_key(ec.SECP384R1())
        elif alg[0] == Algorithm.RSA_2048:
            key = rsa.generate_private_key(65537, 2048)
        else:
            raise _Status(0x6A80)
        self.keys[Slot(c.p2)] = key
        return encode_public_key(key.public_key())

    def _accept_key_policies(self, slot: Slot, template: dict[int, bytes]) -> None:
        """PIN (AA) and touch (AB) policies are YubiKey's, not SP 800-73-4's: refused. A token that
        honours them overrides this (and :meth:`_authorize_key` to enforce them)."""
        if TAG_PIN_POLICY in template or TAG_TOUCH_POLICY in template:
            raise _Status(0x6A80)

    # --- conveniences for loaders ----------------------------------------------------------------
    @property
    def discovery(self) -> DiscoveryObject | None:
        raw = self.objects.get(ObjectId.DISCOVERY)
        return DiscoveryObject.from_bytes(raw) if raw else None
