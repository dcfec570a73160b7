"""`python -m chaos`: faults injected into a running local stack, its final state checked against a model.

Jepsen-style: the same seeded workload runs twice on throwaway stacks, once clean (the model)
and once while the source, PostgreSQL, the emulators and the functions fail; then every date
of every destination must be equal, every source row conserved, nothing left half-done and
every message either done or dead-lettered with a reason. See chaos/report.py for the command.
"""
