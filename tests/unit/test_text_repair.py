"""Text that is not UTF-8 (shared/ingest/text_repair.py): the rule on plain bytes, and through the
month split on a FHV 2020-01 CSV with the stray bytes TLC's mirror has (0xA0), a Latin-1 0xE9 in a
base number and a multibyte sequence cut short: the month completes, every row is kept, counted."""

import codecs
import datetime as dt
import io
import random

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from local.tlc_data import generate_month
from local.tlc_files import write_csv
from shared.ingest.cleaning import Rules, reason_counts
from shared.ingest.lake import split_month
from shared.ingest.text_repair import TextRepairs, decode


@pytest.mark.parametrize(
    "raw, text",
    [
        (b"B02\xa0875", "B02\u00a0875"),  # the mirror's FHV 2020-01/02 byte: a no-break space
        (b"B\xe9ase", "Béase"),  # Latin-1/Windows-1252 é
        (b"\xe2\x82 x", "â‚ x"),  # a 3-byte sequence cut after 2 bytes: each byte as Windows-1252
        (b"\x80", "€"),  # Windows-1252, not Latin-1's C1 control
        (b"\x81\x8d\x8f\x90\x9d", "\x81\x8d\x8f\x90\x9d"),  # undefined in Windows-1252: Latin-1
        (b"caf\xc3\xa9 \xa0", "café \u00a0"),  # the valid UTF-8 é is kept; only the stray byte is repaired
        (b"\xc3", "Ã"),  # a lead byte at the end
        (b"\xed\xa0\x80", "í\u00a0€"),  # a UTF-16 surrogate encoded in UTF-8 is not valid UTF-8
    ],
)
def test_the_rule_on_plain_bytes(raw, text):
    assert decode(raw) == text


def test_valid_utf8_is_never_changed():
    generator = random.Random(7)
    alphabet = "aZ09 ,.-éü€漢字😀\u00a0\u200b"
    for _ in range(2000):
        text = "".join(generator.choice(alphabet) for _ in range(generator.randint(0, 12)))
        assert decode(text.encode()) == text


def test_every_byte_string_decodes_and_stray_bytes_map_one_to_one():
    for b in range(256):
        assert len(decode(bytes([b]))) == 1
    assert decode(bytes(range(256)))  # no byte string fails
    assert bytes(range(0x80, 0x100)).decode("utf-8", errors="replace") != decode(bytes(range(0x80, 0x100)))


def test_decode_batch_counts_rows_and_keeps_what_it_repaired():
    batch = pa.record_batch(
        {
            "a": pa.array([b"ok", b"x\xa0", None, b"\xe9t\xe9"], pa.binary()),
            "b": pa.array([b"1", b"2", b"3", b"\xff"], pa.binary()),
            "c": pa.array([b"fine", "é".encode(), b"", b"z"], pa.binary()),
        }
    )
    repairs = TextRepairs()
    out = repairs.decode_batch(batch, first_row=101)
    assert out.schema.types == [pa.string()] * 3
    assert out.column("a").to_pylist() == ["ok", "x\u00a0", None, "été"]
    assert out.column("c").to_pylist() == ["fine", "é", "", "z"]  # valid column: untouched
    assert repairs.rows == 2  # rows 102 and 104 (104 has two repaired values)
    assert repairs.by_column["a"]["rows"] == 2 and repairs.by_column["b"]["rows"] == 1
    assert repairs.by_column["a"]["examples"][0] == {"row": 102, "bytes": "x\\xa0", "text": "x\u00a0"}
    listed = pacsv.read_csv(
        io.BytesIO(repairs.csv_bytes()), convert_options=pacsv.ConvertOptions(strings_can_be_null=False)
    )
    assert listed.to_pylist() == [
        {"source_row": 102, "column": "a", "source_bytes": "x\\xa0", "decoded_as": "x\u00a0"},
        {"source_row": 104, "column": "a", "source_bytes": "\\xe9t\\xe9", "decoded_as": "été"},
        {"source_row": 104, "column": "b", "source_bytes": "\\xff", "decoded_as": "ÿ"},
    ]
    assert repairs.manifest()["rows"] == 2 and TextRepairs().manifest() == {}


