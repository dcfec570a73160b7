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

# Self-healing: every hour the backfill function judges every date the run ledger touched, whatever
# its calendar date (a backfilled 2021 month too), against the lake, BigQuery and Postgres, and
# republishes (with force when the lake has it) those a destination lacks or a function gave up on
# for want of retries: a loader outage longer than its retries, a finalize notification that never
# arrived, an ingest message that can no longer be delivered. At most 5 repairs per date for the same
# trouble, then status names the command for a person; dates in flight, never asked for or
# quarantined are left alone (shared/operate/repair.py, shared/operate/heal.py). It also releases
# month claims whose holder died. Every service: the ledger of one with no runs is one empty listing.
# The message carries the schedule, so status tells when the next repair comes.
resource "google_cloud_scheduler_job" "repair" {
  name        = "${local.p}-repair"
  description = "Repair every date the run ledger touched that is not complete everywhere."
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
    data = base64encode(jsonencode({
      services    = ["yellow", "green", "fhv", "fhvhv"]
      repair      = true
      from_ledger = true
      schedule    = var.repair_cron
      time_zone   = var.schedule_time_zone
    }))
  }

  depends_on = [google_project_service.apis]
}
