"""`station issue` killed with SIGKILL after each step in turn, then resumed (or cancelled):
exactly one valid credential or none, no orphan certificate, the audit chain intact."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import uuid

import pytest

from station.devices.virtual import load_card_image
from tests.issuance.test_issue_cli import NEW_PIN, SECRETS, home  # noqa: F401  (the fixture)
from tests.conftest import GOLDEN, SOFTHSM_MODULE, TEST_PIN, init_softhsm_token
from tests.support.failpoint import MARK

STATION = [sys.executable, "-m", "station"]
PAUSING = [sys.executable, "-m", "tests.support.failpoint"]  # the station command with a test-only failpoint
STEPS = ["requested", "approved", "authenticated", "key_generated", "delivered", "activated"]


def certificates_on_token(label: str, pin: str) -> int:
    out = subprocess.run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", label, "--list-objects",
                          "--type", "cert"], capture_output=True, text=True, timeout=30).stdout
    return out.count("Certificate Object")


@pytest.mark.parametrize("killed_after", STEPS)
def test_kill_after_each_step_then_resume(killed_after, home, insert_card, pcscd, softhsm_conf):  # noqa: F811
    label = f"crash-{uuid.uuid4().hex[:8]}"
    uri = init_softhsm_token(label, "55667788")
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    proc = subprocess.Popen(
        [*PAUSING, "--pause-after", killed_after, "issue", "--home", str(home), "--applicant-reader", pcscd.reader(), "--target", uri, "--aal", "2",
         "--registrar", "reg", "--approver", "sup"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=pcscd.env)
    proc.stdin.write(f"{SECRETS['reg']}\n{SECRETS['sup']}\n{TEST_PIN}\n{NEW_PIN}\n")
    proc.stdin.close()
    for line in proc.stderr:  # the command stops after this step's commit (failpoint) until killed
        if line == f"{MARK} {killed_after}\n":
            proc.send_signal(signal.SIGKILL)
            break
    assert proc.wait(timeout=60) == -signal.SIGKILL, f"never reached {killed_after}"

    def run(*args, stdin=""):
        return subprocess.run([*STATION, *args, "--home", str(home)], input=stdin, capture_output=True, text=True,
                              timeout=120, env=pcscd.env)

    (request,) = json.loads(run("requests", "list", "--open", "--json").stdout)
    assert request["state"] == killed_after
    if killed_after == "requested":  # never approved: nothing can be issued; it is cancelled
        assert run("requests", "cancel", str(request["request_id"]), "--operator", "sup", stdin=f"{SECRETS['sup']}\n").returncode == 0
        final = "cancelled"
    else:
        resumed = run("requests", "resume", str(request["request_id"]), "--target", uri, "--operator", "reg",
                      "--applicant-reader", pcscd.reader(), "--json", stdin=f"{SECRETS['reg']}\n{TEST_PIN}\n{NEW_PIN}\n")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert json.loads(resumed.stdout)["selftest"] == "pass"
        final = "issued"

    db = sqlite3.connect(home / "station.db")
    states = db.execute("SELECT state FROM requests").fetchall()
    credentials = db.execute("SELECT status FROM credentials").fetchall()
    assert states == [(final,)]
    assert credentials == ([("active",)] if final == "issued" else [])
    assert certificates_on_token(label, NEW_PIN) == (1 if final == "issued" else 0)  # no orphan, no duplicate
    assert run("audit", "verify").returncode == 0
