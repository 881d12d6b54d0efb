"""Fixtures shared by the whole suite: the GSA test data and an isolated pcscd."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no display needed, even without `make test`

# A station home with its keyring, PostgreSQL, SoftHSM tokens: shared by tests/ca and tests/issuance.
pytest_plugins = ["tests.station_fixtures"]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ICAM = SHARED / "icam-test-pki"
CARDS = ICAM / "cards"
GOLDEN = CARDS / "46_Golden_FIPS_201-2_PIV"
TEST_PIN = "246810"


def card_folders() -> list[Path]:
    """Every card image folder (``ICAM_CA_and_Signer`` is not a card)."""
    return sorted(p for p in CARDS.iterdir() if p.is_dir() and p.name != "ICAM_CA_and_Signer")


@pytest.fixture(scope="session")
def icam() -> Path:
    assert ICAM.is_dir(), f"GSA ICAM test data missing at {ICAM}"
    return ICAM


@pytest.fixture(scope="session", autouse=True)
def pcscd(tmp_path_factory):
    """A private pcscd (own mount and network namespace) with a loopback vpcd reader, started
    before any test: pcsc-lite reads PCSCLITE_CSOCK_NAME once, at a process's first PC/SC call,
    so a test that lists readers before this fixture ran would hide it from every later test.

    PCSCLITE_CSOCK_NAME points this process and its children at it; the system's pcscd, if
    any, is never used."""
    from station.devices.virtual.pcscd import IsolatedPcscd

    daemon = IsolatedPcscd(tmp_path_factory.mktemp("pcscd")).start()
    previous = os.environ.get("PCSCLITE_CSOCK_NAME")
    os.environ["PCSCLITE_CSOCK_NAME"] = str(daemon.socket_path)
    yield daemon
    daemon.stop()
    if previous is None:
        os.environ.pop("PCSCLITE_CSOCK_NAME", None)
    else:
        os.environ["PCSCLITE_CSOCK_NAME"] = previous


@pytest.fixture
def insert_card(pcscd):
    """Insert a virtual card into the reader (slot 0); removed again after the test."""
    links = []

    def insert(card, slot: int = 0):
        link = pcscd.insert(card, slot)
        links.append((link, slot))
        return link

    yield insert
    for link, slot in links:
        pcscd.remove(link, slot)


@pytest.fixture(scope="session")
def mirror():
    """The GSA test PKI's hosts on loopback: HTTP for AIA/SIA/CRLs, real `openssl ocsp` answers."""
    from station.sim.pki_mirror import PkiMirror

    with PkiMirror(ICAM) as running:
        yield running


@pytest.fixture(scope="session")
def icam_profile_path(mirror, tmp_path_factory) -> Path:
    """The ``icam-test`` trust profile (EXPECTED.md) with its url_map pointing at the mirror."""
    return mirror.write_profile(tmp_path_factory.mktemp("profile") / "icam-test.toml")


@pytest.fixture(scope="session")
def icam_profile(icam_profile_path):
    from station.validation.trust import TrustProfile

    return TrustProfile.load(icam_profile_path)


@pytest.fixture(scope="session")
def crl_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("crl-cache")


class FixedPin:
    """A PinEntry that answers with one PIN and remembers what it was asked."""

    def __init__(self, pin: str = TEST_PIN):
        self.pin = pin
        self.asked: list[tuple[str, int | None]] = []

    def request_pin(self, *, pin_kind: str, tries_left: int | None) -> str:
        self.asked.append((pin_kind, tries_left))
        return self.pin


SOFTHSM_MODULE = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"
SOFTHSM_SO_PIN = "12345678"


@pytest.fixture(scope="session")
def softhsm_conf(tmp_path_factory):
    """One SoftHSM2 configuration for the whole run (SoftHSM reads SOFTHSM2_CONF once per
    process). Tests add tokens with :func:`init_softhsm_token`."""
    import tempfile

    existing = os.environ.get("SOFTHSM2_CONF")
    if existing and Path(existing).is_file() and "station-softhsm" in existing:
        yield Path(existing)
        return
    root = Path(tempfile.mkdtemp(prefix="station-softhsm-"))
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    yield conf


def init_softhsm_token(label: str, pin: str) -> str:
    """Initialize a fresh SoftHSM token; returns its PKCS#11 URI (with the PIN)."""
    import subprocess

    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", SOFTHSM_SO_PIN],
                   check=True, capture_output=True, timeout=30)
    return f"pkcs11:token={label}?module-path={SOFTHSM_MODULE}&pin-value={pin}"
