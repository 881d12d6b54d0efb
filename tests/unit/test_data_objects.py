"""FASC-N, CHUID, certificate containers and the Discovery Object round-trip their bytes."""

import uuid

import pytest
from hypothesis import given, strategies as st

from station.devices.piv import CertificateContainer, Chuid, DiscoveryObject, FascN, PinPolicy
from station.devices.piv.chuid import ChuidError
from station.devices.piv.containers import ContainerError
from station.devices.piv.fascn import FascnError
from tests.conftest import GOLDEN, card_folders

GOLDEN_FASCN = "D13810D828AF2C1084246DA1685828AF0210848D84E739C3EB"


def test_golden_fascn_fields():
    f = FascN.from_bytes(bytes.fromhex(GOLDEN_FASCN))
    assert f.to_dict() == {
        "agency_code": "4700", "system_code": "0257", "credential_number": "000046",
        "credential_series": "1", "individual_credential_issue": "1", "person_identifier": "0257000046",
        "organizational_category": "1", "organizational_identifier": "9999", "association_category": "1",
    }
    assert str(f) == GOLDEN_FASCN


digits = lambda n: st.text("0123456789", min_size=n, max_size=n)  # noqa: E731


@given(st.tuples(digits(4), digits(4), digits(6), digits(1), digits(1), digits(10), digits(1), digits(4), digits(1)))
def test_fascn_round_trip(fields):
    f = FascN(*fields)
    assert FascN.from_bytes(f.to_bytes()) == f


def test_fascn_detects_corruption():
    raw = bytearray.fromhex(GOLDEN_FASCN)
    raw[5] ^= 0x04
    with pytest.raises(FascnError):
        FascN.from_bytes(bytes(raw))
    with pytest.raises(FascnError, match="25 bytes"):
        FascN.from_bytes(b"\x00" * 24)


def test_golden_chuid_fields_and_round_trip():
    raw = (GOLDEN / "8 - CHUID Object").read_bytes()
    chuid = Chuid.from_bytes(raw)
    assert chuid.fascn.hex().upper() == GOLDEN_FASCN
    assert chuid.card_uuid == uuid.UUID("94e28c68-84db-44db-8a0e-f502d6689b14")
    assert chuid.cardholder_uuid == uuid.UUID("db175391-4749-4a32-977d-7a3843775e8a")
    assert chuid.expiry.isoformat() == "2032-12-02"
    assert chuid.issuer_signature[:2] == b"\x30\x82"
    assert chuid.to_bytes() == raw
    # the signature covers every field but 3E, FE included (SP 800-73-4 Part 1 §3.1.2)
    assert Chuid.signed_content_of(raw) == chuid.signed_content() == raw[:raw.index(b"\x3e\x82")] + b"\xfe\x00"


@pytest.mark.parametrize("folder", card_folders(), ids=lambda p: p.name)
def test_every_gsa_chuid_round_trips(folder):
    raw = (folder / "8 - CHUID Object").read_bytes()
    assert Chuid.from_bytes(raw).to_bytes() == raw


@pytest.mark.parametrize("raw, why", [
    (bytes.fromhex("3019") + b"\x00" * 10, "malformed"),
    (bytes.fromhex("3403") + b"abc", "FASC-N"),
    (bytes.fromhex("3019") + bytes.fromhex(GOLDEN_FASCN) + bytes.fromhex("350431323334"), "expiration"),
    (bytes.fromhex("3019") + bytes.fromhex(GOLDEN_FASCN) + bytes.fromhex("3403AABBCC3508") + b"20320101", "GUID"),
])
def test_bad_chuid_raises_chuid_error(raw, why):
    with pytest.raises(ChuidError, match=why):
        Chuid.from_bytes(raw)


def test_certificate_container_plain_and_gzip():
    der = b"\x30\x03\x02\x01\x01"
    for compressed in (False, True):
        c = CertificateContainer(der, compressed)
        back = CertificateContainer.from_bytes(c.to_bytes())
        assert back.certificate_der == der and back.compressed is compressed
    with pytest.raises(ContainerError, match="no certificate"):
        CertificateContainer.from_bytes(bytes.fromhex("710100FE00"))
    with pytest.raises(ContainerError, match="inflate"):
        CertificateContainer.from_bytes(bytes.fromhex("7003AABBCC710101FE00"))


def test_gzip_bomb_refused():
    import gzip

    bomb = gzip.compress(b"\x00" * (1024 * 1024))
    from station.devices import tlv

    with pytest.raises(ContainerError, match="64 KiB"):
        CertificateContainer.from_bytes(tlv.encode_tlvs([(0x70, bomb), (0x71, b"\x01"), (0xFE, b"")]))


@pytest.mark.parametrize("policy, expected, satisfies", [
    ("4000", PinPolicy.APPLICATION, False),
    ("6010", PinPolicy.APPLICATION, True),
    ("6020", PinPolicy.GLOBAL, True),
])
def test_discovery_pin_policy(policy, expected, satisfies):
    d = DiscoveryObject(pin_usage_policy=bytes.fromhex(policy))
    back = DiscoveryObject.from_bytes(d.to_bytes())
    assert back == d and back.pin_policy is expected and back.global_pin_satisfies is satisfies
