#!/usr/bin/env bash
# The whole suite: type check, then every test on a real Temporal dev server,
# real SQLite, PostgreSQL (PGlite or DATABASE_URL), Neo4j and the Qdrant double
# (or QDRANT_URL). Ends with one plain "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit -p . || exit 1
mkdir -p .memshift
npx vitest run --reporter=default --reporter=json --outputFile.json=.memshift/test-results.json "$@"
status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(".memshift/test-results.json", "utf8"));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' || true
exit $status
