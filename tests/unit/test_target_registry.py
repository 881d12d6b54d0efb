"""Targets by URI scheme, and device identities compared field by field."""

from __future__ import annotations

import pytest

from station.issuance import targets
from station.issuance.targets import DeviceIdentity, TargetError, open_target

RECORDED = "pkcs11:token=dpiv-1;manufacturer=SoftHSM project;model=SoftHSM v2;serial=4e1f"


def test_the_recorded_text_form_round_trips_field_by_field():
    device = DeviceIdentity.parse(RECORDED)
    assert (device.kind, device.label, device.manufacturer, device.model, device.serial) == \
        ("pkcs11", "dpiv-1", "SoftHSM project", "SoftHSM v2", "4e1f")
    assert str(device) == RECORDED and device.name == "pkcs11:token=dpiv-1"
    assert device.same_device(DeviceIdentity("pkcs11", "dpiv-1", "SoftHSM project", "SoftHSM v2", "4e1f"))
    assert not device.same_device(DeviceIdentity("pkcs11", "dpiv-1", "SoftHSM project", "SoftHSM v2", "4e20"))


def test_an_identity_in_no_known_form_matches_only_itself():
    odd = DeviceIdentity.parse("something else")
    assert odd.name == "something else" and odd.same_device(DeviceIdentity.parse("something else"))
    assert not odd.same_device(DeviceIdentity.parse(RECORDED))


def test_an_unknown_scheme_names_the_known_ones():
    with pytest.raises(TargetError) as info:
        open_target("nfc:reader=1")
    assert "'nfc'" in str(info.value) and "pkcs11:" in str(info.value)


def test_a_registered_scheme_opens_its_targets(monkeypatch):
    opened = []
    monkeypatch.setitem(targets._FACTORIES, "phone", lambda uri, **options: opened.append((uri, options)) or "a phone")
    assert open_target("phone:serial=1", hardware_modules={"m"}) == "a phone"
    assert opened == [("phone:serial=1", {"hardware_modules": {"m"}, "pin_entry": None})]
    assert "phone" in targets.schemes()
