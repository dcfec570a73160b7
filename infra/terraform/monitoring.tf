# Monitoring: log-based metrics read from the logs the functions already write (shared/core/logs.py: one
# JSON line per event, parsed by Cloud Logging into jsonPayload), alert policies and one dashboard.
# No code path exists for metrics: every number here is a field of an outcome log line.
# What each metric and alert measures, and where it is blind: README.md, Monitoring.

locals {
  notification_channels = concat(var.alert_notification_channels, google_monitoring_notification_channel.email[*].id)

  loaders = ["load_bigquery", "load_postgres"]

  # The loaders' success outcome (shared/load/bigquery.py, shared/load/postgres.py): the day was
  # replaced. Skips (stale event, generation already loaded) and ignored events say otherwise.
  loader_success_messages = {
    load_bigquery = "day replaced in BigQuery"
    load_postgres = "day replaced in PostgreSQL"
  }

  # Every function writes structured lines to stdout; Cloud Run keeps them in this log, with the
  # function's service as resource.labels.service_name.
  function_logs = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "logName=\"projects/${var.project_id}/logs/run.googleapis.com%2Fstdout\"",
    "resource.labels.service_name=(${join(" OR ", [for name in sort(keys(local.functions)) : jsonencode(local.function_names[name])])})",
  ])

  log_filters = {
    # ingest wrote a day's partition (not "partition already up to date": that is a skip).
    partition_written = join(" AND ", [
      local.function_logs,
      "jsonPayload.function=\"ingest\"",
      "jsonPayload.message=~\"^partition written\"",
    ])
    # load_bigquery / load_postgres replaced a day.
    day_loaded = join(" AND ", [
      local.function_logs,
      "(${join(" OR ", [for name in local.loaders : "(jsonPayload.function=\"${name}\" AND jsonPayload.message=${jsonencode(local.loader_success_messages[name])})"])})",
    ])
    # A permanent failure: `<function> rejected the event: ...` at ERROR, the event dead-lettered
    # (shared/core/runtime.py).
    dead_lettered = join(" AND ", [
      local.function_logs,
      "severity=ERROR",
      "jsonPayload.message=~\"^[a-z_]+ rejected the event: \"",
    ])
    # The daily catch-up's judgement of each service against what the source has published
    # (shared/operate/freshness.py): `source freshness: up to date with the source` (INFO) or
    # `source freshness: behind the source` (WARNING), with jsonPayload.verdict.
    source_freshness = join(" AND ", [
      local.function_logs,
      "jsonPayload.function=\"backfill\"",
      "jsonPayload.message=~\"^source freshness: \"",
    ])
    # A transient failure: `<function> failed, will be retried: ...` at WARNING.
    retried = join(" AND ", [
      local.function_logs,
      "severity=WARNING",
      "jsonPayload.message=~\"^[a-z_]+ failed, will be retried: \"",
    ])
  }

  # Log-based metric names; in PromQL a metric is logging_googleapis_com:user_<name, with every
  # character other than letters, digits and _ as _>.
  metric_names = {
    lake_rows        = "${local.p}_lake_rows_written"
    rejected_rows    = "${local.p}_rows_rejected"
    loaded_rows      = "${local.p}_rows_loaded"
    days_loaded      = "${local.p}_days_loaded"
    dead_lettered    = "${local.p}_dead_lettered"
    retried          = "${local.p}_retried_failures"
    source_freshness = "${local.p}_source_freshness"
  }
  promql = { for k, name in local.metric_names : k => "logging_googleapis_com:user_${replace(name, "/[^A-Za-z0-9_]/", "_")}" }

  # Row counts per day: 1 to ~16.8 M in 24 doubling buckets (a TLC day is 0 to ~1 M rows).
  row_buckets = { scale = 1, growth_factor = 2, num_finite_buckets = 24 }

  # Shares as whole percentages for titles and texts (0.8 * 100 is not printed as 80 otherwise).
  percent = {
    function_errors = format("%.0f", var.function_error_ratio_threshold * 100)
    sql_disk        = format("%.0f", var.sql_disk_utilization_threshold * 100)
    sql_connections = format("%.0f", var.sql_connections_alert_ratio * 100)
  }

  sql_database_id = "${var.project_id}:${google_sql_database_instance.postgres.name}"

  # Cloud SQL for PostgreSQL's default max_connections by the tier's memory (MB): Cloud SQL's
  # documented table ("Maximum concurrent connections"). db-perf-optimized tiers are not listed:
  # set var.sql_max_connections.
  sql_tier_memory_mb = (
    var.sql_tier == "db-f1-micro" ? 614 :
    var.sql_tier == "db-g1-small" ? 1740 :
    try(tonumber(regex("^db-custom-[0-9]+-([0-9]+)$", var.sql_tier)[0]), null)
  )
  sql_default_max_connections = local.sql_tier_memory_mb == null ? null : max([
    for step in [[0, 25], [1700, 50], [3840, 100], [6144, 200], [7680, 400], [15360, 500], [30720, 600], [61440, 800], [122880, 1000]] :
    step[1] if local.sql_tier_memory_mb >= step[0]
  ]...)
  sql_max_connections       = var.sql_max_connections != null ? var.sql_max_connections : local.sql_default_max_connections
  sql_connections_threshold = local.sql_max_connections == null ? null : floor(local.sql_max_connections * var.sql_connections_alert_ratio)

  # Freshness: one alert policy per service, while the daily catch-up runs (not paused).
  freshness = var.freshness_deadline_hour_utc == null || var.schedule_paused ? {} : {
    for service in var.services : service => { service = service }
  }
}

