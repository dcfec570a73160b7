# Terraform and provider versions. Remote state: see backend.gcs.tf.example and README.md.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    # 6.50 and later 6.x only: the offline schema check (README.md, Checks) validates this
    # configuration against hashicorp/google 6.50.0, and nothing here can check 7.x.
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    # time_sleep: the propagation waits of the first apply (waits.tf).
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = var.labels
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Short names used in resource names; every name starts with var.name_prefix.
  p = var.name_prefix

  lake_bucket_name   = coalesce(var.lake_bucket_name, "${var.project_id}-${var.name_prefix}-lake")
  source_bucket_name = "${var.project_id}-${var.name_prefix}-fn-source"
  lake_location      = upper(coalesce(var.lake_location, var.region))

  # Service agents Google creates per project (no keys, never impersonated by us).
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