def fhv_csv(rows: int = 400) -> tuple[bytes, pa.Table]:
    month = generate_month("fhv", 2020, 1, rows=rows, seed=9, quirks=False)
    sink = pa.BufferOutputStream()
    write_csv(month, sink)
    return sink.getvalue().to_pybytes(), month


def with_stray_bytes(data: bytes) -> tuple[bytes, dict[int, bytes]]:
    """Lines 11, 201 and 351 (data rows 10, 200, 350) get 0xA0, 0xE9 and a cut multibyte sequence in
    their base numbers, as a CSV written by a Windows tool would have."""
    lines = data.split(b"\n")
    planted = {10: b"B0\xa02", 200: b"B\xe9012", 350: b"B\xe2\x82"}
    for row, value in planted.items():
        fields = lines[row].split(b",")
        fields[0] = value  # dispatching_base_num
        lines[row] = b",".join(fields)
    return b"\n".join(lines), planted


def split(data: bytes):
    return split_month(io.BytesIO(data), "csv", "fhv", 2020, 1, Rules())


def kept_rows(result) -> int:
    return sum(d.rows_written + d.rows_rejected for d in result.days.values()) + result.month_rejected_rows


def test_stray_bytes_never_fail_the_month_and_every_row_is_kept():
    clean, _ = fhv_csv()
    dirty, planted = with_stray_bytes(clean)
    with pytest.raises(UnicodeDecodeError):
        dirty.decode("utf-8")  # the file is not UTF-8, as the mirror's 2020-01 is not
    before, after = split(clean), split(dirty)
    assert after.source_rows == before.source_rows == kept_rows(after)  # no row lost
    assert [d.counts() for d in after.days.values()] == [d.counts() for d in before.days.values()]
    assert after.repairs.rows == 3 and before.repairs.rows == 0
    assert after.repairs.by_column["dispatching_base_num"]["rows"] == 3
    bases = pa.concat_tables(t for t in (after.tables(d)[0] for d in after.days) if t is not None)
    repaired = {v for v in bases["dispatching_base_num"].to_pylist() if v and not v.isascii()}
    assert repaired == {codecs.decode(v, "cp1252") if v != b"B\xe2\x82" else "Bâ‚" for v in planted.values()}


def test_a_valid_utf8_file_is_not_changed_by_the_repair():
    clean, month = fhv_csv()
    lines = clean.split(b"\n")
    fields = lines[5].split(b",")
    fields[0] = "Bé€😀".encode()  # valid UTF-8, not ASCII
    lines[5] = b",".join(fields)
    result = split(b"\n".join(lines))
    assert result.repairs.rows == 0
    bases = pa.concat_tables(t for t in (result.tables(d)[0] for d in result.days) if t is not None)
    assert "Bé€😀" in bases["dispatching_base_num"].to_pylist()


def test_a_stray_byte_in_a_number_is_repaired_then_a_bad_value_kept_in_the_rejects():
    clean, _ = fhv_csv()
    lines = clean.split(b"\n")
    fields = lines[30].split(b",")
    fields[3] = b"4\xa03"  # PUlocationID
    lines[30] = b",".join(fields)
    result = split(b"\n".join(lines))
    assert result.repairs.rows == 1 and result.bad_values["pu_location_id"]["rows"] == 1
    rejected = sum(d.rejected_by_reason.get("bad_value", 0) for d in result.days.values())
    assert rejected == 1 and kept_rows(result) == result.source_rows
    day = next(d for d, r in result.days.items() if r.rejected_by_reason.get("bad_value"))
    assert reason_counts(result.tables(day)[1]["reject_reason"]) == {"bad_value": 1}
    assert isinstance(day, dt.date)
