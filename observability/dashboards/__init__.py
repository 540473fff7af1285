"""Grafana dashboards as code: `python -m observability.dashboards.generate` writes the JSON beside it."""
