"""The validator catches each kind of error it claims to, on Google's real schemas.

Each case is a small body that is valid except for one thing, checked against the discovery
documents the contract tests use; the valid bodies prove the validator is not failing everything.
The documents themselves are checked against the hashes in discovery/SOURCES.md.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.contracts import description_rules
from tests.contracts.discovery import DOCUMENTS, document

FILTER = 'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages"'


def xy_chart(**extra):
    """A dashboard of one XyChart tile, with `extra` fields in the chart."""
    chart = {"dataSets": [{"plotType": "LINE", "timeSeriesQuery": {"timeSeriesFilter": {"filter": FILTER}}}]}
    return {
        "displayName": "d",
        "mosaicLayout": {"columns": 48, "tiles": [{"xPos": 0, "widget": {"xyChart": chart | extra}}]},
    }


def dashboard_problems(body):
    return [str(p) for p in document("monitoring.v1").validate(body, "Dashboard", "dashboard")]


def test_a_valid_dashboard_passes():
    assert dashboard_problems(xy_chart(thresholds=[{"value": 1, "label": "limit"}])) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            xy_chart(thresholds=[{"value": 0, "direction": "ABOVE"}]),
            "dashboard.mosaicLayout.tiles[0].widget.xyChart.thresholds[0].direction: not allowed in a XyChart",
        ),
        (
            xy_chart(thresholds=[{"value": 0, "color": "RED"}]),
            "dashboard.mosaicLayout.tiles[0].widget.xyChart.thresholds[0].color: not allowed in a XyChart",
        ),
        (xy_chart(thresholdz=[]), "xyChart.thresholdz: unknown field: XyChart has no field 'thresholdz'"),
        (xy_chart(thresholds=[{"value": "0"}]), "thresholds[0].value: expected a number (double), got a string"),
        (xy_chart(thresholds={"value": 0}), "xyChart.thresholds: expected an array, got an object"),
        (xy_chart(timeshiftDuration="1 day"), "xyChart.timeshiftDuration: expected a google-duration"),
        (xy_chart(chartOptions={"mode": "COLOUR"}), "xyChart.chartOptions.mode: 'COLOUR' is not one of"),
        (xy_chart(chartOptions={"mode": 1}), "xyChart.chartOptions.mode: expected a string, got a int"),
        (xy_chart(thresholds=[{"targetAxis": "Y1", "value": 0}]), None),
        ({"mosaicLayout": {"columns": 48}}, "dashboard.displayName: required field of Dashboard is missing"),
        (
            {"displayName": "d", "mosaicLayout": {"columns": 49}},
            "columns: 49 is out of range: must be between 1 and 48",
        ),
        ({"displayName": "d", "mosaicLayout": {"tiles": [{"xPos": -1}]}}, "tiles[0].xPos: -1 is out of range"),
        ({"displayName": "d", "mosaicLayout": {"tiles": [{"width": 1.5}]}}, "tiles[0].width: expected an integer"),
        ({"displayName": "d", "labels": {"team": 1}}, "dashboard.labels.team: expected a string"),
    ],
)
def test_each_kind_of_error_is_reported_with_its_path(body, expected):
    problems = dashboard_problems(body)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), report_text(problems)
        assert len(problems) == 1, report_text(problems)


def report_text(problems):
    return "\n".join(problems) or "(no problem found)"


def test_a_threshold_is_checked_by_where_it_is():
    """A Scorecard's thresholds may have a direction and a colour, but no target axis."""
    scorecard = {"timeSeriesQuery": {"timeSeriesFilter": {"filter": FILTER}}, "thresholds": []}
    body = {"displayName": "d", "mosaicLayout": {"tiles": [{"widget": {"scorecard": scorecard}}]}}
    scorecard["thresholds"] = [{"value": 1, "direction": "ABOVE", "color": "RED"}]
    assert dashboard_problems(body) == []
    scorecard["thresholds"] = [{"value": 1, "targetAxis": "Y2"}]
    assert dashboard_problems(body) == [
        "dashboard.mosaicLayout.tiles[0].widget.scorecard.thresholds[0].targetAxis: not allowed in a Scorecard "
        "(Target axis is not allowed in a Scorecard)"
    ]


