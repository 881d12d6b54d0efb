"""PC/SC backend on pyscard's ``scard`` layer: readers, connections, card presence.

Every wait has a deadline. A connection shares the card with other PC/SC clients but holds a
transaction (exclusive access) around each unit of work via :meth:`PcscConnection.transaction`;
``exclusive=True`` (SCARD_SHARE_EXCLUSIVE) refuses other clients for the whole connection:
issuance holds the applicant's card that way, so no other process can use key 9A while the PIN
verified at PKI-AUTH is in force. :meth:`PcscConnection.reset` resets the card and keeps the
connection (and its exclusivity): SCardReconnect with SCARD_RESET_CARD.

In-process readers (:mod:`station.devices.virtual.readers`, the demo's and tests' virtual cards)
are listed, watched and opened here beside pcscd's, by name. While any exists, a missing pcscd is
no error: its readers are simply not listed, so a demo station needs no pcscd at all. With none,
everything below is plain PC/SC.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

from smartcard import scard

from station import cancel as cancelling
from station.devices.connection import Interface, SmartCardConnection
from station.devices.errors import CardRemoved, NoCard, NoReader, PcscNotRunning, TransportError, sharing_violation
from station.devices.virtual.readers import READERS as INPROCESS
from station.devices.virtual.readers import InProcessConnection

_REMOVED = {scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_RESET_CARD}
_NO_SERVICE = {scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED}
#: a wait for a card is cut into slices this long, so a cancel token set meanwhile is seen within it
CANCEL_SLICE = 0.05


def _check(hresult: int, what: str) -> None:
    if hresult == scard.SCARD_S_SUCCESS:
        return
    text = scard.SCardGetErrorMessage(hresult)
    if hresult in _NO_SERVICE:
        raise PcscNotRunning(f"the PC/SC service is not running: {text}")
    if hresult in (scard.SCARD_E_NO_READERS_AVAILABLE, scard.SCARD_E_UNKNOWN_READER):
        raise NoReader(f"{what}: no such reader ({text})")
    if hresult == scard.SCARD_E_NO_SMARTCARD or hresult == scard.SCARD_W_REMOVED_CARD:
        raise NoCard(f"{what}: no card in the reader")
    raise TransportError(f"{what} failed: {text}")


class _Context:
    def __init__(self):
        hresult, self.handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        _check(hresult, "connecting to the PC/SC service")

    def close(self):
        if self.handle is not None:
            handle, self.handle = self.handle, None
            scard.SCardReleaseContext(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def list_readers() -> list[str]:
    """pcscd's readers, then the in-process ones; with in-process readers, no pcscd is no error."""
    return _list_readers(keep_context=False)[0]


def _list_readers(*, keep_context: bool) -> tuple[list[str], _Context | None]:
    """:func:`list_readers`, and with ``keep_context`` the PC/SC context that listed them (the
    caller connects through it, or releases it), else None."""
    local = INPROCESS.names()
    try:
        remote, ctx = _pcsc_readers(keep_context)
    except PcscNotRunning:
        if not local:
            raise
        remote, ctx = [], None
    return remote + [r for r in local if r not in remote], ctx


def _pcsc_readers(keep: bool = False) -> tuple[list[str], _Context | None]:
    ctx = _Context()
    try:
        hresult, readers = scard.SCardListReaders(ctx.handle, [])
        if hresult in (scard.SCARD_E_NO_READERS_AVAILABLE,):
            readers = []
        else:
            _check(hresult, "listing readers")
    except BaseException:
        ctx.close()
        raise
    if not keep:
        ctx.close()
        ctx = None
    return list(readers), ctx


@dataclass(frozen=True)
class ReaderState:
    reader: str
    present: bool
    atr: bytes


def reader_states(timeout: float = 0.0, previous: list[ReaderState] | None = None, *,
                  cancel: threading.Event | None = None) -> list[ReaderState]:
    """Card presence in every reader. With ``previous`` given, waits up to ``timeout`` seconds
    for a change (insertion or removal) and returns the new states. A set ``cancel`` token ends
    the wait within :data:`CANCEL_SLICE` with :class:`~station.cancel.Cancelled`.

    With in-process readers among them, a change on either kind is seen within
    :data:`CANCEL_SLICE` (:func:`_mixed_states`)."""
    cancelling.check(cancel, "before watching the readers")
    if previous is None:
        readers = list_readers()
        now = {s.reader: s for s in _pcsc_states(0.0, None, readers=[r for r in readers if not INPROCESS.owns(r)])}
        return [now.get(r) or ReaderState(r, *INPROCESS.state(r)) for r in readers]
    if any(INPROCESS.owns(s.reader) for s in previous):
        return _mixed_states(timeout, previous, cancel)
    return _pcsc_states(timeout, previous, cancel=cancel)


