"""Fixtures shared by the whole suite: the GSA test data and an isolated pcscd."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory):
    """A private pcscd (own mount and network namespace) with a loopback vpcd reader.

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
