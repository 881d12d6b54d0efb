"""The verdict table of ../shared/icam-test-pki/EXPECTED.md, read from the file itself, and
what each rejected card stands for.

EXPECTED.md's reason column is the set of acceptable *first* reasons. A first reason alone
lets a check that is not decisive today vanish unnoticed (card 20's UUID mismatch is found
after its policy failure; card 49's expired record also expires before its CHUID), so each
rejected card also names the finding it was built to provoke: a reason code and a phrase of
that finding's detail, which must be among the verdict's details.
"""

from __future__ import annotations

import re

from tests.conftest import ICAM

MODES = ("crl", "ocsp")

_OCSP_UNUSABLE = ("revocation-unknown", "PIV Authentication certificate: no usable OCSP answer")

#: card -> (reason, phrase of its detail): the finding the card is named for. A card whose
#: fault shows in one mode only is keyed (card, mode).
STANDS_FOR: dict[str | tuple[str, str], tuple[str, str]] = {
    "02_Golden_PIV-I": ("policy", "PIV Authentication certificate: The path could not be validated"),
    "03_SKID_Mismatch": ("key-mismatch", "subjectKeyIdentifier"),
    "04_Tampered_CHUID": ("chuid-invalid", "CHUID signature: message digest does not match"),
    "05_Tampered_Certificates": ("cert-invalid", "signature of the end-entity certificate could not be verified"),
    "06_Tampered_PHOTO": ("object-invalid", "facial image record signature: message digest does not match"),
    "07_Tampered_Fingerprints": ("object-invalid", "fingerprint record signature: message digest does not match"),
    "08_Tampered_Security_Object": ("object-invalid", "Security Object: the signature does not verify"),
    "09_Expired_CHUID_Signer": ("chuid-invalid", "CHUID signer: signer certificate was not valid when it signed"),
    "10_Expired_Cert_Signer": ("cert-expired", "intermediate certificate 1 expired"),
    "11_Certs_Expire_after_CHUID": ("cert-invalid", "PIV Authentication certificate expires after the CHUID"),
    "12_Certs_not_yet_valid": ("cert-not-yet-valid", "PIV Authentication certificate"),
    "13_Certs_are_expired": ("cert-expired", "PIV Authentication certificate"),
    "14_Expired_CHUID": ("chuid-invalid", "CHUID expired on"),
    "15_CHUID_FASCN_mismatch": ("identifier-mismatch", "PIV Authentication certificate FASC-N is not the CHUID's"),
    "16_Card_Authentication_FASCN_mismatch": ("identifier-mismatch", "Card Authentication certificate FASC-N is not the CHUID's"),
    "17_PHOTO_FASCN_mismatch": ("identifier-mismatch", "facial image record FASC-N is not the CHUID's"),
    "18_Fingerprints_FASCN_mismatch": ("identifier-mismatch", "fingerprint record FASC-N is not the CHUID's"),
    "19_CHUID_UUID_mismatch": ("identifier-mismatch", "PIV Authentication certificate UUID"),
    "20_Card_Authent_UUID_mismatch": ("identifier-mismatch", "Card Authentication certificate UUID"),
    "21_PHOTO_UUID_mismatch": ("identifier-mismatch", "facial image record signed UUID"),
    "22_Fingerprints_UUID_mismatch": ("identifier-mismatch", "fingerprint record signed UUID"),
    "23_Public_Private_Key_mismatch": ("key-mismatch", "did not sign the challenge"),
    "24_Revoked_Certificates": ("cert-revoked", "PIV Authentication certificate"),
    "38_Bad_Hash_in_Sec_Object": ("object-invalid", "printed_information does not match its hash"),
    "39_Golden_FIPS_201-2_Fed_PIV-I": ("cert-invalid", "PIV Authentication certificate: no path to a trust anchor"),
    "39_Golden_FIPS_201-2_Fed_PIV-I-X": ("cert-invalid", "PIV Authentication certificate: no path to a trust anchor"),
    ("42_OCSP_Expired", "ocsp"): _OCSP_UNUSABLE,
    ("44_OCSP_revoked_wo_nocheck", "ocsp"): _OCSP_UNUSABLE,
    ("45_OCSP_Invalid_Signature", "ocsp"): _OCSP_UNUSABLE,
    # the CBEFF headers carry card ICI_8's FASC-N (the header check, not only the signed attribute)
    "46_Golden_FIPS_201-2_PIV_ICI_9": ("identifier-mismatch", "fingerprint record FASC-N is not the CHUID's"),
    "47_Golden_FIPS_201-2_PIV_SAN_Order-X": ("cert-expired", "PIV Authentication certificate"),
    "49_FIPS_201-2_Facial_Image_CBEFF_Expired": ("object-invalid", "facial image record is valid"),
    "50_FIPS_201-2_Facial_Image_CBEFF_Expires_before_CHUID": ("object-invalid", "facial image record expires"),
    "51_FIPS_201-2_Fingerprint_CBEFF_Expired": ("object-invalid", "fingerprint record is valid"),
    "52_FIPS_201-2_Fingerprint_CBEFF_Expires_before_CHUID": ("object-invalid", "fingerprint record expires"),
    "54_Golden_FIPS_201-2_NFI_PIV-I": ("cert-invalid", "PIV Authentication certificate: no path to a trust anchor"),
    "54_Golden_FIPS_201-2_NFI_PIV-I-X": ("cert-invalid", "PIV Authentication certificate: no path to a trust anchor"),
    "55_FIPS_201-2_Missing_Security_Object": ("object-invalid", "the card holds no Security Object"),
    "56_FIPS_201-2_Signer_Expires": ("cert-expired", "PIV Authentication certificate"),
    "57_Revoked_CHUID_Cert": ("chuid-invalid", "CHUID signer: "),  # ...revoked, by CRL or OCSP
    "58_Revoked_Card_Auth_Cert": ("cert-revoked", "Card Authentication certificate"),
}


def table() -> dict[str, dict[str, tuple[str, frozenset[str]]]]:
    """EXPECTED.md as written: card -> {mode: (verdict, acceptable first reasons)}."""
    rows: dict[str, dict[str, tuple[str, frozenset[str]]]] = {}
    for line in (ICAM / "EXPECTED.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.match(r"^\d\d_", cells[0]):
            continue
        card, text, reasons = cells
        acceptable = frozenset(r.strip() for r in reasons.split(",") if r.strip())
        per_mode = {}
        for mode in MODES:
            found = re.search(rf"{mode.upper()} mode: (accept|reject)", text)
            verdict = found.group(1) if found else ("reject" if text.startswith("reject") else "accept")
            if not found and not text.startswith(("accept", "reject")):
                raise ValueError(f"EXPECTED.md row for {card} not understood: {text!r}")
            per_mode[mode] = (verdict, acceptable if verdict == "reject" else frozenset())
        rows[card] = per_mode
    return rows


def expected(card: str, mode: str, rows=None) -> tuple[str, frozenset[str]]:
    """What the station must decide for ``card`` in ``mode``: EXPECTED.md as written."""
    rows = rows or table()
    return rows[card][mode]


def stands_for(card: str, mode: str) -> tuple[str, str] | None:
    """The finding a rejected card is named for: (reason code, phrase of its detail)."""
    return STANDS_FOR.get((card, mode)) or STANDS_FOR.get(card)


def shows_its_finding(verdict, card: str, mode: str) -> bool:
    """Whether a rejected card's verdict holds the finding the card is named for."""
    reason, phrase = stands_for(card, mode)
    return any(d.startswith(f"{reason}: ") and phrase in d for d in verdict.details)
