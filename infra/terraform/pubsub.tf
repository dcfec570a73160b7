# Topics: ingest (date messages), backfill (range messages), dead-letter (permanent failures),
# and the lake's GCS notification topic (trips/ finalizes only) with one push subscription per
# loader and a dead-letter policy.

resource "google_pubsub_topic" "ingest" {
  #checkov:skip=CKV_GCP_83:Messages are public TLC dates and ranges; Google-managed encryption, no customer key to operate.
  name                       = "${local.p}-ingest"
  message_retention_duration = "86400s"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "backfill" {
  #checkov:skip=CKV_GCP_83:Messages are public TLC date ranges; Google-managed encryption, no customer key to operate.
  name                       = "${local.p}-backfill"
  message_retention_duration = "86400s"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Dead letters carry public TLC event metadata and error text; Google-managed encryption, no customer key to operate.
  name = "${local.p}-dead-letter"

  depends_on = [google_project_service.apis]
}

# Keeps every dead letter for inspection (pull it with gcloud; see README.md).
resource "google_pubsub_subscription" "dead_letter" {
  name                       = "${local.p}-dead-letter-inspect"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = "" # never expires, even when nobody pulls for a month
  }
}

# --- lake events: trips/ finalizes -> the loaders --------------------------------------------------
# Only this wiring filters by object prefix: an Eventarc Cloud Storage trigger filters on the bucket
# only (path patterns are for Cloud Audit Logs events), so it would wake both loaders for every
# runs/, raw/, staging/ and claim write.

resource "google_pubsub_topic" "lake_events" {
  #checkov:skip=CKV_GCP_83:GCS object metadata of public TLC data; Google-managed encryption, no customer key to operate.
  name                       = "${local.p}-lake-events"
  message_retention_duration = "86400s"

  depends_on = [google_project_service.apis]
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  depends_on = [google_project_service.apis]
}

# Only finalized objects under trips/ (the daily partitions) reach the loaders.
resource "google_storage_notification" "lake_trips" {
  bucket             = google_storage_bucket.lake.name
  topic              = google_pubsub_topic.lake_events.id
  payload_format     = "JSON_API_V1"
  event_types        = ["OBJECT_FINALIZE"]
  object_name_prefix = "trips/"

  depends_on = [google_pubsub_topic_iam_member.gcs_publishes_lake_events]
}

locals {
  # Loader functions (trigger "lake" in functions.tf) and the URL their push subscription calls.
  pubsub_loaders = {
    for name, fn in local.functions : name => google_cloudfunctions2_function.function[name].service_config[0].uri
    if fn.trigger == "lake"
  }
}

resource "google_pubsub_subscription" "loader" {
  for_each = local.pubsub_loaders

  name                       = "${local.p}-lake-${replace(each.key, "_", "-")}"
  topic                      = google_pubsub_topic.lake_events.id
  ack_deadline_seconds       = 600 # the loaders' timeout is 540 s
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = each.value
    oidc_token {
      service_account_email = google_service_account.trigger.email
      audience              = each.value
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_pubsub_topic_iam_member.pubsub_agent_dead_letters]
}
