"""The schema-less protobuf wire reader (``formats.wire``) the call graph reads list-valued
attributes with, checked against messages protobuf itself serializes."""

from __future__ import annotations

import pytest
from google.protobuf import wrappers_pb2

from tfmodelkit.errors import CorruptFileError
from tfmodelkit.formats import wire
from tfmodelkit.formats.protos import tfmodelkit_pb2 as pb
from tfmodelkit.lint.graph import attr_strings


@pytest.mark.parametrize("value", [1, 127, 128, 300, 2**32, 2**64 - 1])
def test_varints_round_trip(value):
    encoded = wrappers_pb2.UInt64Value(value=value).SerializeToString()[1:]  # after the field key
    assert wire.read_varint(encoded, 0) == (value, len(encoded))
    assert wire.read_varint(b"\x00", 0) == (0, 1)


def test_varint_damage_is_a_corrupt_file_error():
    with pytest.raises(CorruptFileError, match="truncated or overlong varint"):
        wire.read_varint(b"\x80\x80", 0)
    with pytest.raises(CorruptFileError, match="block handle"):
        wire.read_varint(b"\x80\x01", 0, limit=1, what="block handle")
    with pytest.raises(CorruptFileError):
        wire.read_varint(b"\xff" * 11, 0)


def _delimited(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_fields_of_a_message():
    # AttrValue.list (field 1), a ListValue the project's proto subset does not declare:
    # s (field 2) "a" and "bc", i (field 3) packed [5]
    list_value = _delimited(2, b"a") + _delimited(2, b"bc") + _delimited(3, b"\x05")
    raw = _delimited(1, list_value)
    [(number, value)] = list(wire.fields(raw))
    assert number == 1 and value == list_value
    assert list(wire.submessages(value, 2)) == [b"a", b"bc"]
    assert [v for n, v in wire.fields(value) if n == 3] == [b"\x05"]
    # parsed, the list survives as an unknown field and the call graph still reads it
    assert attr_strings(pb.AttrValue.FromString(raw)) == ["a", "bc"]
    assert attr_strings(pb.AttrValue(s=b"one")) == ["one"]


def test_fixed_width_fields_and_damage_stop_the_walk():
    # field 1 fixed64, field 2 fixed32, then field 3 claiming more bytes than there are
    buf = b"\x09" + (7).to_bytes(8, "little") + b"\x15" + (9).to_bytes(4, "little") + b"\x1a\x05ab"
    assert list(wire.fields(buf)) == [(1, 7), (2, 9)]
    assert list(wire.fields(b"\x09\x01\x02")) == []  # a fixed64 cut short
    assert list(wire.fields(b"\x08")) == []  # a key without its varint
    assert list(wire.fields(b"\x0b\x08\x01")) == []  # wire type 3 (a group) ends the walk
