"""The station home: where it is, and its TOML configuration."""

from __future__ import annotations

import os
import tomllib

import pytest

from station.home import StationHome, dumps_toml, platform_data_dir, resolve_home


def test_home_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("STATION_HOME", str(tmp_path / "env"))
    assert resolve_home(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_home(None) == tmp_path / "env"
    monkeypatch.delenv("STATION_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_home(None) == platform_data_dir() == tmp_path / "xdg" / "derived-piv-station"


def test_config_round_trip_and_private_mode(tmp_path):
    home = StationHome(tmp_path / "h")
    config = {
        "station_id": "abc",
        "demo": False,
        "quote": 'a "b" \\ c',
        "ca": {"key": "pkcs11:token=a%20b;object=k?module-path=/usr/lib/x.so"},
        "profile": {"max_validity_days": 1095, "nested": {"list": ["x", "y"]}},
        "empty": {},
    }
    home.save_config(config)
    loaded = home.load_config()
    config.pop("empty")
    assert loaded == config
    assert tomllib.loads(dumps_toml(loaded)) == loaded
    assert home.config_path.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_home_and_database_are_the_owners_only(tmp_path, secret_service, trust_profile, umask):
    """Issue 9: a home 0755 and a database 0644 let `nobody` read argon2id hashes, FASC-Ns, UUIDs."""
    from station.service.setup import InitOptions, initialize
    from station.service.station import Station

    home = StationHome(tmp_path / "home")
    previous = os.umask(umask)
    try:
        initialize(home, InitOptions(trust_profile=trust_profile))
        st = Station.open(home)
        with st.db.transaction() as session:  # a write: the WAL and SHM files exist while open
            st.audit.append(session, actor="test", action="test.write", object_type="test", object_id="1", details={})
        db = home.root / "station.db"
        files = {p: p.stat().st_mode & 0o777 for p in (db, db.with_name("station.db-wal"), db.with_name("station.db-shm"))}
        st.close()
        assert files == dict.fromkeys(files, 0o600)
        assert home.root.stat().st_mode & 0o777 == 0o700
        public = {home.path("ca/ca-cert.pem"), home.crl_dir / "latest.crl"}  # certificates and CRLs are public
        for path in home.root.rglob("*"):
            if path not in public:
                assert path.stat().st_mode & 0o077 == 0, f"{path} is {oct(path.stat().st_mode & 0o777)}"

        # a home made before (or by hand, or by another umask) is made private when opened
        home.root.chmod(0o755)
        db.chmod(0o644)
        Station.open(home, signing=False).close()
        assert home.root.stat().st_mode & 0o777 == 0o700 and db.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(previous)
