"""Operator sign-in: the operator's own PIV card (PKI-AUTH) or an argon2id password.

Passwords are accepted only where the configuration allows them (``[operators]
allow_passwords = true``). Every sign-in, and every failed one, is an audit event; no secret
is ever stored or logged (the password hash is argon2id, RFC 9106). :func:`sign_in` is the
one entry for an action: a fresh sign-in, then the role the action needs (administrators
manage operators and revoke, registrars open and resume requests, supervisors approve and
cancel; FIPS 201-3 §2.1 separation of duties).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from station.cancel import check
from station.issuance.pkiauth import pki_auth
from station.errors import Exit, StationError
from station.service import operators
from station.service.operators import OperatorLogin
from station.signin_policy import passwords_allowed
from station.terms import AuthMethod, Role

_HASHER = PasswordHasher()  # argon2id, RFC 9106 "second recommended" parameters


class SignInRefused(StationError):
    class Code(str, Enum):
        SIGNIN = "signin"
        WEAK_PASSWORD = "signin.weak_password"
        PASSWORDS_DISABLED = "signin.passwords_disabled"
        UNKNOWN_OPERATOR = "signin.unknown_operator"
        WRONG_PASSWORD = "signin.wrong_password"
        WRONG_METHOD = "signin.wrong_method"
        CARD_REJECTED = "signin.card_rejected"
        WRONG_CARD = "signin.wrong_card"
        NO_OPERATOR = "signin.no_operator"
        CARD_ENROLLED = "separation.card_enrolled"
        ROLE = "separation.role"

    code = Code.SIGNIN.value
    hint = "the operator signs in again with their own PIV card or password"
    exit_code = Exit.REFUSED


@dataclass(frozen=True)
class SignedIn:
    operator_id: int
    identity: str
    roles: frozenset[str]
    method: str
    at: dt.datetime
    piv_auth_sha256: str | None = None  # the card an operator signed in with


def hash_password(secret: str) -> str:
    if len(secret) < 12:
        raise SignInRefused("an operator password must be at least 12 characters", code=SignInRefused.Code.WEAK_PASSWORD,
                            hint="choose a longer passphrase (SP 800-63B §5.1.1.2)")
    return _HASHER.hash(secret)


def _signed_in(login: OperatorLogin, method: AuthMethod, piv_sha256: str | None = None) -> SignedIn:
    return SignedIn(login.id, login.identity, login.roles, method.value, dt.datetime.now(dt.timezone.utc), piv_sha256)


def _refuse(station, identity: str, why: str, code: SignInRefused.Code) -> SignInRefused:
    operators.record_sign_in_refused(station, identity, code.value)
    return SignInRefused(f"sign-in of {identity!r} refused: {why}", code=code)


_CANCEL_POLL = 0.005  # seconds between looks at the cancel token while a password is checked


def _verify(reference: str, secret: str) -> bool:
    try:
        return _HASHER.verify(reference, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _password_matches(reference: str, secret: str, cancel: threading.Event | None) -> bool:
    """The argon2id check (~0.1 s, pure computation). With a cancel token it runs on a
    short-lived helper thread that is waited for against the token: once the token is set the
    check is abandoned (:class:`Cancelled` within ~5 ms; the helper drops its result and the
    secret when the hash is done) and nothing is recorded."""
    if cancel is None:
        return _verify(reference, secret)
    check(cancel, "before the password is checked")
    done = threading.Event()
    outcome: list = []

    def work(reference: str, secret: str) -> None:
        try:
            outcome.append(_verify(reference, secret))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, args=(reference, secret), name="argon2id check", daemon=True).start()
    del secret  # only the helper holds it, until its hash is done
    while not done.wait(_CANCEL_POLL):
        check(cancel, "while the password is checked")
    check(cancel, "while the password is checked")  # a result reached while cancelling does not count
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def sign_in_with_password(station, identity: str, secret: str, *, cancel: threading.Event | None = None) -> SignedIn:
    """The argon2id check (~0.1 s by design) runs outside any transaction: it holds no lock.
    ``cancel``: set it (from any thread) to abandon the check at once with :class:`Cancelled`
    (no sign-in, no refusal recorded)."""
    if not passwords_allowed(station.config):
        raise _refuse(station, identity, "the configuration does not allow passwords", SignInRefused.Code.PASSWORDS_DISABLED)
    op = operators.active_operator(station, identity)
    method, reference = (op.auth_method, op.auth_reference) if op is not None else ("unknown", None)
    if method == AuthMethod.PASSWORD.value and reference:
        try:
            matches = _password_matches(reference, secret, cancel)
        finally:
            secret = ""  # not kept in a traceback's frame
        if not matches:
            method = "mismatch"
        else:
            # still active, still this password
            login = operators.record_sign_in(station, identity, AuthMethod.PASSWORD, reference=reference)
            if login is not None:
                return _signed_in(login, AuthMethod.PASSWORD)
            method = "unknown"
    if method == "unknown":
        raise _refuse(station, identity, "no such active operator", SignInRefused.Code.UNKNOWN_OPERATOR)
    if method == "mismatch":
        raise _refuse(station, identity, "wrong password", SignInRefused.Code.WRONG_PASSWORD)
    raise _refuse(station, identity, f"this operator signs in with {method}, not a password", SignInRefused.Code.WRONG_METHOD)


def sign_in_with_piv(station, identity: str, verdict) -> SignedIn:
    """``verdict``: PKI-AUTH of the operator's card under the operator trust profile. The card's
    cardholder UUID is recorded with the operator; a cardholder who is already another
    operator is refused (one person, one operator)."""
    if not verdict.accepted:
        raise _refuse(station, identity, f"the card was rejected ({', '.join(verdict.reasons)})", SignInRefused.Code.CARD_REJECTED)
    fingerprint = (verdict.identity.sha256_fingerprint or "").lower()
    holder = (verdict.identity.cardholder_uuid or "").lower() or None
    other = None
    op = operators.active_operator(station, identity)
    if op is not None and op.auth_method == AuthMethod.PIV.value and (op.auth_reference or "").lower() == fingerprint:
        if holder:
            other = operators.cardholder_elsewhere(station, holder, besides=op.id)
        if other is None:
            learnt = {"cardholder_uuid": holder} if holder and op.cardholder_uuid != holder else {}
            login = operators.record_sign_in(station, identity, AuthMethod.PIV, reference=fingerprint, details=learnt,
                                             cardholder_uuid=holder)  # the CHUID's, verified by PKI-AUTH
            if login is not None:
                return _signed_in(login, AuthMethod.PIV, fingerprint)
            op = None  # disabled or re-enrolled meanwhile
    if other is not None:
        raise _refuse(station, identity, f"this card's holder is already operator {other!r}", SignInRefused.Code.CARD_ENROLLED)
    if op is None:
        raise _refuse(station, identity, "no such active operator", SignInRefused.Code.UNKNOWN_OPERATOR)
    raise _refuse(station, identity, "this is not the operator's registered PIV card", SignInRefused.Code.WRONG_CARD)


def sign_in(station, identity: str, secret: Callable[[], str], role: Role, *, card=None, profile=None,
            cache_dir=None, cancel: threading.Event | None = None) -> SignedIn:
    """A fresh sign-in of ``identity`` for an action that needs ``role``: PKI-AUTH of the
    operator's own card in ``card`` (a PivSession; ``secret()`` gives its PIN, asked for once
    the card's PIN status is known; ``profile``: the operator trust profile), else their
    password ``secret()``. Refused (audited) without the role. ``cancel``: a cancel token for
    the PKI-AUTH or the password check (:class:`station.cancel.Cancelled`)."""
    if card is not None:
        class OperatorPin:  # the operator's secret is their card's PIN
            def request_pin(self, *, pin_kind: str, tries_left: int | None) -> str:
                return secret()

        signed = sign_in_with_piv(station, identity, pki_auth(card, profile, OperatorPin(), cache_dir=cache_dir,
                                                              cancel=cancel))
    else:
        signed = sign_in_with_password(station, identity, secret(), cancel=cancel)
    if role.value not in signed.roles:
        raise _refuse(station, identity, f"the operator does not hold the {role.value} role", SignInRefused.Code.ROLE)
    return signed
