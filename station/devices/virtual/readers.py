"""In-process card readers: named slots that hold a :class:`VirtualPivCard`, for the demo and tests.

:mod:`station.devices.pcsc` lists them beside pcscd's readers and dispatches to them by name, so
``card_session(reader)`` and everything above it run unchanged on a virtual card with no pcscd
at all (issue 11's demo). The real station uses PC/SC; nothing here is reached unless a reader
was added to :data:`READERS`.

They behave as PC/SC readers do, as far as the station relies on it:

- inserting a card powers it on (cold reset); opening a connection does not reset it;
- ``exclusive=True`` is refused while any other connection to the card is open, and any open is
  refused while an exclusive one is (the same :func:`~station.devices.errors.sharing_violation`
  as SCARD_E_SHARING_VIOLATION);
- :meth:`InProcessConnection.transaction` is a per-reader lock, like SCardBeginTransaction:
  another connection's exchanges and transactions wait until it ends;
- a card pulled (or swapped) while a connection is open makes that connection's next exchange
  raise :class:`~station.devices.errors.CardRemoved`, as SCARD_W_REMOVED_CARD does; the pulled
  card's exclusive hold and transaction end with it;
- a reader taken away (:meth:`InProcessReaders.clear`) reads as empty to a watcher that still
  names it, as an unplugged reader does under SCardGetStatusChange.

Every insertion, removal and release signals one :class:`threading.Condition`, which is what the
presence waits sleep on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from station import cancel as cancelling
from station.devices.connection import Interface, SmartCardConnection
from station.devices.errors import CardRemoved, NoCard, NoReader, TransportError, sharing_violation

if TYPE_CHECKING:
    from station.devices.virtual.card import VirtualPivCard


@dataclass
class _Slot:
    card: "VirtualPivCard | None" = None
    generation: int = 0  # bumped on every insertion and removal: a connection belongs to one
    connections: int = 0
    exclusive: "InProcessConnection | None" = None
    transaction: "InProcessConnection | None" = None
    depth: int = 0  # nested transactions of the holder


class InProcessReaders:
    """A registry of named in-process readers; the process-wide one is :data:`READERS`."""

    def __init__(self):
        self._changed = threading.Condition()
        self._slots: dict[str, _Slot] = {}
        self._gone: set[str] = set()  # names cleared away: still ours, and empty, to a watcher

    # --- what the demo and tests do --------------------------------------------------------------
    def add_reader(self, name: str) -> str:
        """Plug in an empty reader called ``name``; returns the name."""
        with self._changed:
            if name in self._slots:
                raise ValueError(f"there is already an in-process reader named {name!r}")
            self._slots[name] = _Slot()
            self._gone.discard(name)
            self._changed.notify_all()
        return name

    def insert(self, name: str, card: "VirtualPivCard") -> None:
        """Put ``card`` into the reader (powered on: nothing stays verified from before)."""
        with self._changed:
            slot = self._slot(name)
            if slot.card is not None:
                raise ValueError(f"the in-process reader {name!r} already holds a card")
            card.power_on()
            slot.card, slot.generation = card, slot.generation + 1
            self._changed.notify_all()

    def remove(self, name: str) -> "VirtualPivCard | None":
        """Pull the card out of the reader (returns it; None when it was empty). Connections to
        it raise :class:`CardRemoved` from their next exchange on."""
        with self._changed:
            slot = self._slot(name)
            card = slot.card
            self._slots[name] = _Slot(generation=slot.generation + 1)
            self._changed.notify_all()
            return card

    def clear(self) -> None:
        """Take every reader away (the demo's and tests' teardown)."""
        with self._changed:
            self._gone |= set(self._slots)
            self._slots.clear()
            self._changed.notify_all()

    # --- what station.devices.pcsc asks ---------------------------------------------------------
    def names(self) -> list[str]:
        with self._changed:
            return list(self._slots)

    def owns(self, name: str) -> bool:
        """Whether ``name`` is (or was, before :meth:`clear`) an in-process reader."""
        with self._changed:
            return name in self._slots or name in self._gone

    def state(self, name: str) -> tuple[bool, bytes]:
        """``(present, atr)`` of the reader now (a reader taken away is empty)."""
        with self._changed:
            slot = self._slots.get(name)
            return (True, slot.card.atr) if slot and slot.card else (False, b"")

    def wait_for_change(self, previous: dict[str, bool], timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until a reader's card presence differs from
        ``previous`` (name -> present); whether it did."""
        def changed():
            return any((name in self._slots and self._slots[name].card is not None) != present
                       for name, present in previous.items())

        with self._changed:
            return self._changed.wait_for(changed, max(0.0, timeout))

    def wait_for_card(self, name: str, *, present: bool, timeout: float, cancel: threading.Event | None,
                      slice_: float) -> bytes:
        """:func:`station.devices.pcsc.wait_for_card` for an in-process reader: the same
        errors on timeout, :class:`~station.cancel.Cancelled` within ``slice_`` of ``cancel``."""
        end = time.monotonic() + timeout
        with self._changed:
            self._slot(name)
            while True:
                cancelling.check(cancel, f"while waiting for a card in {name}")
                slot = self._slots.get(name)
                if slot is not None and (slot.card is not None) == present:
                    return slot.card.atr if present else b""
                left = end - time.monotonic()
                if left <= 0:
                    what = "a card" if present else "the card to be removed"
                    raise (NoCard if present else TransportError)(f"timed out waiting for {what} in {name}")
                self._changed.wait(min(left, slice_) if cancel is not None else left)

    def connect(self, name: str, *, exclusive: bool = False) -> "InProcessConnection":
        return InProcessConnection(self, name, exclusive=exclusive)

    def _slot(self, name: str) -> _Slot:
        slot = self._slots.get(name)
        if slot is None:
            raise NoReader(f"no in-process reader named {name!r}")
        return slot


