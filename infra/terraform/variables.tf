# Inputs. Only project_id is required; every other default gives a small, cheap deployment.

# --- project and naming -----------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id: 6-30 lowercase letters, digits and hyphens."
  }
}

variable "region" {
  description = "Region of the functions, the Cloud SQL instance, the scheduler job and (by default) the lake bucket."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1 or europe-west1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, topics, service accounts, instance)."
  type        = string
  default     = "taxi"

  validation {
    # Service account ids are at most 30 characters: prefix + "-load-bigquery" must fit.
    condition     = can(regex("^[a-z][a-z0-9-]{1,11}$", var.name_prefix))
    error_message = "name_prefix must be 2-12 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Labels added to every resource that supports them."
  type        = map(string)
  default     = { app = "nyc-taxi-etl" }

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "Label keys and values must be lowercase letters, digits, underscores or hyphens (keys start with a letter)."
  }
}

variable "enable_apis" {
  description = "Enable the required Google APIs (turn off if an organisation pipeline enables them)."
  type        = bool
  default     = true
}

# --- lake ---------------------------------------------------------------------------------

variable "lake_bucket_name" {
  description = "Name of the lake bucket; null means <project_id>-<name_prefix>-lake."
  type        = string
  default     = null

  validation {
    condition     = var.lake_bucket_name == null || can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.lake_bucket_name))
    error_message = "lake_bucket_name must be a valid bucket name (3-63 lowercase letters, digits, dots, hyphens, underscores)."
  }
}

variable "lake_location" {
  description = "Location of the lake bucket (a region or a multi-region such as US); null means var.region. The loaders' Eventarc triggers are created in this location."
  type        = string
  default     = null

  validation {
    condition     = var.lake_location == null || can(regex("^[A-Za-z]+(-[A-Za-z]+[0-9])?$", var.lake_location))
    error_message = "lake_location must be a region (us-central1) or a multi-region (US, EU, ASIA)."
  }
}

variable "raw_nearline_after_days" {
  description = "Move raw/ month files (verbatim source copies, read once per month) to NEARLINE after this many days."
  type        = number
  default     = 30

  validation {
    condition     = var.raw_nearline_after_days >= 1 && var.raw_nearline_after_days <= 3650
    error_message = "raw_nearline_after_days must be between 1 and 3650."
  }
}

variable "raw_delete_after_days" {
  description = "Delete raw/ month files after this many days (0 keeps them forever)."
  type        = number
  default     = 365

  validation {
    condition     = var.raw_delete_after_days == 0 || (var.raw_delete_after_days >= 31 && var.raw_delete_after_days <= 36500)
    error_message = "raw_delete_after_days must be 0 or between 31 and 36500 (longer than the nearline period)."
  }
}

variable "rejects_delete_after_days" {
  description = "Delete rejects/ objects (rows kept out of trips/, for inspection) after this many days."
  type        = number
  default     = 90

  validation {
    condition     = var.rejects_delete_after_days >= 1 && var.rejects_delete_after_days <= 36500
    error_message = "rejects_delete_after_days must be between 1 and 36500."
  }
}

variable "staging_delete_after_days" {
  description = "Delete a cleaned month under staging/ (a cache ingest rebuilds when missing) this many days after it was built: its manifest then, its day files two days later."
  type        = number
  default     = 30

  validation {
    condition     = var.staging_delete_after_days >= 1 && var.staging_delete_after_days <= 36500
    error_message = "staging_delete_after_days must be between 1 and 36500."
  }
}

variable "runs_delete_after_days" {
  description = "Delete run ledger records (runs/: each function's attempts per date, read by status) after this many days. A date whose records are gone is told by its counts alone."
  type        = number
  default     = 30

  validation {
    condition     = var.runs_delete_after_days >= 1 && var.runs_delete_after_days <= 3650
    error_message = "runs_delete_after_days must be between 1 and 3650."
  }
}

variable "noncurrent_versions_days" {
  description = "Delete overwritten (noncurrent) object versions after this many days; a replayed day overwrites its partition."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_versions_days >= 1 && var.noncurrent_versions_days <= 365
    error_message = "noncurrent_versions_days must be between 1 and 365."
  }
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete non-empty buckets (the lake and the function sources). Keep false in production."
  type        = bool
  default     = false
}

# --- Pub/Sub, triggers and the schedule -------------------------------------------------------

variable "max_delivery_attempts" {
  description = "Deliveries of a lake event to a loader before it goes to the dead-letter topic."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100 (Pub/Sub limits)."
  }
}

