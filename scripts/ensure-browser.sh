#!/usr/bin/env bash
# The end-to-end tests drive Debian's Chromium through Playwright (never `playwright install`).
set -euo pipefail
if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi "noto.*cjk"; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium and fonts-noto-cjk for the browser tests..."
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
  exit 0
fi
echo "make test needs Debian's chromium and fonts-noto-cjk (apt-get install chromium fonts-noto-cjk)" >&2
exit 1
