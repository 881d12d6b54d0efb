"""`station issue` over real pcscd and SoftHSM2, PINs piped in; OpenSC's pkcs11-tool as witness."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from station.issuance.signin import hash_password
from station.devices.virtual import load_card_image
from station.terms import AuthMethod, Role
from station.service.operators import add_operator
from tests.conftest import GOLDEN, SOFTHSM_MODULE, TEST_PIN, init_softhsm_token

STATION = [sys.executable, "-m", "station"]
SECRETS = {"reg": "registrar passphrase 1", "sup": "supervisor passphrase 2", "adm": "administrator passphrase 3"}
NEW_PIN = "k9Pz4mQ1"


@pytest.fixture
def home(sqlite_station, icam_profile_path):
    return operators_home(sqlite_station, icam_profile_path)


def operators_home(st, icam_profile_path):
    """The station home with three password operators (reg, sup, adm) and the ICAM trust profile."""
    for identity, roles in (("reg", [Role.REGISTRAR]), ("sup", [Role.SUPERVISOR]), ("adm", [Role.ADMINISTRATOR])):
        add_operator(st, identity, display_name=identity, roles=roles, auth_method=AuthMethod.PASSWORD,
                     auth_reference=hash_password(SECRETS[identity]), actor="admin")
    st.home.save_config({**st.config, "trust_profile": str(icam_profile_path), "operators": {"allow_passwords": True}})
    return st.home.root


def run(args, env, stdin=""):
    return subprocess.run([*STATION, *args], input=stdin, env=env, capture_output=True, text=True, timeout=120)


def test_headless_issue_to_softhsm(home, insert_card, pcscd, softhsm_conf):
    label = f"dpiv-{uuid.uuid4().hex[:8]}"
    uri = init_softhsm_token(label, "55667788")
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    env = pcscd.env
    stdin = f"{SECRETS['reg']}\n{SECRETS['sup']}\n{TEST_PIN}\n{NEW_PIN}\n"
    result = run(["issue", "--home", str(home), "--applicant-reader", pcscd.reader(), "--target", uri, "--aal", "2",
                  "--registrar", "reg", "--approver", "sup", "--json"], env, stdin)
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    assert out["state"] == "issued" and out["selftest"] == "pass"
    cred = out["credential"]
    assert cred["policy_oid"] == "2.16.840.1.101.3.2.1.3.40" and int(cred["serial"], 16) > 2**63
    assert cred["subject"].startswith("CN=ICAM Test Card PIV Auth") and cred["target"].startswith(f"pkcs11:token={label}")
    for secret in (*SECRETS.values(), TEST_PIN, NEW_PIN):
        assert secret not in result.stdout + result.stderr

    listing = subprocess.run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", label, "--login", "--pin", NEW_PIN,
                              "--list-objects"], capture_output=True, text=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    private = listing.stdout[listing.stdout.index("Private Key Object"):].split("\n\n")[0]
    cert_block = listing.stdout[listing.stdout.index("Certificate Object"):].split("\n\n")[0]
    assert "sensitive" in private and "never extractable" in private and "local" in private
    key_id = [l.split()[-1] for l in private.splitlines() if l.strip().startswith("ID:")][0]
    assert f"ID:         {key_id}" in cert_block

    assert run(["audit", "verify", "--home", str(home)], env).returncode == 0
    requests = json.loads(run(["requests", "list", "--home", str(home), "--json"], env).stdout)
    assert [r["state"] for r in requests] == ["issued"]
    test = run(["selftest", "--home", str(home), "--target", uri, "--pin-stdin", "--json"], env, NEW_PIN + "\n")
    assert test.returncode == 0 and json.loads(test.stdout)["selftest"] == "pass"


def test_headless_refusal_names_the_rule(home, insert_card, pcscd, softhsm_conf):
    uri = init_softhsm_token(f"dpiv-{uuid.uuid4().hex[:8]}", "55667788")
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    stdin = f"{SECRETS['reg']}\n{SECRETS['sup']}\n{TEST_PIN}\n{NEW_PIN}\n"
    aal3 = run(["issue", "--home", str(home), "--applicant-reader", pcscd.reader(), "--target", uri, "--aal", "3",
                "--registrar", "reg", "--approver", "sup", "--json"], pcscd.env, stdin)
    assert aal3.returncode != 0 and json.loads(aal3.stdout)["error"] == "assurance.aal3_needs_hardware"
    wrong = run(["issue", "--home", str(home), "--applicant-reader", pcscd.reader(), "--target", uri, "--aal", "2",
                 "--registrar", "reg", "--approver", "sup", "--json"], pcscd.env, f"{SECRETS['reg']}\nnot the password\n{TEST_PIN}\n{NEW_PIN}\n")
    assert wrong.returncode != 0 and json.loads(wrong.stdout)["error"] == "signin.wrong_password"
    requests = json.loads(run(["requests", "list", "--home", str(home), "--json"], pcscd.env).stdout)
    assert [r["state"] for r in requests] == ["failed"]  # opened, never approved, ended: nothing left to resume


def test_approver_signs_in_with_own_piv_card(home, insert_card, pcscd, softhsm_conf):
    """The supervisor's own card (GSA card 01) in the second slot; the secret line is its PIN."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from station.home import StationHome
    from station.service.station import Station
    from tests.conftest import CARDS

    operator_cert = x509.load_pem_x509_certificate((CARDS / "01_Golden_PIV/3 - ICAM_PIV_Auth_SP_800-73-4.crt").read_bytes())
    station = Station.open(StationHome(home))
    try:
        add_operator(station, "sue", display_name="Sue", roles=[Role.SUPERVISOR], auth_method=AuthMethod.PIV,
                     auth_reference=operator_cert.fingerprint(hashes.SHA256()).hex(), actor="admin")
    finally:
        station.close()
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    insert_card(load_card_image(CARDS / "01_Golden_PIV", pin="135790"), slot=1)
    stdin = f"{SECRETS['reg']}\n135790\n{TEST_PIN}\n{NEW_PIN}\n"
    args = ["issue", "--home", str(home), "--applicant-reader", pcscd.reader(0), "--aal", "2", "--registrar", "reg", "--json",
            "--approver", "sue", "--approver-reader", pcscd.reader(1)]
    result = run([*args, "--target", init_softhsm_token(f"dpiv-{uuid.uuid4().hex[:8]}", "55667788")], pcscd.env, stdin)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["state"] == "issued" and "135790" not in result.stdout + result.stderr
    exported = run(["audit", "export", "--home", str(home), "--format", "jsonl"], pcscd.env).stdout
    assert '"method": "piv"' in exported or '"method":"piv"' in exported

    wrong = run([*args[:-4], "--approver", "reg", "--approver-reader", pcscd.reader(1),
                 "--target", init_softhsm_token(f"dpiv-{uuid.uuid4().hex[:8]}", "55667788")], pcscd.env, stdin)
    assert wrong.returncode != 0 and json.loads(wrong.stdout)["error"] == "signin.wrong_card"


