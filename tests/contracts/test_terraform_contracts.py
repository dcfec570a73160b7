"""infra/terraform's monitoring and scheduler requests, checked against Google's discovery documents.

No emulator runs Cloud Monitoring, Cloud Logging's metric API or Cloud Scheduler, and `terraform
validate` checks only the provider's schema: a dashboard JSON field Monitoring refuses, or a rule
written in a field's description, fails only at the first `terraform apply`. Each resource
instance is rendered into the body the provider sends (tests/contracts/terraform_requests.py) and
validated against its API method's request schema. The dashboard is one body, checked tile by
tile so that each failure names its chart.
"""

from __future__ import annotations

import json

import pytest

from tests.contracts.discovery import document, report
from tests.contracts.terraform_requests import config, scheduler_job_name, to_rest

# resource type -> (discovery document, method whose request body the provider's create sends)
METHODS = {
    "google_monitoring_alert_policy": ("monitoring.v3", "monitoring.projects.alertPolicies.create"),
    "google_monitoring_notification_channel": ("monitoring.v3", "monitoring.projects.notificationChannels.create"),
    "google_logging_metric": ("logging.v2", "logging.projects.metrics.create"),
    "google_cloud_scheduler_job": ("cloudscheduler.v1", "cloudscheduler.projects.locations.jobs.create"),
}
DASHBOARD = ("monitoring.v1", "monitoring.projects.dashboards.create")
# The dashboard tiles with xyChart thresholds: before issue 20 (defect 4) they set direction and colour.
THRESHOLD_TILES = {"Dead-letter backlog", "Cloud SQL disk utilization", "Cloud SQL connections (backends)"}


def rest_body(kind, values):
    api, method = METHODS[kind]
    body = to_rest(values, document(api), document(api).request_schema(method), kind)
    if kind == "google_cloud_scheduler_job":
        body["name"] = scheduler_job_name(values, config().given["project_id"], config()._var("region"))
    return body


def resource_cases():
    return [
        pytest.param(instance.type, instance.values, id=instance.address)
        for kind in sorted(METHODS)
        for instance in config().instances(kind)
    ]


def test_every_kind_of_resource_is_rendered():
    kinds = {case.values[0] for case in resource_cases()}
    assert kinds == set(METHODS), f"no instance of {set(METHODS) - kinds}"
    assert len(config().instances("google_monitoring_dashboard")) == 1


@pytest.mark.parametrize(("kind", "values"), resource_cases())
def test_request_body_matches_the_discovery_document(kind, values):
    api, method = METHODS[kind]
    problems = document(api).validate_request(rest_body(kind, values), method, kind)
    assert not problems, report(problems)


def dashboard():
    (instance,) = config().instances("google_monitoring_dashboard")
    return json.loads(instance.values["dashboard_json"])


def tile_cases():
    cases = [pytest.param(None, id="dashboard outside its tiles")]
    for i, tile in enumerate(dashboard()["mosaicLayout"]["tiles"]):
        title = tile["widget"].get("title", f"tile {i}")
        title = next((t for t in THRESHOLD_TILES if title.startswith(t)), title)
        cases.append(pytest.param(i, id=title))
    return cases


@pytest.mark.parametrize("tile", tile_cases())
def test_dashboard_matches_the_discovery_document(tile):
    api, method = DASHBOARD
    problems = document(api).validate_request(dashboard(), method, "dashboard")
    tiles = "dashboard.mosaicLayout.tiles["
    if tile is None:
        problems = [p for p in problems if not p.path.startswith(tiles)]
    else:
        problems = [p for p in problems if p.path.startswith(f"{tiles}{tile}]")]
    assert not problems, report(problems)


def promql_conditions():
    """(address, condition) of every alert condition written in PromQL."""
    found = []
    for instance in config().instances("google_monitoring_alert_policy"):
        for condition in rest_body(instance.type, instance.values).get("conditions", []):
            if "conditionPrometheusQueryLanguage" in condition:
                found.append((instance.address, condition["conditionPrometheusQueryLanguage"]))
    return found


def test_the_configuration_has_promql_conditions():
    assert promql_conditions(), "no PromQL alert condition found: the checks below would check nothing"


@pytest.mark.parametrize(
    "address",
    [pytest.param(a, id=a) for a, _ in promql_conditions()],
)
def test_promql_conditions_on_log_metrics_skip_metric_validation(address):
    """A log-based metric created in the same apply has no descriptor yet when the policy is created
    ("Cannot find metric(s)", up to 10 minutes): monitoring.v3 PrometheusQueryLanguageCondition's
    disableMetricValidation exists for this ("configuring alerting policies using Terraform")."""
    for where, condition in promql_conditions():
        if where == address and "logging_googleapis_com:user_" in condition["query"]:
            assert condition.get("disableMetricValidation") is True, f"{address}: set disable_metric_validation = true"
