output "dns_name" {
  description = "DNS name of the load balancer."
  value       = module.ingress.dns_name
}
