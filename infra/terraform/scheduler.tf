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