# --- notification channels -------------------------------------------------------------------------

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == null ? 0 : 1

  display_name = "${local.p} pipeline alerts (${var.alert_email})"
  type         = "email"
  labels       = { email_address = var.alert_email }
  user_labels  = var.labels

  depends_on = [google_project_service.apis]
}

# --- log-based metrics ------------------------------------------------------------------------------

resource "google_logging_metric" "lake_rows" {
  name        = local.metric_names.lake_rows
  description = "Rows ingest wrote to a day's trips/ partition (jsonPayload.rows_written of 'partition written'), per service."
  filter      = local.log_filters.partition_written

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "Rows written to the lake"
    labels {
      key         = "service"
      value_type  = "STRING"
      description = "TLC service: yellow, green, fhv"
    }
  }
  value_extractor  = "EXTRACT(jsonPayload.rows_written)"
  label_extractors = { service = "EXTRACT(jsonPayload.service)" }

  bucket_options {
    exponential_buckets {
      scale              = local.row_buckets.scale
      growth_factor      = local.row_buckets.growth_factor
      num_finite_buckets = local.row_buckets.num_finite_buckets
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "rejected_rows" {
  name        = local.metric_names.rejected_rows
  description = "Rows of a day ingest set aside under rejects/ (jsonPayload.rows_rejected of 'partition written'), per service."
  filter      = local.log_filters.partition_written

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "Rows rejected by ingest"
    labels {
      key         = "service"
      value_type  = "STRING"
      description = "TLC service: yellow, green, fhv"
    }
  }
  value_extractor  = "EXTRACT(jsonPayload.rows_rejected)"
  label_extractors = { service = "EXTRACT(jsonPayload.service)" }

  bucket_options {
    exponential_buckets {
      scale              = local.row_buckets.scale
      growth_factor      = local.row_buckets.growth_factor
      num_finite_buckets = local.row_buckets.num_finite_buckets
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "loaded_rows" {
  name        = local.metric_names.loaded_rows
  description = "Rows of a day replaced in BigQuery or PostgreSQL (jsonPayload.rows of the loaders' 'day replaced in ...'), per loader and service."
  filter      = local.log_filters.day_loaded

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "Rows loaded"
    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The loader: load_bigquery or load_postgres"
    }
    labels {
      key         = "service"
      value_type  = "STRING"
      description = "TLC service: yellow, green, fhv"
    }
  }
  value_extractor = "EXTRACT(jsonPayload.rows)"
  label_extractors = {
    function = "EXTRACT(jsonPayload.function)"
    service  = "EXTRACT(jsonPayload.service)"
  }

  bucket_options {
    exponential_buckets {
      scale              = local.row_buckets.scale
      growth_factor      = local.row_buckets.growth_factor
      num_finite_buckets = local.row_buckets.num_finite_buckets
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "days_loaded" {
  name        = local.metric_names.days_loaded
  description = "Days replaced in BigQuery or PostgreSQL (the loaders' 'day replaced in ...' lines), per loader and service: the freshness alerts count these."
  filter      = local.log_filters.day_loaded

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Days loaded"
    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The loader: load_bigquery or load_postgres"
    }
    labels {
      key         = "service"
      value_type  = "STRING"
      description = "TLC service: yellow, green, fhv"
    }
  }
  label_extractors = {
    function = "EXTRACT(jsonPayload.function)"
    service  = "EXTRACT(jsonPayload.service)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "dead_lettered" {
  name        = local.metric_names.dead_lettered
  description = "Events a function dead-lettered (ERROR '<function> rejected the event: ...'), per function, reason and service."
  filter      = local.log_filters.dead_lettered

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Dead-lettered events"
    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The function that gave up on the event"
    }
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "The error's reason (source_not_found, invalid_input, max_event_age_exceeded, ...)"
    }
    labels {
      key         = "service"
      value_type  = "STRING"
      description = "TLC service, when the event named one"
    }
  }
  label_extractors = {
    function = "EXTRACT(jsonPayload.function)"
    reason   = "EXTRACT(jsonPayload.reason)"
    service  = "EXTRACT(jsonPayload.service)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "source_freshness" {
  name        = local.metric_names.source_freshness
  description = "The daily catch-up's judgement of each service against what the source has published ('source freshness: ...' lines of backfill), per service and verdict (up_to_date, behind): the freshness alerts count these."
  filter      = local.log_filters.source_freshness

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Freshness judgements"
    labels {
      key         = "service"
      value_type  = "STRING"
      description = "TLC service: yellow, green, fhv"
    }
    labels {
      key         = "verdict"
      value_type  = "STRING"
      description = "up_to_date: every date the source has published is loaded; behind: some are not"
    }
  }
  label_extractors = {
    service = "EXTRACT(jsonPayload.service)"
    verdict = "EXTRACT(jsonPayload.verdict)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "retried" {
  name        = local.metric_names.retried
  description = "Transient failures a function raised for the platform to retry (WARNING '<function> failed, will be retried: ...'), per function and reason."
  filter      = local.log_filters.retried

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Failures retried"
    labels {
      key         = "function"
      value_type  = "STRING"
      description = "The function that failed"
    }
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "The error's reason (timeout, connection, month_split_in_progress, ...)"
    }
  }
  label_extractors = {
    function = "EXTRACT(jsonPayload.function)"
    reason   = "EXTRACT(jsonPayload.reason)"
  }

  depends_on = [google_project_service.apis]
}

