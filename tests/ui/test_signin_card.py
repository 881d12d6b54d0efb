"""An operator signs in to the station with their own PIV card through the sign-in screen:
PKI-AUTH of the card under the operator trust profile over the real pcscd, the PIN typed masked
and emptied once handed on; a wrong PIN is refused in words with the tries left."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from PySide6.QtCore import Qt

from station.devices.virtual import load_card_image
from station.service.operators import add_operator
from station.terms import AuthMethod, Role
from station.ui.signin import SignInScreen
from tests.issuance.test_operators import OPERATOR_CARD, OPERATOR_PIN

WAIT = 60_000


def test_an_operator_signs_in_with_their_piv_card(qtbot, ctx, station, insert_card, pcscd):
    cert = x509.load_pem_x509_certificate((OPERATOR_CARD / "3 - ICAM_PIV_Auth_SP_800-73-4.crt").read_bytes())
    add_operator(station, "pat", display_name="Pat", roles=[Role.SUPERVISOR], auth_method=AuthMethod.PIV,
                 auth_reference=cert.fingerprint(hashes.SHA256()).hex(), actor="admin")
    insert_card(load_card_image(OPERATOR_CARD, pin=OPERATOR_PIN), slot=1)
    ctx.set_operator(None)
    screen = SignInScreen(ctx)
    qtbot.addWidget(screen)
    screen.show()
    signed = []
    screen.signed_in.connect(signed.append)
    qtbot.keyClicks(screen.identity, "pat")
    screen.with_card.setChecked(True)
    qtbot.waitUntil(lambda: screen.reader.count() >= 2, timeout=WAIT)
    screen.reader.setCurrentText(pcscd.reader(1))
    qtbot.keyClicks(screen.pin, "999999")  # a wrong PIN first
    screen.submit()
    qtbot.waitUntil(lambda: screen.error.isVisible(), timeout=WAIT)
    assert screen.pin.text() == "" and not signed and "999999" not in screen.error.text()
    qtbot.keyClicks(screen.pin, OPERATOR_PIN)
    qtbot.keyClick(screen.pin, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(signed), timeout=WAIT)
    assert signed[0].identity == "pat" and signed[0].method == "piv" and screen.pin.text() == ""
