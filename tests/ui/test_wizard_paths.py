"""The wizard off the straight path, through its real windows: a wrong applicant PIN (asked
again at the kiosk, the same request goes on), wrong PINs down to the last try (the request
ends, as the engine's rules say, and a new request issues once the PIN is reset), the card
pulled mid-wizard, Cancel on every page that waits for a person (nothing orphaned on the token;
the request resumable from its state and then completed from a resumed window), a token
unplugged and plugged in noticed without a click, and the receipt."""

from __future__ import annotations

import subprocess

import pytest
from PySide6.QtCore import Qt

from station.devices.virtual import load_card_image
from station.issuance.progress import Step
from station.service.requests import state_of
from tests.conftest import GOLDEN, TEST_PIN, init_softhsm_token
from tests.issuance.people import NOTHING, ONE_CREDENTIAL, SECRETS, token_objects
from tests.ui.test_wizard import (NEW_PIN, TRANSPORT, WAIT, kiosk_types, open_request, open_window, sign_in_dialog,
                                  supervisor_decides)


def approved(qtbot, window) -> int:
    request_id = open_request(qtbot, window)
    qtbot.mouseClick(window.next_button, Qt.MouseButton.LeftButton)
    supervisor_decides(qtbot, window, "sup", SECRETS["sup"])
    qtbot.waitUntil(lambda: window.flow.current is Step.PKI_AUTH and window.controller.running is None, timeout=WAIT)
    return request_id


def go_on(qtbot, window) -> None:
    qtbot.mouseClick(window.next_button, Qt.MouseButton.LeftButton)
    sign_in_dialog(qtbot, window, SECRETS["reg"])


def idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: window.controller.running is None, timeout=WAIT)


def press_cancel_when(qtbot, window, ready) -> None:
    qtbot.waitUntil(ready, timeout=WAIT)
    qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    idle(qtbot, window)


def kiosk_asked_again(qtbot, window) -> None:
    qtbot.waitUntil(lambda: window.kiosk.isVisible() and window.kiosk.prompt is not None and window.kiosk.prompt.again
                    or window.controller.running is None, timeout=WAIT)


def test_a_wrong_pin_is_asked_again_at_the_kiosk_and_the_right_one_issues(qtbot, ctx, station, token):
    window = open_window(qtbot, ctx)
    request_id = approved(qtbot, window)
    go_on(qtbot, window)
    qtbot.waitUntil(lambda: window.kiosk.isVisible() and window.kiosk.prompt is not None, timeout=WAIT)
    assert window.kiosk.tries.text() == "Five tries left." and not window.kiosk.prompt.again
    qtbot.keyClicks(window.kiosk.pin, "135790")
    qtbot.mouseClick(window.kiosk.ok_button, Qt.MouseButton.LeftButton)
    kiosk_asked_again(qtbot, window)
    kiosk = window.kiosk
    assert kiosk.isVisible() and kiosk.prompt.again and kiosk.pin.text() == ""  # the card said no: asked again
    assert "not right" in kiosk.question.text() and kiosk.tries.text() == "Four tries left."
    assert "refused that pin" in window.pages[Step.PKI_AUTH].message.text().lower()  # the registrar's page says it, no PIN
    assert state_of(station, request_id) == "approved"  # nothing ended: the same request goes on
    kiosk_types(qtbot, window, TEST_PIN)
    kiosk_types(qtbot, window, NEW_PIN, twice=True)
    kiosk_types(qtbot, window, NEW_PIN)
    qtbot.waitUntil(lambda: window.flow.finished and window.controller.running is None, timeout=WAIT)
    assert state_of(station, request_id) == "issued" and window.flow.request_id == request_id
    assert token_objects(token[0], NEW_PIN) == ONE_CREDENTIAL


