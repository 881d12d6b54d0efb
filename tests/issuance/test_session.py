"""The composition root, :class:`station.service.session.IssuanceSession`, on real parts: the
golden card over the real pcscd, a SoftHSM token, the station's records. It holds the
applicant's reader exclusively while it is open, resets the card when it closes (no PIN stays
verified), lets go of the target, hands its cancel token to the engine, the card and the target,
and closes the same way when the block ends with an exception."""

from __future__ import annotations

import threading
import uuid

import pytest

from station.cancel import Cancelled
from station.devices import errors, pcsc
from station.devices.pkcs11 import token as pkcs11_token
from station.devices.piv import PivSession
from station.devices.virtual import load_card_image
from station.service.session import IssuanceSession
from tests.conftest import GOLDEN, TEST_PIN, init_softhsm_token
from tests.issuance.people import SECRETS, add_password_operators

NEW_PIN, TRANSPORT = "k9Pz4mQ1", "55667788"


class Person:
    def operator_secret(self, operator, purpose):
        return SECRETS[operator]

    def request_pin(self, *, pin_kind, tries_left):
        return NEW_PIN if pin_kind == "credential" else TEST_PIN

    def request_new_pin(self):
        return NEW_PIN, NEW_PIN

    def confirm_photo(self, facial_image, subject):
        return True

    def progress(self, event):
        pass


@pytest.fixture
def station(sqlite_station, icam_profile_path):
    st = sqlite_station
    st.config["trust_profile"] = str(icam_profile_path)
    return add_password_operators(st)


@pytest.fixture
def reader(insert_card, pcscd):
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    return pcscd.reader()


@pytest.fixture
def token_uri(softhsm_conf):
    label = f"session-{uuid.uuid4().hex[:8]}"
    return init_softhsm_token(label, TRANSPORT)


def another_client_connects(reader: str) -> bool:
    """Whether another PC/SC client gets the reader (a shared connection, as any program would)."""
    try:
        conn = pcsc.open_reader(reader)
    except errors.TransportError as exc:
        assert "sharing" in str(exc).lower(), exc
        return False
    conn.close()
    return True


def pin_verified(reader: str) -> bool:
    """VERIFY without data on a fresh connection: spends no try."""
    conn = pcsc.open_reader(reader, exclusive=True)
    try:
        return PivSession(conn).get_pin_status().verified
    finally:
        conn.close()


def held_login(target) -> bool:
    return target.token._login_key in pkcs11_token._HELD


def test_the_session_issues_holding_the_reader_and_lets_go_of_everything_when_it_closes(station, reader, token_uri):
    assert another_client_connects(reader)
    with station.issuance_session(Person(), applicant_reader=reader, target=token_uri, revocation="crl") as session:
        assert isinstance(session, IssuanceSession)
        outcome = session.issue(registrar="reg", approver="sup", aal="AAL2")
        assert outcome.state == "issued" and outcome.selftest.passed
        assert not another_client_connects(reader)  # held exclusively while the session is open
        session.card.verify(TEST_PIN)  # as if a PIN were left verified
        assert session.card.get_pin_status().verified
        target = session.target
        target.token.hold_login(NEW_PIN)
        assert held_login(target)
    assert another_client_connects(reader)
    assert not pin_verified(reader)  # the card was reset on close
    assert not held_login(target)  # the target let go of its login


def test_the_sessions_cancel_token_reaches_the_engine_the_card_and_the_target(station, reader, token_uri):
    cancel = threading.Event()
    with station.issuance_session(Person(), cancel=cancel, applicant_reader=reader, target=token_uri) as session:
        assert session.engine.cancel_token is cancel and session.card.cancel is cancel and session.target.cancel is cancel
        assert session.card.get_pin_status().retries_left is not None  # works while the token is not set
        cancel.set()
        with pytest.raises(Cancelled):
            session.card.get_pin_status()  # the card sends nothing once it is set
        with pytest.raises(Cancelled):
            session.target.generate_key("P-256")  # nor does the target
        with pytest.raises(Cancelled) as stopped:
            session.issue(registrar="reg", approver="sup", aal="AAL2")  # nor the engine
        assert stopped.value.request_id is None
    assert another_client_connects(reader)


def test_the_session_closes_the_same_way_after_an_exception(station, reader, token_uri):
    with pytest.raises(RuntimeError, match="the screen went away"):
        with station.issuance_session(Person(), applicant_reader=reader, target=token_uri) as session:
            session.card.verify(TEST_PIN)
            target = session.target
            target.token.hold_login(TRANSPORT)
            assert not another_client_connects(reader)
            raise RuntimeError("the screen went away")
    assert another_client_connects(reader)
    assert not pin_verified(reader)
    assert not held_login(target)


def test_a_session_opens_nothing_it_is_not_asked_for(station, reader):
    with station.issuance_session(Person()) as session:
        assert session.card is None and session.target is None
        assert another_client_connects(reader)
