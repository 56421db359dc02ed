"""PostgreSQL's binary COPY format, encoded from Arrow batches with vectorised Arrow and NumPy operations.

A binary COPY stream is :data:`HEADER`, one tuple per row, then :data:`TRAILER`. A tuple is its field count
(int16), then per field its length in bytes (int32, -1 for NULL) and the value in the type's binary form,
big-endian. :func:`encode_rows` turns a batch into one binary value per row (a whole tuple), built column by
column: Python never touches a row or a value (except decimals wider than 18 digits), and every value is exact:

- ``bigint``, ``int``, ``double``, ``boolean``: the same bits; ``date``: days since 2000-01-01;
- ``timestamp`` (``timestamptz``): microseconds since 2000-01-01 UTC, whatever the server's time zone;
- ``decimal(p,s)``: PostgreSQL's numeric (base-10000 digits) from the unscaled integer;
- ``string``: the UTF-8 bytes as they are (no escaping: tabs, newlines and backslashes are just bytes);
- ``array<string>``: a one-dimensional ``text[]`` with NULL elements (an empty array has no dimension).
"""

from __future__ import annotations

import decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.contracts import Column

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags (no OIDs), header extension length
TRAILER = b"\xff\xff"  # a field count of -1
_NULL = pa.scalar(b"\xff\xff\xff\xff", pa.binary())  # a field of length -1
_PG_EPOCH_DAYS = 10_957  # 2000-01-01, PostgreSQL's epoch, in days since 1970-01-01
_PG_EPOCH_MICROS = _PG_EPOCH_DAYS * 86_400_000_000
_TEXT_OID = 25
_EXACT = decimal.Context(prec=38)  # Spark's widest decimal: scaling it never rounds


def encode_rows(batch: pa.RecordBatch, columns: tuple[Column, ...]) -> pa.Array:
    """One binary COPY tuple per row of ``batch``, whose columns are ``columns`` in order (Spark's Arrow types).

    Returns a ``large_binary`` array without nulls: its data buffer, from the first row's offset to the last's,
    is the batch's part of a COPY stream.
    """
    count = pa.scalar(len(columns).to_bytes(2, "big"), pa.large_binary())
    fields = [_field(batch.column(i), c).cast(pa.large_binary()) for i, c in enumerate(columns)]
    return pc.binary_join_element_wise(count, *fields, pa.scalar(b"", pa.large_binary()))


def _field(values: pa.Array, column: Column) -> pa.Array:
    """A column's values as COPY fields (length + value, or the NULL field)."""
    if column.decimal is not None:
        return _numeric(values, *column.decimal)
    if column.type == "string":
        return _or_null(_length_prefixed(values.cast(pa.binary())), values)
    if column.type == "array<string>":
        return _text_array(values)
    if column.type == "timestamp":
        micros = values.cast(pa.timestamp("us", values.type.tz)).cast(pa.int64())
        return _fixed(_integers(micros, ">i8", _PG_EPOCH_MICROS), values)
    if column.type == "date":
        return _fixed(_integers(values.cast(pa.int32()), ">i4", _PG_EPOCH_DAYS), values)
    if column.type == "bigint":
        return _fixed(_integers(values, ">i8"), values)
    if column.type == "int":
        return _fixed(_integers(values, ">i4"), values)
    if column.type == "double":
        return _fixed(_filled(values, 0.0).astype(">f8"), values)
    if column.type == "boolean":
        return _fixed(_filled(values, False).astype(np.uint8), values)
    raise ValueError(f"column {column.name!r}: no binary COPY encoding for type {column.type!r}")


def _filled(values: pa.Array, fill: Any) -> np.ndarray[Any, Any]:
    """``values`` as NumPy, NULL as ``fill`` (the NULL field replaces it later)."""
    return np.asarray(pc.fill_null(values, fill).to_numpy(zero_copy_only=False))


def _integers(values: pa.Array, dtype: str, minus: int = 0) -> np.ndarray[Any, Any]:
    filled = _filled(values, 0)
    return (filled - minus if minus else filled).astype(dtype)


def _binary(rows: int, width: int, data: np.ndarray[Any, Any]) -> pa.Array:
    """Rows of ``width`` bytes each, laid out one after the other in ``data``, as a binary array (no copy)."""
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _or_null(fields: pa.Array, values: pa.Array) -> pa.Array:
    if values.null_count == 0:
        return fields
    return pc.if_else(values.is_valid(), fields, _NULL)


