"""``station init``: file and PKCS#11 CA keys, imports, keyring rules, no overwriting."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import keyring
import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .ca_helpers import TOKEN_LABEL, TOKEN_PIN, issue
from station.cli import main
from station.ca.ca import self_signed_ca_certificate
from station.ca.pkcs11_signer import Pkcs11Signer, generate_on_token
from station.home import StationHome
from station.secret_store import SERVICE, NoKeyringBackend
from station.service import revocation
from station.service.station import Station

REPO = Path(__file__).resolve().parents[2]
ADMIN = ["--admin", "admin", "--allow-operator-passwords"]  # the first administrator signs in with a password,
ADMIN_PASSWORD = "administrator passphrase"  # the first line of standard input


@pytest.fixture(autouse=True)
def admin_password_on_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{ADMIN_PASSWORD}\n" * 4))


def run_station(*args, env_drop=("DBUS_SESSION_BUS_ADDRESS", "PYTHON_KEYRING_BACKEND"), extra_env=None, stdin=f"{ADMIN_PASSWORD}\n"):
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "station", *map(str, args)], input=stdin, capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)


def all_bytes_under(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_init_refuses_to_overwrite_an_existing_ca(tmp_path, secret_service, trust_profile, capsys):
    home = tmp_path / "home"
    assert main(["init", *ADMIN, "--home", str(home), "--profile", str(trust_profile)]) == 0
    cert_before = (home / "ca" / "ca-cert.pem").read_bytes()
    config_before = (home / "station.toml").read_bytes()
    capsys.readouterr()
    assert main(["init", *ADMIN, "--home", str(home), "--profile", str(trust_profile), "--key-algorithm", "P-384"]) == 2
    err = capsys.readouterr().err
    assert "already" in err and "issuing CA" in err
    assert (home / "ca" / "ca-cert.pem").read_bytes() == cert_before
    assert (home / "station.toml").read_bytes() == config_before


def test_init_refuses_when_ca_files_exist_without_config(tmp_path, secret_service, trust_profile, capsys):
    home = tmp_path / "home"
    (home / "ca").mkdir(parents=True)
    (home / "ca" / "ca-key.p8").write_text("someone else's key")
    assert main(["init", *ADMIN, "--home", str(home), "--profile", str(trust_profile)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (home / "ca" / "ca-key.p8").read_text() == "someone else's key"


def test_init_without_a_keyring_says_how_to_fix_it(tmp_path, trust_profile):
    home = tmp_path / "home"
    done = run_station("init", *ADMIN, "--home", home, "--profile", trust_profile)
    assert done.returncode == 2
    assert "no working OS keyring backend" in done.stderr
    assert "gnome-keyring-daemon" in done.stderr and "demo" in done.stderr
    assert not (home / "station.toml").exists() and not (home / "ca").exists()


def test_demo_station_may_use_a_plain_file_keyring(tmp_path, trust_profile):
    home = tmp_path / "home"
    done = run_station("init", *ADMIN, "--home", home, "--profile", trust_profile, "--demo")
    assert done.returncode == 0, done.stderr
    config = tomllib.loads((home / "station.toml").read_text())
    assert config["demo"] is True and config["secrets"]["store"] == "demo-file"
    assert (home / "ca" / "ca-key.p8").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert oct((home / "demo-keyring.json").stat().st_mode & 0o777) == "0o600"
    passphrase = json.loads((home / "demo-keyring.json").read_text())["ca-key-passphrase"]
    assert passphrase.encode() not in (home / "station.toml").read_bytes()
    publish = run_station("crl", "publish", "--home", home, "--out", tmp_path / "demo.crl")
    assert publish.returncode == 0, publish.stderr
    # the same home without demo = true refuses the plain file
    (home / "station.toml").write_text((home / "station.toml").read_text().replace("demo = true", "demo = false"))
    refused = run_station("crl", "publish", "--home", home, "--out", tmp_path / "x.crl")
    assert refused.returncode == 2 and "demo" in refused.stderr


def test_file_ca_key_is_encrypted_and_its_passphrase_is_in_the_keyring(tmp_path, secret_service, trust_profile):
    home = tmp_path / "home"
    assert main(["init", *ADMIN, "--home", str(home), "--profile", str(trust_profile)]) == 0
    config = tomllib.loads((home / "station.toml").read_text())
    assert config["secrets"]["store"] == "os-keyring"
    passphrase = keyring.get_password(SERVICE, f"{config['station_id']}/ca-key-passphrase")
    assert passphrase and len(passphrase) >= 32
    key_pem = (home / "ca" / "ca-key.p8").read_bytes()
    assert key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(key_pem, None)
    assert passphrase.encode() not in all_bytes_under(home)
    assert b"PRIVATE KEY-----" not in all_bytes_under(home).replace(b"ENCRYPTED PRIVATE KEY-----", b"")


def test_pkcs11_ca_key(tmp_path, secret_service, softhsm, trust_profile, pki):
    home = tmp_path / "home"
    uri = softhsm()
    assert main(["init", *ADMIN, "--home", str(home), "--profile", str(trust_profile), "--ca-key", uri]) == 0
    config = tomllib.loads((home / "station.toml").read_text())
    assert config["ca"]["key"].startswith("pkcs11:") and "pin-value" not in config["ca"]["key"]
    assert TOKEN_PIN.encode() not in (home / "station.toml").read_bytes()
    assert keyring.get_password(SERVICE, f"{config['station_id']}/ca-token-pin") == TOKEN_PIN
    assert not (home / "ca" / "ca-key.p8").exists()

    # the key is on the token, sensitive and not extractable
    label = uri.split("object=")[1].split("?")[0]
    token = pkcs11.lib(uri.split("module-path=")[1].split("&")[0]).get_token(token_label=TOKEN_LABEL)
    with token.open(user_pin=TOKEN_PIN) as session:
        key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=label)
        assert key[pkcs11.Attribute.SENSITIVE] and not key[pkcs11.Attribute.EXTRACTABLE]

    with Station.open(StationHome(home)) as station:
        issued, *_ = issue(station, pki)
        issued.certificate.verify_directly_issued_by(station.ca.certificate)
        revocation.revoke(station, issued.serial, "keyCompromise", actor="t")
        revocation.publish_crl(station, actor="t", out=tmp_path / "hsm.crl")
        (tmp_path / "ca.pem").write_bytes(station.ca.chain_pem())
    done = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", tmp_path / "hsm.crl", "-CAfile", tmp_path / "ca.pem", "-noout", "-text"],
        capture_output=True,
        text=True,
    )
    assert "verify OK" in done.stdout + done.stderr
    listed = {s.lower().lstrip("0") for s in re.findall(r"Serial Number: ([0-9A-F]+)", done.stdout)}
    assert listed == {issued.serial}


def _openssl_ca(tmp_path: Path, passphrase: str) -> tuple[Path, Path]:
    key, cert = tmp_path / "ext-ca.key", tmp_path / "ext-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", key, "-out", cert,
         "-passout", f"pass:{passphrase}", "-days", "3650", "-subj", "/C=US/O=U.S. Government/CN=Imported Derived PIV CA",
         "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def test_import_ca_with_a_key_file(tmp_path, secret_service, trust_profile, pki, capsys):
    key, cert = _openssl_ca(tmp_path, "import-pass")
    home = tmp_path / "home"
    os.environ["STATION_IMPORT_KEY_PASSPHRASE"] = "import-pass"
    try:
        assert main(["init", *ADMIN, "--home", str(home), "--profile", str(trust_profile), "--import-ca", str(cert), "--import-key", str(key)]) == 0
    finally:
        del os.environ["STATION_IMPORT_KEY_PASSPHRASE"]
    stored = (home / "ca" / "ca-key.p8").read_bytes()
    assert stored.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") and stored != key.read_bytes()
    assert main(["ca", "export", "--home", str(home), "--out", str(tmp_path / "chain.pem")]) == 0
    assert x509.load_pem_x509_certificates((tmp_path / "chain.pem").read_bytes()) == [x509.load_pem_x509_certificate(cert.read_bytes())]
    with Station.open(StationHome(home)) as station:
        issued, *_ = issue(station, pki)
        issued.certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(cert.read_bytes()))


def test_import_refuses_a_key_that_does_not_match(tmp_path, secret_service, trust_profile, capsys):
    _, cert = _openssl_ca(tmp_path, "p")
    other = tmp_path / "other.key"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    home = tmp_path / "home"
    assert main(["init", *ADMIN, "--home", str(home), "--profile", str(trust_profile), "--import-ca", str(cert), "--import-key", str(other)]) == 2
    assert "does not match" in capsys.readouterr().err
    assert not (home / "station.toml").exists() and not (home / "ca" / "ca-key.p8").exists()


def test_import_ca_with_a_token_key(tmp_path, secret_service, softhsm, trust_profile, pki):
    uri = softhsm()
    generate_on_token(uri, None)
    signer = Pkcs11Signer(uri, None)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"), x509.NameAttribute(NameOID.COMMON_NAME, "Token CA")])
    cert_path = tmp_path / "token-ca.pem"
    cert_path.write_bytes(self_signed_ca_certificate(name, signer).public_bytes(serialization.Encoding.PEM))
    signer.close()
    home = tmp_path / "home"
    assert main(["init", *ADMIN, "--home", str(home), "--profile", str(trust_profile), "--import-ca", str(cert_path), "--import-key", uri]) == 0
    with Station.open(StationHome(home)) as station:
        issued, *_ = issue(station, pki, key_kind="P-384")
        issued.certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(cert_path.read_bytes()))


def test_database_password_goes_to_the_keyring(tmp_path, secret_service, postgres, trust_profile):
    import psycopg

    from .ca_helpers import new_pg_database

    url = new_pg_database(postgres)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE ROLE station_user LOGIN PASSWORD 'db-s3cret' SUPERUSER")
    with_password = url.replace("postgres@", "station_user:db-s3cret@")
    home = tmp_path / "home"
    assert main(["init", *ADMIN, "--home", str(home), "--profile", str(trust_profile), "--db", with_password]) == 0
    config = tomllib.loads((home / "station.toml").read_text())
    assert b"db-s3cret" not in (home / "station.toml").read_bytes()
    assert config["database"]["password_in_keyring"] is True
    assert keyring.get_password(SERVICE, f"{config['station_id']}/database-password") == "db-s3cret"
    with Station.open(StationHome(home)) as station:
        assert station.db.engine.url.username == "station_user"
        assert revocation.list_credentials(station) == []


def test_a_plain_file_keyring_backend_is_not_an_os_keyring(tmp_path):
    """A working plain-file backend (as keyrings.alt's, chosen with PYTHON_KEYRING_BACKEND) does
    not count as an OS keyring: only demo = true may keep secrets in a file."""
    from keyring.backend import KeyringBackend

    from station.secret_store import choose_store_kind, working_backend

    store = tmp_path / "plain.json"

    class PlaintextKeyring(KeyringBackend):
        priority = 1

        def _d(self):
            return json.loads(store.read_text()) if store.exists() else {}

        def get_password(self, service, username):
            return self._d().get(f"{service}/{username}")

        def set_password(self, service, username, password):
            store.write_text(json.dumps({**self._d(), f"{service}/{username}": password}))

        def delete_password(self, service, username):
            d = self._d()
            d.pop(f"{service}/{username}", None)
            store.write_text(json.dumps(d))

    previous = keyring.get_keyring()
    try:
        PlaintextKeyring.__module__ = "__main__"  # any other module: a backend the user chose
        keyring.set_keyring(PlaintextKeyring())
        assert working_backend() is not None  # it works, and is not refused for being unknown
        PlaintextKeyring.__module__ = "keyrings.alt.file"  # where the plain-text backends live
        keyring.set_keyring(PlaintextKeyring())
        assert working_backend() is None
        with pytest.raises(NoKeyringBackend):
            choose_store_kind(demo=False)
        assert choose_store_kind(demo=True) == "demo-file"
    finally:
        keyring.set_keyring(previous)


def _operators(home: Path) -> dict:
    with Station.open(StationHome(home)) as station:
        from station.service.operators import list_operators

        return {o["id"]: o for o in list_operators(station)}


def test_init_creates_the_first_administrator_who_enrols_operators(tmp_path, secret_service, trust_profile):
    """The administrator made by init is the one who can enrol others; operator passwords are
    allowed by a flag, not by editing station.toml."""
    home = tmp_path / "home"
    done = run_station("init", *ADMIN, "--demo", "--home", home, "--profile", trust_profile)
    assert done.returncode == 0, done.stderr
    assert ADMIN_PASSWORD not in done.stdout + done.stderr + (home / "station.toml").read_text()
    assert tomllib.loads((home / "station.toml").read_text())["operators"]["allow_passwords"] is True
    admin = _operators(home)["admin"]
    assert admin["roles"] == ["administrator"] and admin["auth"] == "password" and admin["active"]
    added = run_station("operators", "add", "--home", home, "--operator", "admin", "--id", "reg", "--name", "Reg",
                        "--role", "registrar", "--password-stdin", stdin=f"{ADMIN_PASSWORD}\nregistrar passphrase\n")
    assert added.returncode == 0, added.stderr
    assert _operators(home)["reg"]["auth"] == "password"
    events = run_station("audit", "export", "--home", home, "--format", "jsonl").stdout
    assert '"operator.signed_in"' in events and '"method": "password"' in events.replace('":"', '": "')
    assert "registrar passphrase" not in events and ADMIN_PASSWORD not in events


def test_init_refuses_an_administrator_password_where_passwords_are_not_allowed(tmp_path, secret_service, trust_profile, capsys,
                                                                              monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # asked for no password: refused first
    assert main(["init", "--admin", "admin", "--home", str(home), "--profile", str(trust_profile)]) == 2
    err = capsys.readouterr().err
    assert "--allow-operator-passwords" in err and len(err.strip().splitlines()) == 1
    assert not (home / "station.toml").exists()


def test_init_administrator_with_a_piv_card(tmp_path, secret_service, icam_profile_path, capsys):
    """--admin-piv-cert: a PIV Authentication certificate under the trust profile is enrolled
    with its card's FASC-N and UUID; the station's own kind of certificate (a CA) is not one."""
    from tests.conftest import CARDS

    home = tmp_path / "home"
    cert = CARDS / "01_Golden_PIV" / "3 - ICAM_PIV_Auth_SP_800-73-4.crt"
    assert main(["init", "--admin", "pat", "--admin-piv-cert", str(cert), "--home", str(home), "--profile", str(icam_profile_path)]) == 0
    pat = _operators(home)["pat"]
    assert pat["auth"] == "piv" and pat["card_fascn"] == "D13810D828AB6C10C339E5A1685A08C92ADE0A6184E739C3E7"
    assert tomllib.loads((home / "station.toml").read_text())["operators"]["allow_passwords"] is False
    capsys.readouterr()
    not_piv = CARDS / "ICAM_CA_and_Signer" / "ICAM_Test_Card_PIV-I_Root_CA_-_gold_gen3.crt"
    other = tmp_path / "other"
    assert main(["init", "--admin", "pat", "--admin-piv-cert", str(not_piv), "--home", str(other), "--profile", str(icam_profile_path)]) == 2
    err = capsys.readouterr().err
    assert "not a" in err and "PIV Authentication certificate" in err and len(err.strip().splitlines()) == 1
    assert not (other / "station.toml").exists()


def test_ca_store_asks_nobody_the_caller_provides_the_secrets(softhsm):
    """ca_store takes a token PIN from the URI, else from the caller's provider; it never
    prompts (the command line's providers read the environment, then the terminal)."""
    import ast

    from station.ca import ca_store
    from station.ca.ca import CAError

    source = ast.parse((REPO / "station" / "ca" / "ca_store.py").read_text())
    imported = {a.name for n in ast.walk(source) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(source) if isinstance(n, ast.ImportFrom)}
    called = {n.func.id for n in ast.walk(source) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "getpass" not in imported and "sys" not in imported and "input" not in called
    bare = softhsm(with_pin=False)
    with pytest.raises(CAError) as err:
        ca_store.token_pin(bare)
    assert err.value.code == "ca.pkcs11_pin"
    with pytest.raises(CAError):
        ca_store.token_pin(bare, lambda: None)  # the provider has nobody to ask
    assert ca_store.token_pin(bare, lambda: "from-provider") == "from-provider"
    assert ca_store.token_pin(softhsm(), lambda: "from-provider") == TOKEN_PIN  # the URI's PIN comes first
