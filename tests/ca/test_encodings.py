"""Property tests of the small encoders the station writes itself (TOML config, DER pieces)."""

from __future__ import annotations

import datetime as dt
import tomllib

from hypothesis import example, given, settings
from hypothesis import strategies as st

from station.ca.crl_encoding import encode_serial, encode_time
from station.ca.der import read_tlv, sequence_elements, tlv
from station.home import dumps_toml

scalars = st.one_of(st.text(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans(), st.lists(st.text(), max_size=4))
tables = st.recursive(
    st.dictionaries(st.text(min_size=1, max_size=12), scalars, max_size=5),
    lambda inner: st.dictionaries(st.text(min_size=1, max_size=12), st.one_of(scalars, inner.filter(bool)), max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(tables)
@example({"0\n": {"k": "\x7f"}})  # found by hypothesis: "$" matched before a final newline; raw DEL
def test_toml_writer_round_trips(config):
    assert tomllib.loads(dumps_toml(config)) == config


@given(st.integers(min_value=0, max_value=2**160))
def test_serial_is_minimal_twos_complement(n):
    tag, start, end = read_tlv(encode_serial(n))
    body = encode_serial(n)[start:end]
    assert tag == 0x02 and int.from_bytes(body, "big", signed=True) == n
    assert len(body) == 1 or not (body[0] == 0 and body[1] < 0x80)  # no superfluous leading zero


@given(st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(9999, 12, 31), timezones=st.just(dt.timezone.utc)))
def test_time_encoding(when):
    encoded = encode_time(when)
    text = encoded[2:].decode()
    if when.year < 2050:
        assert encoded[0] == 0x17 and dt.datetime.strptime(text, "%y%m%d%H%M%SZ").replace(year=when.year) == when.replace(microsecond=0, tzinfo=None)
    else:
        assert encoded[0] == 0x18 and dt.datetime.strptime(text, "%Y%m%d%H%M%SZ") == when.replace(microsecond=0, tzinfo=None)


@given(st.lists(st.binary(max_size=300), max_size=6))
def test_sequence_elements_round_trip(values):
    elements = [tlv(0x04, v) for v in values]
    assert sequence_elements(tlv(0x30, b"".join(elements))) == elements
    assert all(read_tlv(e)[2] == len(e) for e in elements)
