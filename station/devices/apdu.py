"""Command APDUs and the protocol layer over a connection (ISO/IEC 7816-4 §5, §12).

:class:`SmartCardProtocol` handles short and extended lengths, ``61xx`` GET RESPONSE,
``6Cxx`` (wrong Le), command chaining (CLA bit ``10``), and turns error status words into
typed exceptions. Every loop is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

from station.devices.connection import SmartCardConnection
from station.devices.errors import ProtocolError, error_for_sw

SW_OK = 0x9000
INS_GET_RESPONSE = 0xC0
CLA_CHAIN = 0x10
SHORT_MAX = 255
# A PIV data object is at most a few tens of KiB; a reply longer than this is not a PIV reply.
MAX_RESPONSE = 256 * 1024
MAX_GET_RESPONSE = MAX_RESPONSE // 256 + 1


@dataclass(frozen=True)
class CommandApdu:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None  # None: no Le; 0: "as much as possible"

    def encode(self, extended: bool = False) -> bytes:
        header = bytes([self.cla, self.ins, self.p1, self.p2])
        lc = len(self.data)
        if not extended and (lc > SHORT_MAX or (self.le or 0) > 256):
            extended = True
        if not extended:
            body = (bytes([lc]) + self.data) if lc else b""
            if self.le is not None:
                body += bytes([self.le & 0xFF])  # 256 and 0 both encode as 00
            return header + body
        if lc > 0xFFFF:
            raise ProtocolError(f"command data of {lc} bytes is too long even for extended length")
        body = (b"\x00" + lc.to_bytes(2, "big") + self.data) if lc else b""
        if self.le is not None:
            le = 0 if self.le >= 65536 else self.le
            body += (b"" if lc else b"\x00") + le.to_bytes(2, "big")
        return header + body

    @classmethod
    def decode(cls, apdu: bytes) -> "CommandApdu":
        """Parse any of the four ISO 7816-4 cases, short or extended."""
        apdu = bytes(apdu)
        if len(apdu) < 4:
            raise ProtocolError("command APDU shorter than its 4-byte header")
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, b"", body[0] or 256)
        if body[0] != 0:  # short Lc
            lc = body[0]
            if len(body) == 1 + lc:
                return cls(cla, ins, p1, p2, body[1:])
            if len(body) == 2 + lc:
                return cls(cla, ins, p1, p2, body[1 : 1 + lc], body[-1] or 256)
            raise ProtocolError("short APDU length does not match its Lc")
        # extended
        if len(body) == 3:
            return cls(cla, ins, p1, p2, b"", int.from_bytes(body[1:3], "big") or 65536)
        lc = int.from_bytes(body[1:3], "big")
        if len(body) == 3 + lc:
            return cls(cla, ins, p1, p2, body[3:])
        if len(body) == 5 + lc:
            return cls(cla, ins, p1, p2, body[3 : 3 + lc], int.from_bytes(body[-2:], "big") or 65536)
        raise ProtocolError("extended APDU length does not match its Lc")


class SmartCardProtocol:
    """Sends commands over a connection with chaining, GET RESPONSE and status mapping.

    ``extended`` chooses extended-length APDUs for long commands instead of chaining.
    ``apdu_count`` counts the raw exchanges (benchmarks compare it with other tools).
    """

    def __init__(self, connection: SmartCardConnection, *, extended: bool = False):
        self.connection = connection
        self.extended = extended
        self.apdu_count = 0

    def _exchange(self, apdu: bytes) -> tuple[bytes, int]:
        self.apdu_count += 1
        data, sw = self.connection.send_and_receive(apdu)
        if not 0 <= sw <= 0xFFFF:
            raise ProtocolError(f"status word {sw!r} out of range")
        return data, sw

    def transmit(self, cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = 0) -> tuple[bytes, int]:
        """Send a command (chained if needed); follow 61xx/6Cxx; return data and final SW."""
        data = bytes(data)
        if len(data) > SHORT_MAX and not self.extended:
            chunks = [data[i : i + SHORT_MAX] for i in range(0, len(data), SHORT_MAX)]
            for chunk in chunks[:-1]:
                _, sw = self._exchange(CommandApdu(cla | CLA_CHAIN, ins, p1, p2, chunk).encode())
                if sw != SW_OK:
                    return b"", sw
            data = chunks[-1]
        command = CommandApdu(cla, ins, p1, p2, data, le)
        resp, sw = self._exchange(command.encode(self.extended))
        if sw >> 8 == 0x6C:  # wrong Le: resend the same command with the exact Le
            resp, sw = self._exchange(CommandApdu(cla, ins, p1, p2, data, (sw & 0xFF) or 256).encode())
        buf = bytearray(resp)
        rounds = 0
        while sw >> 8 == 0x61:
            rounds += 1
            if rounds > MAX_GET_RESPONSE or len(buf) > MAX_RESPONSE:
                raise ProtocolError("card keeps answering 61xx: response longer than any PIV object")
            more, sw = self._exchange(CommandApdu(cla & ~CLA_CHAIN & 0xFF, INS_GET_RESPONSE, 0, 0, b"", (sw & 0xFF) or 256).encode())
            buf += more
        return bytes(buf), sw

    def send_apdu(self, cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = 0) -> bytes:
        """Like :meth:`transmit` but raises the typed exception for an error status."""
        resp, sw = self.transmit(cla, ins, p1, p2, data, le)
        if sw != SW_OK:
            raise error_for_sw(sw)
        return resp
