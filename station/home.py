"""The station home: one folder holding the configuration, the database, CRLs and CA material.

Where it is: ``--home DIR``, else ``$STATION_HOME``, else the platform's user data folder.
The configuration is TOML (``station.toml``), read with :mod:`tomllib` and written by the
small writer below (the station only writes tables of strings, numbers, booleans and lists).
Secrets never go into the configuration: passphrases and PINs live in the OS keyring
(:mod:`station.secret_store`). The home holds argon2id hashes, FASC-Ns and UUIDs: it is made
0700 and its private files 0600 by explicit modes, never left to the umask.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from station.errors import StationError

APP_NAME = "derived-piv-station"
CONFIG_NAME = "station.toml"


class HomeError(StationError):
    class Code(str, Enum):
        HOME = "home"
        BAD_CONFIG = "home.bad_config"
        PERMISSIONS = "home.permissions"

    code = Code.HOME.value
    hint = "check the station home (--home, $STATION_HOME) and its station.toml"


class NotInitialized(HomeError):
    code = "home.not_initialized"
    hint = "run `station init --home DIR --profile FILE --admin ID` first, or pass the right --home"


def platform_data_dir() -> Path:
    """The per-user data folder of this platform (XDG on Linux)."""
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_NAME
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / APP_NAME


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("STATION_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return platform_data_dir()


@dataclass(frozen=True)
class StationHome:
    root: Path

    @classmethod
    def locate(cls, explicit: str | os.PathLike[str] | None = None) -> StationHome:
        return cls(resolve_home(explicit))

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def crl_dir(self) -> Path:
        return self.root / "crl"

    @property
    def audit_dir(self) -> Path:
        return self.root / "audit"

    @property
    def audit_anchor(self) -> Path:
        """This station's latest audit checkpoint, kept outside the database."""
        return self.audit_dir / "anchor.json"

    def default_database_url(self) -> str:
        return f"sqlite:///{self.root / 'station.db'}"

    def make_private(self) -> None:
        """Create the home (and fix an existing one) readable by its owner only, whatever the umask."""
        make_private_dir(self.root)

    def exists(self) -> bool:
        return self.config_path.is_file()

    def path(self, relative: str) -> Path:
        """A path named in the configuration, relative to the home unless absolute."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    def load_config(self) -> dict[str, Any]:
        if not self.exists():
            raise NotInitialized(f"no station configuration at {self.config_path}")
        with self.config_path.open("rb") as fh:
            try:
                return tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise HomeError(
                    f"{self.config_path} is not valid TOML: {exc}",
                    code=HomeError.Code.BAD_CONFIG,
                    hint="fix the file by hand or restore it from a backup",
                ) from exc

    def save_config(self, config: dict[str, Any]) -> None:
        self.make_private()
        write_private(self.config_path, dumps_toml(config).encode())


def make_private_dir(path: Path) -> None:
    """A folder only its owner can enter (0700); the mode is set, not left to the umask."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_mode & 0o777 != 0o700:
            os.chmod(path, 0o700)
    except OSError as exc:
        raise HomeError(f"cannot make {path} a private folder: {exc.strerror}", code=HomeError.Code.PERMISSIONS,
                        hint="give a --home folder you own") from None


def make_private_file(path: Path) -> None:
    """Create ``path`` empty if missing, and make it (new or old) readable by the owner only."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write a file readable by the owner only, atomically (or refusing to replace it)."""
    if not path.parent.is_dir():
        make_private_dir(path.parent)
    if exclusive:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# --- a tiny TOML writer -------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _string(k)


def _string(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    out = "".join(f"\\u{ord(c):04x}" if (c < " " and c != "\t") or c == "\x7f" else c for c in out)
    return f'"{out}"'


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps_toml(data: dict[str, Any], _prefix: str = "") -> str:
    """Serialise nested dicts of scalars and lists (enough for the station's configuration)."""
    lines: list[str] = []
    for k, v in data.items():
        if v is not None and not isinstance(v, dict):
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in data.items():
        if isinstance(v, dict) and v:
            name = f"{_prefix}.{_key(k)}" if _prefix else _key(k)
            lines += ["", f"[{name}]", dumps_toml(v, name).rstrip("\n")]
    return "\n".join(lines).strip("\n") + "\n"
