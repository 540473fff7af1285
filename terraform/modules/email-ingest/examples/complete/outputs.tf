output "helm_values" {
  description = "Values for the Helm chart."
  value       = module.email_ingest.helm_values
}
