# The daily catch-up: one message to the backfill topic asks again, for every service, for each date
# of the last catch_up_days that is not complete: never asked for, awaiting its source (TLC publishes a
# month about two months after it ends: a 404 within source_grace_days is awaiting_source, not an
# error), or one the repair would republish. So each month is loaded the day TLC publishes it, and
# dates in flight or left to a person (a permanent dead letter) are left alone. Before it publishes, it
# logs each service's freshness against what the source has published (shared/operate/freshness.py),
# which the freshness alert reads (monitoring.tf). catch_up_days must exceed source_grace_days, so a
# month that never appears is still asked for once its 404 became an error (source_not_found).
resource "google_cloud_scheduler_job" "daily_catch_up" {
  name        = "${local.p}-daily-catch-up"
  description = "Ask again for every date of the last ${var.catch_up_days} days not loaded yet (months TLC publishes late)."
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
    topic_name = google_pubsub_topic.backfill.id
    data = base64encode(jsonencode({
      services  = var.services
      last_days = var.catch_up_days
      catch_up  = true
    }))
  }

  lifecycle {
    precondition {
      condition     = var.catch_up_days > var.source_grace_days
      error_message = "catch_up_days must exceed source_grace_days: a month that never appears must still be asked for once its 404 is an error."
    }
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
