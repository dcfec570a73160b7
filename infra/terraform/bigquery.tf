# The BigQuery dataset. The {service}_trips tables are NOT declared here: load_bigquery creates each
# table on first load (day-partitioned on pickup_date, clustered, with column descriptions) from
# shared/core/schemas.py, which is the one place the schema lives. Declaring them here as well would be a
# second copy that drifts, and Terraform would then fight the loader over schema and partition
# settings (BQ_PARTITION_EXPIRATION_DAYS is passed to the loader for that reason).

resource "google_bigquery_dataset" "nyc_taxi" {
  #checkov:skip=CKV_GCP_81:Public TLC trip data; Google-managed encryption, no customer KMS key to operate or pay for.
  dataset_id                 = var.bq_dataset_id
  friendly_name              = "NYC taxi trips"
  description                = "Cleaned NYC TLC trips, one day-partitioned table per service ({service}_trips), loaded by the load_bigquery function."
  location                   = var.bq_location
  delete_contents_on_destroy = var.bq_delete_contents_on_destroy

  depends_on = [google_project_service.apis]
}
