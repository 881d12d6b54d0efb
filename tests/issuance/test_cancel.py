"""Cancel at every step of an issuance, in process: the golden card over the real pcscd, a
SoftHSM token. The cancel token is set by the person at the station (an Interaction) or while
the token works (a target that sets it), the engine stops at its next safe point with
``Cancelled`` naming the request, never ending it ``failed``; then both ways on: ``requests
cancel`` with the target leaves no key and no certificate on the token (the certificate
revoked), ``requests resume`` completes the request; the audit chain verifies either way."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest
from sqlalchemy import text

from station.cancel import Cancelled
from station.cli import main
from station.devices import pcsc
from station.devices.piv import PivSession
from station.devices.virtual import load_card_image
from station.issuance.engine import IssuanceEngine
from station.issuance.targets.base import DeviceMustBeReset
from station.issuance.targets.pkcs11 import Pkcs11Target
from tests.conftest import GOLDEN, TEST_PIN, init_softhsm_token
from tests.issuance.people import NOTHING, ONE_CREDENTIAL, SECRETS, add_password_operators, token_objects as objects

NEW_PIN, TRANSPORT = "k9Pz4mQ1", "55667788"

# where the cancel token is set -> the state the request is left in (None: no request at all)
POINTS = {
    "request": None,  # the registrar has signed in; nothing is recorded yet
    "approval": "requested",  # the approver has signed in; the approval is not recorded
    "pki-auth-before-pin": "approved",
    "pki-auth-after-pin": "approved",  # the PIN is typed; VERIFY is not sent
    "key-generation": "authenticated",  # the new PIN is typed; no key yet
    "key-on-token": "authenticated",  # the token made the key; no certification request yet
    "certificate": "authenticated",  # the token signed the certification request; the CA is not asked
    "delivery": "key_generated",
    "activation": "delivered",
    "self-test": "activated",  # the applicant's PIN is typed for the test; nothing signed
}


class Person:
    """The people at the station, one of whom presses Cancel at ``point``."""

    def __init__(self, point: str | None, event: threading.Event):
        self.point, self.event = point, event

    def at(self, point: str | None) -> None:
        if point is not None and point == self.point:
            self.event.set()

    def operator_secret(self, operator, purpose):
        self.at("request" if purpose == "open a request" else "approval" if purpose.startswith("approve") else None)
        return SECRETS[operator]

    def request_pin(self, *, pin_kind, tries_left):
        self.at("self-test" if pin_kind == "credential" else "pki-auth-after-pin")
        return NEW_PIN if pin_kind == "credential" else TEST_PIN

    def request_new_pin(self):
        self.at("key-generation")
        return NEW_PIN, NEW_PIN

    def confirm_photo(self, facial_image, subject):
        return True

    def progress(self, *args, **kwargs):
        """``progress(state, message)`` or a typed event with ``.state``."""
        state = args[0] if args and isinstance(args[0], str) else getattr(args[0] if args else None, "state", kwargs.get("state"))
        self.at({"approved": "pki-auth-before-pin", "key_generated": "delivery", "delivered": "activation"}.get(state))


class Token(Pkcs11Target):
    """A PKCS#11 target whose device work may coincide with the Cancel button."""

    def __init__(self, uri, person: Person | None = None):
        super().__init__(uri)
        self.person, self.generated = person, None

    def generate_key(self, algorithm):
        self.generated = super().generate_key(algorithm)
        if self.person:
            self.person.at("key-on-token")
        return self.generated

    def proof_of_possession(self, subject):
        csr = super().proof_of_possession(subject)
        if self.person:
            self.person.at("certificate")
        return csr


@pytest.fixture
def station(sqlite_station):
    return add_password_operators(sqlite_station)


@pytest.fixture
def card(insert_card, pcscd):
    """The golden card in the pcscd reader, held exclusively as `station issue` holds it."""
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    conn = pcsc.open_reader(pcscd.reader(), exclusive=True)
    yield conn
    conn.close(reset=True)


def rows(station, sql: str) -> list[tuple]:
    with station.db.transaction() as session:
        return [tuple(row) for row in session.execute(text(sql))]




def audit_verifies(station) -> bool:
    return main(["audit", "verify", "--home", str(station.home.root)]) == 0


