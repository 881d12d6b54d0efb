"""Rules no ICAM card provokes on its own, each with the case that breaks only that rule
(`make mutants` removes each rule in turn and expects these tests to fail)."""

from __future__ import annotations

import shutil

from station.validation.card_contents import CardContents
from station.validation.trust import TrustProfile
from station.validation.verdict import evaluate_card
from station.sim.pki_mirror import PkiMirror

from tests.conftest import GOLDEN, ICAM

GEN3_CRL = "ICAMTestCardGen3SigningCA.crl"


def test_crl_mode_rejects_a_card_whose_crl_cannot_be_had(tmp_path):
    """CRL mode requires the end entity's CRL (RFC 5280 §6.3): the golden card's signing CA
    CRL is missing from an otherwise complete mirror, so its status is unknown: reject."""
    pki = tmp_path / "pki"
    shutil.copytree(ICAM / "pki", pki / "pki")
    shutil.copytree(ICAM / "responder", pki / "responder")
    (pki / "pki" / "crls" / GEN3_CRL).unlink()
    with PkiMirror(pki) as mirror:
        profile = TrustProfile.load(mirror.write_profile(tmp_path / "profile.toml"))
        verdict = evaluate_card(CardContents.from_image_dir(GOLDEN), profile, mode="crl", cache_dir=tmp_path / "cache")
    assert verdict.verdict == "reject"
    assert verdict.reasons[0] == "revocation-unknown", verdict.details
    assert any(d.startswith("revocation-unknown: PIV Authentication certificate") for d in verdict.details), verdict.details


def test_a_content_signer_without_id_piv_content_signing_is_refused(icam_profile, crl_cache):
    """SP 800-73-4 / FIPS 201-3: the CHUID, biometric and Security Object signer asserts
    id-PIV-content-signing. Card 02's signer (a PIV-I content signer) does not; the card is
    rejected for its policy first, so this finding is checked on its own."""
    card = ICAM / "cards" / "02_Golden_PIV-I"
    verdict = evaluate_card(CardContents.from_image_dir(card), icam_profile, mode="crl", cache_dir=crl_cache)
    lacks = "signer certificate lacks EKU id-PIV-content-signing"
    assert f"chuid-invalid: CHUID signer: {lacks}" in verdict.details
    assert f"object-invalid: Security Object signer: {lacks}" in verdict.details
