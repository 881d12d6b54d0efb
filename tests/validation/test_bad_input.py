"""Malformed card contents: always a reject with a reason, never an exception."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from station.validation.card_contents import CardContents
from station.validation.verdict import evaluate_card

from station.devices.piv.chuid import Chuid

from .icam import CARDS

GOLDEN = CARDS / "46_Golden_FIPS_201-2_PIV"


@pytest.fixture(scope="module")
def golden() -> CardContents:
    return CardContents.from_image_dir(GOLDEN)


def judge(contents, profile, cache):
    verdict = evaluate_card(contents, profile, mode="crl", cache_dir=cache)
    assert verdict.verdict == "reject"
    assert verdict.reasons and verdict.details
    return verdict


def altered(golden: CardContents, **changes) -> CardContents:
    contents = copy.deepcopy(golden)
    for name, value in changes.items():
        setattr(contents, name, value)
    return contents


def test_golden_is_accepted(golden, icam_profile, crl_cache):
    assert evaluate_card(golden, icam_profile, mode="crl", cache_dir=crl_cache).accepted


@pytest.mark.parametrize("slot,reason", [("9A", "cert-invalid"), ("9E", "cert-invalid")])
def test_corrupted_certificate(golden, icam_profile, crl_cache, slot, reason):
    certs = dict(golden.certificates)
    der = bytearray(certs[slot])
    der[len(der) // 2] ^= 0xFF  # inside the TBS: the CA's signature no longer verifies
    certs[slot] = bytes(der)
    assert reason in judge(altered(golden, certificates=certs), icam_profile, crl_cache).reasons


@pytest.mark.parametrize("garbage", [b"", b"\x30", b"\x30\x82\xff\xff" + b"\x00" * 10, b"not a certificate"])
def test_garbage_piv_auth_certificate(golden, icam_profile, crl_cache, garbage):
    certs = dict(golden.certificates, **{"9A": garbage})
    assert judge(altered(golden, certificates=certs), icam_profile, crl_cache).reasons[0] == "cert-invalid"


def test_missing_piv_auth_certificate(golden, icam_profile, crl_cache):
    certs = {k: v for k, v in golden.certificates.items() if k != "9A"}
    assert judge(altered(golden, certificates=certs), icam_profile, crl_cache).reasons[0] == "cert-invalid"


@pytest.mark.parametrize("cut", [1, 10, 40, 100, -3])
def test_truncated_chuid(golden, icam_profile, crl_cache, cut):
    verdict = judge(altered(golden, chuid=golden.chuid[:cut]), icam_profile, crl_cache)
    assert verdict.reasons[0] == "chuid-invalid"


def test_chuid_with_wrong_tags(golden, icam_profile, crl_cache):
    wrong = b"\x31" + golden.chuid[1:]  # FASC-N under tag 31
    assert judge(altered(golden, chuid=wrong), icam_profile, crl_cache).reasons[0] == "chuid-invalid"


def test_chuid_without_signature(golden, icam_profile, crl_cache):
    assert judge(altered(golden, chuid=Chuid.signed_content_of(golden.chuid)), icam_profile, crl_cache).reasons[0] == "chuid-invalid"


def test_missing_chuid(golden, icam_profile, crl_cache):
    assert judge(altered(golden, chuid=None), icam_profile, crl_cache).reasons[0] == "chuid-invalid"


@pytest.mark.parametrize("name", ["facial_image", "fingerprints", "security_object"])
@pytest.mark.parametrize("damage", ["truncate", "wrong-tag", "flip"])
def test_damaged_objects(golden, icam_profile, crl_cache, name, damage):
    data = getattr(golden, name)
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "wrong-tag":
        data = b"\xbd" + data[1:]
    else:
        data = data[:200] + bytes([data[200] ^ 1]) + data[201:]
    verdict = judge(altered(golden, **{name: data}), icam_profile, crl_cache)
    assert "object-invalid" in verdict.reasons


@pytest.mark.parametrize("name,reason", [("chuid", "chuid-invalid"), ("facial_image", "object-invalid"),
                                         ("security_object", "object-invalid")])
def test_oversized_objects(golden, icam_profile, crl_cache, name, reason):
    big = getattr(golden, name) + b"\x00" * 70000
    assert judge(altered(golden, **{name: big}), icam_profile, crl_cache).reasons[0] == reason


def test_oversized_certificate(golden, icam_profile, crl_cache):
    certs = dict(golden.certificates, **{"9E": b"\x30" * 70000})
    assert judge(altered(golden, certificates=certs), icam_profile, crl_cache).reasons[0] == "cert-invalid"


def signed_region(name: str, data: bytes) -> tuple[int, int]:
    """Bytes of ``data`` covered by a signature the station checks: the CHUID's TLVs before
    3E; a biometric record's CBEFF header and BDB. (Other bytes, e.g. CMS fields outside
    the signed attributes, may change without making the object false.)"""
    if name == "chuid":
        return 0, data.index(b"\x3e\x82")
    if name in ("facial_image", "fingerprints"):
        bdb = int.from_bytes(data[6:10], "big")
        return 4, 4 + 88 + bdb
    return 0, 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["chuid", "facial_image", "fingerprints", "security_object", "discovery"]),
       st.integers(min_value=0, max_value=2000), st.binary(min_size=1, max_size=8))
def test_fuzzed_objects_never_raise(golden, icam_profile, crl_cache, name, offset, junk):
    data = getattr(golden, name)
    offset = offset % len(data)
    mutated = data[:offset] + junk + data[offset + len(junk):]
    verdict = evaluate_card(altered(golden, **{name: mutated}), icam_profile, mode="crl", cache_dir=crl_cache)
    assert verdict.verdict in ("accept", "reject")
    assert bool(verdict.reasons) == (verdict.verdict == "reject")
    low, high = signed_region(name, data)
    if mutated != data and offset < high and offset + len(junk) > low:
        assert verdict.verdict == "reject"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["9A", "9E"]), st.integers(min_value=0, max_value=3000), st.binary(min_size=1, max_size=6))
def test_fuzzed_certificates_never_raise(golden, icam_profile, crl_cache, slot, offset, junk):
    der = golden.certificates[slot]
    offset = offset % len(der)
    mutated = der[:offset] + junk + der[offset + len(junk):]
    certs = dict(golden.certificates, **{slot: mutated})
    verdict = evaluate_card(altered(golden, certificates=certs), icam_profile, mode="crl", cache_dir=crl_cache)
    if mutated != der:
        assert verdict.verdict == "reject" and verdict.reasons


def test_remapped_data_group_must_still_match_an_object(golden, icam_profile, crl_cache):
    """Pointing the printed information's data group at an unknown container does not
    hide tampered printed information."""
    so = bytearray(golden.security_object)
    assert so[0] == 0xBA
    for i in range(2, 2 + so[1], 3):
        if so[i + 1:i + 3] == b"\x30\x01":
            so[i + 1:i + 3] = b"\xff\xff"
    printed = golden.printed_information.replace(b"ICAM", b"IXAM", 1)
    verdict = judge(altered(golden, security_object=bytes(so), printed_information=printed), icam_profile, crl_cache)
    assert verdict.reasons == ["object-invalid"]
    assert any("matches no object" in d for d in verdict.details)
