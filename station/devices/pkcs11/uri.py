"""PKCS#11 URIs (RFC 7512): ``pkcs11:token=<label>;object=<label>?module-path=<.so>&pin-source=file:<path>``.

Path attributes are separated by ``;``, query attributes by ``&``; values are percent-encoded.
The PIN may come from ``pin-source=file:<path>`` (RFC 7512 §2.3), from the station extension
``pin-source=keyring:<service>/<username>`` (the OS keyring), from ``pin-value`` (discouraged:
a URI given on a command line is readable by every local user in /proc/PID/cmdline), or, when
the URI names none, from the caller's ``fallback`` (the command line's standard input). The PIN
is never part of ``str()``/``repr()`` of a URI, and no error repeats a query attribute's text:
a typo such as ``&pin-value55667788`` would otherwise print the PIN.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from station.errors import StationError

PATH_ATTRIBUTES = {
    "token", "manufacturer", "serial", "model", "library-manufacturer", "library-description",
    "library-version", "object", "type", "id", "slot-description", "slot-manufacturer", "slot-id",
}
QUERY_ATTRIBUTES = {"pin-value", "pin-source", "module-name", "module-path"}


class UriError(StationError):
    code = "pkcs11-uri"
    hint = "write the token as pkcs11:token=<label>?module-path=<module .so>&pin-source=file:<PIN file> (RFC 7512)"


def _split(part: str, sep: str, allowed: set[str], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for position, item in enumerate(filter(None, part.split(sep)), 1):
        name, eq, value = item.partition("=")
        name = name.lower()
        known = name in allowed or name.startswith("x-")
        # an unknown name is named only in the path: in the query it may be a mistyped PIN
        said = f"{where} attribute {name!r}" if known or where == "path" else f"{where} attribute number {position} (not shown)"
        if not eq:
            raise UriError(f"PKCS#11 URI {said} has no value (write name=value)")
        if not known:
            raise UriError(f"unknown PKCS#11 URI {said}; known {where} attributes: {', '.join(sorted(allowed))}")
        if name in out:
            raise UriError(f"PKCS#11 URI attribute {name!r} appears twice")
        out[name] = urllib.parse.unquote(value, encoding=_encoding(name), errors="strict")
    return out


def _encoding(name: str) -> str:
    """``id`` is binary (CKA_ID, RFC 7512 §2.3): one character per byte; the rest is UTF-8 text."""
    return "latin-1" if name == "id" else "utf-8"


@dataclass(frozen=True)
class Pkcs11Uri:
    path: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, text: str) -> "Pkcs11Uri":
        if not text.startswith("pkcs11:"):
            raise UriError("a PKCS#11 URI starts with 'pkcs11:'")
        body = text[len("pkcs11:"):]
        path, _, query = body.partition("?")
        try:
            return cls(_split(path, ";", PATH_ATTRIBUTES, "path"), _split(query, "&", QUERY_ATTRIBUTES, "query"))
        except UnicodeDecodeError:
            raise UriError("PKCS#11 URI has a bad percent-encoding") from None

    @property
    def token(self) -> str | None:
        return self.path.get("token")

    @property
    def object(self) -> str | None:
        return self.path.get("object")

    @property
    def key_id(self) -> bytes | None:
        """The ``id`` attribute: the object's CKA_ID bytes."""
        return self.path["id"].encode("latin-1") if "id" in self.path else None

    @property
    def module_path(self) -> str:
        module = self.query.get("module-path")
        if not module:
            raise UriError("the PKCS#11 URI names no module-path")
        if not Path(module).is_file():
            raise UriError("the PKCS#11 module named by module-path does not exist",
                           hint="install the token's PKCS#11 module or fix module-path")
        return module

    @property
    def has_pin(self) -> bool:
        return "pin-value" in self.query or "pin-source" in self.query

    def pin(self, fallback: Callable[[], str] | None = None) -> str:
        """The PIN named by the URI (pin-value, pin-source=file:…, or pin-source=keyring:…), else
        ``fallback()`` (e.g. a line of standard input) when the caller gives one."""
        return pin_from_query(self.query, fallback)

    def __str__(self) -> str:
        """The URI without any PIN (safe for logs, audit events and the database)."""
        path = ";".join(f"{k}={urllib.parse.quote(v, safe='', encoding=_encoding(k))}" for k, v in self.path.items())
        query = "&".join(f"{k}={urllib.parse.quote(v, safe='/')}" for k, v in self.query.items() if k != "pin-value")
        return f"pkcs11:{path}" + (f"?{query}" if query else "")


def pin_from_query(query: dict[str, str], fallback: Callable[[], str] | None = None) -> str:
    """The PIN a device URI's query names (RFC 7512 ``pin-value``; ``pin-source=file:<path>``
    or ``pin-source=keyring:<service>/<user>``), else ``fallback()`` when the caller gives one."""
    if "pin-value" in query:
        return query["pin-value"]
    source = query.get("pin-source")
    if source is None:
        if fallback is not None:
            return fallback()
        raise UriError("the PKCS#11 URI carries no PIN",
                       hint="add pin-source=file:<PIN file> or pin-source=keyring:<service>/<user> to the URI")
    scheme, _, rest = source.partition(":")
    if scheme == "file":
        path = Path(urllib.parse.urlparse(source).path if rest.startswith("//") else rest)
        try:
            return path.read_text().strip("\r\n")
        except OSError as exc:
            raise UriError(f"cannot read the PIN file named by pin-source: {exc.strerror}",
                           hint="check the pin-source=file: path and that the station may read it") from None
    if scheme == "keyring":
        import keyring

        service, _, user = rest.partition("/")
        secret = keyring.get_password(service, user)
        if secret is None:
            raise UriError("no keyring entry named by pin-source holds the token PIN",
                           hint="store the PIN under that service and user, or fix pin-source=keyring:<service>/<user>")
        return secret
    raise UriError("unsupported pin-source scheme", hint="use pin-source=file:<path> or pin-source=keyring:<service>/<user>")
