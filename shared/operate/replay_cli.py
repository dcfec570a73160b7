"""The command line of shared/operate/replay.py: `python -m shared.operate.replay_cli`.

Thin on purpose: it turns arguments into the library's topics and filters and the operator's
clients (application-default credentials in Google Cloud; the emulator locally, where
PUBSUB_EMULATOR_HOST is set), prints one line per dead letter and a summary, and exits 1 when a
publish failed. `./local_emulator.sh replay` runs it with the stack's subscription.
"""

from __future__ import annotations

import os
import sys

from shared.core.pubsub_clients import subscriber_client
from shared.operate.replay import run
from shared.operate.replay_plan import BACKFILL, INGEST, Filters


def _topic(name: str | None, project: str) -> str | None:
    return None if not name else name if name.startswith("projects/") else f"projects/{project}/topics/{name}"


def main(argv: list[str] | None = None) -> int:
    """The CLI: locally through `./local_emulator.sh replay`, in Google Cloud as the README shows."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m shared.operate.replay_cli", description="Replay dead letters to their topics."
    )
    parser.add_argument("--project", default=os.environ.get("GCP_PROJECT"), help="default: $GCP_PROJECT")
    parser.add_argument("--subscription", required=True, help="the dead-letter subscription (id or full path)")
    parser.add_argument("--ingest-topic", default=os.environ.get("INGEST_TOPIC"), help="default: $INGEST_TOPIC")
    parser.add_argument("--backfill-topic", default=os.environ.get("BACKFILL_TOPIC"), help="default: $BACKFILL_TOPIC")
    parser.add_argument(
        "--reason",
        help="only dead letters of this reason (source_not_found, ...); invalid_input letters are replayed "
        "only when named here",
    )
    parser.add_argument(
        "--function",
        help="only these: ingest, backfill, load_bigquery, load_postgres "
        "(or a platform dead letter's source subscription)",
    )
    parser.add_argument("--service", help="only this service")
    parser.add_argument("--date", help="only this date (YYYY-MM-DD)")
    parser.add_argument("--limit", type=int, help="replay at most this many")
    parser.add_argument("--dry-run", action="store_true", help="print what would be replayed; acknowledge nothing")
    args = parser.parse_args(argv)
    if not args.project:
        parser.error("--project (or GCP_PROJECT) is required")
    from google.cloud import pubsub_v1

    subscription = (
        args.subscription
        if args.subscription.startswith("projects/")
        else f"projects/{args.project}/subscriptions/{args.subscription}"
    )
    topics = {
        k: v
        for k, v in (
            (INGEST, _topic(args.ingest_topic, args.project)),
            (BACKFILL, _topic(args.backfill_topic, args.project)),
        )
        if v
    }
    filters = Filters(args.reason, args.function, args.service, args.date)
    # subscriber_client: letters up to Pub/Sub's 10 MB, also from the emulator (shared/core/pubsub_clients.py)
    subscriber, publisher = subscriber_client(), pubsub_v1.PublisherClient()
    with subscriber:
        summary = run(
            subscriber,
            publisher,
            subscription,
            topics,
            filters=filters,
            dry_run=args.dry_run,
            limit=args.limit,
            out=lambda line: print(line, flush=True),
        )
    print(summary.line(subscription), file=sys.stderr)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
