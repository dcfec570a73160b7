"""The one definition of every service's columns: source names, types and meanings.

Each `Column` says how it is spelled in TLC's files (all spellings seen over the
years), its clean snake_case name, its type in Arrow/parquet, BigQuery and
PostgreSQL, and its meaning from the TLC data dictionaries. Cleaning, the
loaders' table DDL, BigQuery field descriptions and Postgres COMMENTs all come
from here, so the destinations cannot drift apart.
"""

from __future__ import annotations

import pyarrow as pa

from shared.core.columns import PICKUP_DATE_COLUMN, Column
from shared.core.columns import c as _c
from shared.core.schema_fhvhv import FHVHV

VENDOR = "TPEP/LPEP provider: 1 = Creative Mobile Technologies, 2 = Curb Mobility (VeriFone), 6 = Myle, 7 = Helix."
RATECODE = (
    "Final rate code at the end of the trip: 1 = Standard rate, 2 = JFK, 3 = Newark, "
    "4 = Nassau or Westchester, 5 = Negotiated fare, 6 = Group ride, 99 = Null/unknown."
)
STORE_FWD = (
    "Y = trip record held in vehicle memory before sending to the vendor (no server "
    "connection), N = not a store and forward trip."
)
PAYMENT = (
    "How the passenger paid: 0 = Flex fare trip, 1 = Credit card, 2 = Cash, 3 = No charge, "
    "4 = Dispute, 5 = Unknown, 6 = Voided trip."
)
PU_LOC = "TLC Taxi Zone (1-265, see taxi_zone_lookup) in which the taximeter was engaged."
DO_LOC = "TLC Taxi Zone (1-265, see taxi_zone_lookup) in which the taximeter was disengaged."
PICKUP = "Date and time the meter was engaged, New York local time (naive, not shifted)."
DROPOFF = "Date and time the meter was disengaged, New York local time (naive, not shifted)."

# Spellings after the first are TLC's older headers (shared/core/eras.py: which era uses which).
_MONEY = [
    _c("fare_amount", "float", "Time-and-distance fare calculated by the meter, USD.", "fare_amount", "Fare_Amt"),
    _c("extra", "float", "Miscellaneous extras and surcharges (rush hour, overnight), USD.", "extra", "surcharge"),
    _c("mta_tax", "float", "MTA tax triggered by the metered rate in use, USD.", "mta_tax"),
    _c("tip_amount", "float", "Tip; credit card tips only, cash tips are not included, USD.", "tip_amount", "Tip_Amt"),
    _c("tolls_amount", "float", "Total of all tolls paid in the trip, USD.", "tolls_amount", "Tolls_Amt"),
]
_IMPROVEMENT = _c(
    "improvement_surcharge",
    "float",
    "Improvement surcharge assessed at the flag drop, from 2015, USD; null in older files.",
    "improvement_surcharge",
    optional=True,
)
_TOTAL = _c(
    "total_amount", "float", "Total amount charged to passengers, cash tips excluded, USD.", "total_amount", "Total_Amt"
)
_CONGESTION = _c(
    "congestion_surcharge",
    "float",
    "NYS congestion surcharge collected for the trip, USD.",
    "congestion_surcharge",
    optional=True,
)
_CBD = _c(
    "cbd_congestion_fee",
    "float",
    "MTA Congestion Relief Zone toll, from 2025-01-05, USD.",
    "cbd_congestion_fee",
    optional=True,
)
_PASSENGERS = _c(
    "passenger_count",
    "int",
    "Number of passengers in the vehicle, entered by the driver.",
    "passenger_count",
    "Passenger_Count",
)
_DISTANCE = _c(
    "trip_distance",
    "float",
    "Elapsed trip distance in miles reported by the taximeter.",
    "trip_distance",
    "Trip_Distance",
)
_COORDINATES = "WGS84, as the taximeter's GPS recorded it; 0 in the source is null here. Only in TLC's 2009-2010 files"


def _coordinate(name: str, what: str, *sources: str) -> Column:
    return _c(name, "float", f"{what} ({_COORDINATES}; location ids are null then).", *sources, optional=True)


_DATE_COL = PICKUP_DATE_COLUMN

