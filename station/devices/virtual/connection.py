"""In-process attachment of a virtual card: a :class:`SmartCardConnection` object."""

from __future__ import annotations

from typing import Callable

from station.devices.connection import SmartCardConnection
from station.devices.errors import CardRemoved
from station.devices.virtual.card import VirtualPivCard


class VirtualConnection(SmartCardConnection):
    """Connects directly to a :class:`VirtualPivCard`.

    ``remove()`` pulls the card: every later exchange raises :class:`CardRemoved`.
    ``tap`` (if given) sees every command APDU before the card does — tests use it to pull
    the card at a chosen moment.
    """

    def __init__(self, card: VirtualPivCard, tap: Callable[[bytes, "VirtualConnection"], None] | None = None):
        self.card = card
        self.interface = card.interface
        self.tap = tap
        self.removed = False
        card.power_on()

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def remove(self) -> None:
        self.removed = True

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        if self.tap:
            self.tap(apdu, self)
        if self.removed:
            raise CardRemoved("the card was removed from the reader")
        return self.card.transmit(apdu)

    def reset(self) -> None:
        self.card.power_on()

    def close(self) -> None:
        pass