variable "dead_letter_retention" {
  description = "How long the dead-letter inspection subscription keeps unacknowledged messages (seconds, with an s suffix)."
  type        = string
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.dead_letter_retention)) && try(tonumber(trimsuffix(var.dead_letter_retention, "s")) >= 600 && tonumber(trimsuffix(var.dead_letter_retention, "s")) <= 604800, false)
    error_message = "dead_letter_retention must be between 600s and 604800s (7 days)."
  }
}

variable "services" {
  description = "TLC services the daily schedule ingests; one scheduler job publishes {\"service\": ...} per service."
  type        = list(string)
  default     = ["yellow"]

  validation {
    condition     = length(var.services) > 0 && alltrue([for s in var.services : contains(["yellow", "green", "fhv", "fhvhv"], s)])
    error_message = "services must be a non-empty list of yellow, green, fhv, fhvhv."
  }
}

variable "schedule_cron" {
  description = "Cron of the daily catch-up (Cloud Scheduler syntax): the backfill of every date of the last catch_up_days not loaded yet."
  type        = string
  default     = "0 5 * * *"

  validation {
    condition     = length(split(" ", trimspace(var.schedule_cron))) == 5
    error_message = "schedule_cron must have five fields (minute hour day month weekday)."
  }
}

variable "catch_up_days" {
  description = "The daily catch-up asks again for every date of this many days before today (New York) that is not complete: enough to cover TLC's publication delay (about two months) and more than source_grace_days."
  type        = number
  default     = 124

  validation {
    condition     = var.catch_up_days >= 1 && var.catch_up_days <= 366 && floor(var.catch_up_days) == var.catch_up_days
    error_message = "catch_up_days must be a whole number of days from 1 to 366 (the backfill's last_days)."
  }
}

variable "repair_cron" {
  description = "Cron of the self-healing repair (Cloud Scheduler syntax, in schedule_time_zone): hourly by default. The repair message carries it, so status tells when the next repair comes."
  type        = string
  default     = "17 * * * *"

  validation {
    # Numbers, *, ranges, steps and lists only: what shared/core/schedule.py reads back for status.
    condition     = can(regex("^[0-9*/,-]+( [0-9*/,-]+){4}$", trimspace(var.repair_cron)))
    error_message = "repair_cron must have five fields (minute hour day month weekday) of numbers, *, ranges (a-b), steps (/n) and lists (a,b)."
  }
}

variable "schedule_time_zone" {
  description = "IANA time zone of schedule_cron."
  type        = string
  default     = "Etc/UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.schedule_time_zone))
    error_message = "schedule_time_zone must be an IANA time zone such as Etc/UTC or America/New_York."
  }
}

variable "schedule_paused" {
  description = "Create the scheduler jobs paused (e.g. while backfilling)."
  type        = bool
  default     = false
}

# --- functions ------------------------------------------------------------------------------

variable "function_sizing" {
  description = <<-EOT
    Per-function overrides of memory, CPU, timeout and maximum instances, keyed by entry point
    (ingest, backfill, backfill_http, load_bigquery, load_postgres, status). Keys not given keep
    the defaults in functions.tf (ingest and loaders 1Gi/1 vCPU/540 s, others 256Mi/60 s).
  EOT
  type = map(object({
    memory          = optional(string)
    cpu             = optional(string)
    timeout_seconds = optional(number)
    max_instances   = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for k in keys(var.function_sizing) : contains(["ingest", "backfill", "backfill_http", "load_bigquery", "load_postgres", "status"], k)])
    error_message = "function_sizing keys must be entry points: ingest, backfill, backfill_http, load_bigquery, load_postgres, status."
  }
  validation {
    condition     = alltrue([for v in values(var.function_sizing) : v.memory == null || can(regex("^[0-9]+(Mi|Gi)$", v.memory))])
    error_message = "memory must look like 256Mi or 1Gi."
  }
  validation {
    # Event-driven functions are capped at 540 s; HTTP functions at 3600 s.
    condition     = alltrue([for k, v in var.function_sizing : v.timeout_seconds == null ? true : (v.timeout_seconds >= 1 && v.timeout_seconds <= (contains(["backfill_http", "status"], k) ? 3600 : 540))])
    error_message = "timeout_seconds must be 1-540 for event functions and 1-3600 for HTTP functions."
  }
  validation {
    condition     = alltrue([for v in values(var.function_sizing) : v.max_instances == null ? true : (v.max_instances >= 1 && v.max_instances <= 100)])
    error_message = "max_instances must be between 1 and 100 (bounded on purpose: Cloud SQL connections, source politeness, cost)."
  }
}

