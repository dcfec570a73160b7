"""High Volume FHV (Uber, Lyft, Via, Juno, from 2019-02): its columns, from TLC's HVFHS data dictionary.

The 24 columns of TLC's parquet files (data_dictionary_trip_records_hvfhs.pdf; toddwschneider/
nyc-taxi-data `import_fhvhv_trip_data.sh`), plus the legacy `SR_Flag` of the 7-column CSVs that
DataTalksClub's mirror holds and the 2025 CBD fee (nyc-taxi-data#57). Which file has which:
shared/core/eras.py. There is no passenger count: the cleaning rules that use it do not apply.
"""

from __future__ import annotations

from shared.core.columns import PICKUP_DATE_COLUMN, Column, c

_HV_FLAG = "Y or N as TLC writes it, from TLC's 2022 parquet reissue; null in the mirror's CSVs."
_HV_MONEY = "USD, from TLC's 2022 parquet reissue; null in the mirror's CSVs."


def _hv(name: str, kind: str, description: str, *sources: str) -> Column:
    """A High Volume FHV column only TLC's parquet files have (the mirror's CSVs hold 7 columns)."""
    return c(name, kind, description, *(sources or (name,)), optional=True)


FHVHV = (
    c(
        "hvfhs_license_num",
        "string",
        "TLC license number of the HVFHS business: HV0002 Juno, HV0003 Uber, HV0004 Via, HV0005 Lyft.",
        "hvfhs_license_num",
    ),
    c(
        "dispatching_base_num",
        "string",
        "TLC base license number of the base that dispatched the trip.",
        "dispatching_base_num",
    ),
    _hv("originating_base_num", "string", "Base number of the base that received the original trip request."),
    _hv("request_datetime", "timestamp", "When the passenger requested to be picked up, New York local time."),
    _hv(
        "on_scene_datetime",
        "timestamp",
        "When the driver arrived at the pick-up location (accessible vehicles only), New York local time.",
    ),
    c("pickup_datetime", "timestamp", "Date and time of the trip pick-up, New York local time.", "pickup_datetime"),
    c("dropoff_datetime", "timestamp", "Date and time of the trip drop-off, New York local time.", "dropoff_datetime"),
    c("pu_location_id", "int", "TLC Taxi Zone in which the trip began.", "PULocationID"),
    c("do_location_id", "int", "TLC Taxi Zone in which the trip ended.", "DOLocationID"),
    _hv("trip_miles", "float", "Total miles for the passenger trip."),
    _hv("trip_time", "int", "Total time in seconds for the passenger trip."),
    _hv("base_passenger_fare", "float", "Base passenger fare before tolls, tips, taxes and fees, " + _HV_MONEY),
    _hv("tolls", "float", "Total of all tolls paid in the trip, " + _HV_MONEY),
    _hv("bcf", "float", "Amount collected in the trip for the Black Car Fund, " + _HV_MONEY),
    _hv("sales_tax", "float", "Amount collected in the trip for NYS sales tax, " + _HV_MONEY),
    _hv("congestion_surcharge", "float", "Amount collected in the trip for the NYS congestion surcharge, " + _HV_MONEY),
    _hv("airport_fee", "float", "$2.50 for drop-off and pick-up at LaGuardia, Newark and JFK, " + _HV_MONEY),
    _hv("tips", "float", "Total tips received from the passenger, " + _HV_MONEY),
    _hv(
        "driver_pay",
        "float",
        "Driver pay, without tolls or tips, net of commission, surcharges and taxes, " + _HV_MONEY,
    ),
    _hv("shared_request_flag", "string", "Did the passenger agree to a shared ride, matched or not: " + _HV_FLAG),
    _hv("shared_match_flag", "string", "Did the passenger share the vehicle with another booking: " + _HV_FLAG),
    _hv("access_a_ride_flag", "string", "Was the trip administered on behalf of the MTA (Access-A-Ride): " + _HV_FLAG),
    _hv("wav_request_flag", "string", "Did the passenger request a wheelchair-accessible vehicle: " + _HV_FLAG),
    _hv("wav_match_flag", "string", "Did the trip take place in a wheelchair-accessible vehicle: " + _HV_FLAG),
    _hv("cbd_congestion_fee", "float", "MTA Congestion Relief Zone toll, from 2025-01-05, USD."),
    _hv(
        "sr_flag",
        "int",
        "Legacy shared-ride flag of the mirror's CSVs (1 = shared ride requested and matched); null in parquet.",
        "SR_Flag",
    ),
    PICKUP_DATE_COLUMN,
)
