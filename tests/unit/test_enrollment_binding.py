"""One-time enrollment bindings and the QR payload format."""

from __future__ import annotations

import threading
import time

import pytest

from station.enrollment.binding import BindingRefused, BindingRegistry, Enrollment, Refusal
from station.enrollment.qr import EnrollmentPayload, PayloadError


def bound(lifetime: float = 600):
    registry = BindingRegistry(lifetime_seconds=lifetime)
    enrollment = Enrollment(7, "AAL2")
    return registry, enrollment, registry.bind(enrollment)


def refusal(call) -> Refusal:
    with pytest.raises(BindingRefused) as refused:
        call()
    return refused.value.reason


def test_a_binding_opens_once_with_its_own_label_user_and_a_128_bit_secret():
    registry, enrollment, otp = bound()
    assert len(otp) * 5 >= 128 and enrollment.label.startswith("r7-") and enrollment.user == "request-7"
    assert registry.check(enrollment.label, enrollment.user, otp) is enrollment  # checking does not spend it
    assert registry.consume(enrollment.label, enrollment.user, otp) is enrollment
    assert refusal(lambda: registry.consume(enrollment.label, enrollment.user, otp)) is Refusal.SPENT
    assert otp not in repr(registry.__dict__)  # only the secret's digest is kept


def test_wrong_secret_wrong_user_unknown_label_and_expiry_are_refused():
    registry, enrollment, otp = bound(lifetime=0.3)
    assert refusal(lambda: registry.check(enrollment.label, enrollment.user, otp[:-1] + "x")) is Refusal.WRONG_SECRET
    assert refusal(lambda: registry.check(enrollment.label, "request-8", otp)) is Refusal.WRONG_SECRET
    assert refusal(lambda: registry.check("r7-00000000", enrollment.user, otp)) is Refusal.UNKNOWN_LABEL
    time.sleep(0.35)
    assert refusal(lambda: registry.consume(enrollment.label, enrollment.user, otp)) is Refusal.EXPIRED


def test_a_new_code_kills_the_old_one_at_once():
    registry, enrollment, old = bound()
    old_label = enrollment.label
    new = registry.bind(enrollment)
    assert new != old and enrollment.label != old_label
    assert refusal(lambda: registry.check(old_label, enrollment.user, old)) is Refusal.UNKNOWN_LABEL
    assert registry.check(enrollment.label, enrollment.user, new) is enrollment


def test_of_fifty_concurrent_attempts_exactly_one_wins():
    registry, enrollment, otp = bound()
    start, won, lost = threading.Barrier(50), [], []

    def attempt():
        start.wait()
        try:
            won.append(registry.consume(enrollment.label, enrollment.user, otp))
        except BindingRefused as exc:
            lost.append(exc.reason)

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and lost == [Refusal.SPENT] * 49


def test_the_payload_round_trips_and_bad_payloads_are_refused():
    payload = EnrollmentPayload("https://10.1.2.3:8443/.well-known/est/r1-abcd/", "0f" * 32, "request-1", "abc", 1800000000)
    uri = payload.uri()
    assert uri.startswith("dpiv://enroll?v=1&est=https%3A%2F%2F10.1.2.3%3A8443%2F.well-known%2Fest%2Fr1-abcd%2F&fp=")
    assert EnrollmentPayload.parse(uri) == payload
    for bad in ("https://enroll?v=1", uri.replace("v=1", "v=2"), uri.replace("&otp=abc", ""),
                uri.replace("0f" * 32, "0F" * 32), uri.replace("https%3A", "http%3A"), uri.replace("exp=18", "exp=x8")):
        with pytest.raises(PayloadError):
            EnrollmentPayload.parse(bad)
