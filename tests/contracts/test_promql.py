"""Every PromQL string infra/terraform sends parses, and names a metric the configuration creates.

Monitoring parses PromQL only when the policy or dashboard is created; a stray parenthesis or a
metric name off by one character fails the first apply, or charts nothing forever. The queries
are the rendered ones (alert conditions and dashboard charts), parsed with promql-parser (pinned in
requirements-dev.txt). A log-based metric `taxi_x` is `logging_googleapis_com:user_taxi_x` in
PromQL; a distribution adds `_sum`, `_count` or `_bucket`.
"""

from __future__ import annotations

import json

import promql_parser
import pytest

from tests.contracts.terraform_requests import config

USER_METRIC = "logging_googleapis_com:user_"
DISTRIBUTION_SUFFIXES = ("_sum", "_count", "_bucket")


def queries() -> list[tuple[str, str]]:
    """(where, query) of every PromQL string in the alert policies and the dashboard."""
    found = []
    for instance in config().instances("google_monitoring_alert_policy"):
        for i, condition in enumerate(instance.values.get("conditions", [])):
            for promql in condition.get("condition_prometheus_query_language", []):
                found.append((f"{instance.address}.conditions[{i}]", promql["query"]))
    (dashboard,) = config().instances("google_monitoring_dashboard")
    for i, tile in enumerate(json.loads(dashboard.values["dashboard_json"])["mosaicLayout"]["tiles"]):
        for j, data_set in enumerate(tile["widget"].get("xyChart", {}).get("dataSets", [])):
            query = data_set["timeSeriesQuery"].get("prometheusQuery")
            if query:
                found.append((f"dashboard tiles[{i}].dataSets[{j}]", query))
    return found


def metric_names(query: str) -> set[str]:
    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(query), visit)
    return names


def log_metrics() -> dict[str, str]:
    """PromQL name -> value type of every google_logging_metric."""
    out = {}
    for metric in config().instances("google_logging_metric"):
        (descriptor,) = metric.values["metric_descriptor"]
        out[USER_METRIC + metric.values["name"]] = descriptor["value_type"]
    return out


def test_queries_are_found():
    places = [where for where, _ in queries()]
    assert any(w.startswith("google_monitoring_alert_policy.") for w in places), places
    assert any(w.startswith("dashboard ") for w in places), places


@pytest.mark.parametrize(("where", "query"), [pytest.param(w, q, id=w) for w, q in queries()])
def test_query_parses_and_names_a_declared_metric(where, query):
    promql_parser.parse(query)  # raises ValueError with the parser's message
    declared = log_metrics()
    for name in metric_names(query):
        if not name.startswith(USER_METRIC):
            continue
        base = next((name.removesuffix(s) for s in DISTRIBUTION_SUFFIXES if name.removesuffix(s) in declared), name)
        assert base in declared, f"{where}: {name} is no google_logging_metric of infra/terraform"
        if base != name:
            assert declared[base] == "DISTRIBUTION", f"{where}: {name} needs a DISTRIBUTION metric"


@pytest.mark.parametrize(
    ("query", "error"),
    [("sum(increase(x[1d])", "unclosed left parenthesis"), ("sum by service (x)", None)],
)
def test_the_parser_refuses_broken_queries(query, error):
    with pytest.raises(ValueError, match=error):
        promql_parser.parse(query)


def test_a_misspelled_metric_is_caught():
    declared = next(iter(log_metrics()))
    assert metric_names(f"sum({declared}_sum)") == {f"{declared}_sum"}
    with pytest.raises(AssertionError, match="is no google_logging_metric"):
        test_query_parses_and_names_a_declared_metric("test", f"sum({declared}x)")
