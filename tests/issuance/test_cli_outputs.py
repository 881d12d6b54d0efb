"""What `station issue`, `requests`, `credentials` and `selftest` print: text for a person,
one JSON document with --json (README); and `selftest` judged against the station's records:
the recorded policy, and no verdict on a certificate this station did not issue."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid

from station.devices.virtual import load_card_image
from station.errors import Exit
from station.home import StationHome
from station.service.setup import InitOptions, initialize
from tests.conftest import GOLDEN, TEST_PIN, init_softhsm_token
from tests.issuance.test_issue_cli import NEW_PIN, SECRETS, home  # noqa: F401  (the fixture: a station with two operators)

STATION = [sys.executable, "-m", "station"]
CREDENTIAL_KEYS = {"serial", "status", "request_id", "policy_oid", "not_after", "subject"}


def run(args, env, stdin: str | None = "", **kw):
    extra = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([*STATION, *map(str, args)], env=env, capture_output=True, text=True, timeout=120, **extra, **kw)


def test_text_by_default_json_when_asked(home, insert_card, pcscd, softhsm_conf, trust_profile, tmp_path):
    env = pcscd.env
    uri = init_softhsm_token(f"dpiv-{uuid.uuid4().hex[:8]}", "55667788")
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    issue = ["issue", "--home", home, "--applicant-reader", pcscd.reader(), "--target", uri, "--aal", "2",
             "--registrar", "reg", "--approver", "sup"]
    refused = run(issue, env, f"{SECRETS['reg']}\nnot the password\n{TEST_PIN}\n{NEW_PIN}\n")
    assert refused.returncode == Exit.REFUSED and refused.stdout == ""  # progress lines, then one error line
    assert [line for line in refused.stderr.splitlines() if line.startswith("station:")] == [refused.stderr.splitlines()[-1]]

    issued = run(issue, env, f"{SECRETS['reg']}\n{SECRETS['sup']}\n{TEST_PIN}\n{NEW_PIN}\n")
    assert issued.returncode == 0, issued.stdout + issued.stderr
    assert not issued.stdout.startswith("{") and "state          issued" in issued.stdout
    progress = issued.stderr.splitlines()  # one line per event, the step and sub-step first, while the work runs
    assert progress[0] == "[request/reading the card] reading the applicant's PIV card" and all(p.startswith("[") for p in progress)
    assert progress.index("[key-generation/generating the key] generating the key on the token") < \
        next(i for i, p in enumerate(progress) if p.startswith("[key-generation] certificate "))
    assert progress[-1].startswith("[self-test] ")
    assert "policy oid   2.16.840.1.101.3.2.1.3.40" in issued.stdout

    table = run(["requests", "list", "--home", home], env)
    assert table.stdout.split()[:6] == ["ID", "STATE", "AAL", "TARGET", "CREATED", "REGISTRAR"]
    assert [r["state"] for r in json.loads(run(["requests", "list", "--home", home, "--json"], env).stdout)] == ["failed", "issued"]  # a refused issue ends its request

    (cred,) = json.loads(run(["credentials", "list", "--home", home, "--json"], env).stdout)
    assert CREDENTIAL_KEYS <= set(cred) and cred["status"] == "active"
    assert cred["policy_oid"] == "2.16.840.1.101.3.2.1.3.40" and cred["request_id"] == 2
    shown = json.loads(run(["credentials", "show", cred["serial"], "--home", home, "--json"], env).stdout)
    assert {k: shown[k] for k in CREDENTIAL_KEYS} == {k: cred[k] for k in CREDENTIAL_KEYS}
    assert run(["credentials", "list", "--home", home], env).stdout.split()[:4] == ["SERIAL", "STATUS", "NOT", "AFTER"]

    selftest = ["selftest", "--home", home, "--target", uri]
    passed = run([*selftest, "--pin-stdin", "--json"], env, NEW_PIN + "\n")
    assert passed.returncode == 0 and json.loads(passed.stdout)["selftest"] == "pass", passed.stderr

    # without a terminal and without --pin-stdin: one line, exit 2 (no GetPassWarning, no EOFError)
    blind = run(selftest, env, None, start_new_session=True)
    assert blind.returncode == Exit.ERROR and blind.stdout == ""
    assert blind.stderr == "station: no terminal to ask for the credential PIN. Pass --pin-stdin and send the PIN on the first line of standard input.\n"

    # the policy checked is the one recorded at issuance, not the one the certificate claims
    db = sqlite3.connect(home / "station.db")
    with db:
        db.execute("UPDATE credentials SET policy = '2.16.840.1.101.3.2.1.3.41'")
    db.close()
    wrong_policy = run([*selftest, "--pin-stdin", "--json"], env, NEW_PIN + "\n")
    verdict = json.loads(wrong_policy.stdout)
    assert wrong_policy.returncode == Exit.REFUSED and verdict["selftest"] == "fail" and verdict["checks"]["policy"] is False

    # another station's records do not hold this certificate: no verdict on it
    other = StationHome(tmp_path / "other")
    initialize(other, InitOptions(trust_profile=trust_profile))
    foreign = run(["selftest", "--home", other.root, "--target", uri, "--pin-stdin", "--json"], env, NEW_PIN + "\n")
    assert foreign.returncode == Exit.REFUSED and json.loads(foreign.stdout)["error"] == "selftest.not_issued"
    assert "not one this station issued" in foreign.stderr


def test_operators_list_text_and_json(home):
    table = run(["operators", "list", "--home", home], None)
    assert table.returncode == 0 and table.stdout.split()[:5] == ["ID", "ACTIVE", "AUTH", "ROLES", "NAME"]
    assert [op["id"] for op in json.loads(run(["operators", "list", "--home", home, "--json"], None).stdout)] == ["adm", "reg", "sup"]
