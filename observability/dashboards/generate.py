"""Writes the Grafana dashboards of email-ingest as JSON files beside this module.

    python -m observability.dashboards.generate           # rewrite the committed JSON
    python -m observability.dashboards.generate --check   # exit 1 when a committed file is out of date

One module per dashboard (overview, api, publisher, consumer, queue) builds it with Grafana's builders
(grafana-foundation-sdk) in the house style of panels.py; queries.py holds the PromQL, limits.py the services'
defaults drawn as thresholds. Every query selects `namespace=~"$namespace", job=~"$job", instance=~"$instance"`.
The variables' "All" values are `.*` for namespace (matches series without a namespace label, as on a plain
Prometheus) and `.+` for job and instance (every scraped series has them), so the dashboards work unchanged on a
bare Prometheus and in Kubernetes. Metric names come from docs/contract.md; docs/metrics.md explains them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in {None, ""}:
    # Run as a file: this folder would come first on sys.path (and its queue.py would shadow the standard
    # library's queue); put the repository there instead so that the package imports below resolve.
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from observability.dashboards import api, consumer, overview, publisher, queue
from observability.dashboards.panels import JSON

OUT_DIR = Path(__file__).resolve().parent


def dashboards() -> dict[str, JSON]:
    """File name -> Grafana JSON of every dashboard."""
    built = (overview.dashboard(), api.dashboard(), publisher.dashboard(), consumer.dashboard(), queue.dashboard())
    return {f"{document['uid']}.json": document for document in built}


def serialize(dashboard: JSON) -> str:
    # Sorted keys: the SDK's field order follows its schema, a sorted file diffs readably across SDK upgrades.
    return json.dumps(dashboard, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help="where the JSON files go (default: beside me)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file is out of date")
    args = parser.parse_args(argv)
    out_dir: Path = args.out_dir
    stale: list[str] = []
    for name, dashboard in dashboards().items():
        path = out_dir / name
        text = serialize(dashboard)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.write_text(text, encoding="utf-8")
    if stale:
        print(
            f"out of date: {', '.join(stale)}; run `python -m observability.dashboards.generate`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
