# The lake bucket (raw/, staging/, trips/, rejects/, quarantine/, runs/) and the bucket of function archives.

resource "google_storage_bucket" "lake" {
  #checkov:skip=CKV_GCP_62:Only the pipeline's own service accounts read or write it, and each logs what it read or wrote; usage logs would need a second bucket (itself unlogged). Enable Data Access audit logs project-wide where an audit trail is required.
  name                        = local.lake_bucket_name
  location                    = local.lake_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  # raw/: verbatim month files, read once per month -> cheaper storage, then deleted.
  lifecycle_rule {
    condition {
      age            = var.raw_nearline_after_days
      matches_prefix = ["raw/"]
      with_state     = "LIVE"
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  dynamic "lifecycle_rule" {
    for_each = var.raw_delete_after_days > 0 ? [var.raw_delete_after_days] : []
    content {
      condition {
        age            = lifecycle_rule.value
        matches_prefix = ["raw/"]
        with_state     = "LIVE"
      }
      action {
        type = "Delete"
      }
    }
  }

  # rejects/: rows kept out of trips/, kept for inspection only.
  lifecycle_rule {
    condition {
      age            = var.rejects_delete_after_days
      matches_prefix = ["rejects/"]
      with_state     = "LIVE"
    }
    action {
      type = "Delete"
    }
  }

  # staging/{service}/month=YYYY-MM/: the cleaned months, a cache ingest rebuilds when a month's
  # _manifest.json is missing (ingest trusts a month whose manifest is there and reads its day files).
  # The manifest, written last, goes after staging_delete_after_days; the day files two days later,
  # so a manifest never outlives its files (lifecycle actions can lag the condition by up to a day).
  lifecycle_rule {
    condition {
      age            = var.staging_delete_after_days
      matches_prefix = ["staging/"]
      matches_suffix = ["/_manifest.json"]
      with_state     = "LIVE"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age            = var.staging_delete_after_days + 2
      matches_prefix = ["staging/"]
      with_state     = "LIVE"
    }
    action {
      type = "Delete"
    }
  }

  # runs/: the run ledger (shared/core/ledger.py), one small JSON per (function, event) that status reads to
  # tell running / retrying / dead_lettered dates; past this age a date's attempts are history.
  lifecycle_rule {
    condition {
      age            = var.runs_delete_after_days
      matches_prefix = ["runs/"]
      with_state     = "LIVE"
    }
    action {
      type = "Delete"
    }
  }

  # A replayed day overwrites its partition: keep old versions only briefly. (Also bounds runs/:
  # every attempt of an event overwrites its record, leaving the previous one noncurrent.)
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_versions_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only build inputs (zips named by content hash) written by terraform and read by Cloud Build; usage logs would need a second bucket (itself unlogged).
  name                        = local.source_bucket_name
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  # Each code change uploads a new zip. A deployed function runs its built image, not the zip, so old
  # zips only serve a rollback; if the current one ages out, the next apply uploads it again.
  lifecycle_rule {
    condition {
      age        = 90
      with_state = "ANY"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# One zip of the repository's runtime code (main.py, functions/, shared/, requirements.txt).
data "archive_file" "source" {
  type        = "zip"
  source_dir  = "${path.module}/../.."
  output_path = "${path.module}/.terraform/tmp/function-source.zip"
  # Everything but the runtime code. Directory entries exclude the whole tree; the glob entries
  # catch bytecode anywhere (archive provider >= 2.4), so a test run never changes the hash.
  excludes = [
    ".git",
    ".github",
    ".ci",
    ".venv",
    ".state",
    ".pytest_cache",
    ".terraform",
    ".gitignore",
    ".git-blame-ignore-revs",
    ".pre-commit-config.yaml",
    ".mypy_cache",
    ".ruff_cache",
    "__pycache__",
    "functions/__pycache__",
    "shared/__pycache__",
    "**/__pycache__",
    "**/*.pyc",
    "bench",
    "chaos",
    "docs",
    "infra",
    "local",
    "tests",
    "test-artifacts",
    "README.md",
    "pytest.ini",
    "pyproject.toml",
    "cloudbuild.yaml",
    "local_emulator.sh",
    "requirements-dev.txt",
    "requirements-infra.txt",
  ]
}

# The content hash is in the object name, so a code change is a new object and redeploys the functions.
resource "google_storage_bucket_object" "source" {
  name   = "functions/source-${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}
