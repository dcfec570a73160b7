"""Stage 2, load: a finalize event of a lake partition replaces that day in BigQuery and PostgreSQL.

partition.py is what both loaders share (event -> partition, staleness, the exact generation's
rows); bigquery.py and postgres.py each replace one day atomically. Imports only from shared.core.
"""