class InProcessConnection(SmartCardConnection):
    """A connection to the card in an in-process reader; used like
    :class:`station.devices.pcsc.PcscConnection`."""

    def __init__(self, readers: InProcessReaders, reader: str, *, exclusive: bool = False):
        self.reader = reader
        self._readers = readers
        with readers._changed:
            slot = readers._slot(reader)
            if slot.card is None:
                raise NoCard(f"connecting to the card in {reader}: no card in the reader")
            if slot.exclusive is not None or (exclusive and slot.connections):
                raise sharing_violation(reader)
            slot.connections += 1
            if exclusive:
                slot.exclusive = self
            self._card, self._generation = slot.card, slot.generation
        self._atr = self._card.atr
        self.interface = Interface.from_atr(self._atr, reader)
        self._open = True

    @property
    def atr(self) -> bytes:
        return self._atr

    def _mine(self) -> _Slot:
        """This connection's slot, while its card is still in (call holding the condition)."""
        if not self._open:
            raise TransportError(f"the connection to {self.reader} is closed")
        slot = self._readers._slots.get(self.reader)
        if slot is None or slot.generation != self._generation:
            raise CardRemoved("the card was removed from the reader")
        return slot

    def _wait_turn(self) -> _Slot:
        """Wait while another connection holds a transaction (call holding the condition)."""
        while (slot := self._mine()).transaction not in (None, self):
            self._readers._changed.wait()
        return slot

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        with self._readers._changed:
            self._wait_turn()
        data, sw = self._card.transmit(apdu)
        with self._readers._changed:
            self._mine()  # pulled during the exchange: its answer never arrived
        return data, sw

    @contextlib.contextmanager
    def transaction(self):
        """Exclusive access to the card for the duration of the block (a per-reader lock)."""
        with self._readers._changed:
            slot = self._wait_turn()
            slot.transaction, slot.depth = self, slot.depth + 1
        try:
            yield self
        finally:
            with self._readers._changed:
                slot = self._readers._slots.get(self.reader)
                if slot is not None and slot.transaction is self:
                    slot.depth -= 1
                    if slot.depth == 0:
                        slot.transaction = None
                        self._readers._changed.notify_all()

    def reset(self) -> None:
        """Reset the card so no PIN stays verified; the connection and its share mode remain."""
        with self._readers._changed:
            self._wait_turn()
            self._card.power_on()

    def close(self, reset: bool = False) -> None:
        """Disconnect; ``reset=True`` resets the card so no PIN stays verified."""
        if not self._open:
            return
        with self._readers._changed:
            slot = self._readers._slots.get(self.reader)
            if slot is not None and slot.generation == self._generation:
                if reset:
                    self._card.power_on()
                slot.connections -= 1
                if slot.exclusive is self:
                    slot.exclusive = None
                if slot.transaction is self:
                    slot.transaction, slot.depth = None, 0
            self._open = False
            self._readers._changed.notify_all()


#: the process-wide registry :mod:`station.devices.pcsc` consults
READERS = InProcessReaders()
