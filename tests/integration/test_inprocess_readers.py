"""In-process readers (station/devices/virtual/readers.py) through station.devices.pcsc's own
functions: presence waits with deadlines and cancel (on either kind of reader), exclusive opens,
the per-reader transaction lock, reset, a card pulled while a connection is open; the golden GSA
card's PKI-AUTH with no pcscd at all (its own process), and a whole issuance through
IssuanceSession from an in-process reader.

Every test here that makes a PC/SC call in this process asks for the ``pcscd`` fixture, though
the in-process readers do not use it: pcsc-lite reads PCSCLITE_CSOCK_NAME once, at a process's
first PC/SC call, so a call made before the fixture set it would hide the fixture's pcscd from
every later test of the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

from station.cancel import Cancelled
from station.devices import errors, pcsc
from station.devices.piv import PivSession
from station.devices.virtual import VirtualPivCard, load_card_image
from station.devices.virtual.card import DEFAULT_PIN
from station.devices.virtual.readers import READERS
from station.issuance.pkiauth import pki_auth
from station.service.session import card_session
from tests.conftest import GOLDEN, REPO, TEST_PIN, FixedPin, init_softhsm_token
from tests.issuance.people import add_password_operators
from tests.issuance.test_session import TRANSPORT, Person

NAME = "In-process reader 0"


@pytest.fixture
def reader(pcscd):
    """An empty in-process reader (beside the pcscd fixture's reader: see the module's docstring)."""
    READERS.add_reader(NAME)
    yield NAME
    READERS.clear()


@pytest.fixture
def card(reader):
    card = VirtualPivCard()
    READERS.insert(reader, card)
    return card


@pytest.fixture
def golden_reader(reader):
    READERS.insert(reader, load_card_image(GOLDEN, pin=TEST_PIN))
    return reader


def later(seconds: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True)
    thread.start()
    return thread


def state(reader: str) -> pcsc.ReaderState:
    return next(s for s in pcsc.reader_states() if s.reader == reader)


def test_listed_and_reported_without_pcscd(reader):
    assert reader in pcsc.list_readers()
    assert state(reader) == pcsc.ReaderState(reader, False, b"")
    card = VirtualPivCard()
    READERS.insert(reader, card)
    assert state(reader) == pcsc.ReaderState(reader, True, card.atr)


def test_a_change_is_seen_within_the_deadline(reader):
    empty = [state(reader)]
    later(0.1, lambda: READERS.insert(reader, VirtualPivCard()))
    start = time.monotonic()
    full = pcsc.reader_states(5.0, empty)
    assert full[0].present and time.monotonic() - start < 1.0
    later(0.1, lambda: READERS.remove(reader))
    start = time.monotonic()
    assert not pcsc.reader_states(5.0, full)[0].present and time.monotonic() - start < 1.0


def test_no_change_returns_the_same_states_at_the_deadline(card, reader):
    before = [state(reader)]
    start = time.monotonic()
    assert pcsc.reader_states(0.3, before) == before
    assert 0.25 <= time.monotonic() - start < 1.0


def test_wait_for_card_and_for_its_removal(reader):
    card = VirtualPivCard()
    later(0.1, lambda: READERS.insert(reader, card))
    assert pcsc.wait_for_card(reader, timeout=5) == card.atr
    later(0.1, lambda: READERS.remove(reader))
    assert pcsc.wait_for_card(reader, present=False, timeout=5) == b""
    with pytest.raises(errors.NoCard, match="timed out"):
        pcsc.wait_for_card(reader, timeout=0.2)


@pytest.mark.parametrize("wait", ["reader_states", "wait_for_card"])
def test_a_cancel_token_ends_a_wait_within_a_slice(reader, wait):
    cancel = threading.Event()
    previous = [state(reader)]
    set_at = []
    later(0.2, lambda: (set_at.append(time.monotonic()), cancel.set()))
    with pytest.raises(Cancelled):
        if wait == "reader_states":
            pcsc.reader_states(10.0, previous, cancel=cancel)
        else:
            pcsc.wait_for_card(reader, timeout=10.0, cancel=cancel)
    assert time.monotonic() - set_at[0] < pcsc.CANCEL_SLICE + 0.05  # one slice, plus scheduling


def test_exclusive_open_is_refused_as_pcsc_refuses_it(card, reader):
    first = pcsc.open_reader(reader, exclusive=True)
    for exclusive in (True, True, False):  # a second exclusive open, again, and a shared one
        with pytest.raises(errors.TransportError, match="sharing violation") as refused:
            pcsc.open_reader(reader, exclusive=exclusive)
        assert refused.value.hint == errors.sharing_violation(reader).hint
    first.close()
    shared = pcsc.open_reader(reader)
    with pytest.raises(errors.TransportError, match="sharing violation"):
        pcsc.open_reader(reader, exclusive=True)  # refused while another connection is open
    shared.close()
    pcsc.open_reader(reader, exclusive=True).close()


def test_open_errors_match_pcsc(reader):
    with pytest.raises(errors.NoCard):
        pcsc.open_reader(reader)
    with pytest.raises(errors.NoReader):
        pcsc.open_reader("no such reader anywhere")


def test_reset_and_close_with_reset_leave_no_pin_verified(card, reader):
    conn = pcsc.open_reader(reader, exclusive=True)
    session = PivSession(conn)
    session.verify(DEFAULT_PIN)
    assert session.get_pin_status().verified
    conn.reset()
    assert not PivSession(conn).get_pin_status().verified
    PivSession(conn).verify(DEFAULT_PIN)
    conn.close()  # like SCARD_LEAVE_CARD: the card keeps its state
    conn = pcsc.open_reader(reader)
    assert PivSession(conn).get_pin_status().verified
    conn.close(reset=True)
    conn = pcsc.open_reader(reader)
    assert not PivSession(conn).get_pin_status().verified
    conn.close()


def test_a_transaction_holds_off_other_connections(card, reader):
    holder, other = pcsc.open_reader(reader), pcsc.open_reader(reader)
    done = threading.Event()
    with holder.transaction():
        with holder.transaction():  # nested, as pcsc-lite allows on one handle
            holder.send_and_receive(bytes.fromhex("00A4040009A00000030800001000"))
        thread = threading.Thread(target=lambda: (other.send_and_receive(bytes.fromhex("00A4040009A00000030800001000")),
                                                  done.set()), daemon=True)
        thread.start()
        assert not done.wait(0.2)  # waits for the transaction to end
    assert done.wait(2)
    holder.close()
    other.close()


def test_card_pulled_mid_session_raises_card_removed(card, reader):
    with pytest.raises(errors.CardRemoved):
        with card_session(reader) as session:
            assert session.get_pin_status().retries_left == 5
            READERS.remove(reader)
            session.get_pin_status()
    READERS.insert(reader, card)  # back in: the pulled session let go of the reader
    with card_session(reader) as session:
        assert session.get_pin_status().retries_left == 5


def test_card_pulled_during_an_exchange_and_a_swapped_card(card, reader):
    conn = pcsc.open_reader(reader)
    inner = card.transmit

    def pulled_while_answering(apdu):
        READERS.remove(reader)
        return inner(apdu)

    card.transmit = pulled_while_answering
    with pytest.raises(errors.CardRemoved):
        conn.send_and_receive(bytes.fromhex("00A4040009A00000030800001000"))
    card.transmit = inner
    READERS.insert(reader, VirtualPivCard())  # another card: the old connection is still stale
    with pytest.raises(errors.CardRemoved):
        conn.send_and_receive(bytes.fromhex("00A4040009A00000030800001000"))
    conn.close()
    pcsc.open_reader(reader, exclusive=True).close()


def test_a_reader_taken_away_reads_as_empty_to_a_watcher(card, reader):
    before = [state(reader)]
    later(0.1, READERS.clear)
    after = pcsc.reader_states(5.0, before)
    assert after == [pcsc.ReaderState(reader, False, b"")]
    with pytest.raises(errors.NoReader):
        pcsc.open_reader(reader)


def test_watch_yields_each_change(reader):
    later(0.1, lambda: READERS.insert(reader, VirtualPivCard()))
    seen = []
    for states in pcsc.watch(3.0, poll=0.5):
        seen.append([s.present for s in states if s.reader == reader])
        if len(seen) == 2:
            break
    assert seen == [[False], [True]]


def test_a_change_on_either_kind_of_reader_is_seen_within_a_slice(reader, pcscd, insert_card):
    previous = [s for s in pcsc.reader_states() if s.reader in (pcscd.reader(), reader)]
    assert [(s.reader, s.present) for s in previous] == [(pcscd.reader(), False), (reader, False)]

    later(0.2, lambda: READERS.insert(reader, VirtualPivCard()))
    start = time.monotonic()
    after = pcsc.reader_states(10.0, previous)
    assert time.monotonic() - start < 0.2 + pcsc.CANCEL_SLICE + 0.1  # while pcscd's reader was waited on
    assert [(s.reader, s.present) for s in after] == [(pcscd.reader(), False), (reader, True)]

    inserting = later(0.2, lambda: insert_card(load_card_image(GOLDEN, pin=TEST_PIN)))
    again = pcsc.reader_states(10.0, after)
    inserting.join()
    assert [(s.reader, s.present) for s in again] == [(pcscd.reader(), True), (reader, True)]

    cancel = threading.Event()
    set_at = []
    later(0.2, lambda: (set_at.append(time.monotonic()), cancel.set()))
    with pytest.raises(Cancelled):
        pcsc.reader_states(10.0, again, cancel=cancel)
    assert time.monotonic() - set_at[0] < pcsc.CANCEL_SLICE + 0.05


def test_pki_auth_of_the_golden_card_in_an_in_process_reader(golden_reader, icam_profile, crl_cache):
    pin = FixedPin()
    with card_session(golden_reader) as session:
        verdict = pki_auth(session, icam_profile, pin, mode="crl", cache_dir=crl_cache)
    assert verdict.verdict == "accept", verdict.reasons
    assert verdict.identity.fascn == "D13810D828AF2C1084246DA1685828AF0210848D84E739C3EB"
    assert pin.asked == [("application", 5)]


NO_PCSCD = textwrap.dedent("""\
    import json, sys
    from pathlib import Path
    from station.devices import errors, pcsc
    from station.devices.virtual import load_card_image
    from station.devices.virtual.readers import READERS
    from station.issuance.pkiauth import pki_auth
    from station.service.session import card_session
    from station.validation.trust import TrustProfile
    from tests.conftest import GOLDEN, TEST_PIN, FixedPin

    profile, cache = sys.argv[1:]
    try:
        before = pcsc.list_readers()
    except errors.PcscNotRunning as exc:
        before = exc.code
    READERS.add_reader("In-process reader 0")
    READERS.insert("In-process reader 0", load_card_image(GOLDEN, pin=TEST_PIN))
    readers = pcsc.list_readers()
    with card_session(None) as card:  # the first reader holding a card
        verdict = pki_auth(card, TrustProfile.load(Path(profile)), FixedPin(), mode="crl", cache_dir=Path(cache))
    print(json.dumps({"before": before, "readers": readers, "verdict": verdict.verdict}))
