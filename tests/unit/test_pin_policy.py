import pytest

from station.issuance.pin_policy import WeakPin, check_new_pin


@pytest.mark.parametrize("pin", ["Xy7Kq2", "583920", "k9Pz4mQ1", "271828"])
def test_good_pins_pass(pin):
    check_new_pin(pin, pin)


@pytest.mark.parametrize("pin, confirm, rule, code", [
    ("583920", "583921", "differ", "pin-mismatch"),
    ("58392", "58392", "6 to 8", "weak-pin"),
    ("583920123", "583920123", "6 to 8", "weak-pin"),
    ("5839 0", "5839 0", "only use", "weak-pin"),
    ("58392é", "58392é", "only use", "weak-pin"),
    ("777777", "777777", "repeats", "weak-pin"),
    ("345678", "345678", "consecutive", "weak-pin"),
    ("987654", "987654", "consecutive", "weak-pin"),
    ("abcdef", "abcdef", "consecutive", "weak-pin"),
    ("Password", "Password", "commonly used", "weak-pin"),
    ("112233", "112233", "commonly used", "weak-pin"),
])
def test_weak_pins_refused_naming_the_rule_not_the_pin(pin, confirm, rule, code):
    with pytest.raises(WeakPin, match=rule) as info:
        check_new_pin(pin, confirm)
    assert info.value.code == code and pin not in str(info.value) and pin not in info.value.hint
