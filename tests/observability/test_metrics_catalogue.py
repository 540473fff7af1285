"""docs/metrics.md lists every metric of docs/contract.md with the same type, and nothing else."""

from __future__ import annotations

from tests.observability.metrics_catalogue import CATALOGUE, contract_metrics, recorded_series, table_metrics


def test_contract_defines_the_metrics_of_both_services() -> None:
    names = contract_metrics()
    assert len(names) >= 30
    assert "email_ingest_api_requests_total" in names
    assert "email_ingest_queue_oldest_message_age_seconds" in names


def test_catalogue_lists_every_contract_metric_with_its_type() -> None:
    catalogue = table_metrics(CATALOGUE.read_text(encoding="utf-8"))
    assert catalogue == contract_metrics()


def test_catalogue_explains_every_recording_rule() -> None:
    text = CATALOGUE.read_text(encoding="utf-8")
    for series in recorded_series():
        prefix, _, window = series.rpartition("rate")
        assert series in text or (f"`{prefix}rate5m`" in text and f"`{window}`" in text), series


def test_table_parser_reads_name_and_type_and_skips_other_rows() -> None:
    text = "| metric | type |\n|---|---|\n| `email_ingest_x_total` | counter | `a` |\n| `other` | gauge |\n"
    assert {n: m.type for n, m in table_metrics(text).items()} == {"email_ingest_x_total": "counter"}