@pytest.mark.parametrize("way_on", ["cancel", "resume"])
@pytest.mark.parametrize("point", list(POINTS))
def test_cancel_at_every_step(point, way_on, station, icam_profile, crl_cache, softhsm_conf, card):
    label = f"cancel-{uuid.uuid4().hex[:8]}"
    uri = init_softhsm_token(label, TRANSPORT)
    event = threading.Event()
    person = Person(point, event)
    engine = IssuanceEngine(station, icam_profile.with_revocation("crl"), person, crl_cache=crl_cache, cancel=event)
    target = Token(uri, person)
    retries = PivSession(card).get_pin_status().retries_left
    with pytest.raises(Cancelled) as stopped:
        engine.issue(PivSession(card), registrar="reg", approver="sup", aal="AAL2", target=target)
    target.close()
    left = POINTS[point]
    assert stopped.value.code == "cancelled" and stopped.value.exit_code == 130
    if left is None:  # stopped before anything was recorded: nothing to resume or cancel
        assert stopped.value.request_id is None and rows(station, "SELECT id FROM requests") == []
        assert objects(label, TRANSPORT) == NOTHING and audit_verifies(station)
        return
    request_id = stopped.value.request_id
    assert rows(station, "SELECT id, state FROM requests") == [(request_id, left)]  # its last committed state, not failed
    assert PivSession(card).get_pin_status().retries_left == retries  # no PIN try was spent by stopping
    if left in ("authenticated", "key_generated", "delivered", "activated"):  # the engine gave the target its token
        assert target.cancel is event
    if point == "key-on-token":  # no orphan: the key the token made is on record
        assert rows(station, "SELECT json_extract(target_state, '$.key') FROM requests") == [("generated",)]
    engine.cancel_token = None
    if way_on == "cancel":
        if left == "activated":  # only the applicant's PIN opens the token now
            with pytest.raises(DeviceMustBeReset) as reset:
                engine.cancel(request_id, actor="sup", target=Token(uri))
            assert "the device must be reset" in str(reset.value) and f"request {request_id} is cancelled" in str(reset.value)
            assert objects(label, TRANSPORT) is None and objects(label, NEW_PIN) == ONE_CREDENTIAL
        else:
            engine.cancel(request_id, actor="sup", target=Token(uri))
            assert objects(label, TRANSPORT) == NOTHING  # no key, no certificate left on the token
        assert rows(station, "SELECT state FROM requests") == [("cancelled",)]
        issued = left in ("key_generated", "delivered", "activated")
        assert rows(station, "SELECT status FROM credentials") == ([("revoked",)] if issued else [])
    else:
        resumed = Token(uri)
        if left == "requested":
            engine.approve(request_id, approver="sup")
        outcome = engine.complete(request_id, PivSession(card), resumed, registrar="reg")
        resumed.close()
        assert outcome.state == "issued" and outcome.selftest.passed
        if target.generated is not None and left == "authenticated":  # the key made before the stop is the one certified
            assert outcome.certificate.public_key() == target.generated
        assert rows(station, "SELECT status FROM credentials") == [("active",)]  # one certificate for the request
        assert objects(label, NEW_PIN) == ONE_CREDENTIAL
    assert audit_verifies(station)


def test_a_cancelled_request_cancelled_again_with_its_target_loses_the_key(station, icam_profile, crl_cache, softhsm_conf, card):
    """`requests cancel ID` first without the device, later with it: the key still goes."""
    label = f"cancel-{uuid.uuid4().hex[:8]}"
    uri = init_softhsm_token(label, TRANSPORT)
    event = threading.Event()
    person = Person("delivery", event)
    engine = IssuanceEngine(station, icam_profile.with_revocation("crl"), person, crl_cache=crl_cache, cancel=event)
    with pytest.raises(Cancelled) as stopped:
        engine.issue(PivSession(card), registrar="reg", approver="sup", aal="AAL2", target=Token(uri, person))
    engine.cancel(stopped.value.request_id, actor="sup")
    assert objects(label, TRANSPORT) == {"Private Key": 1, "Public Key": 1, "Certificate": 0}
    engine.cancel(stopped.value.request_id, actor="sup", target=Token(uri))
    assert objects(label, TRANSPORT) == NOTHING and rows(station, "SELECT status FROM credentials") == [("revoked",)]
    assert audit_verifies(station)


def test_a_pin_typed_as_cancel_is_pressed_is_never_sent(station, icam_profile, crl_cache, softhsm_conf, card):
    """Cancel pressed while the applicant types a (wrong) PIN: VERIFY is not sent, so no try is
    spent and the request stays approved (a wrong-PIN verdict would have ended it failed)."""
    class Mistyped(Person):
        def request_pin(self, *, pin_kind, tries_left):
            super().request_pin(pin_kind=pin_kind, tries_left=tries_left)
            return "000000"

    event = threading.Event()
    person = Mistyped("pki-auth-after-pin", event)
    engine = IssuanceEngine(station, icam_profile.with_revocation("crl"), person, crl_cache=crl_cache, cancel=event)
    target = Token(init_softhsm_token(f"cancel-{uuid.uuid4().hex[:8]}", TRANSPORT), person)
    retries = PivSession(card).get_pin_status().retries_left
    with pytest.raises(Cancelled):
        engine.issue(PivSession(card), registrar="reg", approver="sup", aal="AAL2", target=target)
    target.close()
    assert PivSession(card).get_pin_status().retries_left == retries
    assert rows(station, "SELECT state FROM requests") == [("approved",)]


def test_pin_is_not_sent_once_cancelled(station, icam_profile, crl_cache, softhsm_conf, card):
    """The card's own commands stop too: a session whose token is set sends nothing more."""
    event = threading.Event()
    session = PivSession(card, cancel=event)
    event.set()
    with pytest.raises(Cancelled):
        session.get_pin_status()
    session.reset()  # a reset is never refused
    session.cancel = None
    assert session.get_pin_status().retries_left is not None


def test_a_wait_for_a_card_wakes_on_cancel(pcscd):
    """The PC/SC waits are cut in 50 ms slices: a cancel ends a long wait at once."""
    event = threading.Event()
    threading.Timer(0.2, event.set).start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        pcsc.wait_for_card(pcscd.reader(1), timeout=30, cancel=event)  # the second slot stays empty
    assert 0.2 <= time.monotonic() - start < 0.2 + 0.25
    states = pcsc.reader_states()
    event = threading.Event()
    threading.Timer(0.2, event.set).start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        pcsc.reader_states(30, states, cancel=event)
    assert time.monotonic() - start < 0.2 + 0.25
    assert pcsc.reader_states(0.1, states) == states  # without a token: the wait runs out as before


def test_sigint_and_sigterm_set_the_token_and_the_handlers_come_back():
    from station.cli._interrupt import interruptible

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with interruptible() as cancel:
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: the token is set
        time.sleep(0.01)
        assert cancel.is_set()
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal changes nothing
        time.sleep(0.01)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
