"""Hostile bytes both ways: the virtual card never crashes, the host only raises typed errors."""

from hypothesis import HealthCheck, example, given, settings, strategies as st

from station.devices.piv import PivSession, Slot
from station.devices.virtual import VirtualConnection, VirtualPivCard, load_card_image
from station.errors import StationError
from tests.conftest import GOLDEN, TEST_PIN

CARD = load_card_image(GOLDEN, pin=TEST_PIN)
INS = st.sampled_from([0xA4, 0xCB, 0x20, 0x24, 0x2C, 0x87, 0x47, 0xDB, 0xC0, 0x00, 0xFF])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(cla=st.sampled_from([0x00, 0x10, 0x80]), ins=INS, p1=st.integers(0, 255), p2=st.integers(0, 255),
       body=st.binary(max_size=300))
@example(cla=0x10, ins=0xA4, p1=0, p2=0, body=b"\x01\x00")  # a chained SELECT left open (found by CI)
def test_virtual_card_answers_every_apdu_with_a_status_word(cla, ins, p1, p2, body):
    data, sw = CARD.transmit(bytes([cla, ins, p1, p2]) + body)
    assert isinstance(data, bytes) and 0x6100 <= sw <= 0x9000
    # still a working card. A chain left open (CLA 10) takes the next command of its INS as its
    # last part (ISO/IEC 7816-4 §5.3.3), as real PIV applets do; a command of another INS
    # abandons it, so one comes first
    assert CARD.transmit(bytes.fromhex("00FD0000"))[1] == 0x6D00
    assert CARD.transmit(bytes.fromhex("00A4040009A00000030800001000"))[1] == 0x9000


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(replies=st.lists(st.tuples(st.binary(max_size=120), st.sampled_from([0x9000, 0x6100, 0x6105, 0x6A82, 0x6982, 0x63C1, 0x6983, 0x6F00])),
                        min_size=1, max_size=6))
def test_host_raises_only_typed_errors_on_garbage_replies(replies):
    script = list(replies)

    class Garbage(VirtualPivCard):
        def transmit(self, apdu):
            if apdu[1] == 0xA4:
                return b"", 0x9000
            return script.pop(0) if script else (b"", 0x6F00)

    session = PivSession(VirtualConnection(Garbage()), extended=False)
    for read in (session.read_chuid, lambda: session.read_certificate(Slot.AUTHENTICATION), session.get_pin_status,
                 session.read_discovery):
        try:
            read()
        except StationError:
            pass
