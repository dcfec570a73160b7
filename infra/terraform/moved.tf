# State moves of the for_each refactor (one function resource, grant tables in iam.tf): an existing
# deployment keeps its functions and grants instead of destroying and re-creating them (a grant
# destroyed after its replacement was created would be gone). Terraform applies these on the next
# plan; remove them once every state (every workspace and backend) has been applied with them.

moved {
  from = google_cloudfunctions2_function.ingest
  to   = google_cloudfunctions2_function.function["ingest"]
}
moved {
  from = google_cloudfunctions2_function.backfill
  to   = google_cloudfunctions2_function.function["backfill"]
}
moved {
  from = google_cloudfunctions2_function.backfill_http
  to   = google_cloudfunctions2_function.function["backfill_http"]
}
moved {
  from = google_cloudfunctions2_function.load_bigquery
  to   = google_cloudfunctions2_function.function["load_bigquery"]
}
moved {
  from = google_cloudfunctions2_function.load_postgres
  to   = google_cloudfunctions2_function.function["load_postgres"]
}
moved {
  from = google_cloudfunctions2_function.status
  to   = google_cloudfunctions2_function.function["status"]
}

moved {
  from = google_storage_bucket_iam_member.ingest_writes_lake
  to   = google_storage_bucket_iam_member.lake["ingest"]
}
moved {
  from = google_storage_bucket_iam_member.load_bigquery_reads_lake
  to   = google_storage_bucket_iam_member.lake["load_bigquery"]
}
moved {
  from = google_storage_bucket_iam_member.load_postgres_reads_lake
  to   = google_storage_bucket_iam_member.lake["load_postgres"]
}
moved {
  from = google_storage_bucket_iam_member.status_readers_read_lake["backfill"]
  to   = google_storage_bucket_iam_member.lake["backfill"]
}
moved {
  from = google_storage_bucket_iam_member.status_readers_read_lake["backfill_http"]
  to   = google_storage_bucket_iam_member.lake["backfill_http"]
}
moved {
  from = google_storage_bucket_iam_member.status_readers_read_lake["status"]
  to   = google_storage_bucket_iam_member.lake["status"]
}

moved {
  from = google_pubsub_topic_iam_member.backfill_publishes_ingest
  to   = google_pubsub_topic_iam_member.backfills_publish_ingest["backfill"]
}
moved {
  from = google_pubsub_topic_iam_member.backfill_http_publishes_ingest
  to   = google_pubsub_topic_iam_member.backfills_publish_ingest["backfill_http"]
}

moved {
  from = google_bigquery_dataset_iam_member.load_bigquery_edits_dataset
  to   = google_bigquery_dataset_iam_member.nyc_taxi["load_bigquery"]
}
moved {
  from = google_bigquery_dataset_iam_member.status_readers_read_dataset["backfill"]
  to   = google_bigquery_dataset_iam_member.nyc_taxi["backfill"]
}
moved {
  from = google_bigquery_dataset_iam_member.status_readers_read_dataset["backfill_http"]
  to   = google_bigquery_dataset_iam_member.nyc_taxi["backfill_http"]
}
moved {
  from = google_bigquery_dataset_iam_member.status_readers_read_dataset["status"]
  to   = google_bigquery_dataset_iam_member.nyc_taxi["status"]
}

moved {
  from = google_project_iam_member.build_writes_logs
  to   = google_project_iam_member.build["logs"]
}
moved {
  from = google_project_iam_member.build_writes_images
  to   = google_project_iam_member.build["images"]
}
