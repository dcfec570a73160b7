"""Speed and memory of the pipeline against the tutorial, DuckDB and the machine's floor.

    .venv/bin/python -m bench            # the full month, 3 runs of each contender (~10 min)
    .venv/bin/python -m bench --quick    # a 1/20 month, one run (< 1 min; what CI runs)

Layout: run.py (the command: data, rounds, report), contenders_month.py and
contenders_postgres.py and stack.py (what is measured), spawn.py and child.py (one contender
in a fresh process, so its peak RSS is its own: the parent's side and the child's), measure.py
(the clock and peak RSS a contender takes of itself), servers.py (the fake-gcs-server and PostgreSQL it starts
for itself), report.py (ratios as Markdown, raw figures as JSON).
"""
