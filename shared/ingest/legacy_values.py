"""Values TLC's 2009-2010 files write in words, turned into the codes later files use.

Why: yellow 2009-2010 files name the vendor (`CMT`, `VTS`, `DDS`) and the payment (`CASH`, `Credit`,
`No Charge`, `Dispute`, and 3-letter forms), and 2009 writes store-and-forward as 1/0, where the
declared columns are integer codes and Y/N; and a coordinate of 0 means "no GPS fix". The mapping
is toddwschneider/nyc-taxi-data's `setup_files/populate_yellow_trips.sql` (CMT 1, VTS 2, DDS 3;
credit/cre/crd 1, cash/cas/csh 2, no charge/no 3, dispute/dis 4; Y/1/1.0 and N/0/0.0), plus `noc`
for "no charge" as 2010 files abbreviate it. A word not in the table is left as it is, so the
cleaning step rejects its row as `bad_value` and names it in the manifest, never guessing a code.
Digits pass through untouched, so a modern file (or one read as text) is unchanged.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

VENDOR_WORDS = {"cmt": "1", "vts": "2", "dds": "3"}
PAYMENT_WORDS = {
    **dict.fromkeys(("credit", "cre", "crd"), "1"),
    **dict.fromkeys(("cash", "cas", "csh"), "2"),
    **dict.fromkeys(("no charge", "no", "noc"), "3"),
    **dict.fromkeys(("dispute", "dis"), "4"),
}
STORE_FORWARD = {"1": "Y", "1.0": "Y", "0": "N", "0.0": "N"}
CODED = {"vendor_id": VENDOR_WORDS, "payment_type": PAYMENT_WORDS, "store_and_fwd_flag": STORE_FORWARD}
COORDINATES = ("pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude")


def _recode(array: pa.Array, codes: dict[str, str]) -> pa.Array:
    if pa.types.is_floating(array.type) or pa.types.is_integer(array.type):
        if codes is not STORE_FORWARD:
            return array  # already a code
        array = pc.cast(array, pa.string())
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return array
    keys = pc.utf8_lower(pc.utf8_trim_whitespace(array))
    index = pc.index_in(keys, value_set=pa.array(list(codes), pa.string()))
    if index.null_count == len(index):
        return array  # nothing in words: the common case costs one lookup
    mapped = pc.take(pa.array(list(codes.values()), pa.string()), index)
    return pc.if_else(pc.is_valid(index), mapped, pc.cast(array, pa.string()))


def normalise(batch: pa.RecordBatch, mapping: dict[str, str]) -> pa.RecordBatch:
    """The batch with worded codes recoded and zero coordinates nulled; other columns untouched."""
    arrays, changed = list(batch.columns), False
    position = {name: i for i, name in enumerate(batch.schema.names)}
    for clean, codes in CODED.items():
        if clean in mapping:
            i = position[mapping[clean]]
            recoded = _recode(arrays[i], codes)
            changed = changed or recoded is not arrays[i]
            arrays[i] = recoded
    for clean in COORDINATES:
        if clean in mapping and pa.types.is_floating(arrays[position[mapping[clean]]].type):
            i = position[mapping[clean]]
            zero = pc.equal(arrays[i], 0.0)
            arrays[i] = pc.if_else(zero, pa.scalar(None, arrays[i].type), arrays[i])
            changed = True
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
