"""The applicant's receipt: one page saying what was issued (SP 800-157r1 §3.2, issuance
records given to the subscriber): the applicant, the credential's certificate serial, its
policy, the device that holds it, the date and the station. Nothing secret: no PIN, no key,
no request internals. Written with Qt's own PDF writer (``QPdfWriter``) from a
``QTextDocument``, so the text is real text (searchable, readable by a screen reader) and
the same document goes to a printer (``print_receipt``).
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from pathlib import Path

from PySide6.QtCore import QMarginsF, QSizeF
from PySide6.QtGui import QFont, QPageLayout, QPagedPaintDevice, QPageSize, QPainter, QPdfWriter, QTextDocument
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import QDialog, QWidget

from station.ui.widgets import tr
from station.wizard.facts import ReceiptFacts

POINT_SIZE = 12  # body text, in points: readable on paper


def issued_on(moment: datetime) -> str:
    """``2026-12-01 04:38 UTC``: unambiguous in every locale."""
    zone = moment.tzname() or ""
    return f"{moment:%Y-%m-%d %H:%M} {zone}".strip()


def receipt_rows(facts: ReceiptFacts) -> list[tuple[str, str]]:
    """The receipt's lines, label and value, in order."""
    return [
        (tr("Applicant"), facts.applicant),
        (tr("Credential serial number"), facts.serial),
        (tr("Certificate policy"), f"{facts.policy_name} ({facts.policy_oid})"),
        (tr("Device"), facts.device),
        (tr("Date of issue"), issued_on(facts.issued_at)),
        (tr("Issued at station"), facts.station),
    ]


def receipt_document(facts: ReceiptFacts) -> QTextDocument:
    rows = "".join(f"<tr><td width='38%' style='color: #444'>{escape(label)}</td><td><b>{escape(value)}</b></td></tr>"
                   for label, value in receipt_rows(facts))
    html = (f"<h1 style='font-size: {POINT_SIZE * 2}pt'>{escape(tr('Derived PIV credential: receipt'))}</h1>"
            f"<p>{escape(tr('This receipt records the derived PIV credential issued to you.'))}</p>"
            f"<table width='100%' cellspacing='0' cellpadding='6' style='margin-top: 12pt'>{rows}</table>"
            "<hr/>"
            f"<p style='margin-top: 12pt; color: #444'>{escape(tr('Keep this receipt. It holds no PIN and no key: never write your PIN on it. If the device is lost or stolen, tell the issuing office at once so the credential is revoked.'))}</p>")
    document = QTextDocument()
    font = QFont()
    font.setPointSize(POINT_SIZE)
    font.setFeature(QFont.Tag("liga"), 0)  # "office", not "o\ufb03ce", when the text is copied or searched
    document.setDefaultFont(font)
    document.setHtml(html)
    return document


def _layout(page: QPageSize.PageSizeId) -> QPageLayout:
    return QPageLayout(QPageSize(page), QPageLayout.Orientation.Portrait, QMarginsF(20, 20, 20, 20), QPageLayout.Unit.Millimeter)


def render(document: QTextDocument, device: QPagedPaintDevice) -> None:
    """``document`` on ``device``'s one page, inside its margins, laid out at the device's own
    resolution (so 12 pt is 12 pt on paper, whatever the screen's)."""
    document.documentLayout().setPaintDevice(device)
    document.setDocumentMargin(0)
    rect = device.pageLayout().paintRectPixels(device.resolution())
    document.setPageSize(QSizeF(rect.width(), rect.height()))
    painter = QPainter(device)  # its origin is the page's paint rectangle, inside the margins
    try:
        document.drawContents(painter)
    finally:
        painter.end()


def write_receipt(path: Path, facts: ReceiptFacts, *, page: QPageSize.PageSizeId = QPageSize.PageSizeId.A4) -> None:
    """Write the receipt for ``facts`` to ``path`` as a one-page PDF (A4, or ``Letter``)."""
    writer = QPdfWriter(str(path))
    writer.setTitle(tr("Derived PIV credential: receipt"))
    writer.setCreator(facts.station)
    writer.setResolution(300)
    writer.setPageLayout(_layout(page))
    render(receipt_document(facts), writer)


def print_dialog(parent: QWidget | None = None) -> tuple[QPrinter, QPrintDialog]:
    """A printer and the system's print dialog for it (the receipt's page settings)."""
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setPageLayout(_layout(QPageSize.PageSizeId.A4))
    dialog = QPrintDialog(printer, parent)
    dialog.setWindowTitle(tr("Print the receipt"))
    return printer, dialog


def print_receipt(facts: ReceiptFacts, parent: QWidget | None = None) -> bool:
    """Ask where to print and print the receipt; False when the dialog was cancelled."""
    printer, dialog = print_dialog(parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return False
    render(receipt_document(facts), printer)
    return True
