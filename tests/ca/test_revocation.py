"""Revocation and CRLs: a revoked certificate is on the next CRL, which openssl verifies."""

from __future__ import annotations

import datetime as dt
import re
import subprocess

import pytest
from cryptography import x509

from .ca_helpers import issue
from station.cli import main
from station.service import revocation
from station.service.revocation import RevocationError


def cli(station, *args):
    return main([*args, "--home", str(station.home.root), "--db", station.db.engine.url.render_as_string(hide_password=False)])


def openssl_crl(crl_path, ca_path) -> str:
    done = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(crl_path), "-CAfile", str(ca_path), "-noout", "-text"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "verify OK" in done.stdout + done.stderr
    return done.stdout


def _administrator(station, monkeypatch) -> None:
    """An administrator "adm" whose password is the next line of standard input."""
    import io
    import sys

    from station.issuance.signin import hash_password
    from station.terms import AuthMethod, Role
    from station.service.operators import add_operator

    add_operator(station, "adm", display_name="Admin", roles=[Role.ADMINISTRATOR], auth_method=AuthMethod.PASSWORD,
                 auth_reference=hash_password("administrator passphrase"), actor="test")
    station.home.save_config({**station.config, "operators": {"allow_passwords": True}})
    monkeypatch.setattr(sys, "stdin", io.StringIO("administrator passphrase\n"))


def test_revoked_certificate_is_on_the_next_crl(station, pki, tmp_path, capsys, monkeypatch):
    revoked, *_ = issue(station, pki)
    kept, *_ = issue(station, pki)
    assert cli(station, "ca", "export", "--out", str(tmp_path / "ca.pem")) == 0
    assert cli(station, "crl", "publish", "--out", str(tmp_path / "1.crl")) == 0
    first = openssl_crl(tmp_path / "1.crl", tmp_path / "ca.pem")
    assert "No Revoked Certificates" in first

    assert cli(station, "credentials", "revoke", revoked.serial, "--reason", "keyCompromise") == 1  # nobody signed in: refused
    assert revocation.show_credential(station, revoked.serial).status == "active"
    _administrator(station, monkeypatch)
    assert cli(station, "credentials", "revoke", revoked.serial, "--reason", "keyCompromise", "--operator", "adm") == 0
    assert cli(station, "crl", "publish", "--out", str(tmp_path / "2.crl")) == 0
    text = openssl_crl(tmp_path / "2.crl", tmp_path / "ca.pem")
    listed = {s.lower().lstrip("0") for s in re.findall(r"Serial Number: ([0-9A-F]+)", text)}
    assert revoked.serial in listed
    assert kept.serial not in listed
    assert "Key Compromise" in text
    assert re.search(r"X509v3 CRL Number:\s*\n\s*2\b", text)

    crl = x509.load_der_x509_crl((tmp_path / "2.crl").read_bytes())
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(hours=24)
    assert crl.get_revoked_certificate_by_serial_number(revoked.certificate.serial_number) is not None
    assert (station.home.crl_dir / "latest.crl").read_bytes() == (tmp_path / "2.crl").read_bytes()

    capsys.readouterr()
    assert cli(station, "credentials", "list", "--status", "revoked") == 0
    out = capsys.readouterr().out
    assert revoked.serial in out and kept.serial not in out
    assert cli(station, "credentials", "show", revoked.serial) == 0
    assert "keyCompromise" in capsys.readouterr().out


def test_revoking_twice_or_unknown_serial_refused(station, pki):
    issued, *_ = issue(station, pki)
    revocation.revoke(station, issued.serial, "superseded", actor="t")
    with pytest.raises(RevocationError):
        revocation.revoke(station, issued.serial, "superseded", actor="t")
    with pytest.raises(RevocationError):
        revocation.revoke(station, "abcdef", "superseded", actor="t")
    with pytest.raises(RevocationError) as err:
        revocation.parse_reason("certificateHold")
    assert "keyCompromise" in err.value.hint


def test_serial_forms_accepted(station, pki):
    issued, *_ = issue(station, pki)
    colons = ":".join(re.findall("..", issued.serial.rjust(len(issued.serial) + len(issued.serial) % 2, "0"))).upper()
    assert revocation.show_credential(station, colons).serial == issued.serial
    assert revocation.show_credential(station, "0x" + issued.serial).serial == issued.serial


def test_crl_next_update_from_configuration(station, pki, tmp_path):
    station.config["crl"]["next_update_hours"] = 6
    crl = revocation.publish_crl(station, actor="t", out=tmp_path / "c.crl")
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(hours=6)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    again = revocation.publish_crl(station, actor="t")
    assert again.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number + 1


def test_ca_export_as_certs_only_cms(station, tmp_path):
    from cryptography.hazmat.primitives.serialization import pkcs7

    assert cli(station, "ca", "export", "--format", "p7c", "--out", str(tmp_path / "ca.p7c")) == 0
    assert pkcs7.load_der_pkcs7_certificates((tmp_path / "ca.p7c").read_bytes()) == [station.ca.certificate]
    done = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-in", tmp_path / "ca.p7c", "-print_certs", "-noout"], capture_output=True, text=True)
    assert done.returncode == 0 and "Derived PIV Station CA" in done.stdout