def _pcsc_states(timeout: float, previous: list[ReaderState] | None, *, cancel: threading.Event | None = None,
                 readers: list[str] | None = None) -> list[ReaderState]:
    """pcscd's half of :func:`reader_states`: with ``previous`` None, the state of ``readers`` now."""
    if previous is None:
        query = [(r, scard.SCARD_STATE_UNAWARE) for r in readers or []]
        timeout = 0.0
    else:
        query = [(s.reader, scard.SCARD_STATE_PRESENT if s.present else scard.SCARD_STATE_EMPTY) for s in previous]
    if not query:
        return []
    with _Context() as ctx:
        end = time.monotonic() + timeout
        while True:
            left = max(0.0, end - time.monotonic())
            wait = min(left, CANCEL_SLICE) if cancel is not None else left
            hresult, states = scard.SCardGetStatusChange(ctx.handle, int(wait * 1000), query)
            if hresult != scard.SCARD_E_TIMEOUT:
                break
            cancelling.check(cancel, "while watching the readers")
            if wait >= left:
                return list(previous or [])
        _check(hresult, "watching readers")
        return [ReaderState(r, bool(ev & scard.SCARD_STATE_PRESENT), bytes(atr)) for r, ev, atr in states]


def _mixed_states(timeout: float, previous: list[ReaderState], cancel: threading.Event | None) -> list[ReaderState]:
    """:func:`reader_states` when ``previous`` names in-process readers: they are looked at
    every slice while pcscd waits on its own (or the registry's condition is waited on, when
    none of them is pcscd's)."""
    local = {s.reader: s.present for s in previous if INPROCESS.owns(s.reader)}
    remote = [s for s in previous if s.reader not in local]
    end = time.monotonic() + timeout
    while True:
        left = max(0.0, end - time.monotonic())
        wait = min(left, CANCEL_SLICE) if remote or cancel is not None else left
        if INPROCESS.wait_for_change(local, 0.0 if remote else wait):
            break
        if remote and _pcsc_states(wait, remote) != remote:
            break
        cancelling.check(cancel, "while watching the readers")
        if wait >= left:
            break
    now = {s.reader: s for s in (_pcsc_states(0.0, remote) if remote else [])}
    return [now.get(s.reader) or ReaderState(s.reader, *INPROCESS.state(s.reader)) for s in previous]


def watch(timeout: float, poll: float = 0.5, *, cancel: threading.Event | None = None):
    """Yield reader states each time a card is inserted or removed, until ``timeout`` (or
    :class:`~station.cancel.Cancelled` once ``cancel`` is set)."""
    end = time.monotonic() + timeout
    states = reader_states(cancel=cancel)
    yield states
    while (left := end - time.monotonic()) > 0:
        new = reader_states(min(poll, left), states, cancel=cancel)
        if new != states:
            states = new
            yield states


def wait_for_card(reader: str, *, present: bool = True, timeout: float = 10.0, cancel: threading.Event | None = None) -> bytes:
    """Wait until ``reader`` holds a card (or is empty); returns the ATR. Raises on timeout, and
    with :class:`~station.cancel.Cancelled` within :data:`CANCEL_SLICE` of ``cancel`` being set."""
    if INPROCESS.owns(reader):
        return INPROCESS.wait_for_card(reader, present=present, timeout=timeout, cancel=cancel, slice_=CANCEL_SLICE)
    end = time.monotonic() + timeout
    with _Context() as ctx:
        state = scard.SCARD_STATE_UNAWARE
        while True:
            cancelling.check(cancel, f"while waiting for a card in {reader}")
            left = end - time.monotonic()
            if left <= 0:
                what = "a card" if present else "the card to be removed"
                raise (NoCard if present else TransportError)(f"timed out waiting for {what} in {reader}")
            slice_ = CANCEL_SLICE if cancel is not None else 1.0
            hresult, states = scard.SCardGetStatusChange(ctx.handle, int(min(left, slice_) * 1000), [(reader, state)])
            if hresult == scard.SCARD_E_TIMEOUT:
                continue
            _check(hresult, f"watching {reader}")
            _, event, atr = states[0]
            if bool(event & scard.SCARD_STATE_PRESENT) == present and not event & scard.SCARD_STATE_MUTE:
                return bytes(atr)
            state = event & ~scard.SCARD_STATE_CHANGED


