"""TLC's archive as data: which months each service has, and each era's file header, per source.

Why a table: a month's file looks the way its era made it (yellow 2009 says `Trip_Pickup_DateTime`
and `Start_Lon`, yellow 2011+ parquet has location ids, the mirror's fhvhv CSV has 7 columns where
TLC's parquet has 24), and which months a source can serve is a fact about that source. The support
decision (shared/core/coverage.py), the generator of era-faithful files (local/tlc_eras.py) and the
archive walk test read this one table; README.md ("TLC's archive") shows it with its sources:

- toddwschneider/nyc-taxi-data: `import_yellow_taxi_trip_data.sh` (2009-2010 parquet: coordinates,
  no location ids; 2011+: 19 columns with location ids), `import_fhvhv_trip_data.sh` (24 columns),
  `clickhouse/setup_files/fix_*_parquet_schemas.R` (columns TLC wrote with no type, `Airport_fee`),
  its README ("The yellow taxi Parquet files from 2009 and 2010 have columns for lat/lon coordinates
  instead of location IDs"), issue #57 (`cbd_congestion_fee` for yellow, green and fhvhv, 2025);
  the CSV-era headers in `import_trip_data.sh` / `import_fhv_trip_data.sh` before commit 8942d7f.
- DataTalksClub/nyc-tlc-data (the default source): CSV.gz copies of 2019-01..2021-07 (the course's
  `02-workflow-orchestration/homework.md`: "the time period for which data exists i.e. from
  2021-01-01 to 2021-07-31"); its fhvhv CSVs keep the 7 pre-reissue columns (the course's
  05-batch code reads `hvfhs_license_num, ..., SR_Flag` from `fhvhv_tripdata_2021-01.csv.gz`).

Column kinds (how the generator writes a value; `null` is a column TLC's parquet stores with no
type at all, which the fix_*_parquet_schemas.R scripts cast): int, intf (float64 counts), money,
dist, ts (timestamp), tstext (the time as text), str, null, coord, vendor_word (CMT/VTS/DDS),
payment_word (CASH, Credit...), flag01 (1/0 store-and-forward), yn (Y/N), base (B02510),
hvfhs (HV0003), seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

MIRROR = "mirror"  # DataTalksClub's CSV.gz copies (MIRROR_TEMPLATE)
TLC = "tlc"  # TLC's own parquet files, reissued in 2022 for every month (the default source)
TLC_PARQUET_TEMPLATE = "https://d37ci6vzurychx.cloudfront.net/trip-data/{service}_tripdata_{year}-{month:02d}.parquet"
MIRROR_TEMPLATE = "https://github.com/DataTalksClub/nyc-tlc-data/releases/download/{service}/{service}_tripdata_{year}-{month:02d}.csv.gz"

# First month TLC published per service (its trip record page; fhvhv split from fhv in Feb 2019).
FIRST_MONTH = {"yellow": (2009, 1), "green": (2013, 8), "fhv": (2015, 1), "fhvhv": (2019, 2)}
MIRROR_LAST = (2021, 7)
OPEN = (9999, 12)  # an era still current: it lasts until TLC changes the files again


@dataclass(frozen=True)
class Era:
    service: str
    source: str  # MIRROR or TLC
    first: tuple[int, int]
    last: tuple[int, int]
    columns: tuple[tuple[str, str], ...]  # (header name, kind), in file order
    note: str = ""

    @property
    def fmt(self) -> str:
        return "csv.gz" if self.source == MIRROR else "parquet"

    def covers(self, year: int, month: int) -> bool:
        return self.first <= (year, month) <= self.last

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]


def _cols(text: str) -> tuple[tuple[str, str], ...]:
    """'name:kind name:kind ...' -> pairs: one era's header reads as one line."""
    return tuple((item.split(":")[0], item.split(":")[1]) for item in text.split())