YELLOW = (
    _c(
        "vendor_id",
        "int",
        VENDOR + " 2009-2010 files name it (CMT 1, VTS 2, DDS 3).",
        "VendorID",
        "vendor_name",
        "vendor_id",
    ),
    _c("pickup_datetime", "timestamp", PICKUP, "tpep_pickup_datetime", "Trip_Pickup_DateTime", "pickup_datetime"),
    _c("dropoff_datetime", "timestamp", DROPOFF, "tpep_dropoff_datetime", "Trip_Dropoff_DateTime", "dropoff_datetime"),
    _PASSENGERS,
    _DISTANCE,
    _c("ratecode_id", "int", RATECODE, "RatecodeID", "Rate_Code"),
    _c("store_and_fwd_flag", "string", STORE_FWD + " 2009 files write 1/0.", "store_and_fwd_flag", "store_and_forward"),
    _c("pu_location_id", "int", PU_LOC + " Null in 2009-2010 (coordinates instead).", "PULocationID", optional=True),
    _c("do_location_id", "int", DO_LOC + " Null in 2009-2010 (coordinates instead).", "DOLocationID", optional=True),
    _c("payment_type", "int", PAYMENT + " 2009-2010 files write words (CASH, Credit...).", "payment_type"),
    *_MONEY,
    _IMPROVEMENT,
    _TOTAL,
    _CONGESTION,
    _c(
        "airport_fee",
        "float",
        "Fee for pickups at LaGuardia and JFK airports, from 2022, USD.",
        "airport_fee",
        optional=True,
    ),
    _CBD,
    _coordinate("pickup_longitude", "Longitude where the meter was engaged", "pickup_longitude", "Start_Lon"),
    _coordinate("pickup_latitude", "Latitude where the meter was engaged", "pickup_latitude", "Start_Lat"),
    _coordinate("dropoff_longitude", "Longitude where the meter was disengaged", "dropoff_longitude", "End_Lon"),
    _coordinate("dropoff_latitude", "Latitude where the meter was disengaged", "dropoff_latitude", "End_Lat"),
    _DATE_COL,
)

GREEN = (
    _c("vendor_id", "int", VENDOR, "VendorID"),
    _c("pickup_datetime", "timestamp", PICKUP, "lpep_pickup_datetime"),
    _c("dropoff_datetime", "timestamp", DROPOFF, "lpep_dropoff_datetime"),
    _c("store_and_fwd_flag", "string", STORE_FWD, "store_and_fwd_flag"),
    _c("ratecode_id", "int", RATECODE, "RatecodeID"),
    _c("pu_location_id", "int", PU_LOC, "PULocationID"),
    _c("do_location_id", "int", DO_LOC, "DOLocationID"),
    _PASSENGERS,
    _DISTANCE,
    *_MONEY,
    _c("ehail_fee", "float", "E-hail fee; unused by TLC, always empty in recent files, USD.", "ehail_fee"),
    _IMPROVEMENT,
    _TOTAL,
    _c("payment_type", "int", PAYMENT, "payment_type"),
    _c("trip_type", "int", "1 = Street-hail, 2 = Dispatch (assigned automatically by the metered rate).", "trip_type"),
    _CONGESTION,
    _CBD,
    _DATE_COL,
)

FHV = (
    _c(
        "dispatching_base_num",
        "string",
        "TLC base license number of the base that dispatched the trip.",
        "dispatching_base_num",
    ),
    _c("pickup_datetime", "timestamp", PICKUP.replace("the meter was engaged", "of the pickup"), "pickup_datetime"),
    _c(
        "dropoff_datetime",
        "timestamp",
        DROPOFF.replace("the meter was disengaged", "of the dropoff"),
        "dropOff_datetime",
        "dropoff_datetime",
    ),
    _c("pu_location_id", "int", "TLC Taxi Zone in which the trip began.", "PUlocationID", "PULocationID"),
    _c("do_location_id", "int", "TLC Taxi Zone in which the trip ended.", "DOlocationID", "DOLocationID"),
    _c("sr_flag", "int", "1 = shared ride requested and matched (Lyft, Via, Uber Pool), empty otherwise.", "SR_Flag"),
    _c(
        "affiliated_base_number",
        "string",
        "TLC base license number of the base the vehicle is affiliated with.",
        "Affiliated_base_number",
        "Affiliated_base_num",
        optional=True,
    ),
    _DATE_COL,
)

SCHEMAS: dict[str, tuple[Column, ...]] = {"yellow": YELLOW, "green": GREEN, "fhv": FHV, "fhvhv": FHVHV}
SERVICES = tuple(SCHEMAS)

# Columns of the reject objects: the clean columns plus why the row was kept out.
REJECT_REASON = _c("reject_reason", "string", "Why the row was kept out of trips/ (see the README).")


def columns(service: str) -> tuple[Column, ...]:
    return SCHEMAS[service]


def arrow_schema(service: str) -> pa.Schema:
    """Exact schema of a trips/ partition (what the data-quality check compares against)."""
    return pa.schema([pa.field(c.name, c.arrow_type) for c in SCHEMAS[service]])


def reject_schema(service: str) -> pa.Schema:
    return arrow_schema(service).append(pa.field(REJECT_REASON.name, REJECT_REASON.arrow_type))


def source_columns(service: str) -> dict[str, Column]:
    """Lower-cased source spelling -> Column (TLC changes capitalisation between years)."""
    return {s.lower(): c for c in SCHEMAS[service] for s in c.sources}


def has_column(service: str, name: str) -> bool:
    return any(c.name == name for c in SCHEMAS[service])
