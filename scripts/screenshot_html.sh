#!/usr/bin/env bash
# Render an HTML export in headless Chromium (Debian's `chromium` package) and save a PNG screenshot.
#   scripts/screenshot_html.sh wwhub-report/index.html screenshot.png [WIDTHxHEIGHT]
set -euo pipefail
page=$(realpath "$1"); out=$(realpath -m "$2"); size=${3:-1400,2600}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
  --window-size="${size/x/,}" --screenshot="$out" "file://$page" 2>/dev/null
echo "$out"
