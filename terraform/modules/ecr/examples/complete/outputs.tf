output "repository_urls" {
  description = "Repository URLs by name."
  value       = module.ecr.repository_urls
}