def test_wrong_pins_down_to_the_last_try_end_the_request_and_a_new_one_issues_once_the_pin_is_reset(
        qtbot, ctx, station, token, pcscd):
    """The station never spends a PIV card's last PIN try: the request ends (a failed PKI-AUTH
    is not left approved for anyone to try again) and the wizard offers a new request for the
    applicant at the desk, who has the PIN reset by the card office first."""
    window = open_window(qtbot, ctx)
    first = approved(qtbot, window)
    go_on(qtbot, window)
    for _ in range(4):  # five tries: four wrong ones leave the last, which the station will not spend
        qtbot.waitUntil(lambda: window.kiosk.isVisible() and window.kiosk.prompt is not None, timeout=WAIT)
        qtbot.keyClicks(window.kiosk.pin, "135790")
        qtbot.mouseClick(window.kiosk.ok_button, Qt.MouseButton.LeftButton)
        kiosk_asked_again(qtbot, window)
    idle(qtbot, window)
    page = window.pages[Step.PKI_AUTH]
    assert page.problem.isVisible() and "one application PIN try is left" in page.problem.message.text(), \
        page.problem.message.text()
    qtbot.waitUntil(lambda: window.next_button.text() == "New request", timeout=WAIT)  # the records say it ended
    assert state_of(station, first) == "failed" and "new request" in page.problem.hint.text().lower()
    pcscd.remove(ctx.card_link)  # the card office resets the PIN; the card comes back
    qtbot.waitUntil(lambda: window.flow.applicant is None, timeout=WAIT)  # the window saw it go
    link = pcscd.insert(load_card_image(GOLDEN, pin=TEST_PIN))
    try:
        qtbot.waitUntil(lambda: window.flow.applicant is not None and window.next_button.isEnabled(), timeout=WAIT)
        qtbot.mouseClick(window.next_button, Qt.MouseButton.LeftButton)
        assert window.flow.request_id is None and window.flow.current is Step.REQUEST and window.next_button.isEnabled()
        second = approved(qtbot, window)
        go_on(qtbot, window)
        kiosk_types(qtbot, window, TEST_PIN)
        kiosk_types(qtbot, window, NEW_PIN, twice=True)
        kiosk_types(qtbot, window, NEW_PIN)
        qtbot.waitUntil(lambda: window.flow.finished and window.controller.running is None, timeout=WAIT)
        assert second != first and state_of(station, second) == "issued"
        assert token_objects(token[0], NEW_PIN) == ONE_CREDENTIAL  # the failed request left nothing behind
    finally:
        pcscd.remove(link)


def test_the_card_pulled_mid_wizard_is_said_in_words_and_the_request_goes_on_once_it_is_back(qtbot, ctx, station, pcscd):
    window = open_window(qtbot, ctx)
    request_id = approved(qtbot, window)
    pcscd.remove(ctx.card_link)  # pulled: the watcher notices, the request page forgets the card
    qtbot.waitUntil(lambda: window.flow.applicant is None, timeout=WAIT)
    page = window.pages[Step.PKI_AUTH]
    assert not window.next_button.isEnabled() and "insert the applicant's PIV card" in page.missing.text()
    assert state_of(station, request_id) == "approved"  # nothing spent: resumable
    link = pcscd.insert(load_card_image(GOLDEN, pin=TEST_PIN))
    try:
        qtbot.waitUntil(lambda: window.flow.applicant is not None, timeout=WAIT)
        go_on(qtbot, window)
        kiosk_types(qtbot, window, TEST_PIN)
        kiosk_types(qtbot, window, NEW_PIN, twice=True)
        kiosk_types(qtbot, window, NEW_PIN)
        qtbot.waitUntil(lambda: window.flow.finished and window.controller.running is None, timeout=WAIT)
        assert state_of(station, request_id) == "issued"
    finally:
        pcscd.remove(link)


