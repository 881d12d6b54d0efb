"""The name of a PIV token target: ``piv:reader=<reader name, percent-encoded>[;serial=<token
serial>][?pin-source=…|pin-value=…]`` (docs/piv-tokens.md). Light on purpose: the wizard reads
its targets' readers with it on the GUI thread, without loading the device layer."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from station.issuance.targets.base import TargetError

_PATH, _QUERY = {"reader", "serial"}, {"pin-source", "pin-value"}


class PivUriError(TargetError):
    code = "piv-uri"
    hint = "write the token as piv:reader=<reader name> (percent-encoded), optionally ;serial=<serial>"


@dataclass(frozen=True)
class PivUri:
    reader: str
    serial: str = ""
    query: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, text: str) -> PivUri:
        if not text.startswith("piv:"):
            raise PivUriError("a PIV token URI starts with 'piv:'")
        path, _, query = text[len("piv:"):].partition("?")
        attributes = {}
        for part, sep, allowed in ((path, ";", _PATH), (query, "&", _QUERY)):
            for position, item in enumerate(filter(None, part.split(sep)), 1):
                name, eq, value = item.partition("=")
                if not eq or name.lower() not in allowed:
                    said = repr(name) if part is path else f"number {position} (not shown)"  # a query may hold a PIN
                    raise PivUriError(f"unknown or empty PIV token URI attribute {said}; known: {', '.join(sorted(allowed))}")
                attributes[name.lower()] = urllib.parse.unquote(value)
        if not attributes.get("reader"):
            raise PivUriError("the PIV token URI names no reader")
        return cls(attributes.pop("reader"), attributes.pop("serial", ""), attributes)

    def __str__(self) -> str:
        """Without any PIN: what the records and messages hold."""
        text = f"piv:reader={urllib.parse.quote(self.reader, safe='')}" + (f";serial={self.serial}" if self.serial else "")
        source = self.query.get("pin-source")
        return text + (f"?pin-source={urllib.parse.quote(source, safe='/:')}" if source else "")