_Y2009 = _cols(
    "vendor_name:vendor_word Trip_Pickup_DateTime:tstext Trip_Dropoff_DateTime:tstext Passenger_Count:int "
    "Trip_Distance:dist Start_Lon:coord Start_Lat:coord Rate_Code:intf store_and_forward:flag01 End_Lon:coord "
    "End_Lat:coord Payment_Type:payment_word Fare_Amt:money surcharge:money mta_tax:money Tip_Amt:money "
    "Tolls_Amt:money Total_Amt:money"
)
_Y2010 = _cols(
    "vendor_id:vendor_word pickup_datetime:ts dropoff_datetime:ts passenger_count:int trip_distance:dist "
    "pickup_longitude:coord pickup_latitude:coord rate_code:intf store_and_fwd_flag:str dropoff_longitude:coord "
    "dropoff_latitude:coord payment_type:payment_word fare_amount:money surcharge:money mta_tax:money "
    "tip_amount:money tolls_amount:money total_amount:money"
)
_Y_HEAD = (
    "VendorID:int tpep_pickup_datetime:ts tpep_dropoff_datetime:ts passenger_count:intf trip_distance:dist "
    "RatecodeID:intf store_and_fwd_flag:str PULocationID:int DOLocationID:int payment_type:int fare_amount:money "
    "extra:money mta_tax:money tip_amount:money tolls_amount:money improvement_surcharge:money total_amount:money"
)
_G_HEAD = (
    "VendorID:int lpep_pickup_datetime:ts lpep_dropoff_datetime:ts store_and_fwd_flag:str RatecodeID:intf "
    "PULocationID:int DOLocationID:int passenger_count:intf trip_distance:dist fare_amount:money extra:money "
    "mta_tax:money tip_amount:money tolls_amount:money ehail_fee:{ehail} improvement_surcharge:{improvement} "
    "total_amount:money payment_type:intf trip_type:intf congestion_surcharge:{congestion}"
)
_FHV = (
    "dispatching_base_num:base pickup_datetime:ts {dropoff}:ts {pu}:intf {do}:intf SR_Flag:{sr} "
    "Affiliated_base_number:str"
)
_HV_LEGACY = _cols(
    "hvfhs_license_num:hvfhs dispatching_base_num:base pickup_datetime:ts dropoff_datetime:ts PULocationID:int "
    "DOLocationID:int SR_Flag:intf"
)
_HV = (
    "hvfhs_license_num:hvfhs dispatching_base_num:base originating_base_num:base request_datetime:ts "
    "on_scene_datetime:ts pickup_datetime:ts dropoff_datetime:ts PULocationID:int DOLocationID:int trip_miles:dist "
    "trip_time:seconds base_passenger_fare:money tolls:money bcf:money sales_tax:money congestion_surcharge:money "
    "airport_fee:{airport} tips:money driver_pay:money shared_request_flag:yn shared_match_flag:yn "
    "access_a_ride_flag:yn wav_request_flag:yn wav_match_flag:{wav}"
)


def _green(ehail: str, improvement: str, congestion: str, extra: str = "") -> tuple[tuple[str, str], ...]:
    return _cols(_G_HEAD.format(ehail=ehail, improvement=improvement, congestion=congestion) + extra)


def _fhv(dropoff: str, pu: str, do: str, sr: str) -> tuple[tuple[str, str], ...]:
    return _cols(_FHV.format(dropoff=dropoff, pu=pu, do=do, sr=sr))


