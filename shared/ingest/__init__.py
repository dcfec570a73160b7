"""Stage 1, ingest: a date message becomes that day's checked parquet partition in the lake.

The month file is downloaded once (source), read (month_file), claimed by one instance
(month_claim), split into daily files (lake, split_output) after cleaning (cleaning), and
prepared once per month (staging); day.py ingests one date, reannounce answers a plain
republish of a date that is already up to date. Imports only from shared.core.
"""
