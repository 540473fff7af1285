output "queue_url" {
  description = "URL of the main queue."
  value       = module.queue.queue_url
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = module.queue.dlq_url
}

output "kms_queue_url" {
  description = "URL of the KMS-encrypted queue."
  value       = module.queue_kms.queue_url
}