# --- alert policies -----------------------------------------------------------------------------------

# (a) Dead letters waiting: the inspection subscription holds every dead letter until someone pulls
# and acknowledges it (or dead_letter_retention passes). Covers both the functions' own dead letters
# and the loader subscriptions' dead-letter policy.
resource "google_monitoring_alert_policy" "dead_letter_backlog" {
  display_name          = "${local.p}: dead letters waiting"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "dead-letter subscription backlog > 0"
    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${local.p}: events were dead-lettered"
    content   = <<-EOT
      Events are waiting in the dead-letter subscription `${google_pubsub_subscription.dead_letter.name}`.
      Read them (the body names the function, the reason and the event):
      `gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter.name} --limit=10`
      (add `--auto-ack` to remove them; the incident closes when the backlog is 0).
      Fix the cause, then publish the dates again (README.md, Backfills) or `only_missing` backfill.
    EOT
  }

  depends_on = [google_project_service.apis]
}

# (b) Function errors. Two signals, either fires:
#   - dead-lettered events from the functions' ERROR logs, by function and reason: says which
#     function gave up and why, within minutes;
#   - 5xx responses from Cloud Run's request_count, as a share of each function's requests: the
#     transient failures that are being retried, and the failures no log line reports (timeout,
#     out of memory, a crash before the boundary).
resource "google_monitoring_alert_policy" "function_errors" {
  display_name          = "${local.p}: function errors"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "events dead-lettered by a function"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.dead_lettered.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.function", "metric.label.reason"]
      }
    }
  }

  conditions {
    display_name = "share of 5xx responses per function > ${var.function_error_ratio_threshold}"
    condition_threshold {
      filter             = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=one_of(${join(", ", [for name in sort(keys(local.functions)) : jsonencode(local.function_names[name])])}) AND metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code_class=\"5xx\""
      denominator_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=one_of(${join(", ", [for name in sort(keys(local.functions)) : jsonencode(local.function_names[name])])}) AND metric.type=\"run.googleapis.com/request_count\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.function_error_ratio_threshold
      duration           = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${local.p}: a function is failing"
    content   = <<-EOT
      A function dead-lettered events (the incident names the function and the reason), or more than
      ${local.percent.function_errors}% of a function's requests failed for 10 minutes
      (retried failures, timeouts, out of memory).
      Logs: `gcloud logging read 'resource.type="cloud_run_revision" AND severity>=WARNING AND resource.labels.service_name=~"^${local.p}-"' --limit=20`.
      Per date: the `status` function (README.md, Status) shows each date's latest attempt and reason.
    EOT
  }

  depends_on = [google_project_service.apis, time_sleep.log_metrics]
}

