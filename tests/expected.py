"""The verdict table of ../shared/icam-test-pki/EXPECTED.md, read from the file itself, and
the three rows where the card bytes contradict it (evidence in docs/validation.md)."""

from __future__ import annotations

import re

from tests.conftest import ICAM

MODES = ("crl", "ocsp")

#: (card, mode) -> (verdict, acceptable first reasons) where the station, judging the bytes
#: it is given by the standards, departs from EXPECTED.md.
DEVIATIONS: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    # The "revoked" responder signer 600000000000000000D0 is neither on
    # ICAMTestCardGen3SigningCA.crl nor marked R in responder/piv-gen3-index.txt, so its
    # answers verify (RFC 6960 §4.2.2.2.1: its status is checked, and it is good). The valid
    # responders lack id-pkix-ocsp-nocheck too, so no reading of "OCSP mode" rejects 44 alone.
    ("44_OCSP_revoked_wo_nocheck", "ocsp"): ("accept", frozenset()),
    # The biometric records carry FASC-N ...6DA1615828AF...C3F9 and UUID 781dee97... (card
    # ICI_8's); the CHUID, both certificates and the builder's own c46-*.properties in that
    # folder say ...6DA169D828AF...C3E8 and 0b9040b6... (SP 800-76-2: the CBEFF FASC-N is the card's).
    ("46_Golden_FIPS_201-2_PIV_ICI_9", "crl"): ("reject", frozenset({"identifier-mismatch"})),
    ("46_Golden_FIPS_201-2_PIV_ICI_9", "ocsp"): ("reject", frozenset({"identifier-mismatch"})),
    # "1 - Discovery Object" (PIN usage policy 4000) does not match the Security Object, which
    # hashes the PIN usage policy 6010 of c48-discovery-object.properties ("1 - Discovery
    # Object No Tag"): the object file was not regenerated (SP 800-73-4 Part 1 §3.3.2 hashes).
    ("48_T=0_with_Non-Zero_PPS_LEN_Value", "crl"): ("reject", frozenset({"object-invalid"})),
    ("48_T=0_with_Non-Zero_PPS_LEN_Value", "ocsp"): ("reject", frozenset({"object-invalid"})),
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
    """What the station must decide for ``card`` in ``mode``."""
    rows = rows or table()
    return DEVIATIONS.get((card, mode), rows[card][mode])
