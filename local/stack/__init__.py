"""Helpers of local_emulator.sh (the local stack)."""