ERAS: tuple[Era, ...] = (
    # yellow, TLC parquet
    Era("yellow", TLC, (2009, 1), (2009, 12), _Y2009, "coordinates, no location ids; vendor and payment as words"),
    Era("yellow", TLC, (2010, 1), (2010, 12), _Y2010, "coordinates, no location ids; 2010 spellings"),
    Era(
        "yellow",
        TLC,
        (2011, 1),
        (2018, 12),
        _cols(_Y_HEAD + " congestion_surcharge:null airport_fee:null"),
        "location ids (TLC mapped 2011-2016H1 coordinates to zones in its reissue); fees not yet charged",
    ),
    Era(
        "yellow",
        TLC,
        (2019, 1),
        (2021, 12),
        _cols(_Y_HEAD + " congestion_surcharge:money airport_fee:null"),
        "congestion surcharge from 2019",
    ),
    Era(
        "yellow",
        TLC,
        (2022, 1),
        (2022, 12),
        _cols(_Y_HEAD + " congestion_surcharge:money airport_fee:money"),
        "airport fee from 2022",
    ),
    Era(
        "yellow",
        TLC,
        (2023, 1),
        (2024, 12),
        _cols(_Y_HEAD + " congestion_surcharge:money Airport_fee:money"),
        "`Airport_fee` capitalised (fix_yellow_parquet_schemas.R renames it)",
    ),
    Era(
        "yellow",
        TLC,
        (2025, 1),
        OPEN,
        _cols(_Y_HEAD + " congestion_surcharge:money Airport_fee:money cbd_congestion_fee:money"),
        "CBD congestion fee from 2025-01-05 (nyc-taxi-data#57)",
    ),
    # green, TLC parquet
    Era("green", TLC, (2013, 8), (2014, 12), _green("null", "null", "null"), "no improvement surcharge yet"),
    Era("green", TLC, (2015, 1), (2018, 12), _green("null", "money", "null"), "improvement surcharge from 2015"),
    Era("green", TLC, (2019, 1), (2024, 12), _green("money", "money", "money"), "congestion surcharge from 2019"),
    Era(
        "green",
        TLC,
        (2025, 1),
        OPEN,
        _green("money", "money", "money", " cbd_congestion_fee:money"),
        "CBD congestion fee from 2025-01-05",
    ),
    # fhv, TLC parquet
    Era(
        "fhv",
        TLC,
        (2015, 1),
        (2020, 12),
        _fhv("dropOff_datetime", "PUlocationID", "DOlocationID", "null"),
        "7 columns in every reissued file; SR_Flag stored untyped where all empty",
    ),
    Era(
        "fhv",
        TLC,
        (2021, 1),
        OPEN,
        _fhv("dropoff_datetime", "PULocationID", "DOLocationID", "intf"),
        "2021+ spellings of three columns",
    ),
    # fhvhv, TLC parquet
    Era(
        "fhvhv",
        TLC,
        (2019, 2),
        (2021, 12),
        _cols(_HV.format(airport="null", wav="null")),
        "24 columns since the 2022 reissue; airport fee and wav_match_flag untyped in early files",
    ),
    Era("fhvhv", TLC, (2022, 1), (2024, 12), _cols(_HV.format(airport="money", wav="yn")), "airport fee charged"),
    Era(
        "fhvhv",
        TLC,
        (2025, 1),
        OPEN,
        _cols(_HV.format(airport="money", wav="yn") + " cbd_congestion_fee:money"),
        "CBD congestion fee from 2025-01-05",
    ),
    # DataTalksClub's mirror: CSV.gz copies of 2019-01..2021-07 only
    Era("yellow", MIRROR, (2019, 1), MIRROR_LAST, _cols(_Y_HEAD + " congestion_surcharge:money"), "18 columns"),
    Era("green", MIRROR, (2019, 1), MIRROR_LAST, _green("money", "money", "money"), "20 columns"),
    Era(
        "fhv",
        MIRROR,
        (2019, 1),
        MIRROR_LAST,
        _fhv("dropOff_datetime", "PUlocationID", "DOlocationID", "intf"),
        "the 2019 spellings for every year",
    ),
    Era("fhvhv", MIRROR, (2019, 2), MIRROR_LAST, _HV_LEGACY, "the 7 pre-reissue columns, no fares"),
)


def era(service: str, source: str, year: int, month: int) -> Era | None:
    """The era of that month's file at that source, or None: the source has no such file."""
    for item in ERAS:
        if item.service == service and item.source == source and item.covers(year, month):
            return item
    return None


def months(service: str, last: tuple[int, int]) -> list[tuple[int, int]]:
    """Every month TLC has published for `service`, up to `last` (inclusive)."""
    year, month = FIRST_MONTH[service]
    out = []
    while (year, month) <= last:
        out.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out
