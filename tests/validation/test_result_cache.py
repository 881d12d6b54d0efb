"""Validated paths are reused only while a new validation could not differ."""

from __future__ import annotations

import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from station.validation.validation import RESULTS, PathValidator
from tests.conftest import GOLDEN, ICAM


@pytest.fixture
def golden_der() -> bytes:
    cert = x509.load_pem_x509_certificate((GOLDEN / "3 - ICAM_PIV_Auth_SP_800-73-4.crt").read_bytes())
    return cert.public_bytes(Encoding.DER)


@pytest.fixture
def counted(monkeypatch):
    """Counts the real (uncached) validations."""
    calls = []
    real = PathValidator._validate

    def spy(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PathValidator, "_validate", spy)
    RESULTS.clear()
    return calls


def test_second_validation_is_a_cache_hit(icam_profile, tmp_path, golden_der, counted):
    profile = icam_profile.with_revocation("crl")
    for _ in range(3):
        assert PathValidator(profile, cache_dir=tmp_path).validate(golden_der, policies=profile.piv_auth_policies).ok
    assert len(counted) == 1


def test_a_changed_crl_in_the_cache_forces_a_new_validation(icam_profile, tmp_path, golden_der, counted):
    profile = icam_profile.with_revocation("crl")
    assert PathValidator(profile, cache_dir=tmp_path).validate(golden_der, policies=profile.piv_auth_policies).ok
    cached_crls = list(tmp_path.glob("*.crl"))
    assert cached_crls
    other = ICAM / "pki/crls/ICAMTestCardSigningCA.crl"  # a different (valid) CRL's bytes
    for path in cached_crls:
        shutil.copyfile(other, path)
    PathValidator(profile, cache_dir=tmp_path).validate(golden_der, policies=profile.piv_auth_policies)
    assert len(counted) == 2


def test_failures_and_other_modes_are_not_cached(icam_profile, tmp_path, golden_der, counted):
    crl = icam_profile.with_revocation("crl")
    for _ in range(2):
        assert PathValidator(crl, cache_dir=tmp_path).validate(golden_der, policies=frozenset({"2.16.840.1.101.3.2.1.48.248"})).reason == "policy"
    assert len(counted) == 2
    ocsp = icam_profile.with_revocation("ocsp")
    for _ in range(2):
        assert PathValidator(ocsp, cache_dir=tmp_path).validate(golden_der, policies=ocsp.piv_auth_policies).ok
    assert len(counted) == 4


def test_an_expired_crl_window_is_a_miss(icam_profile, tmp_path, golden_der, counted, monkeypatch):
    profile = icam_profile.with_revocation("crl")
    assert PathValidator(profile, cache_dir=tmp_path).validate(golden_der, policies=profile.piv_auth_policies).ok
    (key, (result, not_before, valid_until, digests)), = RESULTS._entries.items()
    RESULTS._entries[key] = (result, not_before, not_before, digests)  # its nextUpdate has passed
    PathValidator(profile, cache_dir=tmp_path).validate(golden_der, policies=profile.piv_auth_policies)
    assert len(counted) == 2