""")


def test_pki_auth_in_a_process_that_finds_no_pcscd(icam_profile_path, crl_cache):
    """PCSCLITE_CSOCK_NAME points nowhere: listing fails as it always did while no in-process
    reader exists, then lists just the in-process one, and PKI-AUTH of the golden card passes."""
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": "/nonexistent/pcscd.comm", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", NO_PCSCD, str(icam_profile_path), str(crl_cache)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"before": "pcsc-not-running", "readers": [NAME], "verdict": "accept"}


@pytest.fixture
def station(sqlite_station, icam_profile_path):
    sqlite_station.config["trust_profile"] = str(icam_profile_path)
    return add_password_operators(sqlite_station)


def test_a_whole_issuance_from_an_in_process_reader(station, golden_reader, softhsm_conf):
    token_uri = init_softhsm_token(f"inproc-{uuid.uuid4().hex[:8]}", TRANSPORT)
    with station.issuance_session(Person(), applicant_reader=golden_reader, target=token_uri, revocation="crl") as session:
        outcome = session.issue(registrar="reg", approver="sup", aal="AAL2")
        assert outcome.state == "issued" and outcome.selftest.passed
        with pytest.raises(errors.TransportError, match="sharing violation"):
            pcsc.open_reader(golden_reader)  # held exclusively while the session is open
        session.card.verify(TEST_PIN)  # as if a PIN were left verified
    conn = pcsc.open_reader(golden_reader, exclusive=True)  # the session let go of the reader
    try:
        assert not PivSession(conn).get_pin_status().verified  # and reset the card
    finally:
        conn.close()
