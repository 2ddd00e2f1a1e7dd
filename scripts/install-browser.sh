#!/usr/bin/env bash
# Installs Debian's headless Chromium for the Web UI check (test/web-ui.test.ts),
# unless it is already there or MEMSHIFT_CHROMIUM names another browser.
set -euo pipefail
browser="${MEMSHIFT_CHROMIUM:-/usr/bin/chromium-headless-shell}"
if [ -x "$browser" ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-browser: $browser is missing; as root run: apt-get install chromium-headless-shell" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell >/dev/null
"$browser" --version