def test_enum_values_not_allowed_in_requests_are_refused():
    body = {"displayName": "d", "mosaicLayout": {"tiles": [{"widget": {"scorecard": {"thresholds": [{}]}}}]}}
    body["mosaicLayout"]["tiles"][0]["widget"]["scorecard"]["thresholds"][0]["color"] = "COLOR_UNSPECIFIED"
    problems = dashboard_problems(body)
    assert any(
        "color: 'COLOR_UNSPECIFIED': Color is unspecified. Not allowed in well-formed requests." in p for p in problems
    )


def test_output_only_and_int64_fields():
    bigquery = document("bigquery.v2")
    job = {"configuration": {"query": {"query": "SELECT 1"}, "jobTimeoutMs": "600000"}, "status": {"state": "DONE"}}
    problems = [str(p) for p in bigquery.validate(job, "Job", "job")]
    assert problems == ["job.status: output only: the API ignores or refuses it in a request"]
    job = {"configuration": {"query": {"query": "SELECT 1"}, "jobTimeoutMs": "ten minutes"}}
    assert [str(p) for p in bigquery.validate(job, "Job", "job")] == [
        "job.configuration.jobTimeoutMs: expected an int64 (a decimal string), got 'ten minutes'"
    ]


def test_scheduler_retry_count_and_alignment_period_limits():
    scheduler = document("cloudscheduler.v1")
    problems = [str(p) for p in scheduler.validate({"retryConfig": {"retryCount": 6}}, "Job", "job")]
    assert problems == [
        "job.retryConfig.retryCount: 6 is out of range: Values greater than 5 and negative values are not allowed"
    ]
    condition = {
        "filter": FILTER,
        "comparison": "COMPARISON_GT",
        "duration": "0s",
        "aggregations": [{"alignmentPeriod": "30s"}],
    }
    problems = [str(p) for p in document("monitoring.v3").validate(condition, "MetricThreshold", "threshold")]
    assert problems == ["threshold.aggregations[0].alignmentPeriod: '30s' is too short: must be at least 60 seconds"]


def test_requests_are_matched_to_their_discovery_method():
    bigquery = document("bigquery.v2")
    assert bigquery.method_for("POST", "/projects/p/jobs") == "bigquery.jobs.insert"
    assert bigquery.method_for("POST", "/projects/p/datasets/d/tables") == "bigquery.tables.insert"
    assert bigquery.method_for("PATCH", "/projects/p/datasets/d/tables/t") == "bigquery.tables.patch"
    assert bigquery.request_schema("bigquery.jobs.insert") == "Job"
    with pytest.raises(AssertionError, match="no bigquery.v2 method"):
        bigquery.method_for("POST", "/projects/p/nothing")


@pytest.mark.parametrize("name", sorted(description_rules.PATTERNS))
def test_every_description_rule_still_matches_a_description(name):
    """A rule whose sentence Google reworded would silently check nothing."""
    pattern = description_rules.PATTERNS[name]
    texts = (
        prop.get("description", "")
        for path in DOCUMENTS.glob("*.json")
        for schema in document(path.stem).schemas.values()
        for prop in schema.get("properties", {}).values()
    )
    assert any(pattern.search(text) for text in texts), f"no description says {pattern.pattern!r} any more"


def test_documents_are_the_ones_sources_md_names():
    listed = dict(re.findall(r"\| `([\w.]+\.json)` \| `([0-9a-f]{64})` \|", (DOCUMENTS / "SOURCES.md").read_text()))
    present = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in DOCUMENTS.glob("*.json")}
    assert present == listed