variable "invoker_members" {
  description = "Principals allowed to call the HTTP functions (status, backfill_http), e.g. [\"user:me@example.com\", \"group:data@example.com\"]. Never public."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.invoker_members : can(regex("^(user|group|serviceAccount|domain):.+", m))])
    error_message = "invoker_members must be user:, group:, serviceAccount: or domain: members (allUsers and allAuthenticatedUsers are not allowed)."
  }
}

# --- application settings (shared/core/settings.py; the same validation) ---------------------------

variable "log_level" {
  description = "LOG_LEVEL of every function."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "max_event_age_seconds" {
  description = "MAX_EVENT_AGE_SECONDS: an event older than this is dead-lettered instead of retried again."
  type        = number
  default     = 21600

  validation {
    condition     = var.max_event_age_seconds >= 60 && var.max_event_age_seconds <= 604800
    error_message = "max_event_age_seconds must be between 60 and 604800."
  }
}

variable "source_url_template" {
  description = "SOURCE_URL_TEMPLATE of the TLC month files; fields {service}, {year}, {month:02d}."
  type        = string
  default     = "https://d37ci6vzurychx.cloudfront.net/trip-data/{service}_tripdata_{year}-{month:02d}.parquet"

  validation {
    condition     = can(regex("^https?://", var.source_url_template)) && length(regexall("\\{(service|year|month(:02d)?)\\}", var.source_url_template)) >= 2
    error_message = "source_url_template must be an http(s) URL using {service}, {year} and {month}."
  }
}

variable "ingest_lag_days" {
  description = "INGEST_LAG_DAYS: a scheduled message without a date ingests today minus this many days."
  type        = number
  default     = 1

  validation {
    condition     = var.ingest_lag_days >= 0 && var.ingest_lag_days <= 3660
    error_message = "ingest_lag_days must be between 0 and 3660."
  }
}

variable "source_grace_days" {
  description = "SOURCE_GRACE_DAYS: a 404 for a month that ended fewer than this many days ago is awaiting_source (not published yet: TLC publishes about two months late), not a dead letter; from then on it is source_not_found. Keep it below catch_up_days, so the catch-up still asks for a month once its 404 became an error."
  type        = number
  default     = 92

  validation {
    condition     = var.source_grace_days >= 0 && var.source_grace_days <= 3660 && floor(var.source_grace_days) == var.source_grace_days
    error_message = "source_grace_days must be a whole number of days between 0 and 3660."
  }
}

variable "keep_empty_passenger_count" {
  description = "KEEP_EMPTY_PASSENGER_COUNT: keep trips whose passenger_count is empty (the tutorial drops them)."
  type        = bool
  default     = false
}

variable "schema_contract" {
  description = "SCHEMA_CONTRACT: what a column TLC adds does (like dlt's schema contracts). evolve: a new nullable column in the lake, BigQuery and Postgres; discard_value: dropped, recorded in the month's manifest; discard_row: rows with a value in it rejected (unexpected_column); freeze: the month is dead-lettered (schema_frozen), naming the column."
  type        = string
  default     = "evolve"

  validation {
    condition     = contains(["evolve", "discard_value", "discard_row", "freeze"], var.schema_contract)
    error_message = "schema_contract must be one of evolve, discard_value, discard_row, freeze."
  }
}

variable "download_timeout_seconds" {
  description = "DOWNLOAD_TIMEOUT_SECONDS of one read from the TLC source."
  type        = number
  default     = 60

  validation {
    condition     = var.download_timeout_seconds >= 1 && var.download_timeout_seconds <= 3600
    error_message = "download_timeout_seconds must be between 1 and 3600."
  }
}

variable "download_max_attempts" {
  description = "DOWNLOAD_MAX_ATTEMPTS of a month file download inside one invocation."
  type        = number
  default     = 4

  validation {
    condition     = var.download_max_attempts >= 1 && var.download_max_attempts <= 10
    error_message = "download_max_attempts must be between 1 and 10."
  }
}

variable "split_wait_seconds" {
  description = "SPLIT_WAIT_SECONDS: how long an ingest of a date waits for another instance's split of its month before it is retried. Keep it below the ingest timeout (540 s), with time left to publish the date."
  type        = number
  default     = 420

  validation {
    condition     = var.split_wait_seconds >= 0 && var.split_wait_seconds <= 3600
    error_message = "split_wait_seconds must be between 0 and 3600."
  }
}

variable "backfill_max_dates" {
  description = "BACKFILL_MAX_DATES: the largest (service, date) count one backfill or status request may cover."
  type        = number
  default     = 3660

  validation {
    condition     = var.backfill_max_dates >= 1 && var.backfill_max_dates <= 100000
    error_message = "backfill_max_dates must be between 1 and 100000."
  }
}

# --- BigQuery -------------------------------------------------------------------------------

variable "bq_dataset_id" {
  description = "BigQuery dataset of the {service}_trips tables."
  type        = string
  default     = "nyc_taxi"

  validation {
    # (RE2, terraform's regex engine, allows at most 1000 repetitions: check the length apart.)
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]*$", var.bq_dataset_id)) && length(var.bq_dataset_id) <= 1024
    error_message = "bq_dataset_id must be 1-1024 letters, digits and underscores, not starting with a digit."
  }
}

