"""`station issue` onto a blank PIV token in the second reader of the real pcscd: the golden
GSA card in the first, PINs piped in; the token's factory PIN is its transport secret."""

from __future__ import annotations

import io
import json

import pytest

from station.devices import pcsc
from station.devices.piv.constants import Slot
from station.devices.virtual import blank_token, load_card_image
from tests.conftest import GOLDEN, TEST_PIN
from tests.issuance.test_issue_cli import NEW_PIN, SECRETS, operators_home, run

AAL2, AAL3 = "2.16.840.1.101.3.2.1.3.40", "2.16.840.1.101.3.2.1.3.41"


@pytest.fixture
def home(sqlite_station, icam_profile_path):
    return operators_home(sqlite_station, icam_profile_path)


def issue(home, pcscd, insert_card, aal: str, *extra: str):
    """The golden card in the first reader, a blank token in the second, `station issue`."""
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    token = blank_token()
    insert_card(token, slot=1)
    stdin = f"{SECRETS['reg']}\n{SECRETS['sup']}\n{TEST_PIN}\n{NEW_PIN}\n"
    target = "piv:reader=" + pcscd.reader(1).replace(" ", "%20")
    return token, run(["issue", "--home", str(home), "--applicant-reader", pcscd.reader(), "--target", target, "--aal", aal,
                       "--registrar", "reg", "--approver", "sup", *extra], pcscd.env, stdin)


def test_headless_issue_onto_a_piv_token(home, insert_card, pcscd):
    _, result = issue(home, pcscd, insert_card, "2", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    assert out["state"] == "issued" and out["selftest"] == "pass"
    cred = out["credential"]
    assert cred["policy_oid"] == AAL2 and cred["target"].startswith("piv:token=")
    for secret in (*SECRETS.values(), TEST_PIN, NEW_PIN):
        assert secret not in result.stdout + result.stderr
    with pcsc.piv_session(pcscd.reader(1)) as session:
        on_token = session.read_certificate(Slot.AUTHENTICATION)
    assert format(on_token.serial_number, "x") == cred["serial"].lower().lstrip("0")


def test_aal3_onto_a_piv_token_without_a_verified_attestation_is_refused(home, insert_card, pcscd):
    factory = dict(blank_token(serial=1).objects)  # its attestation certificate only
    token, result = issue(home, pcscd, insert_card, "3")
    assert result.returncode == 1, result.stderr  # refused
    assert "AAL3 on a PIV token needs an attestation" in result.stderr and "Traceback" not in result.stderr
    assert token.keys == {} and token.objects.keys() == factory.keys()  # nothing written


def test_aal3_onto_a_piv_token_whose_attestation_chains_to_a_configured_root(home, insert_card, pcscd):
    from station.home import StationHome
    from station.service.audit import export
    from station.service.station import Station

    token = blank_token()
    station_home = StationHome(home)
    (home / "attestation-roots.pem").write_bytes(token.attestation_root_pem())
    config = station_home.load_config()
    station_home.save_config({**config, "targets": {**config.get("targets", {}), "attestation_roots": ["attestation-roots.pem"]}})
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    insert_card(token, slot=1)
    stdin = f"{SECRETS['reg']}\n{SECRETS['sup']}\n{TEST_PIN}\n{NEW_PIN}\n"
    result = run(["issue", "--home", str(home), "--applicant-reader", pcscd.reader(), "--target",
                  "piv:reader=" + pcscd.reader(1).replace(" ", "%20"), "--aal", "3", "--registrar", "reg", "--approver", "sup",
                  "--photo-confirmed", "--json"], pcscd.env, stdin)
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    assert out["state"] == "issued" and out["credential"]["policy_oid"] == AAL3
    trail = io.StringIO()
    with Station.open(StationHome(home), signing=False) as station:  # the attestation is on record, in the audit chain
        export(station, trail)
    generated = [e for e in map(json.loads, trail.getvalue().splitlines()) if e.get("action") == "target.key_generated"]
    details = json.loads(generated[-1]["details"])
    assert details["attested_serial"] == str(token.serial)
    assert details["attested_key_policy"].startswith("PIN once")  # as the station asked


def test_reissuing_onto_a_token_asks_for_confirmation_then_revokes_the_old_credential(home, insert_card, pcscd):
    """A PIV token holds one PIV Authentication key: a new credential replaces the old, only when
    the registrar says so (--replace); the old one is revoked (superseded) when the new key is
    made, and the chain records both."""
    token, first = issue(home, pcscd, insert_card, "2", "--json")
    assert first.returncode == 0, first.stderr
    old = json.loads(first.stdout)["credential"]["serial"]
    target = "piv:reader=" + pcscd.reader(1).replace(" ", "%20")
    again = ["issue", "--home", str(home), "--applicant-reader", pcscd.reader(), "--target", target, "--aal", "2",
             "--registrar", "reg", "--approver", "sup", "--json"]
    # the token now has the applicant's PIN: the transport PIN the second run uses is that one
    refused = run([*again[:6], target + f"?pin-value={NEW_PIN}", *again[7:]], pcscd.env, f"{SECRETS['reg']}\n")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert json.loads(refused.stdout)["error"] == "target.holds_credential", refused.stderr
    assert f"derived credential {old} of this station" in refused.stderr and "--replace" in refused.stderr
    replaced = run([*again[:6], target + f"?pin-value={NEW_PIN}", *again[7:], "--replace"], pcscd.env,
                   f"{SECRETS['reg']}\n{SECRETS['sup']}\n{TEST_PIN}\n{NEW_PIN}\n")
    assert replaced.returncode == 0, replaced.stderr
    new = json.loads(replaced.stdout)["credential"]["serial"]
    assert "which the new key replaces on the token, is revoked" in replaced.stderr
    shown = json.loads(run(["credentials", "show", old, "--home", str(home), "--json"], pcscd.env).stdout)
    assert shown["status"] == "revoked" and shown["revocation_reason"] == "superseded", shown
    assert json.loads(run(["credentials", "show", new, "--home", str(home), "--json"], pcscd.env).stdout)["status"] == "active"
    assert token._puk.tries == 3  # the PUK the first issuance set is kept: no try spent on the factory PUK
