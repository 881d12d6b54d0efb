"""The path-validation fault suite of pki/roots and pki/bridge: each fault CA is the trust
anchor of a path fault CA -> (cross certificate NN) Bridge CA -> (99) ICAM Test Card Root
CA -> Signing CA -> a golden card's PIV Authentication certificate. The named faults must
fail; 22 (valid requireExplicitPolicy), 24 (valid GeneralizedTime) and 35 (4096-bit key,
not a fault) must pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.validation.card_contents import CardContents, certificate_der
from station.validation.trust import TrustProfile
from station.validation.validation import PathValidator

from .icam import CARDS, ICAM

PKI = ICAM / "pki"
VALID = {"22", "24", "35"}
FAULT_ROOTS = sorted(p for p in (PKI / "roots").glob("[0-9][0-9]_*.crt") if p.name[:2] not in ("00", "37"))


def test_suite_is_complete():
    assert len(FAULT_ROOTS) == 30
    for root in FAULT_ROOTS:
        assert list((PKI / "bridge").glob(f"{root.name[:2]}_*.crt")), root.name


@pytest.mark.parametrize("root", FAULT_ROOTS, ids=lambda p: p.stem)
@pytest.mark.parametrize("mode", ["crl", "ocsp"])
def test_fault_ca_on_path(root: Path, mode, icam_profile, crl_cache):
    profile = TrustProfile.from_dict(
        {"anchors": [str(root)], "piv_auth_policies": sorted(icam_profile.piv_auth_policies),
         "revocation": mode, "offline": True, "url_map": icam_profile.url_map},
        base=Path("/"),
    )
    cross = [certificate_der(p) for p in (PKI / "bridge").glob(f"{root.name[:2]}_*.crt")]
    cross.append(certificate_der(PKI / "bridge" / "99_ICAM_Test_Card_Bridge_CA_to_ICAM_Test_Card_Root_CA.crt"))
    target = CardContents.from_image_dir(CARDS / "46_Golden_FIPS_201-2_PIV").certificates["9A"]
    result = PathValidator(profile, cache_dir=crl_cache).validate(
        target, intermediates=cross, policies=profile.piv_auth_policies)
    if root.name[:2] in VALID:
        assert result.ok, result.detail
    else:
        assert not result.ok, f"{root.stem} should fail"
        assert result.reason in {"cert-invalid", "cert-expired", "cert-not-yet-valid", "cert-revoked",
                                 "revocation-unknown", "policy"}


def test_golden_path_from_the_icam_root(icam_profile, crl_cache):
    target = CardContents.from_image_dir(CARDS / "46_Golden_FIPS_201-2_PIV").certificates["9A"]
    result = PathValidator(icam_profile, cache_dir=crl_cache).validate(target, policies=icam_profile.piv_auth_policies)
    assert result.ok, result.detail
    assert result.path[0].subject.native["common_name"] == "ICAM Test Card Root CA"
