"""Stage 3, operate: what keeps the pipeline honest and lets a person look and act.

backfill (fan-out and repair planning), status and its page, replay (dead letters back to their
topics). May import from every stage below it (core, ingest, load); nothing imports from here
but the entry points, the local stack and the tools.
"""
