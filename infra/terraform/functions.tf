# The six Cloud Functions (2nd gen), one source zip, one entry point each (main.py).
# Environment variables are the settings of shared/settings.py; each function gets exactly the ones
# `env_vars_for(<function>)` lists (tests/infra/test_terraform.py checks it).

locals {
  # Sized from the ingest benchmark (benchmarks/bench_ingest.py: one month split stays well under
  # 300 MB peak RSS; a full month file of yellow trips is ~1.5 M rows): the data functions get
  # 1Gi and a whole vCPU (pandas/pyarrow are CPU-bound) and the event maximum of 540 s. Instances
  # are bounded: ingest is polite to the TLC source, the loaders to Cloud SQL's connection limit.
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

  # Values shared by several functions' environment variables.
  pg_iam_auth        = tostring(var.pg_auth_mode == "iam")
  cloud_sql_instance = google_sql_database_instance.postgres.connection_name
  # With CLOUD_SQL_INSTANCE set the functions connect through the Cloud SQL connector, which finds
  # the instance itself; PG_HOST names the instance's address for logs and manual use only.
  pg_host = google_sql_database_instance.postgres.public_ip_address
}

resource "google_cloudfunctions2_function" "ingest" {
  name        = "${local.p}-ingest"
  location    = var.region
  description = "Pub/Sub date message -> raw/ copy, cleaned month, trips/ partition of that day."

  build_config {
    runtime         = local.runtime
    entry_point     = "ingest"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = local.sizing.ingest.memory
    available_cpu                    = local.sizing.ingest.cpu
    timeout_seconds                  = local.sizing.ingest.timeout_seconds
    max_instance_count               = local.sizing.ingest.max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.ingest.email

    environment_variables = {
      GCP_PROJECT                = var.project_id
      LAKE_BUCKET                = google_storage_bucket.lake.name
      DEAD_LETTER_TOPIC          = google_pubsub_topic.dead_letter.name
      LOG_LEVEL                  = var.log_level
      MAX_EVENT_AGE_SECONDS      = tostring(var.max_event_age_seconds)
      SOURCE_URL_TEMPLATE        = var.source_url_template
      INGEST_LAG_DAYS            = tostring(var.ingest_lag_days)
      KEEP_EMPTY_PASSENGER_COUNT = tostring(var.keep_empty_passenger_count)
      DOWNLOAD_TIMEOUT_SECONDS   = tostring(var.download_timeout_seconds)
      DOWNLOAD_MAX_ATTEMPTS      = tostring(var.download_max_attempts)
    }
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.ingest.id
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email
  }

  depends_on = [
    google_project_iam_member.trigger_receives_events,
    google_project_iam_member.build_writes_logs,
    google_project_iam_member.build_writes_images,
    google_project_iam_member.build_reads_sources,
  ]
}

resource "google_cloudfunctions2_function" "backfill" {
  name        = "${local.p}-backfill"
  location    = var.region
  description = "Pub/Sub date-range message -> one ingest message per (service, date)."

  build_config {
    runtime         = local.runtime
    entry_point     = "backfill"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = local.sizing.backfill.memory
    available_cpu                    = local.sizing.backfill.cpu
    timeout_seconds                  = local.sizing.backfill.timeout_seconds
    max_instance_count               = local.sizing.backfill.max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.backfill.email

    environment_variables = {
      GCP_PROJECT           = var.project_id
      LAKE_BUCKET           = google_storage_bucket.lake.name
      DEAD_LETTER_TOPIC     = google_pubsub_topic.dead_letter.name
      LOG_LEVEL             = var.log_level
      MAX_EVENT_AGE_SECONDS = tostring(var.max_event_age_seconds)
      BQ_DATASET            = google_bigquery_dataset.nyc_taxi.dataset_id
      BQ_LOCATION           = var.bq_location
      PG_SCHEMA             = var.pg_schema
      PG_DATABASE           = google_sql_database.ny_taxi.name
      PG_USER               = local.pg_user.backfill
      PG_HOST               = local.pg_host
      PG_PORT               = "5432"
      CLOUD_SQL_INSTANCE    = local.cloud_sql_instance
      PG_IAM_AUTH           = local.pg_iam_auth
      INGEST_TOPIC          = google_pubsub_topic.ingest.name
      BACKFILL_MAX_DATES    = tostring(var.backfill_max_dates)
    }

    # PG_PASSWORD: only in password mode; with IAM database authentication there is no password.
    dynamic "secret_environment_variables" {
      for_each = var.pg_auth_mode == "password" ? [google_secret_manager_secret_version.pg_password.version] : []
      content {
        key        = "PG_PASSWORD"
        project_id = var.project_id
        secret     = google_secret_manager_secret.pg_password.secret_id
        version    = secret_environment_variables.value
      }
    }
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.backfill.id
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email
  }

  depends_on = [
    google_project_iam_member.trigger_receives_events,
    google_project_iam_member.build_writes_logs,
    google_project_iam_member.build_writes_images,
    google_project_iam_member.build_reads_sources,
    google_secret_manager_secret_iam_member.pg_password_readers,
  ]
}

