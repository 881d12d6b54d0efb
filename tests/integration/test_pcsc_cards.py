"""The card layer over real middleware: an isolated pcscd, vpcd, pyscard and OpenSC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding

from station.devices import errors, pcsc
from station.devices.connection import Interface
from station.devices.piv import PivSession, Slot
from station.devices.virtual import VirtualPivCard, load_card_image
from tests.conftest import CARDS, GOLDEN, TEST_PIN

OPENSC_PKCS11 = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
STATION = [sys.executable, "-m", "station"]


def run(cmd, env, timeout=60, **kw):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture
def sim_card(pcscd):
    """``station sim card`` as a separate process inside pcscd's network namespace."""
    procs = []

    def start(*args):
        cmd = [*pcscd.nsenter_prefix(), *STATION, "sim", "card", *args, "--vpcd", f"127.0.0.1:{pcscd.port}"]
        proc = subprocess.Popen(cmd, env=pcscd.env, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        pcsc.wait_for_card(pcscd.reader(), present=True, timeout=20)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)
    pcsc.wait_for_card(pcscd.reader(), present=False, timeout=10)


def test_card_read_json_golden_over_pcscd(sim_card, pcscd):
    sim_card("--from", str(GOLDEN), "--pin", TEST_PIN)
    result = run([*STATION, "card", "read", "--json"], pcscd.env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["fascn"] == "D13810D828AF2C1084246DA1685828AF0210848D84E739C3EB"
    assert info["card_uuid"] == "94e28c68-84db-44db-8a0e-f502d6689b14"
    assert info["cardholder_uuid"] == "db175391-4749-4a32-977d-7a3843775e8a"
    assert info["expiry"] == "2032-12-02"
    assert info["reader"] == pcscd.reader() and info["interface"] == "contact"
    assert info["fascn_fields"]["agency_code"] == "4700" and info["fascn_fields"]["credential_number"] == "000046"
    assert [c["slot"] for c in info["certificates"]] == ["9A", "9C", "9D", "9E"]
    auth = x509.load_pem_x509_certificate((GOLDEN / "3 - ICAM_PIV_Auth_SP_800-73-4.crt").read_bytes())
    assert info["certificates"][0]["serial"] == format(auth.serial_number, "x")
    assert info["certificates"][0]["subject"] == auth.subject.rfc4514_string()
    assert info["pin_retries"] == 5 and info["pin_policy"] == "application"
    # the read spent no PIN try
    again = json.loads(run([*STATION, "card", "read", "--json", "--reader", "Reader 00 00"], pcscd.env).stdout)
    assert again["pin_retries"] == 5


def test_opensc_reads_the_same_certificate_and_signs_with_the_pin(insert_card, pcscd, tmp_path):
    card = load_card_image(GOLDEN, pin=TEST_PIN)
    insert_card(card)
    listing = run(["pkcs15-tool", "--list-certificates"], pcscd.env)
    assert listing.returncode == 0, listing.stderr
    assert "Certificate for PIV Authentication" in listing.stdout and "60000000000000000103" in listing.stdout

    pem = run(["pkcs15-tool", "--read-certificate", "01"], pcscd.env)
    assert pem.returncode == 0, pem.stderr
    opensc_der = x509.load_pem_x509_certificate(pem.stdout.encode()).public_bytes(Encoding.DER)
    conn = pcsc.open_reader(pcscd.reader())
    try:
        station_cert = PivSession(conn).read_certificate(Slot.AUTHENTICATION)
    finally:
        conn.close()
    assert opensc_der == station_cert.public_bytes(Encoding.DER)

    message = tmp_path / "msg"
    message.write_bytes(b"derived PIV witness")
    signature = tmp_path / "sig"
    signed = run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", TEST_PIN, "--sign", "--id", "01",
                  "--mechanism", "SHA256-RSA-PKCS", "--input-file", str(message), "--output-file", str(signature)], pcscd.env)
    assert signed.returncode == 0, signed.stderr
    station_cert.public_key().verify(signature.read_bytes(), message.read_bytes(), padding.PKCS1v15(), hashes.SHA256())
    assert card.pin_tries == 5


def test_opensc_wrong_pin_counts_down_on_our_card(insert_card, pcscd, tmp_path):
    card = load_card_image(GOLDEN, pin=TEST_PIN)
    insert_card(card)
    (tmp_path / "m").write_bytes(b"x")
    bad = run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", "111111", "--sign", "--id", "01",
               "--mechanism", "SHA256-RSA-PKCS", "--input-file", str(tmp_path / "m")], pcscd.env)
    assert bad.returncode != 0 and "CKR_PIN_INCORRECT" in bad.stderr
    assert card.pin_tries == 4


def test_opensc_pkcs11_self_test_passes_on_the_golden_card(insert_card, pcscd):
    """OpenSC's own PKCS#11 test: random (a 9B challenge), digests, signing with every key (9C,
    "PIN Always", then 9A again in the verify part), decryption. pkcs11-tool exits 0 even when
    it counts errors, so its summary line is what tells."""
    card = load_card_image(GOLDEN, pin=TEST_PIN)
    insert_card(card)
    result = run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", TEST_PIN, "--test"], pcscd.env, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert result.stdout.rstrip().endswith("No errors"), output
    assert "ERR" not in output and "CKR_" not in output, output
    signing, _, verifying = result.stdout.partition("\nVerify")
    assert "testing key 1 (SIGN key)" in signing and "testing key 0 (PIV AUTH key)\n    RSA-X-509: OK" in verifying, output
    assert card.pin_tries == 5


