"""Station fixtures shared by tests/ca and tests/issuance (registered in tests/conftest.py):
all real parts, no mocks.

* ``secret_service``: a private D-Bus session bus with an unlocked GNOME Keyring
  (Secret Service), so :mod:`keyring` works as on a desktop; the bus restarts it unlocked.
* ``softhsm``: a SoftHSM2 token of this suite (in the run's shared SoftHSM configuration).
* ``postgres``: a throwaway PostgreSQL server on a loopback port, run as the ``postgres``
  user (it refuses root); each test gets its own database.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import keyring.core
from keyring.backends import fail
import pytest

from station.devices.virtual.pcscd import die_with_parent

from tests.ca.ca_helpers import SOFTHSM_MODULE, TOKEN_LABEL, TOKEN_PIN, Pki, new_pg_database



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KEYRING_PASSWORD = "keyring-test-password"
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir={tmp}</listen>
  <servicedir>{tmp}/services</servicedir>
  <policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
</busconfig>
"""


@pytest.fixture(scope="session")
def secret_service():
    """A private D-Bus session bus whose only service is an unlocked GNOME Keyring (Secret
    Service), so :mod:`keyring` works as on a desktop.

    The keyring daemon is started by the bus (D-Bus activation) from this fixture's own
    service file, which unlocks it with the test password: the system's service file would
    start a locked daemon that asks a graphical prompter (none here) whenever the first one
    is gone. Each start is logged; a restart during the run is reported as a warning."""
    tmp = Path(tempfile.mkdtemp(prefix="station-keyring-"))
    saved = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    log = tmp / "keyring.log"
    (tmp / "services").mkdir()
    (tmp / "session.conf").write_text(BUS_CONFIG.format(tmp=tmp))
    (tmp / "keyring.sh").write_text(
        f"#!/bin/sh\necho \"start $(date +%T)\" >> {log}\n"
        f"printf %s {KEYRING_PASSWORD} | exec gnome-keyring-daemon --foreground --unlock --components=secrets 2>> {log}\n")
    (tmp / "services" / "org.freedesktop.secrets.service").write_text(
        f"[D-BUS Service]\nName=org.freedesktop.secrets\nExec=/bin/sh {tmp}/keyring.sh\n")
    bus = None
    try:
        env = dict(os.environ, HOME=str(tmp), XDG_DATA_HOME=str(tmp / "data"), XDG_RUNTIME_DIR=str(tmp))
        bus = subprocess.Popen(
            ["dbus-daemon", f"--config-file={tmp / 'session.conf'}", "--nofork", "--print-address=1", "--nopidfile"],
            stdout=subprocess.PIPE, text=True, env=env, preexec_fn=die_with_parent)
        address = bus.stdout.readline().strip()
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = address
        keyring.core.init_backend()
        deadline = time.monotonic() + 15
        from station.secret_store import working_backend

        while working_backend() is None:  # the first call activates the daemon
            if time.monotonic() > deadline:
                raise RuntimeError("gnome-keyring-daemon did not come up on the private bus")
            time.sleep(0.2)
            keyring.core.init_backend()
        yield address
        starts = log.read_text().count("start ") if log.exists() else 0
        if starts > 1:
            warnings.warn(f"gnome-keyring-daemon was started {starts} times during the run:\n{log.read_text()}")
    finally:
        if bus is not None:
            bus.terminate()  # the keyring daemon leaves with its bus
            bus.wait(10)
        if saved is None:
            os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SESSION_BUS_ADDRESS"] = saved
        keyring.set_keyring(fail.Keyring())
        time.sleep(0.3)  # the daemon writes its keyring file as the bus goes away
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def softhsm(softhsm_conf):
    """A SoftHSM2 token of this suite inside the run's one SoftHSM configuration
    (``softhsm_conf`` in tests/conftest.py: SoftHSM reads SOFTHSM2_CONF once per process).
    Yields a function making a fresh key URI on it."""
    from tests.conftest import init_softhsm_token

    init_softhsm_token(TOKEN_LABEL, TOKEN_PIN)

    def key_uri(label: str | None = None, *, with_pin: bool = True) -> str:
        label = label or f"ca-{uuid.uuid4().hex[:8]}"
        uri = f"pkcs11:token={TOKEN_LABEL};object={label}?module-path={SOFTHSM_MODULE}"
        return uri + (f"&pin-value={TOKEN_PIN}" if with_pin else "")

    return key_uri


def _pg_bin(name: str) -> str:
    """Debian keeps initdb, postgres and pg_isready in /usr/lib/postgresql/<version>/bin, off the PATH."""
    found = shutil.which(name) or max(
        (str(p) for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}")), key=lambda p: int(Path(p).parts[-3]), default=None
    )
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} not found: install the postgresql package (make apt)")
    return found


def _as_postgres(*cmd: str, **kw) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server on 127.0.0.1:<free port>; yields the admin URL base."""
    root = Path(tempfile.mkdtemp(prefix="station-pg-"))
    root.chmod(0o755)
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    port = _free_port()
    server = None
    try:
        _as_postgres(_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        # the postmaster in the foreground, a child of this run: setpriv sets its parent-death
        # signal after dropping to the postgres user, so a killed test run takes it along
        user = ["--reuid=postgres", "--regid=postgres", "--init-groups"] if os.geteuid() == 0 else []
        with open(root / "log", "wb") as log:
            server = subprocess.Popen(
                ["setpriv", *user, "--pdeathsig=QUIT", "--", _pg_bin("postgres"), "-D", str(data), "-p", str(port),
                 "-k", str(sock), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 30
        while subprocess.run([_pg_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {(root / 'log').read_text()[-2000:]}")
            time.sleep(0.05)
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        if server is not None:
            server.send_signal(signal.SIGQUIT)  # immediate shutdown
            server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database: SQLite in tmp_path, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.db'}"
    return new_pg_database(request.getfixturevalue("postgres"))


@pytest.fixture
def trust_profile(tmp_path) -> Path:
    """A complete profile (`station init` loads it whole): the GSA test root, the PIV-I policy."""
    path = tmp_path / "trust-profile.toml"
    anchor = Path(__file__).resolve().parents[1].parent / "shared/icam-test-pki/pki/roots/00_ICAM_Test_Card_Root_CA.crt"
    path.write_text(f'name = "test"\nanchors = ["{anchor}"]\npiv_auth_policies = ["2.16.840.1.101.3.2.1.48.11"]\n')
    return path


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki()


@pytest.fixture
def station(tmp_path, secret_service, trust_profile, db_url):
    """An initialised station (file CA key, real keyring) on SQLite and on PostgreSQL."""
    from station.home import StationHome
    from station.service.setup import InitOptions, initialize
    from station.service.station import Station

    home = StationHome(tmp_path / "home")
    initialize(home, InitOptions(trust_profile=trust_profile, db_url=db_url, checkpoint_every_events=3,
                                 ca_issuers_url="http://pki.test/ca.p7c", crl_url="http://pki.test/ca.crl"))  # fmt: skip
    st = Station.open(home)
    yield st
    st.close()


@pytest.fixture
def sqlite_station(tmp_path, secret_service, trust_profile):
    from station.home import StationHome
    from station.service.setup import InitOptions, initialize
    from station.service.station import Station

    home = StationHome(tmp_path / "home")
    initialize(home, InitOptions(trust_profile=trust_profile, checkpoint_every_events=3,
                                 ca_issuers_url="http://pki.test/ca.p7c", crl_url="http://pki.test/ca.crl"))  # fmt: skip
    st = Station.open(home)
    yield st
    st.close()
