"""Dashboards, alert rules and Prometheus configuration for email-ingest (no runtime code of the services)."""
