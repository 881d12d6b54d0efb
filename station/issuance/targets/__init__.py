"""Issuance targets behind one interface; ``open_target`` picks one from a target URI."""

from __future__ import annotations

from typing import Callable

from station.issuance.targets.base import DeviceDescription, Target, TargetError


def open_target(uri: str, *, hardware_modules: set[str] | frozenset[str] = frozenset(),
                pin_entry: Callable[[], str] | None = None) -> Target:
    """A target for ``uri``. ``pkcs11:`` URIs open a PKCS#11 token; the module is hardware only
    when configuration lists its path in ``hardware_modules``. ``pin_entry()`` gives the
    token's transport PIN when the URI names none (asked once, when first needed)."""
    if uri.startswith("pkcs11:"):
        from station.devices.pkcs11 import Pkcs11Uri
        from station.issuance.targets.pkcs11 import Pkcs11Target

        parsed = Pkcs11Uri.parse(uri)
        return Pkcs11Target(parsed, hardware=parsed.query.get("module-path") in hardware_modules, pin_entry=pin_entry)
    raise TargetError(f"unknown target {uri.split(':', 1)[0]!r}: use a pkcs11: URI",
                      hint="PIV-applet tokens and phones come with their own target kinds")


__all__ = ["DeviceDescription", "Target", "TargetError", "open_target"]
