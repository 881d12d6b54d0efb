"""The transport abstraction every card backend implements (modelled on yubikit's).

A :class:`SmartCardConnection` sends one raw command APDU and returns the response data and
status word. It knows nothing about chaining or GET RESPONSE: that is
:class:`station.devices.apdu.SmartCardProtocol`'s job.
"""

from __future__ import annotations

import abc
import enum


class Interface(enum.Enum):
    """The physical interface the card answers on (SP 800-73-4 access rules differ)."""

    CONTACT = "contact"
    CONTACTLESS = "contactless"

    @classmethod
    def from_atr(cls, atr: bytes, reader_name: str = "") -> "Interface":
        """PC/SC Part 3 §3.1.3.2.3: a contactless card's ATR is built by the reader as
        ``3B 8n 80 01 <historical bytes> TCK``; reader names often say so as well."""
        if len(atr) >= 4 and atr[0] == 0x3B and atr[1] & 0xF0 == 0x80 and atr[2:4] == b"\x80\x01":
            return cls.CONTACTLESS
        name = reader_name.lower()
        if "contactless" in name or " picc" in name or name.endswith(" cl"):
            return cls.CONTACTLESS
        return cls.CONTACT


class SmartCardConnection(abc.ABC):
    """One open connection to a card."""

    interface: Interface = Interface.CONTACT

    @property
    @abc.abstractmethod
    def atr(self) -> bytes: ...

    @abc.abstractmethod
    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one command APDU; return ``(response data, status word)``."""

    def reset(self) -> None:
        """Reset the card (ISO/IEC 7816-3 warm reset): its security status, such as a verified
        PIN, is cleared; the connection stays open. Backends that reach a real card override it."""

    def close(self) -> None:  # pragma: no cover - trivial default
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
