output "ingest_topic" {
  description = "Publish {\"date\": \"YYYY-MM-DD\", \"service\": \"yellow\"} here to ingest a day."
  value       = google_pubsub_topic.ingest.name
}

output "backfill_topic" {
  description = "Publish {\"start\": ..., \"end\": ..., \"services\": [...]} here to backfill a range."
  value       = google_pubsub_topic.backfill.name
}

output "dead_letter_topic" {
  description = "Permanent failures are published here."
  value       = google_pubsub_topic.dead_letter.name
}

output "dead_letter_subscription" {
  description = "Pull this subscription to inspect dead letters."
  value       = google_pubsub_subscription.dead_letter.name
}

output "lake_events_topic" {
  description = "GCS notification topic of trips/ finalizes (pushed to the loaders)."
  value       = google_pubsub_topic.lake_events.name
}

output "lake_bucket" {
  description = "The lake bucket (raw/, staging/, trips/, rejects/, quarantine/)."
  value       = google_storage_bucket.lake.name
}

output "source_bucket" {
  description = "Bucket of the functions' source archives."
  value       = google_storage_bucket.source.name
}

output "function_urls" {
  description = "URL of every function's service (only status and backfill_http accept calls from outside Google Cloud)."
  value       = { for name, fn in google_cloudfunctions2_function.function : name => fn.service_config[0].uri }
}

output "status_url" {
  description = "The status page (call with an identity token: see README.md)."
  value       = google_cloudfunctions2_function.function["status"].service_config[0].uri
}

output "backfill_http_url" {
  description = "The HTTP backfill endpoint (POST a JSON body with an identity token)."
  value       = google_cloudfunctions2_function.function["backfill_http"].service_config[0].uri
}

output "service_accounts" {
  description = "The identity of each function, of the triggers and of the builds."
  value = merge(
    { for name, fn in local.functions : name => fn.service_account },
    {
      trigger = google_service_account.trigger.email
      build   = google_service_account.build.email
    },
  )
}

output "bigquery_dataset" {
  description = "project:dataset of the {service}_trips tables."
  value       = "${var.project_id}:${google_bigquery_dataset.nyc_taxi.dataset_id}"
}

output "cloud_sql_instance" {
  description = "Connection name of the Cloud SQL instance (project:region:instance)."
  value       = google_sql_database_instance.postgres.connection_name
}

output "pg_builtin_user" {
  description = "The built-in PostgreSQL user; its password is in the pg_password_secret."
  value       = google_sql_user.builtin.name
}

output "pg_password_secret" {
  description = "Secret Manager secret holding the built-in user's password."
  value       = google_secret_manager_secret.pg_password.secret_id
}

output "postgres_bootstrap_sql" {
  description = "iam mode: run once as the built-in user in the database (README.md) so the IAM database users may create and read the tables."
  value       = var.pg_auth_mode == "iam" ? local.postgres_bootstrap_sql : null
}

output "alert_notification_channels" {
  description = "Notification channels every alert policy notifies (alert_notification_channels plus the alert_email channel)."
  value       = local.notification_channels
}

output "alert_policies" {
  description = "Alert policy ids by concern (freshness: one per loader/service; README.md, Monitoring)."
  value = merge(
    {
      dead_letter_backlog = google_monitoring_alert_policy.dead_letter_backlog.id
      function_errors     = google_monitoring_alert_policy.function_errors.id
      sql_disk            = google_monitoring_alert_policy.sql_disk.id
      sql_connections     = google_monitoring_alert_policy.sql_connections.id
    },
    { for key, policy in google_monitoring_alert_policy.freshness : "freshness/${key}" => policy.id },
  )
}

output "log_metrics" {
  description = "Log-based metric types derived from the functions' structured logs."
  value = {
    for key, metric in {
      lake_rows     = google_logging_metric.lake_rows
      rejected_rows = google_logging_metric.rejected_rows
      loaded_rows   = google_logging_metric.loaded_rows
      days_loaded   = google_logging_metric.days_loaded
      dead_lettered = google_logging_metric.dead_lettered
      retried       = google_logging_metric.retried
    } : key => "logging.googleapis.com/user/${metric.name}"
  }
}

output "dashboard_url" {
  description = "The pipeline's Cloud Monitoring dashboard."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${element(split("/", google_monitoring_dashboard.pipeline.id), 3)}?project=${var.project_id}"
}