def test_opensc_piv_tool_authenticates_the_management_key(insert_card, pcscd, tmp_path):
    """piv-tool -A M:9B:03: the mutual form (80 00, then 80 + 81). Its external form (A:9B:03,
    a card challenge) fails inside OpenSC 0.23 itself before its answer is sent ("Allocated and
    computed lengths do not match", fixed later); tests/unit/test_virtual_card.py runs it."""
    from station.devices.piv.mgmkey import DEFAULT_MANAGEMENT_KEY

    insert_card(load_card_image(GOLDEN))
    for key, authenticated in ((DEFAULT_MANAGEMENT_KEY, True), (bytes(24), False)):
        (tmp_path / "9b.hex").write_text(key.hex())
        result = run(["piv-tool", "-A", "M:9B:03"], {**pcscd.env, "PIV_EXT_AUTH_KEY": str(tmp_path / "9b.hex")})
        assert (result.returncode == 0) is authenticated, result.stderr
        assert ("admin_mode failed" in result.stderr) is not authenticated, result.stderr


@pytest.mark.parametrize("name", ["53_FIPS_201-2_Large_Card_Auth_Cert", "46_Golden_FIPS_201-2_PIV_ICI_8",
                                  "28_Disco_Object_Present_Global_PIN_Primary", "25_Disco_Object_Not_Present"])
def test_special_cards_read_over_pcscd(insert_card, pcscd, name):
    insert_card(load_card_image(CARDS / name, pin=TEST_PIN))
    result = run([*STATION, "card", "read", "--json"], pcscd.env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    expected = load_card_image(CARDS / name)
    from station.devices.virtual import VirtualConnection

    local = PivSession(VirtualConnection(expected))
    assert info["fascn"] == local.read_chuid().fascn.hex().upper()
    assert info["certificates"][-1]["serial"] == format(local.read_certificate(Slot.CARD_AUTH).serial_number, "x")
    assert info["pin_policy"] == ("global" if name.startswith("28") else "application")


def test_contactless_card(sim_card, pcscd):
    sim_card("--from", str(GOLDEN), "--contactless")
    info = json.loads(run([*STATION, "card", "read", "--json"], pcscd.env).stdout)
    assert info["interface"] == "contactless" and info["atr"].startswith("3B8")
    slots = {c["slot"]: c for c in info["certificates"]}
    assert "error" in slots["9A"] and "serial" in slots["9E"]
    assert info["pin_retries"] is None


def test_blank_token_is_a_piv_application_without_objects(sim_card, pcscd):
    sim_card("--blank-token")
    conn = pcsc.open_reader()
    try:
        s = PivSession(conn)
        with pytest.raises(errors.FileNotFound):
            s.read_chuid()
        assert s.get_pin_status().retries_left == 3  # a YubiKey's PIN tries as shipped
    finally:
        conn.close()


def test_no_card_no_reader_and_not_piv_are_one_line_errors(pcscd, insert_card, tmp_path):
    result = run([*STATION, "card", "read", "--json"], pcscd.env)
    assert result.returncode != 0 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "no card" in result.stderr

    dead = {**pcscd.env, "PCSCLITE_CSOCK_NAME": str(tmp_path / "nothing.comm")}
    result = run([*STATION, "card", "read"], dead)
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "PC/SC service is not running" in result.stderr

    result = run([*STATION, "card", "read", "--reader", "No Such Reader"], pcscd.env)
    assert result.returncode != 0 and "no reader named" in result.stderr

    class NotPiv(VirtualPivCard):
        def transmit(self, apdu):
            return b"", 0x6A82

    insert_card(NotPiv())
    result = run([*STATION, "card", "read", "--json"], pcscd.env)
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "no PIV application" in result.stderr


def test_card_pulled_mid_read_is_card_removed(pcscd):
    card = load_card_image(GOLDEN, pin=TEST_PIN)
    link = pcscd.insert(card)
    conn = pcsc.open_reader(pcscd.reader())
    try:
        s = PivSession(conn)
        s.read_chuid()
        pcscd.remove(link)
        with pytest.raises(errors.CardRemoved) as info:
            s.read_certificate(Slot.AUTHENTICATION)
        assert info.value.code == "card-removed"
    finally:
        conn.close()


def test_watch_sees_insertion_and_removal(pcscd):
    seen = []
    link = None
    start = time.monotonic()
    for states in pcsc.watch(timeout=20, poll=0.2):
        seen.append(states[0].present)
        if len(seen) == 1:
            link = pcscd.insert(load_card_image(GOLDEN), wait=False)
        elif states[0].present:
            link.stop()
        else:
            break
    assert seen[0] is False and True in seen and seen[-1] is False
    assert time.monotonic() - start < 20


def test_exclusive_connection_keeps_other_clients_out(insert_card, pcscd):
    insert_card(load_card_image(GOLDEN))
    first = pcsc.open_reader(pcscd.reader(), exclusive=True)
    try:
        with pytest.raises(errors.TransportError, match="sharing|Sharing"):
            pcsc.open_reader(pcscd.reader())
    finally:
        first.close()
    second = pcsc.open_reader(pcscd.reader())
    with second.transaction():
        assert PivSession(second).read_chuid().card_uuid
    second.close()
    assert second.interface is Interface.CONTACT


def test_pcscd_dies_with_the_process_that_started_it(tmp_path):
    """A test run killed with SIGKILL leaves no pcscd behind."""
    script = (
        "import sys, time\n"
        "from station.devices.virtual.pcscd import IsolatedPcscd\n"
        f"d = IsolatedPcscd({str(tmp_path)!r}).start()\n"
        "print(d.process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    starter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pid = int(starter.stdout.readline())
    os.kill(pid, 0)  # running
    starter.kill()
    starter.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        pytest.fail("pcscd outlived the process that started it")
