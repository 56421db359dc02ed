"""The binary COPY encoder against an independent decoder of PostgreSQL's binary format (no server needed; the
round trips through a real PostgreSQL are in ``tests/integration/test_warehouse_loader.py``)."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Context, Decimal, localcontext
from typing import Any

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from lakehouse.adapters.pgbinary import HEADER, TRAILER, encode_rows
from lakehouse.contracts import Column

PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
EXACT = Context(prec=80)


def _numeric(data: bytes) -> Decimal:
    ndigits, weight, sign, dscale = struct.unpack_from(">hhHh", data)
    digits = struct.unpack_from(f">{ndigits}h", data, 8)
    assert all(0 <= d < 10_000 for d in digits)
    with localcontext(EXACT):
        magnitude = sum(Decimal(d) * Decimal(10_000) ** (weight - i) for i, d in enumerate(digits))
        value = -magnitude if sign == 0x4000 else magnitude
        return value.quantize(Decimal(1).scaleb(-dscale))


def _array(data: bytes) -> list[str | None]:
    ndim, _, oid = struct.unpack_from(">iii", data)
    assert oid == 25
    if ndim == 0:
        return []
    size, lower = struct.unpack_from(">ii", data, 12)
    assert (ndim, lower) == (1, 1)
    out, position = [], 20
    for _ in range(size):
        (length,) = struct.unpack_from(">i", data, position)
        position += 4
        out.append(None if length < 0 else data[position : position + length].decode())
        position += max(length, 0)
    return out


def _value(data: bytes, logical: str) -> Any:
    if logical.startswith("decimal"):
        return _numeric(data)
    decoders = {
        "bigint": lambda: struct.unpack(">q", data)[0],
        "int": lambda: struct.unpack(">i", data)[0],
        "double": lambda: struct.unpack(">d", data)[0],
        "boolean": lambda: data == b"\x01",
        "date": lambda: dt.date(2000, 1, 1) + dt.timedelta(days=struct.unpack(">i", data)[0]),
        "timestamp": lambda: PG_EPOCH + dt.timedelta(microseconds=struct.unpack(">q", data)[0]),
        "string": lambda: data.decode(),
        "array<string>": lambda: _array(data),
    }
    return decoders[logical]()


def decode(stream: bytes, columns: tuple[Column, ...]) -> list[tuple[Any, ...]]:
    """A binary COPY stream -> rows, as PostgreSQL reads it."""
    assert stream.startswith(HEADER)
    assert stream.endswith(TRAILER)
    rows, position = [], len(HEADER)
    while position < len(stream) - len(TRAILER):
        (count,) = struct.unpack_from(">h", stream, position)
        assert count == len(columns)
        position += 2
        row = []
        for column in columns:
            (length,) = struct.unpack_from(">i", stream, position)
            position += 4
            row.append(None if length < 0 else _value(stream[position : position + length], column.type))
            position += max(length, 0)
        rows.append(tuple(row))
    assert position == len(stream) - len(TRAILER)
    return rows


def encode(batch: pa.RecordBatch, columns: tuple[Column, ...]) -> bytes:
    tuples = encode_rows(batch, columns)
    return HEADER + b"".join(tuples.to_pylist()) + TRAILER


def test_every_type_with_nulls_and_hostile_text() -> None:
    columns = (
        Column("id", "bigint"),
        Column("small", "int"),
        Column("ratio", "double"),
        Column("flag", "boolean"),
        Column("day", "date"),
        Column("at", "timestamp"),
        Column("money", "decimal(12,2)"),
        Column("text", "string"),
        Column("tags", "array<string>"),
    )
    at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 3, 31, 1, 30, 0, 123456, tzinfo=dt.UTC)
    rows = [
        (-(2**63), -(2**31), 1e-300, True, dt.date(1, 1, 1), at[0], Decimal("-0.01"), "", []),
        (
            2**63 - 1,
            2**31 - 1,
            -0.0,
            False,
            dt.date(9999, 12, 31),
            at[1],
            Decimal("9999999999.99"),
            "a\tb\n\\N",
            [None],
        ),
        (None, None, None, None, None, None, None, None, None),
        (1, 2, 0.1, True, dt.date(2000, 1, 1), at[1], Decimal("0.00"), "日本 📈", ["", 'q"', "b\\s", None, "NULL"]),
    ]
    types = [pa.int64(), pa.int32(), pa.float64(), pa.bool_(), pa.date32(), pa.timestamp("us", "Europe/Paris")]
    types += [pa.decimal128(12, 2), pa.string(), pa.list_(pa.string())]
    arrays = [pa.array(list(values), type) for values, type in zip(zip(*rows, strict=True), types, strict=True)]
    batch = pa.RecordBatch.from_arrays(arrays, names=[c.name for c in columns])

    assert decode(encode(batch, columns), columns) == rows
    assert decode(encode(batch.slice(1, 2), columns), columns) == rows[1:3]  # a batch that starts at an offset


@given(st.data())
def test_decimals_of_any_precision_and_scale_are_exact(data: st.DataObject) -> None:
    precision = data.draw(st.integers(1, 38), label="precision")
    scale = data.draw(st.integers(0, precision), label="scale")
    limit = 10**precision - 1
    unscaled = data.draw(st.lists(st.integers(-limit, limit) | st.sampled_from([0, limit, -limit]), max_size=20))
    values = [Decimal(u).scaleb(-scale, EXACT) for u in unscaled]
    column = (Column("x", f"decimal({precision},{scale})"),)
    batch = pa.RecordBatch.from_arrays([pa.array(values, pa.decimal128(precision, scale))], names=["x"])

    decoded = [v for (v,) in decode(encode(batch, column), column)]

    assert decoded == values
    assert [str(v) for v in decoded] == [str(v.quantize(Decimal(1).scaleb(-scale), context=EXACT)) for v in values]
