# Cloud SQL for PostgreSQL 15 (the version the local stack and the tests run). Reached only through
# the Cloud SQL connector: a public IP with no authorized network accepts no direct connection; the
# connector authorises each connection with IAM and encrypts it with short-lived certificates.

resource "google_sql_database_instance" "postgres" {
  #checkov:skip=CKV_GCP_60:Public IP with no authorized networks: only the IAM-authorised Cloud SQL connector can connect; private IP would need a VPC and a serverless connector for the functions.
  #checkov:skip=CKV_GCP_79:PostgreSQL 15 on purpose: the local stack, the tests and the loader SQL are verified on 15.
  name                = "${local.p}-postgres"
  database_version    = "POSTGRES_15"
  region              = var.region
  deletion_protection = var.sql_deletion_protection

  settings {
    tier                        = var.sql_tier
    edition                     = "ENTERPRISE"
    availability_type           = var.sql_availability_type
    disk_type                   = "PD_SSD"
    disk_size                   = var.sql_disk_size_gb
    disk_autoresize             = true
    deletion_protection_enabled = var.sql_deletion_protection
    user_labels                 = var.labels

    ip_configuration {
      ipv4_enabled = true
      ssl_mode     = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED" # what the connector presents; no plain or password-only TLS
      # No authorized_networks: nothing, and certainly not 0.0.0.0/0, may connect directly.
    }

    backup_configuration {
      enabled                        = true
      start_time                     = "03:00"
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = var.sql_backup_retained_count
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7
      hour         = 6
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_duration" # a handful of statements per load: cheap to log
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_sql_database" "ny_taxi" {
  name     = var.pg_database
  instance = google_sql_database_instance.postgres.name
}

# IAM database users: each function that reads or writes PostgreSQL logs in as its own service
# account (the name is the email without ".gserviceaccount.com"), no password. Privileges inside
# the database are granted once with the SQL of the postgres_bootstrap_sql output (README.md).
resource "google_sql_user" "iam" {
  for_each = var.pg_auth_mode == "iam" ? local.pg_readers : {}

  name     = trimsuffix(each.value, ".gserviceaccount.com")
  instance = google_sql_database_instance.postgres.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

# The built-in user: the functions' login in password mode, the bootstrap login in iam mode. Its
# generated password is kept in Secret Manager (and, as for any Terraform-made password, in the
# state, which is why the state bucket must be private).
resource "random_password" "pg" {
  length  = 32
  special = false
}

resource "google_sql_user" "builtin" {
  name     = var.pg_builtin_user
  instance = google_sql_database_instance.postgres.name
  type     = "BUILT_IN"
  password = random_password.pg.result
}

resource "google_secret_manager_secret" "pg_password" {
  secret_id = "${local.p}-pg-password"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "pg_password" {
  secret      = google_secret_manager_secret.pg_password.id
  secret_data = random_password.pg.result
}

locals {
  # What the functions' PG_USER is: their own IAM database user, or the built-in user.
  pg_user = {
    for name, email in local.pg_readers :
    name => var.pg_auth_mode == "iam" ? trimsuffix(email, ".gserviceaccount.com") : var.pg_builtin_user
  }

  # One-time grants inside PostgreSQL for iam mode (run as the built-in user; see README.md).
  pg_loader_role = "\"${trimsuffix(google_service_account.load_postgres.email, ".gserviceaccount.com")}\""
  pg_reader_roles = join(", ", [
    for name in ["status", "backfill", "backfill_http"] : "\"${trimsuffix(local.pg_readers[name], ".gserviceaccount.com")}\""
  ])
  postgres_bootstrap_sql = <<-EOT
    GRANT CONNECT, CREATE ON DATABASE ${var.pg_database} TO ${local.pg_loader_role};
    GRANT CONNECT ON DATABASE ${var.pg_database} TO ${local.pg_reader_roles};
    GRANT ${local.pg_loader_role} TO CURRENT_USER;
    CREATE SCHEMA IF NOT EXISTS ${var.pg_schema} AUTHORIZATION ${local.pg_loader_role};
    GRANT USAGE ON SCHEMA ${var.pg_schema} TO ${local.pg_reader_roles};
    GRANT SELECT ON ALL TABLES IN SCHEMA ${var.pg_schema} TO ${local.pg_reader_roles};
    ALTER DEFAULT PRIVILEGES FOR ROLE ${local.pg_loader_role} IN SCHEMA ${var.pg_schema} GRANT SELECT ON TABLES TO ${local.pg_reader_roles};
  EOT
}
