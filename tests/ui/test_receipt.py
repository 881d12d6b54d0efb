"""The applicant's receipt (station/ui/receipt.py), read back by a real PDF reader
(poppler's pdftotext and pdfinfo, in the Makefile's APT_PACKAGES): every fact is on the one
page as text, nothing secret is, and A4 and Letter are what they say."""

from __future__ import annotations

import dataclasses
import subprocess
from datetime import datetime, timedelta, timezone

from PySide6.QtGui import QPageSize
from PySide6.QtPrintSupport import QPrintDialog

from station.ui.receipt import issued_on, print_dialog, write_receipt
from station.wizard.facts import ReceiptFacts

FACTS = ReceiptFacts(applicant="O'NEILL-GOLDEN, JOHN Q <& co>", serial="5F3A9C0E11D2477B", policy_oid="2.16.840.1.101.3.2.1.3.41",
                     policy_name="id-fpki-common-derived-pivAuth-hardware", device="SoftHSM token (serial 1a2b3c)",
                     issued_at=datetime(2026, 12, 1, 4, 38, tzinfo=timezone.utc), station="Badging office 3")


def pdf(tool: str, path, *args: str) -> str:
    return subprocess.run([tool, *args, str(path), *(["-"] if tool == "pdftotext" else [])],
                          check=True, capture_output=True, text=True, timeout=60).stdout


def test_the_receipt_is_a_one_page_pdf_with_every_fact_as_text(qapp, tmp_path):
    path = tmp_path / "receipt.pdf"
    write_receipt(path, FACTS)
    assert path.read_bytes().startswith(b"%PDF-")
    info = pdf("pdfinfo", path)
    assert "Pages:           1" in info and "(A4)" in info
    text = pdf("pdftotext", path, "-layout")
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    assert "Applicant O'NEILL-GOLDEN, JOHN Q <& co>" in lines  # escaped in the HTML, whole on paper
    assert "Credential serial number 5F3A9C0E11D2477B" in lines
    assert "Device SoftHSM token (serial 1a2b3c)" in lines
    assert "Date of issue 2026-12-01 04:38 UTC" in lines
    assert "Issued at station Badging office 3" in lines  # "office" with no ligature: searchable
    flat = " ".join(lines)
    assert "id-fpki-common-derived-pivAuth-hardware" in flat and "(2.16.840.1.101.3.2.1.3.41)" in flat


def test_nothing_secret_is_on_the_receipt(qapp, tmp_path):
    fields = {field.name for field in dataclasses.fields(ReceiptFacts)}
    assert not {name for name in fields if any(word in name for word in ("pin", "key", "secret", "password"))}
    path = tmp_path / "receipt.pdf"
    write_receipt(path, FACTS)
    text = " ".join(pdf("pdftotext", path).split())
    # "PIN" appears only in the advice (no PIN on it, never write it down); no PIN or key value does
    assert text.count("PIN") == 2 and "never write your PIN on it" in text
    for secret in ("246810", "k9Pz4m", "PRIVATE KEY", "-----BEGIN"):
        assert secret not in text


def test_a_letter_page_and_a_local_time(qapp, tmp_path):
    path = tmp_path / "letter.pdf"
    eastern = timezone(timedelta(hours=-5), "EST")
    write_receipt(path, dataclasses.replace(FACTS, issued_at=datetime(2026, 11, 30, 23, 38, tzinfo=eastern)),
                  page=QPageSize.PageSizeId.Letter)
    assert "(letter)" in pdf("pdfinfo", path)
    assert "2026-11-30 23:38 EST" in " ".join(pdf("pdftotext", path).split())
    assert issued_on(datetime(2026, 1, 2, 3, 4)) == "2026-01-02 03:04"  # a naive time says no zone


def test_the_print_dialog_is_built_for_the_receipt(qtbot):
    printer, dialog = print_dialog()
    qtbot.addWidget(dialog)
    assert isinstance(dialog, QPrintDialog) and dialog.printer() is printer
    assert dialog.windowTitle() == "Print the receipt"
    assert printer.pageLayout().pageSize().id() == QPageSize.PageSizeId.A4