variable "bq_location" {
  description = "BigQuery location (US holds any US bucket's loads; use the lake's region or multi-region)."
  type        = string
  default     = "US"

  validation {
    condition     = can(regex("^[A-Za-z]+(-[A-Za-z]+[0-9])?$", var.bq_location))
    error_message = "bq_location must be a BigQuery region or multi-region (US, EU, us-central1, ...)."
  }
}

variable "bq_partition_expiration_days" {
  description = "BQ_PARTITION_EXPIRATION_DAYS of the tables the loader creates (0: never expire)."
  type        = number
  default     = 0

  validation {
    condition     = var.bq_partition_expiration_days >= 0 && var.bq_partition_expiration_days <= 100000
    error_message = "bq_partition_expiration_days must be between 0 and 100000."
  }
}

variable "bq_delete_contents_on_destroy" {
  description = "Let `terraform destroy` delete the dataset with its tables."
  type        = bool
  default     = false
}

# --- Cloud SQL ------------------------------------------------------------------------------

variable "sql_tier" {
  description = "Cloud SQL machine tier (db-f1-micro is the cheapest; db-custom-1-3840 for steady loads)."
  type        = string
  default     = "db-f1-micro"

  validation {
    condition     = can(regex("^db-(f1-micro|g1-small|custom-[0-9]+-[0-9]+|perf-optimized-N-[0-9]+)$", var.sql_tier))
    error_message = "sql_tier must be db-f1-micro, db-g1-small or db-custom-<cpus>-<memory MB>."
  }
}

variable "sql_disk_size_gb" {
  description = "Initial Cloud SQL disk size in GB (grows automatically)."
  type        = number
  default     = 10

  validation {
    condition     = var.sql_disk_size_gb >= 10 && var.sql_disk_size_gb <= 65536
    error_message = "sql_disk_size_gb must be between 10 and 65536."
  }
}

variable "sql_availability_type" {
  description = "ZONAL (cheap) or REGIONAL (high availability) Cloud SQL instance."
  type        = string
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.sql_availability_type)
    error_message = "sql_availability_type must be ZONAL or REGIONAL."
  }
}

variable "sql_deletion_protection" {
  description = "Protect the Cloud SQL instance against `terraform destroy` (set false before tearing down)."
  type        = bool
  default     = true
}

variable "sql_backup_retained_count" {
  description = "Daily Cloud SQL backups to keep."
  type        = number
  default     = 7

  validation {
    condition     = var.sql_backup_retained_count >= 1 && var.sql_backup_retained_count <= 365
    error_message = "sql_backup_retained_count must be between 1 and 365."
  }
}

variable "pg_auth_mode" {
  description = "How the functions log in to PostgreSQL: iam (each function's service account is an IAM database user, no password) or password (the built-in user, its password in Secret Manager)."
  type        = string
  default     = "iam"

  validation {
    condition     = contains(["iam", "password"], var.pg_auth_mode)
    error_message = "pg_auth_mode must be iam or password."
  }
}

variable "pg_builtin_user" {
  description = "Built-in PostgreSQL user (cloudsqlsuperuser member) whose generated password is kept in Secret Manager: the functions' login in password mode, the one-time bootstrap login in iam mode."
  type        = string
  default     = "taxi_etl"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.pg_builtin_user)) && var.pg_builtin_user != "postgres"
    error_message = "pg_builtin_user must be a lowercase PostgreSQL identifier other than postgres."
  }
}

variable "pg_database" {
  description = "PostgreSQL database of the trips tables."
  type        = string
  default     = "ny_taxi"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.pg_database))
    error_message = "pg_database must be a lowercase PostgreSQL identifier."
  }
}

