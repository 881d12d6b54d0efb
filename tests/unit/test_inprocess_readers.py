"""In-process readers (station/devices/virtual/readers.py) through station.devices.pcsc's own
functions, with no pcscd: presence waits with deadlines and cancel, exclusive opens, the
per-reader transaction lock, reset, and a card pulled while a connection is open."""

from __future__ import annotations

import threading
import time

import pytest

from station.cancel import Cancelled
from station.devices import errors, pcsc
from station.devices.piv import PivSession
from station.devices.virtual import VirtualPivCard
from station.devices.virtual.card import DEFAULT_PIN
from station.devices.virtual.readers import READERS
from station.service.session import card_session

NAME = "In-process reader 0"


@pytest.fixture
def reader(monkeypatch):
    """An empty in-process reader; pcscd, if one was started earlier in the run, is not needed."""
    monkeypatch.setenv("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm")
    READERS.add_reader(NAME)
    yield NAME
    READERS.clear()


@pytest.fixture
def card(reader):
    card = VirtualPivCard()
    READERS.insert(reader, card)
    return card


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
