# The six Cloud Functions (2nd gen): one resource with an instance per entry point of main.py, all
# built from one source zip. local.functions holds what differs between them.
# Environment variables are the settings of shared/core/settings.py; each function gets exactly the ones
# `env_vars_for(<function>)` lists (tests/infra/test_terraform.py checks it).

locals {
  # Sized from `python -m bench` (README, Performance): the month split streams its daily files to
  # staging/, so the ingest function's peak no longer grows with the month: 289 MB for 31 dates of a
  # 1.37 M-row month, 324 MB at 13 M rows, 263 MB at 25 M rows (FHV's largest months). 1Gi
  # leaves room for what the bench does not cover: a parquet source (TLC's own format) is read a
  # row group at a time, and its row-group size is the publisher's choice. The first date of a
  # 25 M-row month (download, split, publish) took 34 s here, against the event maximum of
  # 540 s; SPLIT_WAIT_SECONDS (420) stays below it. A whole vCPU: pyarrow is CPU-bound.
  # Instances are bounded: ingest is polite to the TLC source, the loaders to Cloud SQL's
  # connection limit.
  default_sizing = {
    ingest        = { memory = "1Gi", cpu = "1", timeout_seconds = 540, max_instances = 3 }
    load_bigquery = { memory = "1Gi", cpu = "1", timeout_seconds = 540, max_instances = 3 }
    load_postgres = { memory = "1Gi", cpu = "1", timeout_seconds = 540, max_instances = 3 }
    backfill      = { memory = "256Mi", cpu = null, timeout_seconds = 300, max_instances = 1 }
    backfill_http = { memory = "256Mi", cpu = null, timeout_seconds = 300, max_instances = 1 }
    status        = { memory = "256Mi", cpu = null, timeout_seconds = 60, max_instances = 2 }
  }

  sizing = {
    for name, d in local.default_sizing : name => {
      memory          = try(coalesce(var.function_sizing[name].memory), d.memory)
      cpu             = try(coalesce(var.function_sizing[name].cpu), d.cpu)
      timeout_seconds = try(coalesce(var.function_sizing[name].timeout_seconds), d.timeout_seconds)
      max_instances   = try(coalesce(var.function_sizing[name].max_instances), d.max_instances)
    }
  }

  runtime = "python312"

  # Each function's name, which is also its Cloud Run service's name (resource.labels.service_name
  # of its logs and request metrics: monitoring.tf).
  function_names = { for name in keys(local.functions) : name => "${local.p}-${replace(name, "_", "-")}" }

  # Values shared by several functions' environment variables.
  pg_iam_auth        = tostring(var.pg_auth_mode == "iam")
  cloud_sql_instance = google_sql_database_instance.postgres.connection_name
  # With CLOUD_SQL_INSTANCE set the functions connect through the Cloud SQL connector, which finds
  # the instance itself; PG_HOST names the instance's address for logs and manual use only.
  pg_host = google_sql_database_instance.postgres.public_ip_address

  # Environment variables by concern, each written once. Every function gets `common` and the
  # concerns its `env` lists below. Keep these literal maps: the structural test reads them.
  env = {
    common = {
      GCP_PROJECT           = var.project_id
      LAKE_BUCKET           = google_storage_bucket.lake.name
      DEAD_LETTER_TOPIC     = google_pubsub_topic.dead_letter.name
      LOG_LEVEL             = var.log_level
      MAX_EVENT_AGE_SECONDS = tostring(var.max_event_age_seconds)
      MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
    }
    # Where the TLC month files are: ingest downloads them, status reports their URLs, backfill
    # refuses a range the source cannot serve (shared/core/coverage.py).
    source = {
      SOURCE_URL_TEMPLATE = var.source_url_template
    }
    ingest = {
      INGEST_LAG_DAYS            = tostring(var.ingest_lag_days)
      SOURCE_GRACE_DAYS          = tostring(var.source_grace_days)
      KEEP_EMPTY_PASSENGER_COUNT = tostring(var.keep_empty_passenger_count)
      SCHEMA_CONTRACT            = var.schema_contract
      DOWNLOAD_TIMEOUT_SECONDS   = tostring(var.download_timeout_seconds)
      DOWNLOAD_MAX_ATTEMPTS      = tostring(var.download_max_attempts)
      SPLIT_WAIT_SECONDS         = tostring(var.split_wait_seconds)
    }
    bigquery = {
      BQ_DATASET  = google_bigquery_dataset.nyc_taxi.dataset_id
      BQ_LOCATION = var.bq_location
    }
    bigquery_load = {
      BQ_PARTITION_EXPIRATION_DAYS = tostring(var.bq_partition_expiration_days)
    }
    # With "postgres" a function also gets its own PG_USER (local.pg_user), in password mode the
    # PG_PASSWORD secret, and the Cloud SQL grants (local.pg_readers in iam.tf).
    postgres = {
      PG_SCHEMA          = var.pg_schema
      PG_DATABASE        = google_sql_database.ny_taxi.name
      PG_HOST            = local.pg_host
      PG_PORT            = "5432"
      CLOUD_SQL_INSTANCE = local.cloud_sql_instance
      PG_IAM_AUTH        = local.pg_iam_auth
    }
    backfill = {
      INGEST_TOPIC = google_pubsub_topic.ingest.name
    }
    # The largest (service, date) count a backfill plans or a status reports.
    date_range = {
      BACKFILL_MAX_DATES = tostring(var.backfill_max_dates)
    }
  }

  # One entry per function. The key is the entry point in main.py, the sizing key (local.sizing,
  # var.function_sizing) and, with "-" for "_", the end of the function's name.
  #   trigger: "pubsub" (messages of `topic`), "lake" (no trigger of its own: the GCS notification
  #            of trips/ finalizes and a push subscription per loader call it, pubsub.tf) or "http"
  #            (no trigger; IAM-authenticated calls only).
  #   ingress: only the HTTP functions accept calls from outside Google Cloud.
  functions = {
    ingest = {
      description     = "Pub/Sub date message -> raw/ copy, cleaned month, trips/ partition of that day."
      service_account = google_service_account.ingest.email
      ingress         = "ALLOW_INTERNAL_ONLY"
      trigger         = "pubsub"
      topic           = google_pubsub_topic.ingest.id
      env             = ["source", "ingest"]
    }
    backfill = {
      description     = "Pub/Sub date-range message -> one ingest message per (service, date)."
      service_account = google_service_account.backfill.email
      ingress         = "ALLOW_INTERNAL_ONLY"
      trigger         = "pubsub"
      topic           = google_pubsub_topic.backfill.id
      env             = ["source", "bigquery", "postgres", "backfill", "date_range"]
    }
    backfill_http = {
      description     = "HTTP: the backfill request as a JSON body -> the plan (and publishes it unless dry_run)."
      service_account = google_service_account.backfill_http.email
      ingress         = "ALLOW_ALL"
      trigger         = "http"
      topic           = null
      env             = ["source", "bigquery", "postgres", "backfill", "date_range"]
    }
    load_bigquery = {
      description     = "GCS finalize of trips/{service}/pickup_date=D/data.parquet -> replace day D in BigQuery."
      service_account = google_service_account.load_bigquery.email
      ingress         = "ALLOW_INTERNAL_ONLY"
      trigger         = "lake"
      topic           = null
      env             = ["bigquery", "bigquery_load"]
    }
    load_postgres = {
      description     = "GCS finalize of trips/{service}/pickup_date=D/data.parquet -> replace day D in Cloud SQL."
      service_account = google_service_account.load_postgres.email
      ingress         = "ALLOW_INTERNAL_ONLY"
      trigger         = "lake"
      topic           = null
      env             = ["postgres"]
    }
    status = {
      description     = "HTTP: per-date state of the lake, BigQuery and Postgres (JSON, HTML or text)."
      service_account = google_service_account.status.email
      ingress         = "ALLOW_ALL"
      trigger         = "http"
      topic           = null
      env             = ["source", "bigquery", "postgres", "date_range"]
    }
  }
}