variable "pg_schema" {
  description = "PostgreSQL schema of the trips tables and the loads ledger."
  type        = string
  default     = "ny_taxi"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.pg_schema))
    error_message = "pg_schema must be a lowercase PostgreSQL identifier."
  }
}

# --- monitoring: alerts and the dashboard (monitoring.tf) ------------------------------------

variable "alert_notification_channels" {
  description = "Existing Cloud Monitoring notification channels every alert policy notifies, as ids: projects/<project>/notificationChannels/<number> (gcloud beta monitoring channels list). Empty: incidents open in the console only, unless alert_email is set."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.alert_notification_channels : can(regex("^projects/[a-z0-9-]+/notificationChannels/[0-9]+$", c))])
    error_message = "alert_notification_channels must be ids like projects/my-project/notificationChannels/1234567890."
  }
}

variable "alert_email" {
  description = "If set, an email notification channel is created for this address and added to every alert policy (with alert_notification_channels)."
  type        = string
  default     = null

  validation {
    condition     = var.alert_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be an email address (or null for none)."
  }
}

variable "function_error_ratio_threshold" {
  description = "Alert when more than this share of a function's requests answer 5xx (failed and retried, crashed, timed out) for 10 minutes."
  type        = number
  default     = 0.1

  validation {
    condition     = var.function_error_ratio_threshold > 0 && var.function_error_ratio_threshold <= 1
    error_message = "function_error_ratio_threshold must be a share in (0, 1]."
  }
}

variable "freshness_deadline_hour_utc" {
  description = "Hour (UTC, 0-23) from which, until midnight UTC, the freshness alert of each service in var.services fires if the daily catch-up found dates the source has published not loaded (a 'behind' freshness line in the last 25 hours) or did not judge the service at all in the last 26 hours. Set it after schedule_cron. null, or schedule_paused: no freshness alert."
  type        = number
  default     = 10

  validation {
    condition     = var.freshness_deadline_hour_utc == null || try(var.freshness_deadline_hour_utc >= 0 && var.freshness_deadline_hour_utc <= 23 && floor(var.freshness_deadline_hour_utc) == var.freshness_deadline_hour_utc, false)
    error_message = "freshness_deadline_hour_utc must be a whole hour from 0 to 23, or null."
  }
}

variable "sql_disk_utilization_threshold" {
  description = "Alert when the Cloud SQL disk is fuller than this share for 10 minutes (the disk grows automatically, but not without limit, and never shrinks)."
  type        = number
  default     = 0.8

  validation {
    condition     = var.sql_disk_utilization_threshold > 0 && var.sql_disk_utilization_threshold < 1
    error_message = "sql_disk_utilization_threshold must be a share in (0, 1)."
  }
}

variable "sql_max_connections" {
  description = "max_connections of the Cloud SQL instance; null: Cloud SQL's default for the tier's memory (db-f1-micro 25, db-g1-small 50, db-custom-*: 100 to 1000, see monitoring.tf). Set it for db-perf-optimized tiers or a max_connections flag."
  type        = number
  default     = null

  validation {
    condition     = var.sql_max_connections == null || try(var.sql_max_connections >= 1 && var.sql_max_connections <= 262143, false)
    error_message = "sql_max_connections must be between 1 and 262143 (PostgreSQL's limit), or null."
  }
}

variable "sql_connections_alert_ratio" {
  description = "Alert when the Cloud SQL backends (connections) exceed this share of max_connections for 5 minutes."
  type        = number
  default     = 0.8

  validation {
    condition     = var.sql_connections_alert_ratio > 0 && var.sql_connections_alert_ratio <= 1
    error_message = "sql_connections_alert_ratio must be a share in (0, 1]."
  }
}

# --- propagation waits (waits.tf) ------------------------------------------------------------------

variable "service_agent_propagation_wait" {
  description = "How long the first apply waits, after the APIs are enabled and the service agents are granted, before it creates the event functions (their Eventarc triggers fail until the grants propagate). Only when the wait is created."
  type        = string
  default     = "120s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.service_agent_propagation_wait))
    error_message = "service_agent_propagation_wait must be a number of seconds such as \"120s\"."
  }
}

variable "log_metric_propagation_wait" {
  description = "How long the first apply waits after creating the log-based metrics before it creates the alerts on them (Monitoring: up to 10 minutes). Only when the wait is created or a metric changes."
  type        = string
  default     = "600s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.log_metric_propagation_wait))
    error_message = "log_metric_propagation_wait must be a number of seconds such as \"600s\"."
  }
}