def test_transport_pin_from_stdin_and_no_uri_text_in_errors(home, insert_card, pcscd, softhsm_conf):
    """Issue 9: `pin-value=` on the command line is readable in /proc/PID/cmdline. A --target
    without a PIN takes the transport PIN from the last stdin line, and a mistyped URI's error
    does not repeat its query (`&pin-value55667788` printed the PIN)."""
    label = f"dpiv-{uuid.uuid4().hex[:8]}"
    uri = init_softhsm_token(label, "55667788").replace("&pin-value=55667788", "")
    assert "55667788" not in uri
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    args = ["issue", "--home", str(home), "--applicant-reader", pcscd.reader(), "--aal", "2", "--registrar", "reg", "--approver", "sup",
            "--json"]
    secrets = f"{SECRETS['reg']}\n{SECRETS['sup']}\n{TEST_PIN}\n{NEW_PIN}\n"
    typo = run([*args, "--target", uri + "&pin-value55667788"], pcscd.env, secrets)
    assert typo.returncode != 0 and json.loads(typo.stdout)["error"] == "pkcs11-uri"
    assert "55667788" not in typo.stdout + typo.stderr
    result = run([*args, "--target", uri], pcscd.env, secrets + "55667788\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["state"] == "issued" and "55667788" not in result.stdout + result.stderr


SIGN_PROBE = """
import sys
from cryptography import x509
from station.devices.errors import TransportError
from station.devices.pcsc import PcscConnection
from station.devices.piv import PivSession
from station.devices.piv.constants import Slot
from station.devices.piv.session import algorithm_for_key
algorithm = algorithm_for_key(x509.load_der_x509_certificate(open(sys.argv[2], "rb").read()).public_key())
try:
    session = PivSession(PcscConnection(sys.argv[1]))
except TransportError as exc:
    print("refused:", exc)
    raise SystemExit(0)
try:
    session.sign(Slot.AUTHENTICATION, algorithm, b"signed behind the station's back")
    print("signed with key 9A")
except Exception as exc:
    print("not signed:", type(exc).__name__)
"""


def test_applicant_card_is_held_exclusively(home, insert_card, pcscd, softhsm_conf):
    """Issue 9: between PKI-AUTH and the end of issuance another process signed with key 9A
    without a PIN. `station issue` is stopped right after PKI-AUTH (test failpoint); a second
    PC/SC client in another process then cannot even connect to the card."""
    import os
    import select

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    uri = init_softhsm_token(f"dpiv-{uuid.uuid4().hex[:8]}", "55667788")
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    cert = GOLDEN / "3 - ICAM_PIV_Auth_SP_800-73-4.crt"
    data = cert.read_bytes()
    der = x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER) if b"-----BEGIN" in data else data
    (home / "applicant.der").write_bytes(der)
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.failpoint", "--pause-after", "authenticated",
                             "issue", "--home", str(home), "--applicant-reader", pcscd.reader(), "--target", uri,
                             "--aal", "2", "--registrar", "reg", "--approver", "sup"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=pcscd.env)
    try:
        proc.stdin.write(f"{SECRETS['reg']}\n{SECRETS['sup']}\n{TEST_PIN}\n{NEW_PIN}\n")
        proc.stdin.close()
        seen, deadline = "", time.monotonic() + 120
        while "failpoint: paused after authenticated" not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stderr], [], [], 1.0)[0]:  # unbuffered: the failpoint's line follows at once
                seen += os.read(proc.stderr.fileno(), 65536).decode()
        assert "failpoint: paused after authenticated" in seen, seen
        assert "[pki-auth/checking revocation] " in seen and "[pki-auth] PKI-AUTH accepted\n" in seen, seen  # typed progress
        probe = subprocess.run([sys.executable, "-c", SIGN_PROBE, pcscd.reader(), str(home / "applicant.der")],
                               env=pcscd.env, capture_output=True, text=True, timeout=60)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert probe.stdout.startswith("refused: another program holds the card"), probe.stdout + probe.stderr


