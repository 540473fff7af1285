#!/usr/bin/env bash
# gofakes3: an in-memory S3 server that honours If-None-Match, about twice moto's PUT rate here. The benchmark
# uses it so that the consumer's figures measure the consumer, not the S3 emulator.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
go_install gofakes3 github.com/johannesboyne/gofakes3/cmd/gofakes3@v1.2.0