class PcscConnection(SmartCardConnection):
    """A connection to the card in one PC/SC reader."""

    def __init__(self, reader: str, *, exclusive: bool = False, context: _Context | None = None):
        """``context``: a PC/SC context to connect through (the connection then owns it),
        else a new one."""
        self.reader = reader
        self._ctx = context or _Context()
        self._share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
        hresult, self._card, self._protocol = scard.SCardConnect(
            self._ctx.handle, reader, self._share, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        if hresult != scard.SCARD_S_SUCCESS:
            self._ctx.close()
            if hresult == scard.SCARD_E_SHARING_VIOLATION:
                raise sharing_violation(reader)
            _check(hresult, f"connecting to the card in {reader}")
        hresult, _, _, _, atr = scard.SCardStatus(self._card)
        _check(hresult, "reading the card status")
        self._atr = bytes(atr)
        self.interface = Interface.from_atr(self._atr, reader)
        self._open = True

    @property
    def atr(self) -> bytes:
        return self._atr

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        hresult, response = scard.SCardTransmit(self._card, self._protocol, list(apdu))
        if hresult in _REMOVED:
            raise CardRemoved("the card was removed from the reader")
        _check(hresult, "sending a command to the card")
        if len(response) < 2:
            raise TransportError("the reader returned a reply without a status word")
        return bytes(response[:-2]), response[-2] << 8 | response[-1]

    @contextlib.contextmanager
    def transaction(self):
        """Exclusive access to the card for the duration of the block."""
        hresult = scard.SCardBeginTransaction(self._card)
        if hresult in _REMOVED:
            raise CardRemoved("the card was removed from the reader")
        _check(hresult, "starting a card transaction")
        try:
            yield self
        finally:
            scard.SCardEndTransaction(self._card, scard.SCARD_LEAVE_CARD)

    def reset(self) -> None:
        """Reset the card so no PIN stays verified; the connection and its share mode remain."""
        hresult, self._protocol = scard.SCardReconnect(self._card, self._share, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
                                                       scard.SCARD_RESET_CARD)
        if hresult in _REMOVED - {scard.SCARD_W_RESET_CARD}:
            raise CardRemoved("the card was removed from the reader")
        _check(hresult, "resetting the card")

    def close(self, reset: bool = False) -> None:
        """Disconnect; ``reset=True`` resets the card so no PIN stays verified."""
        if self._open:
            self._open = False
            scard.SCardDisconnect(self._card, scard.SCARD_RESET_CARD if reset else scard.SCARD_LEAVE_CARD)
            self._ctx.close()


def open_reader(name: str | None = None, *, exclusive: bool = False) -> PcscConnection | InProcessConnection:
    """Open the card in the named reader (exact name, or a unique substring), else in the
    first reader that holds a card."""
    readers, ctx = _list_readers(keep_context=name is not None)
    try:  # the context that listed the readers connects to the named one (one context, not two)
        if not readers:
            raise NoReader("no smart card reader is connected")
        if name is not None:
            matches = [r for r in readers if r == name] or [r for r in readers if name.lower() in r.lower()]
            if not matches:
                raise NoReader(f"no reader named {name!r} (readers: {', '.join(readers)})")
            if len(matches) > 1:
                raise NoReader(f"{name!r} matches several readers: {', '.join(matches)}")
            connection, ctx = _connect(matches[0], exclusive, ctx), None  # it owns the context now
            return connection
    finally:
        if ctx is not None:
            ctx.close()
    for state in reader_states():
        if state.present:
            return _connect(state.reader, exclusive)
    raise NoCard(f"no card in any reader ({', '.join(readers)})")


def _connect(reader: str, exclusive: bool, context: _Context | None = None) -> PcscConnection | InProcessConnection:
    """``context``: a PC/SC context the new connection takes over (closed here when not used)."""
    if INPROCESS.owns(reader):
        if context is not None:
            context.close()
        return INPROCESS.connect(reader, exclusive=exclusive)
    return PcscConnection(reader, exclusive=exclusive, context=context)


@contextlib.contextmanager
def piv_session(reader: str, *, cancel: threading.Event | None = None):
    """A PivSession on an exclusive connection to ``reader``, inside a PC/SC transaction (no
    other program talks to the card meanwhile); the card is reset when the block ends, however
    it ends (no PIN stays verified, no management key stays authenticated)."""
    from station.devices.piv import PivSession

    conn = open_reader(reader, exclusive=True)
    try:
        with conn.transaction():
            yield PivSession(conn, cancel=cancel)
    finally:
        conn.close(reset=True)
