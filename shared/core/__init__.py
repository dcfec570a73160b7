"""What every stage uses: settings, errors, events and messages, schemas, lake paths, logs,
clients, the function boundary (runtime) and the run ledger it writes.

Nothing here imports from the stage packages (ingest, load, operate); they import from here.
"""
