"""Issuance targets behind one interface, found by the scheme of their target URI.

``register(scheme, factory)`` adds a kind of device; ``open_target(uri, ...)`` calls the
factory of the URI's scheme with the URI and the keywords ``hardware_modules`` (the module
paths the configuration counts as hardware), ``pin_entry`` (gives the device's transport
secret when the URI names none), ``secrets`` (the station's secret store, where a PIV token's
own management key and escrowed PUK live) and ``puk_handling``; a factory ignores the keywords
it has no use for. ``pkcs11:`` (RFC 7512) and ``piv:`` (a PIV-applet token in a PC/SC reader)
and ``phone:`` (a phone enrolling over EST: ``enrollment_service`` starts the station's service,
``phone_events`` hears what the phone does) are registered here.
"""

from __future__ import annotations

from typing import Callable

from station.issuance.targets.base import DeviceDescription, DeviceIdentity, RequestNotReceived, Target, TargetError

TargetFactory = Callable[..., Target]
_FACTORIES: dict[str, TargetFactory] = {}


def register(scheme: str, factory: TargetFactory) -> None:
    """``factory(uri, *, hardware_modules, pin_entry)`` opens the targets of ``scheme:`` URIs."""
    _FACTORIES[scheme.lower()] = factory


def schemes() -> list[str]:
    return sorted(_FACTORIES)


def open_target(uri: str, *, hardware_modules: set[str] | frozenset[str] = frozenset(),
                pin_entry: Callable[[], str] | None = None, **options) -> Target:
    """A target for ``uri``, by its scheme. ``pin_entry()`` gives the device's transport secret
    when the URI names none (asked once, when first needed)."""
    scheme = uri.split(":", 1)[0].lower()  # a bare scheme names its one device: "phone"
    factory = _FACTORIES.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}:" for s in schemes())
        raise TargetError(f"unknown target {scheme or uri!r}: the station knows {known} URIs",
                          hint=f"give the device as a URI of a known scheme ({known})")
    return factory(uri, hardware_modules=hardware_modules, pin_entry=pin_entry, **options)


def _open_pkcs11(uri: str, **options) -> Target:
    from station.issuance.targets.pkcs11 import open_pkcs11  # python-pkcs11 loads only when a token is used

    return open_pkcs11(uri, **options)


def _open_piv(uri: str, **options) -> Target:
    from station.issuance.targets.piv import open_piv

    return open_piv(uri, **options)


def _open_phone(uri: str, **options) -> Target:
    from station.issuance.targets.phone import open_phone

    return open_phone(uri, **options)


register("pkcs11", _open_pkcs11)
register("piv", _open_piv)
register("phone", _open_phone)

__all__ = ["DeviceDescription", "DeviceIdentity", "RequestNotReceived", "Target", "TargetError", "open_target", "register",
           "schemes"]
