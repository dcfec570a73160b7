# Propagation waits: what Google makes eventually consistent, the first apply waits for, the way the
# provider documents it (time_sleep from hashicorp/time, and depends_on on what must have propagated).
# A time_sleep waits when it is created (and when its triggers change), never on later applies.
# Both waits run beside the Cloud SQL instance's creation (~10 minutes), which the functions and the
# Cloud SQL alerts wait for anyway, so they add little or nothing to the first apply's wall time.

# (1) The event functions' triggers (Eventarc) fail to create on a new project until the service
# agents' grants have propagated: the Eventarc service agent's own role (granted by Google when the
# API is enabled), the Pub/Sub service agent's token creation for the trigger identity, and the Cloud
# Storage service agent's publishing of object events ("Permission denied while using the Eventarc
# Service Agent. If you recently started to use Eventarc, it may take a few minutes",
# hashicorp/terraform-provider-google#25294). The functions depend on this wait (functions.tf).
resource "time_sleep" "service_agents" {
  create_duration = var.service_agent_propagation_wait

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.trigger_receives_events,
    google_service_account_iam_member.pubsub_agent_signs_as_trigger,
    google_pubsub_topic_iam_member.gcs_publishes_lake_events,
    google_pubsub_topic_iam_member.pubsub_agent_dead_letters,
  ]
}

# (2) An alert policy on a log-based metric created in the same apply fails with "Cannot find
# metric(s) ... it could take up to 10 minutes to become available" (hashicorp/terraform-provider-google#10325).
# The alerts that use them (function_errors, freshness) depend on this wait; the PromQL condition also
# sets disable_metric_validation. A metric added later makes the wait run again (triggers).
resource "time_sleep" "log_metrics" {
  create_duration = var.log_metric_propagation_wait

  triggers = {
    metrics = join(",", [
      google_logging_metric.lake_rows.id,
      google_logging_metric.rejected_rows.id,
      google_logging_metric.loaded_rows.id,
      google_logging_metric.days_loaded.id,
      google_logging_metric.dead_lettered.id,
      google_logging_metric.retried.id,
      google_logging_metric.source_freshness.id,
    ])
  }

  depends_on = [
    google_logging_metric.lake_rows,
    google_logging_metric.rejected_rows,
    google_logging_metric.loaded_rows,
    google_logging_metric.days_loaded,
    google_logging_metric.dead_lettered,
    google_logging_metric.retried,
    google_logging_metric.source_freshness,
  ]
}
