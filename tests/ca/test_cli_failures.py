"""What a newcomer meets on the command line when something is wrong: one line on stderr
(what happened, then what to do), a defined exit code (README, "Exit codes"), never a
traceback. Each case runs the real ``station`` command on a real station home."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from station.errors import Exit

STATION = [sys.executable, "-m", "station"]
ANCHOR = "/work/shared/icam-test-pki/pki/roots/00_ICAM_Test_Card_Root_CA.crt"


def run(*args, stdin: bytes | str = b"", **kw) -> subprocess.CompletedProcess:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run([*STATION, *map(str, args)], input=data, capture_output=True, timeout=120, **kw)
    done.stdout, done.stderr = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    return done


def one_line(done: subprocess.CompletedProcess, code: int, *words: str) -> str:
    err = done.stderr
    assert "Traceback" not in err, err
    assert done.returncode == code, (done.returncode, err)
    assert err.count("\n") == 1 and err.startswith("station"), err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture
def home(sqlite_station):
    return sqlite_station.home


def edit_config(home, old: str, new: str) -> None:
    text = home.config_path.read_text()
    assert old in text
    home.config_path.write_text(text.replace(old, new))


def test_bad_db_values(home, tmp_path):
    one_line(run("credentials", "list", "--home", home.root, "--db", "nonsense"), Exit.ERROR, "database URL", "sqlite:///")
    one_line(run("credentials", "list", "--home", home.root, "--db", f"sqlite:///{tmp_path}/no/such/folder/x.db"),
             Exit.ERROR, "cannot open the database file")


def test_bad_station_id(home):
    edit_config(home, f'station_id = "{home.load_config()["station_id"]}"', "station_id = 5")
    one_line(run("credentials", "list", "--home", home.root), Exit.ERROR, "station_id")


def test_export_into_a_missing_folder(home, tmp_path):
    one_line(run("audit", "export", "--home", home.root, "--out", tmp_path / "missing" / "audit.jsonl"),
             Exit.ERROR, "missing/audit.jsonl", "No such file")


def test_negative_crl_lifetime_in_the_configuration(home, tmp_path):
    edit_config(home, "next_update_hours = 24", "next_update_hours = -48")
    one_line(run("crl", "publish", "--home", home.root, "--out", tmp_path / "x.crl"), Exit.ERROR, "next_update_hours")


@pytest.mark.parametrize("hours", ["-48", "0"])
def test_init_refuses_a_crl_lifetime_not_above_zero(tmp_path, hours):
    profile = tmp_path / "p.toml"
    profile.write_text(f'anchors = ["{ANCHOR}"]\npiv_auth_policies = ["2.16.840.1.101.3.2.1.48.11"]\n')
    done = run("init", "--home", tmp_path / "h", "--profile", profile, "--demo", "--crl-hours", hours)
    one_line(done, Exit.ERROR, "--crl-hours", "above 0")
    assert not (tmp_path / "h").exists()


def test_init_checks_the_whole_trust_profile(tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_text('anchors = ["missing-anchor.crt"]\npiv_auth_policies = ["2.16.840.1.101.3.2.1.48.11"]\n')
    admin = ("--admin", "adm", "--allow-operator-passwords")
    one_line(run("init", "--home", tmp_path / "h", "--profile", profile, "--demo", *admin, stdin="admin passphrase 1\n"),
             Exit.ERROR, "missing-anchor.crt")
    assert not (tmp_path / "h").exists()
    profile.write_text(f'anchors = ["{__file__}"]\npiv_auth_policies = ["2.16.840.1.101.3.2.1.48.11"]\n')
    one_line(run("init", "--home", tmp_path / "h", "--profile", profile, "--demo", *admin, stdin="admin passphrase 1\n"),
             Exit.ERROR, "not a certificate")


def test_not_a_pkcs11_module(home):
    done = run("selftest", "--home", home.root, "--pin-stdin", "--target", "pkcs11:token=x?module-path=/etc/passwd",
               stdin="123456\n")
    one_line(done, Exit.ERROR, "/etc/passwd is not a PKCS#11 module")


def test_stdin_that_is_not_text(home):
    done = run("issue", "--home", home.root, "--applicant-reader", "r", "--aal", "2", "--registrar", "a", "--approver", "b",
               "--target", "pkcs11:token=x", stdin=b"\xff\xfe\x00secret\n")
    one_line(done, Exit.ERROR, "not UTF-8")


def test_database_locked(home):
    with open(home.config_path, "a") as fh:
        fh.write("\n[database]\nbusy_timeout_seconds = 0.5\n")
    holder = sqlite3.connect(home.root / "station.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        one_line(run("credentials", "list", "--home", home.root), Exit.SYSTEM, "locked by another")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _on_a_full_disk(home, tmp_path, command: str) -> subprocess.CompletedProcess:
    """Run ``station <command>`` in a private mount namespace where ``FULL`` is a tmpfs with no
    space left, holding ``FULL/home``: a copy of the station home."""
    full = tmp_path / "full"
    full.mkdir()
    shell = textwrap.dedent(f"""
        mount -t tmpfs -o size=1m tmpfs {full} && cp -a {home.root} {full}/home || exit 99
        dd if=/dev/zero of={full}/filler bs=4k 2>/dev/null
        exec {" ".join(STATION)} {command.replace("FULL", str(full))}
    """)
    done = subprocess.run(["unshare", "--mount", "sh", "-c", shell], capture_output=True, text=True, timeout=120)
    assert done.returncode != 99, done.stderr
    return done


def test_disk_full_under_an_output_file(home, tmp_path):
    done = _on_a_full_disk(home, tmp_path, f"audit export --home {home.root} --out FULL/audit.jsonl")
    one_line(done, Exit.SYSTEM, "no space left")


def test_disk_full_under_the_database(home, tmp_path):
    done = _on_a_full_disk(home, tmp_path, f"crl publish --home FULL/home --out {tmp_path}/next.crl")
    one_line(done, Exit.SYSTEM, "full or failing")
