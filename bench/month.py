"""The benchmark's month: made by the local stack's generator as the TLC file a deployment downloads
(yellow, green, fhv: the mirror's csv.gz; fhvhv: TLC's own 24-column parquet)."""

from __future__ import annotations

from pathlib import Path


def make_month(tlc_root: Path, service: str, rows: int, seed: int) -> Path:
    from local.tlc_data import generate_month
    from local.tlc_files import write_month

    if service == "fhvhv":  # TLC's own 24-column parquet (the mirror's fhvhv CSVs have 7 columns), day by day
        from local.tlc_eras import write_parquet_month
        from shared.core.eras import TLC, era

        hv = era(service, TLC, 2021, 1)
        assert hv is not None
        return write_parquet_month(tlc_root / service / f"{service}_tripdata_2021-01.parquet", hv, 2021, 1, rows)
    path = tlc_root / service / f"{service}_tripdata_2021-01.csv.gz"
    write_month(path, generate_month(service, 2021, 1, rows=rows, seed=seed))
    return path


def fmt(source: Path) -> str:
    return "parquet" if source.suffix == ".parquet" else "csv.gz"
