#!/usr/bin/env bash
# Checks that docker-compose.yml parses and resolves (no engine needed):
# `docker compose config` when the Compose plugin exists, else Debian's docker-compose.
set -euo pipefail
cd "$(dirname "$0")/.."
if docker compose version >/dev/null 2>&1; then
  exec docker compose -f docker-compose.yml config --quiet
elif command -v docker-compose >/dev/null; then
  exec docker-compose -f docker-compose.yml config --quiet
else
  echo "Neither 'docker compose' nor 'docker-compose' is installed (apt-get install -y docker-compose)." >&2
  exit 2
fi
