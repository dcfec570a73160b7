"""Log lines stay within what Cloud Logging takes, whatever a field holds."""

import json

from shared.core import logs


def test_every_string_field_and_the_message_are_bounded(capsys):
    logs.info("m" * 50_000, body="x" * 6_000_000, nested={"inner": "y" * 20_000}, rows=3)
    (line,) = capsys.readouterr().out.splitlines()
    entry = json.loads(line)
    assert len(line) < 4 * logs.MAX_FIELD_CHARS
    assert entry["body"].endswith("(6000000 characters)") and len(entry["body"]) < logs.MAX_FIELD_CHARS + 40
    assert entry["nested"]["inner"].endswith("(20000 characters)")
    assert entry["message"].endswith("(50000 characters)") and entry["rows"] == 3


def test_secrets_are_still_masked(capsys):
    logs.info("connect", pg_password="hunter2")
    assert json.loads(capsys.readouterr().out)["pg_password"] == "***"
