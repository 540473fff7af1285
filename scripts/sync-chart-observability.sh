#!/usr/bin/env bash
# Copies the project's Prometheus alert rules and Grafana dashboards into the Helm chart, which cannot read files
# outside its own folder. The chart's copies are never edited by hand: tests/helm/test_chart.py fails when they
# differ from the sources. Run this after changing anything under observability/alerts or observability/dashboards.
#
#   observability/alerts/*.rules.yaml   -> helm/email-ingest/files/alerts/
#   observability/dashboards/*.json     -> helm/email-ingest/files/dashboards/
#
# Files in the chart's folders that have no source any more (e.g. the placeholders) are removed.
set -euo pipefail
repo_root="$(cd "$(dirname "$0")/.." && pwd)"
chart_files="$repo_root/helm/email-ingest/files"

sync_dir() {
  local src_dir="$1" pattern="$2" dest_dir="$3"
  shopt -s nullglob
  # shellcheck disable=SC2206 # $pattern is meant to glob
  local sources=("$src_dir"/$pattern)
  shopt -u nullglob
  if [ "${#sources[@]}" -eq 0 ]; then
    echo "sync-chart-observability: no $pattern in ${src_dir#"$repo_root"/}; leaving ${dest_dir#"$repo_root"/} as it is" >&2
    return 1
  fi
  mkdir -p "$dest_dir"
  local f name
  for f in "$dest_dir"/*; do
    [ -e "$f" ] || continue
    name="$(basename "$f")"
    if [ ! -e "$src_dir/$name" ]; then
      rm -f "$f"
      echo "removed ${f#"$repo_root"/}"
    fi
  done
  for f in "${sources[@]}"; do
    name="$(basename "$f")"
    if ! cmp -s "$f" "$dest_dir/$name"; then
      cp "$f" "$dest_dir/$name"
      echo "copied ${f#"$repo_root"/} -> ${dest_dir#"$repo_root"/}/$name"
    fi
  done
}

status=0
sync_dir "$repo_root/observability/alerts" '*.rules.yaml' "$chart_files/alerts" || status=1
sync_dir "$repo_root/observability/dashboards" '*.json' "$chart_files/dashboards" || status=1
exit "$status"