resource "google_cloudfunctions2_function" "backfill_http" {
  #checkov:skip=CKV_GCP_124:HTTP function for operators outside Google Cloud; every call is IAM-authenticated (run.invoker only for var.invoker_members, never allUsers).
  name        = "${local.p}-backfill-http"
  location    = var.region
  description = "HTTP: the backfill request as a JSON body -> the plan (and publishes it unless dry_run)."

  build_config {
    runtime         = local.runtime
    entry_point     = "backfill_http"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = local.sizing.backfill_http.memory
    available_cpu                    = local.sizing.backfill_http.cpu
    timeout_seconds                  = local.sizing.backfill_http.timeout_seconds
    max_instance_count               = local.sizing.backfill_http.max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.backfill_http.email

    environment_variables = {
      GCP_PROJECT           = var.project_id
      LAKE_BUCKET           = google_storage_bucket.lake.name
      DEAD_LETTER_TOPIC     = google_pubsub_topic.dead_letter.name
      LOG_LEVEL             = var.log_level
      MAX_EVENT_AGE_SECONDS = tostring(var.max_event_age_seconds)
      BQ_DATASET            = google_bigquery_dataset.nyc_taxi.dataset_id
      BQ_LOCATION           = var.bq_location
      PG_SCHEMA             = var.pg_schema
      PG_DATABASE           = google_sql_database.ny_taxi.name
      PG_USER               = local.pg_user.backfill_http
      PG_HOST               = local.pg_host
      PG_PORT               = "5432"
      CLOUD_SQL_INSTANCE    = local.cloud_sql_instance
      PG_IAM_AUTH           = local.pg_iam_auth
      INGEST_TOPIC          = google_pubsub_topic.ingest.name
      BACKFILL_MAX_DATES    = tostring(var.backfill_max_dates)
    }

    dynamic "secret_environment_variables" {
      for_each = var.pg_auth_mode == "password" ? [google_secret_manager_secret_version.pg_password.version] : []
      content {
        key        = "PG_PASSWORD"
        project_id = var.project_id
        secret     = google_secret_manager_secret.pg_password.secret_id
        version    = secret_environment_variables.value
      }
    }
  }

  depends_on = [
    google_project_iam_member.build_writes_logs,
    google_project_iam_member.build_writes_images,
    google_project_iam_member.build_reads_sources,
    google_secret_manager_secret_iam_member.pg_password_readers,
  ]
}

resource "google_cloudfunctions2_function" "load_bigquery" {
  name        = "${local.p}-load-bigquery"
  location    = var.region
  description = "GCS finalize of trips/{service}/pickup_date=D/data.parquet -> replace day D in BigQuery."

  build_config {
    runtime         = local.runtime
    entry_point     = "load_bigquery"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = local.sizing.load_bigquery.memory
    available_cpu                    = local.sizing.load_bigquery.cpu
    timeout_seconds                  = local.sizing.load_bigquery.timeout_seconds
    max_instance_count               = local.sizing.load_bigquery.max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.load_bigquery.email

    environment_variables = {
      GCP_PROJECT                  = var.project_id
      LAKE_BUCKET                  = google_storage_bucket.lake.name
      DEAD_LETTER_TOPIC            = google_pubsub_topic.dead_letter.name
      LOG_LEVEL                    = var.log_level
      MAX_EVENT_AGE_SECONDS        = tostring(var.max_event_age_seconds)
      BQ_DATASET                   = google_bigquery_dataset.nyc_taxi.dataset_id
      BQ_LOCATION                  = var.bq_location
      BQ_REPLACE_STRATEGY          = var.bq_replace_strategy
      BQ_PARTITION_EXPIRATION_DAYS = tostring(var.bq_partition_expiration_days)
    }
  }

  # Eventarc wiring: a direct Cloud Storage trigger on the lake bucket, created where the bucket is.
  # (Pub/Sub wiring: no trigger here; the push subscription in pubsub.tf calls the function.)
  dynamic "event_trigger" {
    for_each = var.loader_trigger == "eventarc" ? [google_storage_bucket.lake.name] : []
    content {
      trigger_region        = lower(google_storage_bucket.lake.location)
      event_type            = "google.cloud.storage.object.v1.finalized"
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.trigger.email
      event_filters {
        attribute = "bucket"
        value     = event_trigger.value
      }
    }
  }

  depends_on = [
    google_project_iam_member.trigger_receives_events,
    google_project_iam_member.gcs_publishes_events,
    google_pubsub_topic_iam_member.gcs_publishes_lake_events,
    google_project_iam_member.build_writes_logs,
    google_project_iam_member.build_writes_images,
    google_project_iam_member.build_reads_sources,
  ]
}

