output "database_name" {
  description = "Glue database of the emails table."
  value       = aws_glue_catalog_database.this.name
}

output "table_name" {
  description = "Glue table over the batch objects (one row per line, duplicates included)."
  value       = aws_glue_catalog_table.emails.name
}

output "table_columns" {
  description = "The table's columns and their types (the NDJSON document; dt and hour are the partitions)."
  value       = { for column in local.columns : column.name => column.type }
}

output "workgroup_name" {
  description = "Athena workgroup to run queries in (results encrypted, scan-limited)."
  value       = aws_athena_workgroup.this.name
}

output "results_location" {
  description = "Where the workgroup writes query results."
  value       = "s3://${var.bucket_name}/${var.results_key_prefix}"
}

output "deduplicated_view_query_id" {
  description = "Saved query that creates the emails_deduplicated view (run it once in the workgroup)."
  value       = aws_athena_named_query.deduplicated.id
}
