output "state_bucket" {
  description = "Bucket name for backend.hcl of envs/dev and envs/prod."
  value       = module.state_bucket.bucket_id
}

output "state_kms_key_arn" {
  description = "KMS key that encrypts the state objects."
  value       = module.state_bucket.kms_key_arn
}