def _fixed(data: np.ndarray[Any, Any], values: pa.Array) -> pa.Array:
    """Fixed-width big-endian values -> fields: the width (int32), then the value."""
    packed = np.empty(len(data), dtype=[("length", ">i4"), ("value", data.dtype)])
    packed["length"] = data.dtype.itemsize
    packed["value"] = data
    return _or_null(_binary(len(data), packed.dtype.itemsize, packed), values)


def _length_prefixed(payloads: pa.Array) -> pa.Array:
    """Binary payloads -> fields: each prefixed with its length; a null payload stays null."""
    lengths = _filled(pc.binary_length(payloads), 0).astype(">i4")
    return pc.binary_join_element_wise(_binary(len(lengths), 4, lengths), payloads, b"")


def _numeric(values: pa.Array, precision: int, scale: int) -> pa.Array:
    """``decimal128`` values -> PostgreSQL numerics: ndigits, weight, sign, dscale (int16 each), then the base-10000
    digits, most significant first. Every value gets the same digits, leading and trailing zeros included (which
    PostgreSQL accepts and strips), so the fields have a fixed width."""
    if precision <= 18:  # the low 64 bits of the 128-bit two's complement integer hold it exactly
        words = np.frombuffer(values.buffers()[1], dtype="<i8", count=2 * (values.offset + len(values)))
        unscaled = words[2 * values.offset :: 2]
    else:  # beyond int64: Python's integers, row by row
        scaled = [0 if v is None else int(v.scaleb(scale, _EXACT)) for v in values.to_pylist()]
        unscaled = np.array(scaled, dtype=object)
    integer_groups, fraction_groups = -(-(precision - scale) // 4), -(-scale // 4)
    magnitude = np.abs(unscaled)
    whole, fraction = magnitude // 10**scale, magnitude % 10**scale
    digits = [(whole // 10_000**k) % 10_000 for k in range(integer_groups - 1, -1, -1)]
    for group in range(1, fraction_groups + 1):
        if scale >= 4 * group:
            digits.append((fraction // 10 ** (scale - 4 * group)) % 10_000)
        else:  # the last, partial group: its digits shifted left (0.5 is the digit 5000)
            digits.append((fraction % 10 ** (scale - 4 * (group - 1))) * 10 ** (4 * group - scale))
    layout = [("length", ">i4"), ("ndigits", ">i2"), ("weight", ">i2"), ("sign", ">u2"), ("dscale", ">i2")]
    packed = np.empty(len(values), dtype=layout + [(f"digit{i}", ">i2") for i in range(len(digits))])
    packed["length"] = 8 + 2 * len(digits)
    packed["ndigits"] = len(digits)
    packed["weight"] = integer_groups - 1
    packed["sign"] = np.where(unscaled < 0, 0x4000, 0)
    packed["dscale"] = scale
    for i, digit in enumerate(digits):
        packed[f"digit{i}"] = digit
    return _or_null(_binary(len(values), packed.dtype.itemsize, packed), values)


def _text_array(values: pa.Array) -> pa.Array:
    """``list<string>`` -> ``text[]``: ndim, has-null flag (PostgreSQL works it out), element type, then per
    dimension its size and lower bound (1), then the elements as fields (NULL elements as the NULL field)."""
    elements = values.flatten().cast(pa.binary())
    element_fields = pc.fill_null(_length_prefixed(elements), _NULL)
    sizes = _filled(pc.list_value_length(values), 0).astype(np.int32)
    offsets = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, element_fields), b"")
    head = np.empty(len(values), dtype=[(name, ">i4") for name in ("ndim", "flags", "oid", "size", "lower")])
    head["ndim"], head["flags"], head["oid"], head["size"], head["lower"] = 1, 0, _TEXT_OID, sizes, 1
    no_dimension = pa.scalar(np.array([0, 0, _TEXT_OID], dtype=">i4").tobytes(), pa.binary())
    heads = pc.if_else(pa.array(sizes == 0), no_dimension, _binary(len(values), head.dtype.itemsize, head))
    return _or_null(_length_prefixed(pc.binary_join_element_wise(heads, joined, b"")), values)