# (c) Freshness, against what the source has published, not the calendar: TLC publishes a month about
# two months after it ends, so weeks without a new day are normal. The daily catch-up judges each
# service before it publishes (shared/operate/freshness.py): a date asked for before and still not
# loaded (dead-lettered, quarantined, partial...) is behind the source; a date whose month the source
# has not published yet (awaiting_source) is not. From freshness_deadline_hour_utc until midnight UTC,
# a service fires if the last 25 hours hold a `behind` judgement, or the last 26 hours none at all
# (the catch-up did not run or failed).
resource "google_monitoring_alert_policy" "freshness" {
  for_each = local.freshness

  display_name          = "${local.p}: ${each.value.service} behind what the source has published"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "the daily catch-up found ${each.value.service} dates the source has published not loaded, or did not run"
    condition_prometheus_query_language {
      # `or vector(0)`: a log-based counter writes no point when nothing matched, so "no judgement" is
      # an empty result, not 0. `hour()` is the evaluation time's UTC hour.
      query               = <<-EOT
        (
          (sum(increase(${local.promql.source_freshness}{monitored_resource="cloud_run_revision",service="${each.value.service}",verdict="behind"}[25h])) > 0)
          or
          ((sum(increase(${local.promql.source_freshness}{monitored_resource="cloud_run_revision",service="${each.value.service}"}[26h])) or vector(0)) < 0.5)
        )
        and on() (hour() >= ${var.freshness_deadline_hour_utc})
      EOT
      evaluation_interval = "300s"
      # Its log-based metric is created in the same apply and unknown to Monitoring for minutes.
      disable_metric_validation = true
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${local.p}: ${each.value.service} trips behind the source"
    content   = <<-EOT
      The daily catch-up found dates of `${each.value.service}` that the source has published (or should
      have: a 404 more than source_grace_days after the month's end) and that are not loaded, or it did
      not judge `${each.value.service}` in the last 26 hours (the scheduler job or the backfill function).
      Its log line names them: `gcloud logging read 'jsonPayload.message=~"^source freshness: " AND
      jsonPayload.service="${each.value.service}"' --limit=1`. Then the `status` function (README.md,
      Status) tells each date's state and the command that heals it. Dates `awaiting_source` (the month
      is not published yet) never count.
    EOT
  }

  depends_on = [google_project_service.apis, google_logging_metric.source_freshness, time_sleep.log_metrics]
}

