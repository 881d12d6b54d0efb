"""A station home for phone enrollment: password operators, the ICAM trust profile, the
enrollment service on a free loopback port, short limits, the TEST attestation root trusted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from station.devices.virtual import load_card_image
from station.enrollment.qr import EnrollmentPayload
from station.enrollment.test_attestation import TEST_ROOT_CERT
from tests.conftest import GOLDEN, TEST_PIN
from tests.issuance.test_issue_cli import SECRETS, operators_home

STATION = [sys.executable, "-m", "station"]
PHONE_PIN = "k9Pz4mQ1"


@pytest.fixture
def phone_home(sqlite_station, icam_profile_path):
    home = operators_home(sqlite_station, icam_profile_path)
    config = sqlite_station.home.load_config()
    config["enrollment"] = {**config["enrollment"], "port": 0, "header_seconds": 2, "body_seconds": 2,
                            "attestation_roots": [str(TEST_ROOT_CERT)]}
    sqlite_station.home.save_config(config)
    return home


class Issue:
    """A running ``station issue --target phone``: its QR line, then its outcome."""

    def __init__(self, args: list[str], env: dict, stdin: str):
        self.proc = subprocess.Popen([*STATION, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.proc.stdin.write(stdin)
        self.proc.stdin.close()
        self.stderr: list[str] = []
        self._qr = threading.Event()
        self.uri = ""
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)
            if line.startswith("QR: "):
                self.uri = line[4:].strip()
                self._qr.set()

    def payload(self, timeout: float = 90) -> EnrollmentPayload:
        deadline = time.monotonic() + timeout
        while not self._qr.wait(0.1):
            assert self.proc.poll() is None, "".join(self.stderr)
            assert time.monotonic() < deadline, "no QR line: " + "".join(self.stderr)
        return EnrollmentPayload.parse(self.uri)

    def outcome(self, timeout: float = 60) -> tuple[int, dict]:
        self.proc.wait(timeout)
        out = self.proc.stdout.read()
        return self.proc.returncode, (json.loads(out) if out.strip() else {})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def start_issue(phone_home, insert_card, pcscd, tmp_path):
    started: list[Issue] = []

    def start(aal: str = "2", resume: int | None = None) -> Issue:
        if resume is not None:  # `station requests resume ID --target phone` by the registrar
            issue = Issue(["requests", "resume", str(resume), "--home", str(phone_home), "--target", "phone", "--operator", "reg",
                           "--json"], pcscd.env, f"{SECRETS['reg']}\n")
            started.append(issue)
            return issue
        insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
        args = ["issue", "--home", str(phone_home), "--applicant-reader", pcscd.reader(), "--target", "phone",
                "--qr-out", str(tmp_path / f"qr{len(started)}.png"), "--aal", aal, "--registrar", "reg", "--approver", "sup",
                "--json"]
        issue = Issue(args + (["--photo-confirmed"] if aal == "3" else []), pcscd.env,
                      f"{SECRETS['reg']}\n{SECRETS['sup']}\n{TEST_PIN}\n")
        started.append(issue)
        return issue

    yield start
    for issue in started:
        issue.stop()


def phone(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*STATION, "phone", "enroll", *args], capture_output=True, text=True, timeout=120,
                          env=env or os.environ.copy())