resource "google_cloudfunctions2_function" "load_postgres" {
  name        = "${local.p}-load-postgres"
  location    = var.region
  description = "GCS finalize of trips/{service}/pickup_date=D/data.parquet -> replace day D in Cloud SQL."

  build_config {
    runtime         = local.runtime
    entry_point     = "load_postgres"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = local.sizing.load_postgres.memory
    available_cpu                    = local.sizing.load_postgres.cpu
    timeout_seconds                  = local.sizing.load_postgres.timeout_seconds
    max_instance_count               = local.sizing.load_postgres.max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.load_postgres.email

    environment_variables = {
      GCP_PROJECT           = var.project_id
      LAKE_BUCKET           = google_storage_bucket.lake.name
      DEAD_LETTER_TOPIC     = google_pubsub_topic.dead_letter.name
      LOG_LEVEL             = var.log_level
      MAX_EVENT_AGE_SECONDS = tostring(var.max_event_age_seconds)
      PG_SCHEMA             = var.pg_schema
      PG_DATABASE           = google_sql_database.ny_taxi.name
      PG_USER               = local.pg_user.load_postgres
      PG_HOST               = local.pg_host
      PG_PORT               = "5432"
      CLOUD_SQL_INSTANCE    = local.cloud_sql_instance
      PG_IAM_AUTH           = local.pg_iam_auth
    }

    dynamic "secret_environment_variables" {
      for_each = var.pg_auth_mode == "password" ? [google_secret_manager_secret_version.pg_password.version] : []
      content {
        key        = "PG_PASSWORD"
        project_id = var.project_id
        secret     = google_secret_manager_secret.pg_password.secret_id
        version    = secret_environment_variables.value
      }
    }
  }

  dynamic "event_trigger" {
    for_each = var.loader_trigger == "eventarc" ? [google_storage_bucket.lake.name] : []
    content {
      trigger_region        = lower(google_storage_bucket.lake.location)
      event_type            = "google.cloud.storage.object.v1.finalized"
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.trigger.email
      event_filters {
        attribute = "bucket"
        value     = event_trigger.value
      }
    }
  }

  depends_on = [
    google_project_iam_member.trigger_receives_events,
    google_project_iam_member.gcs_publishes_events,
    google_pubsub_topic_iam_member.gcs_publishes_lake_events,
    google_project_iam_member.build_writes_logs,
    google_project_iam_member.build_writes_images,
    google_project_iam_member.build_reads_sources,
    google_secret_manager_secret_iam_member.pg_password_readers,
    google_sql_user.iam,
  ]
}

resource "google_cloudfunctions2_function" "status" {
  #checkov:skip=CKV_GCP_124:HTTP status page for operators outside Google Cloud; every call is IAM-authenticated (run.invoker only for var.invoker_members, never allUsers).
  name        = "${local.p}-status"
  location    = var.region
  description = "HTTP: per-date state of the lake, BigQuery and Postgres (JSON, HTML or text)."

  build_config {
    runtime         = local.runtime
    entry_point     = "status"
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = local.sizing.status.memory
    available_cpu                    = local.sizing.status.cpu
    timeout_seconds                  = local.sizing.status.timeout_seconds
    max_instance_count               = local.sizing.status.max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.status.email

    environment_variables = {
      GCP_PROJECT           = var.project_id
      LAKE_BUCKET           = google_storage_bucket.lake.name
      DEAD_LETTER_TOPIC     = google_pubsub_topic.dead_letter.name
      LOG_LEVEL             = var.log_level
      MAX_EVENT_AGE_SECONDS = tostring(var.max_event_age_seconds)
      SOURCE_URL_TEMPLATE   = var.source_url_template
      BQ_DATASET            = google_bigquery_dataset.nyc_taxi.dataset_id
      BQ_LOCATION           = var.bq_location
      PG_SCHEMA             = var.pg_schema
      PG_DATABASE           = google_sql_database.ny_taxi.name
      PG_USER               = local.pg_user.status
      PG_HOST               = local.pg_host
      PG_PORT               = "5432"
      CLOUD_SQL_INSTANCE    = local.cloud_sql_instance
      PG_IAM_AUTH           = local.pg_iam_auth
      BACKFILL_MAX_DATES    = tostring(var.backfill_max_dates)
    }

    dynamic "secret_environment_variables" {
      for_each = var.pg_auth_mode == "password" ? [google_secret_manager_secret_version.pg_password.version] : []
      content {
        key        = "PG_PASSWORD"
        project_id = var.project_id
        secret     = google_secret_manager_secret.pg_password.secret_id
        version    = secret_environment_variables.value
      }
    }
  }

  depends_on = [
    google_project_iam_member.build_writes_logs,
    google_project_iam_member.build_writes_images,
    google_project_iam_member.build_reads_sources,
    google_secret_manager_secret_iam_member.pg_password_readers,
  ]
}
