output "bucket_id" {
  description = "Name of the bucket (S3_BUCKET)."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = aws_s3_bucket.this.arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key used for SSE-KMS; null with SSE-S3."
  value       = local.kms_key_arn
}
