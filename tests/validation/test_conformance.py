"""Every ICAM test card, in CRL and OCSP mode, against EXPECTED.md as written: the verdict,
an acceptable first reason, and the finding the card is named for among the details."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from station.validation.card_contents import CardContents
from station.validation.verdict import check_challenge_signature, evaluate_card

from tests.expected import expected, shows_its_finding, stands_for, table

from .icam import card_dirs, card_signer

EXPECTED = table()

CASES = [pytest.param(card, mode, id=f"{card.name}-{mode}") for card in card_dirs() for mode in ("crl", "ocsp")]


def test_every_card_has_a_row():
    assert {c.name for c in card_dirs()} == set(EXPECTED)


def test_every_rejected_card_names_its_finding():
    rejected = {(card, mode) for card, modes in EXPECTED.items() for mode, (verdict, _) in modes.items() if verdict == "reject"}
    assert {key for key in rejected if stands_for(*key) is None} == set()


@pytest.mark.parametrize("card,mode", CASES)
def test_card_verdict(card, mode, icam_profile, crl_cache):
    want_verdict, acceptable = expected(card.name, mode, EXPECTED)
    contents = CardContents.from_image_dir(card)
    verdict = evaluate_card(contents, icam_profile, mode=mode, cache_dir=crl_cache)
    # The card layer's last step, with the card's own 9A key standing in for the card.
    verdict = check_challenge_signature(verdict, contents.certificates["9A"], card_signer(card))
    assert verdict.verdict == want_verdict, verdict.details
    if want_verdict == "reject":
        assert verdict.reasons[0] in acceptable, verdict.details
        assert shows_its_finding(verdict, card.name, mode), (stands_for(card.name, mode), verdict.details)
    else:
        assert verdict.reasons == []
        assert verdict.identity.fascn and verdict.identity.sha256_fingerprint


def test_golden_identity(icam_profile, crl_cache):
    card = next(c for c in card_dirs() if c.name == "46_Golden_FIPS_201-2_PIV")
    verdict = evaluate_card(CardContents.from_image_dir(card), icam_profile, mode="crl", cache_dir=crl_cache)
    ident = verdict.identity
    assert verdict.accepted
    assert ident.fascn == "D13810D828AF2C1084246DA1685828AF0210848D84E739C3EB"
    assert ident.card_uuid == "94e28c68-84db-44db-8a0e-f502d6689b14"
    assert ident.subject_dn and ident.issuer_dn and ident.not_after.startswith("2032")
    assert ident.facial_image and len(ident.facial_image) > 1000
    assert '"facial_image"' not in verdict.to_json()
    assert '"facial_image"' in verdict.to_json(include_photo=True)


@pytest.mark.parametrize("card,verdict,reason", [
    ("42_OCSP_Expired", "accept", None),  # the responder's answer is unusable; the CRL decides
    ("45_OCSP_Invalid_Signature", "accept", None),
    ("24_Revoked_Certificates", "reject", "cert-revoked"),
    ("58_Revoked_Card_Auth_Cert", "reject", "cert-revoked"),
])
def test_ocsp_then_crl_mode(card, verdict, reason, icam_profile, crl_cache):
    contents = CardContents.from_image_dir(next(c for c in card_dirs() if c.name == card))
    result = evaluate_card(contents, icam_profile, mode="ocsp-then-crl", cache_dir=crl_cache)
    assert result.verdict == verdict, result.details
    assert (result.reasons[0] if result.reasons else None) == reason


def test_verification_time_is_honoured(icam_profile, crl_cache):
    golden = CardContents.from_image_dir(next(c for c in card_dirs() if c.name == "46_Golden_FIPS_201-2_PIV"))
    later = evaluate_card(golden, icam_profile, mode="crl", cache_dir=crl_cache,
                          now=datetime(2033, 6, 1, tzinfo=timezone.utc))
    assert later.verdict == "reject" and later.reasons[0] == "cert-expired"
    assert "chuid-invalid" in later.reasons  # the CHUID expired 2032-12-02 as well
