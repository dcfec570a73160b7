# Identities and least-privilege grants. One service account per function, one for the triggers,
# one for the function builds; no keys anywhere; no primitive roles; additive grants only
# (google_*_iam_member; never _binding or _policy, which would overwrite grants made elsewhere).

# --- service accounts -----------------------------------------------------------------------------

resource "google_service_account" "ingest" {
  account_id   = "${local.p}-ingest"
  display_name = "nyc-taxi ingest function"
  description  = "Runs ingest: writes the lake bucket, publishes dead letters."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "backfill" {
  account_id   = "${local.p}-backfill"
  display_name = "nyc-taxi backfill function"
  description  = "Runs backfill: publishes ingest messages and dead letters, reads the status for only_missing."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "backfill_http" {
  account_id   = "${local.p}-backfill-http"
  display_name = "nyc-taxi backfill_http function"
  description  = "Runs backfill_http: publishes ingest messages, reads the status for only_missing."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "load_bigquery" {
  account_id   = "${local.p}-load-bq"
  display_name = "nyc-taxi load_bigquery function"
  description  = "Runs load_bigquery: reads the lake, writes the BigQuery dataset, publishes dead letters."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "load_postgres" {
  account_id   = "${local.p}-load-pg"
  display_name = "nyc-taxi load_postgres function"
  description  = "Runs load_postgres: reads the lake, writes Cloud SQL, publishes dead letters."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "status" {
  account_id   = "${local.p}-status"
  display_name = "nyc-taxi status function"
  description  = "Runs status: reads the lake, BigQuery and Cloud SQL."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "trigger" {
  account_id   = "${local.p}-trigger"
  display_name = "nyc-taxi event triggers"
  description  = "Identity of the Eventarc triggers and Pub/Sub push subscriptions that invoke the event functions."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "build" {
  account_id   = "${local.p}-build"
  display_name = "nyc-taxi function builds"
  description  = "Cloud Build identity that turns the source zip into the functions' images."
  depends_on   = [google_project_service.apis]
}

locals {
  # IAM members: each function's service account (local.functions), the triggers', the builds'.
  sa = merge(
    { for name, fn in local.functions : name => "serviceAccount:${fn.service_account}" },
    {
      trigger = "serviceAccount:${google_service_account.trigger.email}"
      build   = "serviceAccount:${google_service_account.build.email}"
    },
  )

  # Functions that read PostgreSQL (the status of a date, only_missing backfills, the loader): those
  # with the "postgres" environment (functions.tf), so the grants and the settings go together.
  pg_readers = { for name, fn in local.functions : name => fn.service_account if contains(fn.env, "postgres") }

  # Functions that read the lake and BigQuery for a status (status itself and only_missing backfills).
  status_readers = {
    backfill      = local.sa.backfill
    backfill_http = local.sa.backfill_http
    status        = local.sa.status
  }

  # Cloud SQL grants are limited to this pipeline's instance.
  sql_instance_condition = "resource.name == \"projects/${var.project_id}/instances/${google_sql_database_instance.postgres.name}\" && resource.type == \"sqladmin.googleapis.com/Instance\""
}

# --- lake bucket ------------------------------------------------------------------------------------

# ingest creates, overwrites (deletes) and reads objects (no bucket or IAM admin); the loaders read
# what they load; the status readers (status, only_missing backfills) read what is there.
resource "google_storage_bucket_iam_member" "lake" {
  for_each = {
    ingest        = { role = "roles/storage.objectUser", member = local.sa.ingest }
    load_bigquery = { role = "roles/storage.objectViewer", member = local.sa.load_bigquery }
    load_postgres = { role = "roles/storage.objectViewer", member = local.sa.load_postgres }
    backfill      = { role = "roles/storage.objectViewer", member = local.sa.backfill }
    backfill_http = { role = "roles/storage.objectViewer", member = local.sa.backfill_http }
    status        = { role = "roles/storage.objectViewer", member = local.sa.status }
  }

  bucket = google_storage_bucket.lake.name
  role   = each.value.role
  member = each.value.member
}

# The loaders and the backfills write their run ledger records (shared/core/ledger.py: the loaders'
# attempts, the backfills' `queued` dates), and nothing else: objects under runs/ only. ingest's
# objectUser already covers runs/.
resource "google_storage_bucket_iam_member" "loaders_write_runs" {
  for_each = {
    load_bigquery = local.sa.load_bigquery
    load_postgres = local.sa.load_postgres
    backfill      = local.sa.backfill
    backfill_http = local.sa.backfill_http
  }

  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectUser"
  member = each.value

  condition {
    title      = "only-run-ledger"
    expression = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.lake.name}/objects/runs/\")"
  }
}

# The scheduled repair runs as the backfill function and releases month claims whose holder died,
# with the split each one left (shared/ingest/stale_claims.py): deletes under staging/ only, each
# conditioned on the generation it read. No predefined role deletes without also creating, so this
# is objectUser narrowed to staging/, which holds only files derived again from raw/.
resource "google_storage_bucket_iam_member" "repair_releases_stale_claims" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectUser"
  member = local.sa.backfill

  condition {
    title      = "only-staging"
    expression = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.lake.name}/objects/staging/\")"
  }
}

# A dead letter whose original event is over 1 MB keeps the event whole in the lake
# (shared/core/runtime.py: quarantine/events/{function}/ID.json). The functions that dead-letter and
# have no bucket-wide write (ingest's objectUser covers it) may create objects there, each under its
# own prefix only: objectCreator (create, never read, overwrite or delete).
resource "google_storage_bucket_iam_member" "dead_letters_store_large_events" {
  for_each = {
    load_bigquery = local.sa.load_bigquery
    load_postgres = local.sa.load_postgres
    backfill      = local.sa.backfill
  }

  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectCreator"
  member = each.value

  condition {
    title      = "only-own-quarantined-events"
    expression = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.lake.name}/objects/quarantine/events/${each.key}/\")"
  }
}

# --- Pub/Sub ------------------------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "backfills_publish_ingest" {
  for_each = {
    backfill      = local.sa.backfill
    backfill_http = local.sa.backfill_http
  }

  topic  = google_pubsub_topic.ingest.id
  role   = "roles/pubsub.publisher"
  member = each.value
}

# The event functions dead-letter permanent failures themselves (shared/core/runtime.py).
resource "google_pubsub_topic_iam_member" "functions_publish_dead_letters" {
  for_each = {
    ingest        = local.sa.ingest
    backfill      = local.sa.backfill
    load_bigquery = local.sa.load_bigquery
    load_postgres = local.sa.load_postgres
  }

  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = each.value
}

# --- BigQuery ---------------------------------------------------------------------------------------

# load_bigquery creates its tables and replaces partitions; the status readers read them.
resource "google_bigquery_dataset_iam_member" "nyc_taxi" {
  for_each = {
    load_bigquery = { role = "roles/bigquery.dataEditor", member = local.sa.load_bigquery }
    backfill      = { role = "roles/bigquery.dataViewer", member = local.sa.backfill }
    backfill_http = { role = "roles/bigquery.dataViewer", member = local.sa.backfill_http }
    status        = { role = "roles/bigquery.dataViewer", member = local.sa.status }
  }

  dataset_id = google_bigquery_dataset.nyc_taxi.dataset_id
  role       = each.value.role
  member     = each.value.member
}

# Running load and query jobs is a project-level permission (jobs have no finer resource).
resource "google_project_iam_member" "bigquery_job_users" {
  for_each = merge(local.status_readers, { load_bigquery = local.sa.load_bigquery })

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = each.value
}

# --- Cloud SQL ------------------------------------------------------------------------------------

resource "google_project_iam_member" "sql_clients" {
  for_each = local.pg_readers

  project = var.project_id
  role    = "roles/cloudsql.client" # connect through the Cloud SQL connector
  member  = "serviceAccount:${each.value}"

  condition {
    title      = "only-${local.p}-postgres"
    expression = local.sql_instance_condition
  }
}

resource "google_project_iam_member" "sql_instance_users" {
  for_each = var.pg_auth_mode == "iam" ? local.pg_readers : {}

  project = var.project_id
  role    = "roles/cloudsql.instanceUser" # log in as an IAM database user
  member  = "serviceAccount:${each.value}"

  condition {
    title      = "only-${local.p}-postgres"
    expression = local.sql_instance_condition
  }
}

resource "google_secret_manager_secret_iam_member" "pg_password_readers" {
  for_each = var.pg_auth_mode == "password" ? local.pg_readers : {}

  secret_id = google_secret_manager_secret.pg_password.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${each.value}"
}

# --- triggers -----------------------------------------------------------------------------------------

resource "google_project_iam_member" "trigger_receives_events" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = local.sa.trigger
}

# The trigger identity may invoke the event functions, and only those.
resource "google_cloud_run_v2_service_iam_member" "trigger_invokes" {
  for_each = { for name, fn in local.functions : name => google_cloudfunctions2_function.function[name].name if fn.trigger != "http" }

  project  = var.project_id
  location = var.region
  name     = each.value
  role     = "roles/run.invoker"
  member   = local.sa.trigger
}

# Pub/Sub signs the push requests' OIDC tokens as the trigger identity.
resource "google_service_account_iam_member" "pubsub_agent_signs_as_trigger" {
  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# Cloud Storage publishes the lake's trips/ finalize notifications to the lake-events topic only.
resource "google_pubsub_topic_iam_member" "gcs_publishes_lake_events" {
  topic  = google_pubsub_topic.lake_events.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# Dead-letter policy: the Pub/Sub service agent forwards undeliverable lake events.
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_acks_loader_subscriptions" {
  for_each = google_pubsub_subscription.loader

  subscription = each.value.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# --- HTTP callers -----------------------------------------------------------------------------------

resource "google_cloud_run_v2_service_iam_member" "status_invokers" {
  for_each = toset(var.invoker_members)

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function["status"].name
  role     = "roles/run.invoker"
  member   = each.value
}

resource "google_cloud_run_v2_service_iam_member" "backfill_http_invokers" {
  for_each = toset(var.invoker_members)

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function["backfill_http"].name
  role     = "roles/run.invoker"
  member   = each.value
}

# --- function builds --------------------------------------------------------------------------------

# The build writes its logs and pushes images to the gcf-artifacts repository Cloud Functions creates.
resource "google_project_iam_member" "build" {
  for_each = {
    logs   = "roles/logging.logWriter"
    images = "roles/artifactregistry.writer"
  }

  project = var.project_id
  role    = each.value
  member  = local.sa.build
}

# The build reads the source zip (ours, then the copy Cloud Functions stages in its gcf-v2-* buckets),
# and nothing else in Cloud Storage.
resource "google_project_iam_member" "build_reads_sources" {
  project = var.project_id
  role    = "roles/storage.objectAdmin"
  member  = local.sa.build

  condition {
    title      = "only-function-source-buckets"
    expression = "resource.name.startsWith(\"projects/_/buckets/${local.source_bucket_name}\") || resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-\") || resource.name.startsWith(\"projects/_/buckets/gcf-v2-uploads-${data.google_project.this.number}\")"
  }
}
