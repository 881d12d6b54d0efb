"""PKI-AUTH over real pcscd: every GSA ICAM test card, in CRL and in OCSP mode; PIN handling."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from station.issuance.pkiauth import LastTryRefused, pki_auth
from station.devices import errors, pcsc
from station.devices.piv import PivSession
from station.devices.virtual import VirtualConnection, load_card_image
from tests import expected
from tests.conftest import CARDS, GOLDEN, TEST_PIN, FixedPin, card_folders

EXPECTED = expected.table()
STATION = [sys.executable, "-m", "station"]


def test_expected_md_covers_every_card():
    assert {f.name for f in card_folders()} == set(EXPECTED)


class VerifyRecorder:
    """Records the key references of VERIFY commands that carried a PIN."""

    def __init__(self, card):
        self.refs = []
        inner = card.transmit

        def transmit(apdu):
            if apdu[1] == 0x20 and len(apdu) > 5:
                self.refs.append(apdu[3])
            return inner(apdu)

        card.transmit = transmit


@pytest.mark.parametrize("card", sorted(EXPECTED), ids=str)
def test_card_verdict_over_pcscd(card, insert_card, pcscd, icam_profile, crl_cache):
    virtual = load_card_image(CARDS / card, pin=TEST_PIN)
    verifies = VerifyRecorder(virtual)
    insert_card(virtual)
    for mode in ("crl", "ocsp"):
        conn = pcsc.open_reader(pcscd.reader())
        try:
            with conn.transaction():
                verdict = pki_auth(PivSession(conn), icam_profile, FixedPin(), mode=mode, cache_dir=crl_cache)
        finally:
            conn.close(reset=True)
        want, acceptable = expected.expected(card, mode, EXPECTED)
        assert verdict.verdict == want, f"{card} in {mode} mode: {verdict.reasons} {verdict.details}"
        if want == "reject":
            assert verdict.reasons[0] in acceptable, f"{card} in {mode} mode: {verdict.details}"
            assert expected.shows_its_finding(verdict, card, mode), f"{card} in {mode} mode: {verdict.details}"
        else:
            assert verdict.identity.fascn and verdict.identity.sha256_fingerprint
    assert verifies.refs == ([0x00, 0x00] if card.startswith("28_") else [0x80, 0x80])


def test_verify_cli_exit_codes_and_json(insert_card, pcscd, icam_profile_path, tmp_path):
    env = {**pcscd.env, "STATION_HOME": str(tmp_path / "home")}
    cmd = [*STATION, "card", "verify", "--profile", str(icam_profile_path), "--pin-stdin", "--json", "--revocation", "crl"]
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    ok = subprocess.run(cmd, input=TEST_PIN + "\n", env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["verdict"] == "accept" and out["identity"]["fascn"] == "D13810D828AF2C1084246DA1685828AF0210848D84E739C3EB"
    assert "facial_image" not in out["identity"] and TEST_PIN not in ok.stdout + ok.stderr

    bad = subprocess.run(cmd, input="111111\n", env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["reasons"] == ["pin-incorrect"] and "111111" not in bad.stdout + bad.stderr


def test_verify_cli_rejected_card_and_undecided(insert_card, pcscd, icam_profile_path, tmp_path):
    env = {**pcscd.env, "STATION_HOME": str(tmp_path / "home")}
    cmd = [*STATION, "card", "verify", "--profile", str(icam_profile_path), "--pin-stdin", "--json"]
    none = subprocess.run(cmd, input=TEST_PIN + "\n", env=env, capture_output=True, text=True, timeout=60)
    assert none.returncode == 2 and json.loads(none.stdout)["reasons"] == ["no-card"]
    badprofile = tmp_path / "bad.toml"
    badprofile.write_text("this is not toml [")
    insert_card(load_card_image(CARDS / "24_Revoked_Certificates", pin=TEST_PIN))
    bad = subprocess.run([*STATION, "card", "verify", "--profile", str(badprofile), "--pin-stdin"], input=TEST_PIN + "\n",
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    revoked = subprocess.run(cmd, input=TEST_PIN + "\n", env=env, capture_output=True, text=True, timeout=60)
    assert revoked.returncode == 1 and json.loads(revoked.stdout)["reasons"][0] in EXPECTED["24_Revoked_Certificates"]["crl"][1]


# --- PIN handling (in process; the card layer under it is the same) -----------------------------

def golden_session(**kw):
    card = load_card_image(GOLDEN, pin=TEST_PIN)
    conn = VirtualConnection(card, **kw)
    return card, conn, PivSession(conn)


def test_wrong_pin_counts_down_and_reports_tries_left(icam_profile, crl_cache):
    card, _, session = golden_session()
    entry = FixedPin("135791")
    verdict = pki_auth(session, icam_profile, entry, mode="crl", cache_dir=crl_cache)
    assert verdict.reasons == ["pin-incorrect"] and "4 tries left" in verdict.details[0]
    assert entry.asked == [("application", 5)] and card.pin_tries == 4
    verdict = pki_auth(session, icam_profile, entry, mode="crl", cache_dir=crl_cache)
    assert entry.asked[-1] == ("application", 4) and card.pin_tries == 3


class Kiosk(FixedPin):
    """A person at a screen, who types the PIN again after a wrong one: ``pins`` in turn."""

    asks_again = True

    def __init__(self, *pins: str):
        super().__init__()
        self.pins = list(pins)

    def request_pin(self, *, pin_kind: str, tries_left: int | None) -> str:
        super().request_pin(pin_kind=pin_kind, tries_left=tries_left)
        return self.pins.pop(0)


def test_a_person_who_can_type_again_is_asked_again_after_a_wrong_pin(icam_profile, crl_cache):
    card, _, session = golden_session()
    kiosk = Kiosk("135791", "135792", TEST_PIN)
    verdict = pki_auth(session, icam_profile, kiosk, mode="crl", cache_dir=crl_cache)
    assert verdict.accepted and kiosk.asked == [("application", 5), ("application", 4), ("application", 3)]
    assert card.pin_tries == 5  # the right PIN reset the counter


def test_asked_again_down_to_the_last_try_the_station_stops_there(icam_profile, crl_cache):
    card, _, session = golden_session()
    kiosk = Kiosk(*["135791"] * 4, TEST_PIN)
    with pytest.raises(LastTryRefused):
        pki_auth(session, icam_profile, kiosk, mode="crl", cache_dir=crl_cache)
    assert [tries for _, tries in kiosk.asked] == [5, 4, 3, 2] and card.pin_tries == 1  # the last try unspent


def test_station_stops_at_one_try_left(icam_profile, crl_cache):
    card, _, session = golden_session()
    card.set_pin_tries(1)
    entry = FixedPin()
    with pytest.raises(LastTryRefused) as info:
        pki_auth(session, icam_profile, entry, mode="crl", cache_dir=crl_cache)
    assert info.value.code == "pin-last-try" and entry.asked == [] and card.pin_tries == 1
    assert pki_auth(session, icam_profile, entry, mode="crl", cache_dir=crl_cache, allow_last_try=True).accepted
    assert card.pin_tries == 5


def test_blocked_card_is_reported_blocked(icam_profile, crl_cache):
    card, _, session = golden_session()
    card.set_pin_tries(0)
    entry = FixedPin()
    verdict = pki_auth(session, icam_profile, entry, mode="crl", cache_dir=crl_cache)
    assert verdict.reasons == ["pin-blocked"] and entry.asked == []


@pytest.mark.parametrize("pull_at", [0xCB, 0x20, 0x87])
def test_card_pulled_mid_verification(icam_profile, pull_at, crl_cache):
    """Pulled during the reads, at VERIFY, or at the challenge: card-removed, no verdict."""

    def tap(apdu, conn):
        if apdu[1] == pull_at and len(apdu) > 5:
            conn.remove()

    _, _, session = golden_session(tap=tap)
    with pytest.raises(errors.CardRemoved) as info:
        pki_auth(session, icam_profile, FixedPin(), mode="crl", cache_dir=crl_cache)
    assert info.value.code == "card-removed"


def test_card_pulled_over_pcscd(pcscd, icam_profile, crl_cache):
    card = load_card_image(GOLDEN, pin=TEST_PIN)
    link = pcscd.insert(card)

    class PullWhenAsked(FixedPin):
        def request_pin(self, **kw):
            pcscd.remove(link)
            return super().request_pin(**kw)

    conn = pcsc.open_reader(pcscd.reader())
    try:
        with pytest.raises(errors.CardRemoved):
            pki_auth(PivSession(conn), icam_profile, PullWhenAsked(), mode="crl", cache_dir=crl_cache)
    finally:
        conn.close()
    assert card.pin_tries == 5


def test_pin_never_logged_or_reported(icam_profile, caplog, crl_cache):
    caplog.set_level(logging.DEBUG)
    _, _, session = golden_session()
    verdict = pki_auth(session, icam_profile, FixedPin(), mode="ocsp", cache_dir=crl_cache)
    assert verdict.accepted
    assert TEST_PIN not in caplog.text and TEST_PIN not in verdict.to_json(include_photo=True)
    assert verdict.identity.facial_image and len(verdict.identity.facial_image) > 1000


def test_contactless_reader_cannot_do_pki_auth(icam_profile, crl_cache):
    from station.devices.connection import Interface

    card = load_card_image(GOLDEN, pin=TEST_PIN, interface=Interface.CONTACTLESS)
    with pytest.raises(errors.InterfaceRestricted):
        pki_auth(PivSession(VirtualConnection(card)), icam_profile, FixedPin(), cache_dir=crl_cache)
    assert card.pin_tries == 5


PIN_STATUS_PROBE = """
import sys
from station.devices.pcsc import PcscConnection
from station.devices.piv import PivSession
print("verified" if PivSession(PcscConnection(sys.argv[1])).get_pin_status().verified else "not verified")
"""


def test_no_pin_stays_verified_after_pki_auth(insert_card, pcscd, icam_profile, crl_cache):
    """Issue 9: another program could sign with key 9A after PKI-AUTH without a PIN. The card is
    reset when PKI-AUTH ends; a second PC/SC client, another process, finds no PIN verified."""
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    conn = pcsc.open_reader(pcscd.reader())
    try:
        session = PivSession(conn)
        assert pki_auth(session, icam_profile, FixedPin(), mode="crl", cache_dir=crl_cache).accepted
        probe = subprocess.run([sys.executable, "-c", PIN_STATUS_PROBE, pcscd.reader()], env=pcscd.env,
                               capture_output=True, text=True, timeout=60)
        assert probe.stdout.strip() == "not verified", probe.stdout + probe.stderr
        assert session.get_pin_status().retries_left is not None  # the session still works (PIV selected again)
    finally:
        conn.close()