# (d) Cloud SQL near its limits: the disk, and the connections against max_connections.
resource "google_monitoring_alert_policy" "sql_disk" {
  display_name          = "${local.p}: Cloud SQL disk above ${local.percent.sql_disk}%"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "disk utilization > ${var.sql_disk_utilization_threshold}"
    condition_threshold {
      filter          = "resource.type=\"cloudsql_database\" AND resource.labels.database_id=\"${local.sql_database_id}\" AND metric.type=\"cloudsql.googleapis.com/database/disk/utilization\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.sql_disk_utilization_threshold
      duration        = "600s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${local.p}: Cloud SQL disk filling up"
    content   = <<-EOT
      The disk of `${google_sql_database_instance.postgres.name}` is more than
      ${local.percent.sql_disk}% full. Automatic storage increase is on, so this
      usually means the disk is growing (it never shrinks: cost); it is urgent only if growth is
      limited or fails. Rows per day: the `${local.p}` dashboard.
    EOT
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "sql_connections" {
  display_name          = "${local.p}: Cloud SQL connections above ${local.percent.sql_connections}% of max_connections"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "backends > ${coalesce(local.sql_connections_threshold, 0)} (of max_connections ${coalesce(local.sql_max_connections, 0)})"
    condition_threshold {
      filter          = "resource.type=\"cloudsql_database\" AND resource.labels.database_id=\"${local.sql_database_id}\" AND metric.type=\"cloudsql.googleapis.com/database/postgresql/num_backends\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.sql_connections_threshold
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.database_id"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${local.p}: Cloud SQL connections near max_connections"
    content   = <<-EOT
      `${google_sql_database_instance.postgres.name}` has more than ${coalesce(local.sql_connections_threshold, 0)} backends
      (max_connections ${coalesce(local.sql_max_connections, 0)}). The functions open at most one
      connection per instance (concurrency 1, max instances in functions.tf): look for other
      clients or leaked sessions (`SELECT usename, application_name, state, count(*) FROM
      pg_stat_activity GROUP BY 1, 2, 3`).
    EOT
  }

  lifecycle {
    precondition {
      condition     = local.sql_max_connections != null
      error_message = "Cloud SQL's default max_connections of tier ${var.sql_tier} is not known here: set sql_max_connections."
    }
  }

  depends_on = [google_project_service.apis]
}

# --- the dashboard ---------------------------------------------------------------------------------------

locals {
  # Counters (and Google's metrics) are charted with filters; the row distributions with PromQL,
  # whose _sum series is the only way to chart the sum of a distribution's values.
  daily = { alignmentPeriod = "86400s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM" }

  dashboard_widgets = [
    {
      title = "Rows loaded per day, by destination and service"
      xyChart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [{
          plotType           = "STACKED_BAR"
          minAlignmentPeriod = "86400s"
          timeSeriesQuery = {
            prometheusQuery = "sum by (function, service) (increase(${local.promql.loaded_rows}_sum{monitored_resource=\"cloud_run_revision\"}[1d]))"
          }
        }]
      }
    },
    {
      title = "Rows written to the lake and rejected per day, by service"
      xyChart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [
          {
            plotType           = "STACKED_BAR"
            minAlignmentPeriod = "86400s"
            timeSeriesQuery = {
              prometheusQuery = "sum by (service) (increase(${local.promql.lake_rows}_sum{monitored_resource=\"cloud_run_revision\"}[1d]))"
            }
          },
          {
            plotType           = "STACKED_BAR"
            minAlignmentPeriod = "86400s"
            timeSeriesQuery = {
              prometheusQuery = "sum by (service) (increase(${local.promql.rejected_rows}_sum{monitored_resource=\"cloud_run_revision\"}[1d]))"
            }
          },
        ]
      }
    },
    {
      title = "Dead-lettered events per day, by function and reason"
      xyChart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [{
          plotType = "STACKED_BAR"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter      = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.dead_lettered.name}\""
              aggregation = merge(local.daily, { groupByFields = ["metric.label.function", "metric.label.reason"] })
            }
          }
        }]
      }
    },
    {
      title = "Days loaded per day, by destination and service"
      xyChart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [{
          plotType = "STACKED_BAR"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter      = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.days_loaded.name}\""
              aggregation = merge(local.daily, { groupByFields = ["metric.label.function", "metric.label.service"] })
            }
          }
        }]
      }
    },
    {
      title = "Function errors: failures retried (logs) and 5xx responses (Cloud Run), per 5 minutes"
      xyChart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [
          {
            plotType = "STACKED_BAR"
            timeSeriesQuery = {
              timeSeriesFilter = {
                filter = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.retried.name}\""
                aggregation = {
                  alignmentPeriod    = "300s"
                  perSeriesAligner   = "ALIGN_SUM"
                  crossSeriesReducer = "REDUCE_SUM"
                  groupByFields      = ["metric.label.function", "metric.label.reason"]
                }
              }
            }
          },
          {
            plotType = "LINE"
            timeSeriesQuery = {
              timeSeriesFilter = {
                filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=one_of(${join(", ", [for name in sort(keys(local.functions)) : jsonencode(local.function_names[name])])}) AND metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code_class=\"5xx\""
                aggregation = {
                  alignmentPeriod    = "300s"
                  perSeriesAligner   = "ALIGN_DELTA"
                  crossSeriesReducer = "REDUCE_SUM"
                  groupByFields      = ["resource.label.service_name"]
                }
              }
            }
          },
        ]
      }
    },
    {
      title = "Dead-letter backlog (${google_pubsub_subscription.dead_letter.name})"
      xyChart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [{
          plotType = "LINE"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\""
              aggregation = {
                alignmentPeriod  = "300s"
                perSeriesAligner = "ALIGN_MAX"
              }
            }
          }
        }]
        thresholds = [{ value = 0, label = "any dead letter" }]
      }
    },
    {
      title = "Cloud SQL disk utilization"
      xyChart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [{
          plotType = "LINE"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "resource.type=\"cloudsql_database\" AND resource.labels.database_id=\"${local.sql_database_id}\" AND metric.type=\"cloudsql.googleapis.com/database/disk/utilization\""
              aggregation = {
                alignmentPeriod  = "300s"
                perSeriesAligner = "ALIGN_MEAN"
              }
            }
          }
        }]
        thresholds = [{ value = var.sql_disk_utilization_threshold, label = "alert" }]
      }
    },
    {
      title = "Cloud SQL connections (backends)"
      xyChart = {
        chartOptions = { mode = "COLOR" }
        dataSets = [{
          plotType = "LINE"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "resource.type=\"cloudsql_database\" AND resource.labels.database_id=\"${local.sql_database_id}\" AND metric.type=\"cloudsql.googleapis.com/database/postgresql/num_backends\""
              aggregation = {
                alignmentPeriod    = "60s"
                perSeriesAligner   = "ALIGN_MAX"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = ["resource.label.database_id"]
              }
            }
          }
        }]
        thresholds = local.sql_connections_threshold == null ? [] : [{ value = local.sql_connections_threshold, label = "alert" }]
      }
    },
  ]
}

resource "google_monitoring_dashboard" "pipeline" {
  dashboard_json = jsonencode({
    displayName = "${local.p}: NYC taxi pipeline"
    mosaicLayout = {
      columns = 48
      tiles = [
        for i, widget in local.dashboard_widgets : {
          xPos   = (i % 2) * 24
          yPos   = floor(i / 2) * 16
          width  = 24
          height = 16
          widget = widget
        }
      ]
    }
  })

  depends_on = [
    google_project_service.apis,
    google_logging_metric.lake_rows,
    google_logging_metric.rejected_rows,
    google_logging_metric.loaded_rows,
  ]
}