resource "google_cloudfunctions2_function" "function" {
  #checkov:skip=CKV_GCP_124:Only the HTTP functions (status, backfill_http) have ingress ALLOW_ALL: operators call them from outside Google Cloud, and every call is IAM-authenticated (run.invoker only for var.invoker_members, never allUsers). The event functions are ALLOW_INTERNAL_ONLY (local.functions; tests/infra checks it).
  for_each = local.functions

  name        = local.function_names[each.key]
  location    = var.region
  description = each.value.description

  build_config {
    runtime         = local.runtime
    entry_point     = each.key
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = local.sizing[each.key].memory
    available_cpu                    = local.sizing[each.key].cpu
    timeout_seconds                  = local.sizing[each.key].timeout_seconds
    max_instance_count               = local.sizing[each.key].max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    service_account_email            = each.value.service_account

    environment_variables = merge(
      local.env.common,
      contains(each.value.env, "postgres") ? { PG_USER = local.pg_user[each.key] } : {},
      [for concern in each.value.env : local.env[concern]]...
    )

    # PG_PASSWORD: only in password mode; with IAM database authentication there is no password.
    dynamic "secret_environment_variables" {
      for_each = contains(each.value.env, "postgres") && var.pg_auth_mode == "password" ? [google_secret_manager_secret_version.pg_password.version] : []
      content {
        key        = "PG_PASSWORD"
        project_id = var.project_id
        secret     = google_secret_manager_secret.pg_password.secret_id
        version    = secret_environment_variables.value
      }
    }
  }

  dynamic "event_trigger" {
    for_each = each.value.trigger == "pubsub" ? [each.value.topic] : []
    content {
      trigger_region        = var.region
      event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
      pubsub_topic          = event_trigger.value
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.trigger.email
    }
  }

  # The loaders ("lake") have no event trigger: a direct Cloud Storage trigger (Eventarc) can filter
  # on the bucket only, so every runs/, raw/, staging/ and claim write would wake both loaders. The
  # GCS notification of trips/ finalizes and one push subscription per loader call them (pubsub.tf).

  # What any of the six needs before it deploys (Terraform depends on the whole list for each).
  depends_on = [
    time_sleep.service_agents, # the service agents' grants have propagated (waits.tf)
    google_project_iam_member.trigger_receives_events,
    google_pubsub_topic_iam_member.gcs_publishes_lake_events,
    google_project_iam_member.build,
    google_project_iam_member.build_reads_sources,
    google_secret_manager_secret_iam_member.pg_password_readers,
    google_sql_user.iam,
  ]
}
