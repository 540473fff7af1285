output "bucket_id" {
  description = "Name of the bucket."
  value       = module.bucket.bucket_id
}

output "kms_key_arn" {
  description = "ARN of the bucket's KMS key."
  value       = module.bucket.kms_key_arn
}
