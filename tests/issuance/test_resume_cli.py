"""`station issue` and `station requests resume` as the issue 9 reproductions ran them: over
pcscd and SoftHSM, the database edited behind the station's back with sqlite3."""

from __future__ import annotations

import json
import sqlite3
import uuid

from station.devices.virtual import load_card_image
from tests.conftest import GOLDEN, TEST_PIN, init_softhsm_token
from tests.issuance.test_issue_cli import NEW_PIN, SECRETS, home, run  # noqa: F401  (the fixture)


def issue(home, pcscd, uri, stdin, registrar="reg", approver="sup"):  # noqa: F811
    return run(["issue", "--home", str(home), "--applicant-reader", pcscd.reader(), "--target", uri, "--aal", "2",
                "--registrar", registrar, "--approver", approver, "--json"], pcscd.env, stdin)


def sql(home, query: str) -> list[tuple]:  # noqa: F811
    db = sqlite3.connect(home / "station.db")
    with db:
        found = db.execute(query).fetchall()
    db.close()
    return found


def test_an_approval_set_in_the_database_is_not_resumed(home, insert_card, pcscd, softhsm_conf):  # noqa: F811
    uri = init_softhsm_token(f"dpiv-{uuid.uuid4().hex[:8]}", "55667788")
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    refused = issue(home, pcscd, uri, f"{SECRETS['reg']}\n{SECRETS['reg']}\n{TEST_PIN}\n{NEW_PIN}\n", approver="reg")
    assert refused.returncode == 1 and json.loads(refused.stdout)["error"] == "separation.role"
    assert sql(home, "SELECT state FROM requests") == [("failed",)]  # the refused attempt left nothing open
    sql(home, "UPDATE requests SET state = 'approved'")
    resumed = run(["requests", "resume", "1", "--home", str(home), "--target", uri, "--operator", "reg",
                   "--applicant-reader", pcscd.reader(), "--json"], pcscd.env, f"{SECRETS['reg']}\n{TEST_PIN}\n{NEW_PIN}\n")
    assert resumed.returncode == 1 and json.loads(resumed.stdout)["error"] == "audit.unbacked", resumed.stdout
    assert sql(home, "SELECT count(*) FROM credentials") == [(0,)]
    assert sql(home, "SELECT json_extract(details, '$.rule') FROM audit_events WHERE action = 'issuance.refused'")[-1] == \
        ("audit.unbacked",)


def test_resume_needs_a_signed_in_registrar(home, insert_card, pcscd, softhsm_conf):  # noqa: F811
    uri = init_softhsm_token(f"dpiv-{uuid.uuid4().hex[:8]}", "55667788")
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    nameless = run(["requests", "resume", "1", "--home", str(home), "--target", uri, "--applicant-reader", pcscd.reader(), "--json"],
                   pcscd.env, f"{TEST_PIN}\n{NEW_PIN}\n")
    assert nameless.returncode != 0 and json.loads(nameless.stdout)["error"] == "signin.no_operator"
    assert "Traceback" not in nameless.stderr


def test_a_missing_input_line_ends_the_request(home, insert_card, pcscd, softhsm_conf):  # noqa: F811
    """No line for the new PIN: asked before the key is made, so nothing is issued, and the
    request ends failed instead of waiting in `authenticated`."""
    label = f"dpiv-{uuid.uuid4().hex[:8]}"
    uri = init_softhsm_token(label, "55667788")
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    result = issue(home, pcscd, uri, f"{SECRETS['reg']}\n{SECRETS['sup']}\n{TEST_PIN}\n")
    assert result.returncode == 2 and json.loads(result.stdout)["error"] == "input"  # bad input: exit 2
    assert sql(home, "SELECT state FROM requests") == [("failed",)]
    assert sql(home, "SELECT count(*) FROM credentials") == [(0,)]
