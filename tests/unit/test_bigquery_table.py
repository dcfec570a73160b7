"""ensure_table against a table another loader changes at the same moment (plain data, no client).

The update carries the table's etag; BigQuery answers a stale one with 412. Until this test, a 412
left ensure_table as a PermanentError (google_api_error, 412 is not a transient status), which
dead-lettered the day: likely right after an upgrade, when up to three loaders align one old table at
once.
"""

from __future__ import annotations

import copy

import pytest
from google.api_core import exceptions as gexc
from google.cloud import bigquery as bq

from shared.core.errors import TransientError
from shared.core.settings import LOAD_BIGQUERY, Settings
from shared.load import bigquery as bql

ENV = {"GCP_PROJECT": "p", "LAKE_BUCKET": "lake", "DEAD_LETTER_TOPIC": "dl", "BQ_DATASET": "d"}
COORDINATES = ("pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude")


class Table412Client:
    """A dataset holding yellow_trips as an older release made it; its first `stale` updates meet a
    table another loader has just changed (412, as BigQuery answers a stale If-Match)."""

    def __init__(self, stored: bq.Table, stale: int) -> None:
        self.stored, self.stale, self.updates, self.reads = stored, stale, [], 0

    def create_table(self, table: bq.Table, exists_ok: bool = False) -> bq.Table:
        assert exists_ok
        self.reads += 1
        return copy.deepcopy(self.stored)

    def get_table(self, ref: object) -> bq.Table:
        self.reads += 1
        return copy.deepcopy(self.stored)

    def update_table(self, table: bq.Table, fields: list[str]) -> bq.Table:
        self.updates.append(list(fields))
        if self.stale:
            self.stale -= 1
            raise gexc.PreconditionFailed("Precondition check failed.")
        self.stored = copy.deepcopy(table)
        return table


@pytest.fixture
def old_table() -> bq.Table:
    bql._ensured.clear()
    settings = Settings.from_env(ENV, function=LOAD_BIGQUERY)
    table = bql.table_definition(settings, "yellow")
    table.schema = [f for f in table.schema if f.name not in COORDINATES]
    return table


def test_a_412_reads_the_table_again_and_aligns_it(old_table):
    client = Table412Client(old_table, stale=2)
    bql.ensure_table(client, Settings.from_env(ENV, function=LOAD_BIGQUERY), "yellow")
    assert client.updates == [["schema"]] * 3 and client.reads == 3
    assert [f.name for f in client.stored.schema][-4:] == list(COORDINATES)


def test_a_table_that_keeps_changing_is_a_transient_error_not_a_dead_letter(old_table):
    client = Table412Client(old_table, stale=99)
    with pytest.raises(TransientError) as caught:
        bql.ensure_table(client, Settings.from_env(ENV, function=LOAD_BIGQUERY), "yellow")
    assert caught.value.reason == "bigquery_schema_busy" and len(client.updates) == 5
    assert "yellow_trips" not in " ".join(bql._ensured)  # checked again on the next load
