"""`station card verify` as a script runs it: without a terminal and without --pin-stdin it
says so in one line (no getpass warning, no EOFError); piped into `head -1` it stops quietly
with one line and exit code 141 instead of a BrokenPipeError traceback."""

from __future__ import annotations

import os
import subprocess
import sys

from station.devices.virtual import load_card_image
from station.errors import Exit
from tests.conftest import GOLDEN, TEST_PIN

STATION = [sys.executable, "-m", "station"]


def verify_cmd(profile, *extra):
    return [*STATION, "card", "verify", "--profile", str(profile), "--revocation", "crl", *extra]


def test_no_terminal_and_no_pin_stdin(insert_card, pcscd, icam_profile_path, tmp_path):
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    done = subprocess.run(verify_cmd(icam_profile_path), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, start_new_session=True,  # no controlling terminal either
                          env={**pcscd.env, "STATION_HOME": str(tmp_path / "home")})
    assert done.returncode == Exit.ERROR, done.stderr
    assert done.stderr == "station: no terminal to ask for the PIN. Pass --pin-stdin and send the PIN on the first line of standard input.\n"


def test_output_closed_early(insert_card, pcscd, icam_profile_path, tmp_path):
    """As `station card verify | head -1` once head has gone: the pipe's reading end is closed."""
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(verify_cmd(icam_profile_path, "--pin-stdin"), input=(TEST_PIN + "\n").encode(),
                              stdout=write_end, stderr=subprocess.PIPE, timeout=60,
                              env={**pcscd.env, "STATION_HOME": str(tmp_path / "home")})
    finally:
        os.close(write_end)
    err = done.stderr.decode()
    assert done.returncode == Exit.BROKEN_PIPE, err
    assert "Traceback" not in err and err.count("\n") == 1 and "output was closed" in err
