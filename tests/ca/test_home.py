"""The station home: where it is, and its TOML configuration."""

from __future__ import annotations

import tomllib

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