@pytest.mark.parametrize("point", ["pki-auth", "new-pin", "self-test"])
def test_cancel_on_each_page_that_waits_for_a_person_leaves_a_resumable_request(qtbot, ctx, station, token, point):
    window = open_window(qtbot, ctx)
    request_id = approved(qtbot, window)
    go_on(qtbot, window)
    kiosk_up = lambda: window.kiosk.isVisible() and window.kiosk.prompt is not None  # noqa: E731
    if point != "pki-auth":
        kiosk_types(qtbot, window, TEST_PIN)
    if point == "self-test":
        kiosk_types(qtbot, window, NEW_PIN, twice=True)
    press_cancel_when(qtbot, window, kiosk_up)
    expected = {"pki-auth": "approved", "new-pin": "authenticated", "self-test": "activated"}[point]
    assert state_of(station, request_id) == expected and not window.kiosk.isVisible()
    assert "is kept as it was" in window.flow.view().problem.message
    on_token = token_objects(token[0], TRANSPORT if point != "self-test" else NEW_PIN)
    assert on_token == (ONE_CREDENTIAL if point == "self-test" else NOTHING)  # nothing made that is not on record
    window.close()
    resumed = open_window(qtbot, ctx, resume=(request_id, expected, "AAL2"))
    assert resumed.flow.current is {"approved": Step.PKI_AUTH, "authenticated": Step.KEY_GENERATION,
                                    "activated": Step.SELF_TEST}[expected]
    qtbot.waitUntil(lambda: resumed.next_button.isEnabled(), timeout=WAIT)  # the card read, the token described
    go_on(qtbot, resumed)
    if point == "pki-auth":
        kiosk_types(qtbot, resumed, TEST_PIN)
    if point != "self-test":
        kiosk_types(qtbot, resumed, NEW_PIN, twice=True)
    kiosk_types(qtbot, resumed, NEW_PIN)
    qtbot.waitUntil(lambda: resumed.flow.finished and resumed.controller.running is None, timeout=WAIT)
    assert state_of(station, request_id) == "issued" and token_objects(token[0], NEW_PIN) == ONE_CREDENTIAL


def test_a_token_unplugged_and_plugged_in_is_noticed_without_a_click(qtbot, ctx, token):
    window = open_window(qtbot, ctx)
    qtbot.waitUntil(lambda: window.flow.target is not None and window.next_button.isEnabled(), timeout=WAIT)
    assert "SoftHSM" in window.request_page.target_details.text()  # what the token is, as it tells
    subprocess.run(["softhsm2-util", "--delete-token", "--token", token[0]], check=True, capture_output=True)
    qtbot.waitUntil(lambda: not window.next_button.isEnabled(), timeout=WAIT)
    assert "plug in SoftHSM token" in window.request_page.missing.text()
    init_softhsm_token(token[0], TRANSPORT)
    qtbot.waitUntil(lambda: window.next_button.isEnabled(), timeout=WAIT)


def test_the_receipt_of_an_issued_credential(qtbot, ctx, station, token, tmp_path):
    window = open_window(qtbot, ctx)
    approved(qtbot, window)
    go_on(qtbot, window)
    kiosk_types(qtbot, window, TEST_PIN)
    kiosk_types(qtbot, window, NEW_PIN, twice=True)
    kiosk_types(qtbot, window, NEW_PIN)
    qtbot.waitUntil(lambda: window.flow.finished and window.controller.running is None, timeout=WAIT)
    assert window.receipt_button.isVisible() and window.print_button.isVisible()
    qtbot.mouseClick(window.print_button, Qt.MouseButton.LeftButton)  # the print dialog, not blocking
    assert window.print_dialog.isVisible() and window.controller.running is None
    window.print_dialog.reject()
    window.write_receipt(tmp_path / "receipt.pdf")
    text = subprocess.run(["pdftotext", str(tmp_path / "receipt.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert window.flow.outcome.serial in text.replace(" ", "").replace("\n", "") or window.flow.outcome.serial[:16] in text
    assert "2.16.840.1.101.3.2.1.3.40" in text and NEW_PIN not in text and TEST_PIN not in text

