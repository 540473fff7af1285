# The query layer over the batched layout: a Glue table with partition projection (no crawler, no
# MSCK REPAIR: Athena computes the dt/hour partitions from the query's predicates), an Athena workgroup with
# encrypted results and a scan limit, and a saved query that removes the at-least-once duplicates.

locals {
  database_name = replace(var.name, "-", "_")
  location      = "s3://${var.bucket_name}/${var.batch_key_prefix}"

  # The columns of one NDJSON line: exactly the per-email document (docs/contract.md). received_at stays a
  # string: the OpenX SerDe does not read ISO-8601 with a Z as a timestamp; from_iso8601_timestamp() does.
  columns = [
    { name = "email_id", type = "string", comment = "UUID; duplicates across batches share it (at least once)" },
    { name = "received_at", type = "string", comment = "RFC 3339 UTC with milliseconds, when the API accepted it" },
    { name = "client", type = "string", comment = "the API client whose token sent it; null before clients existed" },
    { name = "email_subject", type = "string", comment = "" },
    { name = "email_sender", type = "string", comment = "" },
    { name = "email_timestream", type = "bigint", comment = "the email's own Unix timestamp (seconds)" },
    { name = "email_content", type = "string", comment = "" },
  ]
}

resource "aws_glue_catalog_database" "this" {
  name        = local.database_name
  description = "email-ingest: the batched layout's emails."

  tags = var.tags
}

resource "aws_glue_catalog_table" "emails" {
  name          = "emails"
  database_name = aws_glue_catalog_database.this.name
  description   = "One row per line of s3://${var.bucket_name}/${var.batch_key_prefix}dt=YYYY-MM-DD/hour=HH/*.ndjson.gz; deduplicate by email_id."
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    "classification"              = "json"
    "compressionType"             = "gzip"
    "EXTERNAL"                    = "TRUE"
    "projection.enabled"          = "true"
    "projection.dt.type"          = "date"
    "projection.dt.format"        = "yyyy-MM-dd"
    "projection.dt.range"         = "${var.projection_start_date},NOW"
    "projection.dt.interval"      = "1"
    "projection.dt.interval.unit" = "DAYS"
    "projection.hour.type"        = "integer"
    "projection.hour.range"       = "0,23"
    "projection.hour.digits"      = "2"
    "storage.location.template"   = "${local.location}dt=$${dt}/hour=$${hour}/"
  }

  partition_keys {
    name    = "dt"
    type    = "date"
    comment = "UTC day the API accepted the email"
  }

  partition_keys {
    name    = "hour"
    type    = "int"
    comment = "UTC hour (0-23) the API accepted the email"
  }

  storage_descriptor {
    location      = local.location
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {
      name                  = "emails-ndjson"
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
      parameters = {
        # A line that is not JSON must fail the query, not turn into a row of NULLs.
        "ignore.malformed.json" = "FALSE"
      }
    }

    dynamic "columns" {
      for_each = local.columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

resource "aws_athena_workgroup" "this" {
  name          = var.name
  description   = "email-ingest: queries over the batched emails, results encrypted under ${var.results_key_prefix}."
  force_destroy = var.force_destroy

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.bytes_scanned_cutoff_per_query

    result_configuration {
      output_location = "s3://${var.bucket_name}/${var.results_key_prefix}"

      encryption_configuration {
        encryption_option = var.kms_key_arn == null ? "SSE_S3" : "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }

  tags = var.tags
}

resource "aws_athena_named_query" "deduplicated" {
  name        = "${var.name}-emails-deduplicated"
  description = "Every email once (the batched layout delivers at least once): the first line of each email_id and content (two different emails under one email_id, an Idempotency-Key conflict, are both kept). Narrow dt and hour in the outer query to limit the scan."
  database    = aws_glue_catalog_database.this.name
  workgroup   = aws_athena_workgroup.this.id
  query       = <<-SQL
    CREATE OR REPLACE VIEW emails_deduplicated AS
    SELECT email_id, received_at, client, email_subject, email_sender, email_timestream, email_content, dt, hour
    FROM (
      SELECT *, row_number() OVER (
        PARTITION BY email_id, client, email_subject, email_sender, email_timestream, email_content
        ORDER BY received_at, "$path"
      ) AS copy
      FROM "${aws_glue_catalog_database.this.name}"."${aws_glue_catalog_table.emails.name}"
    )
    WHERE copy = 1
  SQL
}
