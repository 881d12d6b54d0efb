"""Present a virtual card to a real pcscd through vsmartcard's vpcd driver.

vpcd speaks a tiny protocol over TCP: a 2-byte big-endian length, then either a 1-byte
control message (0 power off, 1 power on, 2 reset, 4 ATR request) or a command APDU; the
answer to an APDU or to an ATR request goes back with the same framing. Closing the socket
removes the card from the reader. ``TCP_QUICKACK`` after each length prefix avoids the
delayed-ACK stall (~48 ms per APDU otherwise).
"""

from __future__ import annotations

import socket
import struct
import threading
import time

from station.devices.virtual.card import VirtualPivCard
from station.errors import StationError

CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4
DEFAULT_PORT = 35963


class VpcdError(StationError):
    code = "vpcd"
    hint = "is pcscd running with the vpcd driver listening on that host and port?"


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise VpcdError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _quickack(sock: socket.socket) -> None:
    if hasattr(socket, "TCP_QUICKACK"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def connect(host: str, port: int, deadline: float = 10.0) -> socket.socket:
    """Connect to vpcd, retrying until ``deadline`` seconds have passed."""
    end = time.monotonic() + deadline
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=2)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            if time.monotonic() >= end:
                raise VpcdError(f"cannot reach vpcd at {host}:{port}: {exc.strerror or exc}") from None
            time.sleep(0.1)


class VpcdLink:
    """Serves one card over an open vpcd socket until :meth:`stop` (= card removal)."""

    def __init__(self, card: VirtualPivCard, sock: socket.socket):
        self.card = card
        self.sock = sock
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.apdus = 0

    def _recv_exact(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            if self._stop.is_set():
                return None
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _send(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">H", len(payload)) + payload)

    def serve(self) -> None:
        """Answer vpcd until stopped or disconnected."""
        try:
            while not self._stop.is_set():
                header = self._recv_exact(2)
                if header is None:
                    break
                _quickack(self.sock)
                (length,) = struct.unpack(">H", header)
                message = self._recv_exact(length)
                if message is None:
                    break
                if length == 1:
                    control = message[0]
                    if control == CTRL_ATR:
                        self._send(self.card.atr)
                    elif control in (CTRL_OFF, CTRL_ON, CTRL_RESET):
                        self.card.power_on()
                    continue
                self.apdus += 1
                data, sw = self.card.transmit(message)
                self._send(data + struct.pack(">H", sw))
        finally:
            self.sock.close()

    def start(self) -> "VpcdLink":
        self._thread = threading.Thread(target=self.serve, name="vpcd-link", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Remove the card: close the socket and wait for the serving thread."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        try:
            self.sock.close()
        except OSError:
            pass
