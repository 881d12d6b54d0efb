"""The protocol layer against scripted cards: chaining, GET RESPONSE, status mapping."""

import pytest

from station.devices.apdu import CommandApdu, SmartCardProtocol
from station.devices.connection import Interface, SmartCardConnection
from station.devices import errors


class ScriptedCard(SmartCardConnection):
    """Replies from a function of the command; records what was sent."""

    def __init__(self, reply):
        self.reply = reply
        self.sent: list[bytes] = []

    @property
    def atr(self):
        return b"\x3b\x00"

    def send_and_receive(self, apdu):
        self.sent.append(bytes(apdu))
        return self.reply(bytes(apdu))


def test_encode_short_and_extended():
    assert CommandApdu(0, 0xCB, 0x3F, 0xFF, b"\x5c\x01\x7e", 0).encode() == bytes.fromhex("00CB3FFF035C017E00")
    assert CommandApdu(0, 0x20, 0, 0x80).encode() == bytes.fromhex("00200080")
    ext = CommandApdu(0, 0xDB, 0x3F, 0xFF, b"\xaa" * 300, 0).encode(extended=True)
    assert ext[:7] == bytes.fromhex("00DB3FFF00012C") and ext[-2:] == b"\x00\x00"
    for apdu in (CommandApdu(0, 0xCB, 0x3F, 0xFF, b"\x5c\x01\x7e", 256), CommandApdu(0, 0xDB, 1, 2, b"\x01" * 300, 65536),
                 CommandApdu(0, 0x20, 0, 0x80), CommandApdu(0, 0x20, 0, 0x80, b"1" * 8)):
        assert CommandApdu.decode(apdu.encode()) == apdu


def test_command_chaining_splits_long_data_with_cla_10():
    card = ScriptedCard(lambda apdu: (b"", 0x9000))
    SmartCardProtocol(card).send_apdu(0x00, 0xDB, 0x3F, 0xFF, bytes(600), le=None)
    assert [a[0] for a in card.sent] == [0x10, 0x10, 0x00]
    assert [a[4] for a in card.sent] == [255, 255, 90]
    assert b"".join(a[5:] for a in card.sent) == bytes(600)


def test_chaining_stops_at_first_error():
    card = ScriptedCard(lambda apdu: (b"", 0x6982))
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        SmartCardProtocol(card).send_apdu(0x00, 0xDB, 0x3F, 0xFF, bytes(600), le=None)
    assert len(card.sent) == 1


def test_get_response_collects_61xx_chain():
    chunks = [b"A" * 256, b"B" * 256, b"C" * 10]

    def reply(apdu):
        data = chunks.pop(0)
        return data, (0x6100 if len(chunks) > 1 else 0x610A) if chunks else 0x9000

    card = ScriptedCard(reply)
    assert SmartCardProtocol(card).send_apdu(0, 0xCB, 0x3F, 0xFF, b"\x5c\x01\x7e") == b"A" * 256 + b"B" * 256 + b"C" * 10
    assert card.sent[1] == bytes.fromhex("00C0000000") and card.sent[2] == bytes.fromhex("00C000000A")


def test_endless_61xx_is_a_protocol_error_not_a_hang():
    card = ScriptedCard(lambda apdu: (b"Z" * 256, 0x6100))
    with pytest.raises(errors.ProtocolError, match="61xx"):
        SmartCardProtocol(card).send_apdu(0, 0xCB, 0x3F, 0xFF, b"\x5c\x01\x7e")
    assert len(card.sent) < 1100


def test_6cxx_resends_with_exact_le():
    card = ScriptedCard(lambda apdu: (b"", 0x6C05) if apdu[-1] != 5 else (b"12345", 0x9000))
    assert SmartCardProtocol(card).send_apdu(0, 0xCA, 0, 0) == b"12345"


@pytest.mark.parametrize("sw, exc, attrs", [
    (0x6A82, errors.FileNotFound, {}),
    (0x6982, errors.SecurityStatusNotSatisfied, {}),
    (0x63C0, errors.PinIncorrect, {"retries_left": 0, "sw": 0x63C0, "code": "pin-incorrect"}),
    (0x63C3, errors.PinIncorrect, {"retries_left": 3}),
    (0x6983, errors.PinBlocked, {"code": "pin-blocked", "sw": 0x6983}),
    (0x6A88, errors.ReferenceNotFound, {}),
    (0x6D00, errors.InstructionNotSupported, {}),
    (0x6F00, errors.ApduError, {"sw": 0x6F00}),
])
def test_status_words_map_to_typed_errors(sw, exc, attrs):
    card = ScriptedCard(lambda apdu: (b"", sw))
    with pytest.raises(exc) as info:
        SmartCardProtocol(card).send_apdu(0, 0x20, 0, 0x80, b"1" * 8, le=None)
    assert type(info.value) is exc
    for k, v in attrs.items():
        assert getattr(info.value, k) == v


def test_interface_from_atr():
    assert Interface.from_atr(bytes.fromhex("3B8880010000000000000000")) is Interface.CONTACTLESS
    assert Interface.from_atr(bytes.fromhex("3BF81300008131FE15597562696B657934D4")) is Interface.CONTACT
    assert Interface.from_atr(bytes.fromhex("3BF81300"), "ACS ACR122U PICC Interface") is Interface.CONTACTLESS


def test_atr_extended_length_capability():
    from station.devices.atr import historical_bytes, supports_extended_length
    from station.devices.virtual.card import CONTACT_ATR, CONTACTLESS_ATR

    assert historical_bytes(CONTACT_ATR) == bytes.fromhex("8073C021C0") + b"VPIV"
    assert supports_extended_length(CONTACT_ATR) and supports_extended_length(CONTACTLESS_ATR)
    # YubiKey 5 NFC (contact): 80 73 C0 21 C0 -> extended
    assert supports_extended_length(bytes.fromhex("3BFD1300008131FE158073C021C057597562694B657940"))
    assert not supports_extended_length(bytes.fromhex("3B8880010000000000000000"))
    assert historical_bytes(b"\x3b") == b"" and historical_bytes(bytes.fromhex("3BF8")) == b""
