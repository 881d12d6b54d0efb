"""The applicant's new credential PIN (SP 800-157r1 App. B; SP 800-63B §5.1.1.2).

6 to 8 characters from 0-9, A-Z, a-z; typed twice; common values, repeated characters and
sequences (ascending or descending, digits or letters) are refused. Errors name the rule,
never the PIN.
"""

from __future__ import annotations

import string
from enum import Enum

from station.errors import StationError

ALPHABET = set(string.digits + string.ascii_letters)
MIN_LENGTH, MAX_LENGTH = 6, 8
COMMON = {
    "123456", "1234567", "12345678", "123123", "654321", "111111", "000000", "121212", "112233", "123321",
    "696969", "159753", "147258", "789456", "102030", "password", "passw0rd", "qwerty", "qwertyui", "abc123",
    "abcd1234", "letmein", "iloveyou", "admin123", "welcome", "monkey", "dragon", "trustno1", "1q2w3e4r",
    "qwe123", "zaq12wsx", "asdfgh", "asdfghjk", "zxcvbn", "zxcvbnm", "11223344", "12341234",
}


class WeakPin(StationError):
    class Code(str, Enum):
        WEAK_PIN = "weak-pin"
        PIN_MISMATCH = "pin-mismatch"

    code = Code.WEAK_PIN.value
    hint = "choose 6 to 8 letters or digits that are not a common value, a repeat or a sequence"


def _is_sequence(pin: str) -> bool:
    low = pin.lower()
    steps = {ord(b) - ord(a) for a, b in zip(low, low[1:])}
    return len(steps) == 1 and steps.pop() in (1, -1)


def check_new_pin(pin: str, confirmation: str) -> None:
    """Raise :class:`WeakPin` naming the broken rule; return quietly when the PIN is fine."""
    if pin != confirmation:
        raise WeakPin("the two PIN entries differ", code=WeakPin.Code.PIN_MISMATCH, hint="type the same PIN twice")
    if not MIN_LENGTH <= len(pin) <= MAX_LENGTH:
        raise WeakPin(f"the PIN must be {MIN_LENGTH} to {MAX_LENGTH} characters long")
    if not set(pin) <= ALPHABET:
        raise WeakPin("the PIN may only use the digits 0-9 and the letters A-Z, a-z")
    if len(set(pin)) == 1:
        raise WeakPin("the PIN repeats a single character")
    if _is_sequence(pin):
        raise WeakPin("the PIN is a run of consecutive digits or letters, up or down")
    if pin.lower() in COMMON:
        raise WeakPin("the PIN is a commonly used value")
