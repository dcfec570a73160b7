# Daily ingest: one job per service publishes {"service": "<service>"} to the ingest topic; with no
# date in the message, ingest takes today minus INGEST_LAG_DAYS.

resource "google_cloud_scheduler_job" "daily_ingest" {
  for_each = toset(var.services)

  name        = "${local.p}-daily-${each.value}"
  description = "Publish the daily ingest message for ${each.value} trips."
  region      = var.region
  schedule    = var.schedule_cron
  time_zone   = var.schedule_time_zone
  paused      = var.schedule_paused

  retry_config {
    retry_count          = 3
    min_backoff_duration = "30s"
    max_backoff_duration = "600s"
  }

  pubsub_target {
    topic_name = google_pubsub_topic.ingest.id
    data       = base64encode(jsonencode({ service = each.value }))
  }

  depends_on = [google_project_service.apis]
}

# Self-healing: every hour the backfill function republishes, with force, the recent dates whose
# partition is in the lake but not loaded everywhere: a loader outage longer than its retries, or a
# finalize notification that never arrived, would otherwise leave a day partial for good. Dates
# being worked on, never ingested (their month may not be published yet) or quarantined are left
# alone (shared/operate/backfill.py, `repair`).
resource "google_cloud_scheduler_job" "repair" {
  name        = "${local.p}-repair"
  description = "Republish recent dates whose partition is not loaded everywhere."
  region      = var.region
  schedule    = var.repair_cron
  time_zone   = var.schedule_time_zone
  paused      = var.schedule_paused

  retry_config {
    retry_count          = 3
    min_backoff_duration = "30s"
    max_backoff_duration = "600s"
  }

  pubsub_target {
    topic_name = google_pubsub_topic.backfill.id
    data       = base64encode(jsonencode({ services = var.services, last_days = var.repair_last_days, repair = true }))
  }

  depends_on = [google_project_service.apis]
}
