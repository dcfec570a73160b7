"""The Terraform evaluator gives Terraform's values for the constructs the contracts depend on.

A wrong evaluation would validate a body Terraform never sends, so each construct the monitoring
and scheduler resources use is checked on a small expression with a known result, and what the
evaluator does not implement must raise instead of guessing.
"""

from __future__ import annotations

import pytest

from tests.contracts.hcl_eval import EvalError, Evaluator, Namespace, Unknown, parse_expression

VARIABLES = {"threshold": None, "services": ["yellow", "green"], "hour": 9, "ratio": 0.8}
LOCALS = {"daily": {"alignmentPeriod": "86400s", "perSeriesAligner": "ALIGN_SUM"}, "p": "taxi"}


def roots(name):
    if name == "var":
        return Namespace("var", VARIABLES.__getitem__)
    if name == "local":
        return Namespace("local", LOCALS.__getitem__)
    if name == "google_pubsub_topic":
        return Namespace(name, lambda n: Namespace(n, lambda attr: Unknown(f"{n}.{attr}")))
    raise KeyError(name)


def evaluate(text):
    return Evaluator(roots).eval(parse_expression(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[for i, w in var.services : {x = (i % 2) * 24, y = floor(i / 2) * 16, w = w}]",
            [
                {"x": 0, "y": 0, "w": "yellow"},
                {"x": 24, "y": 0, "w": "green"},
            ],
        ),
        ('var.threshold == null ? [] : [{value = var.threshold, direction = "ABOVE"}]', []),
        (
            'merge(local.daily, {groupByFields = ["metric.label.function"]})',
            {
                "alignmentPeriod": "86400s",
                "perSeriesAligner": "ALIGN_SUM",
                "groupByFields": ["metric.label.function"],
            },
        ),
        ('"${local.p}: \\"quoted\\" $${literal}"', 'taxi: "quoted" ${literal}'),
        ('format("%02d:00 %.0f%%", var.hour, var.ratio * 100)', "09:00 80%"),
        ('replace("taxi-rows.x", "/[^A-Za-z0-9_]/", "_")', "taxi_rows_x"),
        (
            '{for pair in setproduct(["a"], var.services) : "${pair[0]}/${pair[1]}" => pair[1]}',
            {
                "a/yellow": "yellow",
                "a/green": "green",
            },
        ),
        ("jsonencode({n = 16 / 2, t = true})", '{"n":8,"t":true}'),
        ('base64encode(jsonencode({service = "yellow"}))', "eyJzZXJ2aWNlIjoieWVsbG93In0="),
        ("google_pubsub_topic.ingest.id", "ingest.id"),
        ('try(regex("^db-custom-[0-9]+-([0-9]+)$", "db-f1-micro")[0], null)', None),
        ("max([1, 5, 3]...)", 5),
    ],
)
def test_expression_values(text, expected):
    assert evaluate(text) == expected


def test_heredoc_is_trimmed_and_interpolated():
    text = "<<-EOT\n    hour() >= ${var.hour}\n      and ${local.p}\n    EOT\n"
    assert evaluate(text) == "hour() >= 9\n  and taxi\n"


@pytest.mark.parametrize("text", ["timeadd(local.p, 1)", '"%{if true}x%{endif}"', "local.missing"])
def test_what_is_not_implemented_raises(text):
    with pytest.raises((EvalError, KeyError)):
        evaluate(text)