def test_resume_needs_a_freshly_signed_in_registrar(home, insert_card, pcscd, softhsm_conf, icam_profile, crl_cache,
                                                    monkeypatch):
    """A request left approved resumes only for a registrar who signs in now (their secret is
    the first line): not without --operator, not a supervisor, not a disabled registrar, not its
    approver (who also holds the registrar role). Another registrar may, and the remaining steps
    are attributed to them."""
    from station.home import StationHome
    from station.issuance.targets import open_target
    from station.service.operators import disable_operator
    from station.service.station import Station
    from tests.issuance import test_engine
    from tests.issuance.test_engine import card, engine

    monkeypatch.setitem(test_engine.SECRETS, "sue", "supervisor passphrase 6")
    uri = init_softhsm_token(f"dpiv-{uuid.uuid4().hex[:8]}", "55667788")
    with Station.open(StationHome(home)) as station:
        add_operator(station, "sue", display_name="sue", roles=[Role.SUPERVISOR, Role.REGISTRAR], auth_method=AuthMethod.PASSWORD,
                     auth_reference=hash_password("supervisor passphrase 6"), actor="adm")
        target = open_target(uri)
        try:
            eng = engine(station, icam_profile, crl_cache)
            request_id = eng.open_request(card(), registrar="reg", aal="AAL2", target=target)
            eng.approve(request_id, approver="sue")
        finally:
            target.close()
        add_operator(station, "reg2", display_name="reg2", roles=[Role.REGISTRAR], auth_method=AuthMethod.PASSWORD,
                     auth_reference=hash_password("registrar passphrase 5"), actor="adm")
        disable_operator(station, "reg", actor="adm")
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    resume = ["requests", "resume", str(request_id), "--home", str(home), "--target", uri, "--applicant-reader", pcscd.reader(),
              "--json"]
    for who, secret, error, code in ((None, "", "signin.no_operator", 1), ("sup", SECRETS["sup"], "separation.role", 1),
                                     ("reg", SECRETS["reg"], "signin.unknown_operator", 1),
                                     ("sue", "supervisor passphrase 6", "issuance.separation_of_duties", 1)):
        refused = run([*resume, *(["--operator", who] if who else [])], pcscd.env, f"{secret}\n{TEST_PIN}\n{NEW_PIN}\n")
        assert refused.returncode == code and json.loads(refused.stdout)["error"] == error, refused.stdout + refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    assert [r["state"] for r in json.loads(run(["requests", "list", "--home", str(home), "--json"], pcscd.env).stdout)] == ["approved"]
    done = run([*resume, "--operator", "reg2"], pcscd.env, f"registrar passphrase 5\n{TEST_PIN}\n{NEW_PIN}\n")
    assert done.returncode == 0 and json.loads(done.stdout)["state"] == "issued", done.stdout + done.stderr
    events = [json.loads(line) for line in run(["audit", "export", "--home", str(home), "--format", "jsonl"], pcscd.env)
              .stdout.splitlines()]
    steps = [e["actor"] for e in events if e.get("action") in ("request.applicant_authenticated", "credential.issued", "request.issued")]
    assert steps and set(steps) == {"reg2"}
