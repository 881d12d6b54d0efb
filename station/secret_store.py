"""Where the station keeps its secrets: the OS keyring.

The passphrases of the encrypted CA and audit keys and the PIN of a PKCS#11 token never sit
in the configuration; they live in the OS keyring (:mod:`keyring`: SecretService on Linux,
Keychain on macOS, Credential Locker on Windows) under the service name below and a user name
made of the station id and the secret's name.

On a box with no keyring backend, :func:`open_secret_store` refuses and says how to fix it.
Only a station whose configuration says ``demo = true`` may fall back to a plain file in the
station home (mode 0600) — never the default.
"""

from __future__ import annotations

import json
import secrets
from enum import Enum
from pathlib import Path
from typing import Protocol

import keyring
import keyring.errors
from keyring.backends import chainer

from station.errors import StationError
from station.home import write_private

SERVICE = "derived-piv-station"
DEMO_KEYRING_FILE = "demo-keyring.json"
DATABASE_PASSWORD = "database-password"  # a PostgreSQL password given in --db at init


class NoKeyringBackend(StationError):
    class Code(str, Enum):
        UNAVAILABLE = "keyring.unavailable"
        DEMO_ONLY = "keyring.demo_only"

    code = Code.UNAVAILABLE.value
    hint = (
        "run the station inside a desktop session with a Secret Service keyring "
        "(GNOME Keyring or KWallet; headless: `dbus-run-session -- sh -c 'echo -n PASSWORD | "
        "gnome-keyring-daemon --unlock --components=secrets; station …'`), or select a keyring "
        "with PYTHON_KEYRING_BACKEND; a plain-file keyring is allowed only for a demonstration "
        "station (`station init --demo`, demo = true)"
    )


class SecretMissing(StationError):
    code = "keyring.secret_missing"
    hint = "the keyring entry was deleted or this is another user/session: restore it or re-import the key"


class SecretStore(Protocol):
    kind: str

    def get(self, name: str) -> str: ...

    def put(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> None: ...


class OsKeyringStore:
    """Secrets in the OS keyring through :mod:`keyring`."""

    def __init__(self, station_id: str, backend: keyring.backend.KeyringBackend):
        self.station_id = station_id
        self.backend = backend
        self.kind = f"keyring:{type(backend).__module__}"

    def _user(self, name: str) -> str:
        return f"{self.station_id}/{name}"

    def get(self, name: str) -> str:
        try:
            value = self.backend.get_password(SERVICE, self._user(name))
        except keyring.errors.KeyringError as exc:
            raise NoKeyringBackend(f"the OS keyring refused to read a secret: {exc}") from exc
        if value is None:
            raise SecretMissing(f"no keyring entry {SERVICE}/{self._user(name)}")
        return value

    def put(self, name: str, value: str) -> None:
        try:
            self.backend.set_password(SERVICE, self._user(name), value)
        except keyring.errors.KeyringError as exc:
            raise NoKeyringBackend(f"the OS keyring refused to store a secret: {exc}") from exc

    def delete(self, name: str) -> None:
        try:
            self.backend.delete_password(SERVICE, self._user(name))
        except keyring.errors.PasswordDeleteError:
            pass


class DemoFileStore:
    """A plain JSON file in the station home: for ``demo = true`` stations only."""

    kind = "demo-file"

    def __init__(self, path: Path):
        self.path = path

    def _load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        return json.loads(self.path.read_text())

    def get(self, name: str) -> str:
        try:
            return self._load()[name]
        except KeyError:
            raise SecretMissing(f"no entry {name!r} in the demo keyring {self.path}") from None

    def put(self, name: str, value: str) -> None:
        data = self._load()
        data[name] = value
        write_private(self.path, json.dumps(data, indent=1).encode())

    def delete(self, name: str) -> None:
        data = self._load()
        if data.pop(name, None) is not None:
            write_private(self.path, json.dumps(data, indent=1).encode())


def _backend_name() -> str:
    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # noqa: BLE001
        return f"keyring failed: {exc}"
    return f"keyring chose {type(backend).__module__}.{type(backend).__name__}"


# backends that are not an OS keyring: files (keyrings.alt), nothing (null/fail)
_NOT_OS_KEYRINGS = ("keyrings.alt", "keyring.backends.null", "keyring.backends.fail", "keyring.backends.chainer")


def _is_os_keyring(backend: keyring.backend.KeyringBackend) -> bool:
    return not type(backend).__module__.startswith(_NOT_OS_KEYRINGS)


def _probe(backend: keyring.backend.KeyringBackend) -> bool:
    probe_user = f"probe-{secrets.token_hex(8)}"
    try:
        backend.set_password(SERVICE, probe_user, "probe")
        ok = backend.get_password(SERVICE, probe_user) == "probe"
        backend.delete_password(SERVICE, probe_user)
    except Exception:  # any backend failure (locked, no bus, no collection) means "not usable"
        return False
    return ok


def working_backend() -> keyring.backend.KeyringBackend | None:
    """The OS keyring backend if one exists and answers a write/read/delete probe.

    When :mod:`keyring` chains several backends, the first OS keyring among them is used on its
    own, so that a locked keyring never falls through to a plain-file backend (keyrings.alt),
    which does not count as a keyring here, even when chosen with PYTHON_KEYRING_BACKEND."""
    try:
        chosen = keyring.get_keyring()
        candidates = chosen.backends if isinstance(chosen, chainer.ChainerBackend) else [chosen]
    except Exception:  # a backend's own availability check can raise (no D-Bus session)
        return None
    for backend in candidates:
        if _is_os_keyring(backend) and _probe(backend):
            return backend
    return None


OS_KEYRING = "os-keyring"
DEMO_FILE = "demo-file"


def choose_store_kind(*, demo: bool) -> str:
    """At ``init``: the OS keyring when one works, else the demo file if allowed, else refuse."""
    if working_backend() is not None:
        return OS_KEYRING
    if demo:
        return DEMO_FILE
    raise NoKeyringBackend(
        f"no working OS keyring backend ({_backend_name()}); "
        "the station will not keep key passphrases or PINs anywhere else"
    )


def open_secret_store(station_id: str, home_root: Path, *, kind: str, demo: bool) -> SecretStore:
    """The store named in the configuration (``[secrets] store``)."""
    if kind == DEMO_FILE:
        if not demo:
            raise NoKeyringBackend(
                "the configuration names the plain-file demo keyring but demo is not true",
                code=NoKeyringBackend.Code.DEMO_ONLY,
                hint="a plain-file keyring is for demonstration stations only; re-initialise with a real keyring",
            )
        return DemoFileStore(home_root / DEMO_KEYRING_FILE)
    backend = working_backend()
    if backend is None:
        raise NoKeyringBackend(f"no working OS keyring backend ({_backend_name()})")
    return OsKeyringStore(station_id, backend)


def new_passphrase() -> str:
    return secrets.token_urlsafe(32)
