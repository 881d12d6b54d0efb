import pytest
from hypothesis import given, strategies as st

from station.devices import tlv
from station.devices.errors import TlvError


def test_round_trip_multi_byte_tags_and_long_lengths():
    items = [(0x5FC102, b"x" * 300), (0x7F49, b"\x86\x01\x04"), (0x53, b""), (0x30, b"a" * 0x80)]
    data = tlv.encode_tlvs(items)
    assert [(t.tag, t.value) for t in tlv.parse_tlvs(data)] == items
    assert data.startswith(bytes.fromhex("5FC102 82012C"))


@pytest.mark.parametrize("raw, why", [
    (bytes.fromhex("53"), "length missing"),
    (bytes.fromhex("5305AABB"), "claims 5 bytes"),
    (bytes.fromhex("5382"), "length field runs past"),
    (bytes.fromhex("5F"), "tag runs past"),
    (bytes.fromhex("5FC1"), "tag runs past"),
    (bytes.fromhex("5FC1C1C10100"), "longer than 3 bytes"),
    (bytes.fromhex("5380"), "indefinite"),
    (bytes.fromhex("538401000000"), "4 bytes"),
])
def test_malformed_raises_typed_error(raw, why):
    with pytest.raises(TlvError, match=why):
        tlv.parse_tlvs(raw)


def test_parse_tlv_rejects_trailing_data_and_wrong_tag():
    with pytest.raises(TlvError, match="trailing"):
        tlv.parse_tlv(bytes.fromhex("530100FF"))
    with pytest.raises(TlvError, match="expected tag 53"):
        tlv.unwrap(bytes.fromhex("7E00"), 0x53)


def test_duplicate_tag_is_malformed():
    with pytest.raises(TlvError, match="twice"):
        tlv.tlv_map(bytes.fromhex("300100300100"))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data):
    try:
        items = tlv.parse_tlvs(data)
    except TlvError:
        return
    assert b"".join(tlv.encode_tlv(i.tag, i.value) for i in items) == data or len(data) > 0
