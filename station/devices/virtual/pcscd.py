"""An isolated pcscd with a vpcd reader, for tests, benchmarks and demos.

Only one pcscd can run per machine: its socket path (``/run/pcscd/pcscd.comm``) is compiled
in. This harness runs a private one: in its own mount namespace a folder of ours is bound over
``/run``, so the socket lands in that folder; clients find it through ``PCSCLITE_CSOCK_NAME``.
vpcd's listener binds every interface, so pcscd also gets its own network namespace, where
only loopback exists; card simulators join that namespace to connect. A system pcscd (or a
leftover one) is never touched and cannot hang us: every wait has a deadline.

Needs root (CI and the development machines run as root); otherwise unprivileged user
namespaces are used for pcscd, and cards are presented through ``nsenter`` subprocesses.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from station.devices.virtual.card import VirtualPivCard
from station.devices.virtual.vpcd import DEFAULT_PORT, VpcdLink
from station.errors import StationError

VPCD_DRIVER_CANDIDATES = [
    "/usr/lib/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/lib64/pcsc/drivers/serial/libifdvpcd.so",
]
READER_NAME = "Station Test Reader"
CLONE_NEWNET = 0x40000000


def die_with_parent() -> None:
    """For ``preexec_fn``: SIGTERM the child when the process that started it dies (Linux
    PR_SET_PDEATHSIG survives exec), so a killed test run leaves no daemon behind."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class HarnessError(StationError):
    code = "pcscd-harness"
    hint = "install pcscd and vsmartcard-vpcd (make setup) and run as root"


def _driver() -> str:
    for path in VPCD_DRIVER_CANDIDATES:
        if os.path.exists(path):
            return path
    raise HarnessError("the vpcd driver (libifdvpcd.so) is not installed")


class IsolatedPcscd:
    """A private pcscd with one vpcd reader (two slots: ``<name> 00 00`` and ``00 01``)."""

    def __init__(self, workdir: str | os.PathLike | None = None, reader_name: str = READER_NAME, port: int = DEFAULT_PORT):
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="station-pcscd-"))
        self.reader_name = reader_name
        self.port = port
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "pcscd.log"

    @property
    def socket_path(self) -> Path:
        return self.workdir / "run" / "pcscd" / "pcscd.comm"

    @property
    def env(self) -> dict[str, str]:
        """Environment for client processes (pyscard, OpenSC tools, the station CLI)."""
        return {**os.environ, "PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    def reader(self, slot: int = 0) -> str:
        return f"{self.reader_name} 00 {slot:02d}"

    def start(self, deadline: float = 15.0) -> "IsolatedPcscd":
        for tool in ("pcscd", "unshare", "ip"):
            if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
                raise HarnessError(f"{tool} is not installed")
        run = self.workdir / "run"
        run.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "reader.conf"
        conf.write_text(
            f'FRIENDLYNAME "{self.reader_name}"\nDEVICENAME /dev/null:{self.port}\n'
            f"LIBPATH {_driver()}\nCHANNELID {self.port}\n"
        )
        pcscd = shutil.which("pcscd") or "/usr/sbin/pcscd"
        script = f'ip link set lo up && mount --bind "{run}" /run && exec "{pcscd}" --foreground --config "{conf}"'
        ns = ["unshare", "--mount", "--net", "--propagation", "private"]
        if os.geteuid() != 0:
            ns[1:1] = ["--user", "--map-root-user"]
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [*ns, "sh", "-c", script], stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent,
        )
        end = time.monotonic() + deadline
        while not self.socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > end:
                self.stop()
                raise HarnessError(f"pcscd did not start; see {self.log_path}: {self.log_path.read_text()[-500:]}")
            time.sleep(0.05)
        self._wait_listening(end)
        return self

    @property
    def netns_path(self) -> str:
        """The network namespace pcscd runs in (``unshare`` execs into ``sh`` then pcscd)."""
        assert self.process is not None
        return f"/proc/{self.process.pid}/ns/net"

    def _wait_listening(self, end: float) -> None:
        """Until vpcd listens inside the namespace (a connect that succeeds and closes)."""
        while True:
            try:
                self.open_socket(timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > end:
                    raise HarnessError("vpcd is not listening inside the pcscd namespace") from None
                time.sleep(0.05)

    def open_socket(self, slot: int = 0, timeout: float = 5.0) -> socket.socket:
        """A TCP socket connected to vpcd's slot, created inside pcscd's network namespace.

        ``setns`` changes only the calling thread's namespace, so it runs in a short-lived
        thread; the socket keeps the namespace it was created in."""
        result: dict[str, object] = {}

        def worker():
            libc = ctypes.CDLL(None, use_errno=True)
            try:
                with open(self.netns_path) as ns:
                    if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed (needs root)")
                sock = socket.create_connection(("127.0.0.1", self.port + slot), timeout=timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                result["sock"] = sock
            except OSError as exc:
                result["error"] = exc

        t = threading.Thread(target=worker, name="netns-connect")
        t.start()
        t.join(timeout + 1)
        if "error" in result:
            raise result["error"]  # type: ignore[misc]
        if "sock" not in result:
            raise OSError("timed out connecting to vpcd")
        return result["sock"]  # type: ignore[return-value]

    def insert(self, card: VirtualPivCard, slot: int = 0, wait: bool = True) -> VpcdLink:
        """Put a card in the reader; returns the link whose ``stop()`` removes it."""
        link = VpcdLink(card, self.open_socket(slot)).start()
        if wait:
            from station.devices.pcsc import wait_for_card

            wait_for_card(self.reader(slot), present=True, timeout=10)
        return link

    def remove(self, link: VpcdLink, slot: int = 0, wait: bool = True) -> None:
        link.stop()
        if wait:
            from station.devices.pcsc import wait_for_card

            wait_for_card(self.reader(slot), present=False, timeout=10)

    def nsenter_prefix(self) -> list[str]:
        """Command prefix that runs a program inside pcscd's network namespace."""
        prefix = ["nsenter", f"--net={self.netns_path}"]
        if os.geteuid() != 0:
            prefix = ["nsenter", "--preserve-credentials", "-U", f"--net={self.netns_path}", "-t", str(self.process.pid)]
        return prefix

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=5)
        if getattr(self, "log", None):
            self.log.close()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "IsolatedPcscd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
