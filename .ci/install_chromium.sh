#!/usr/bin/env bash
# Install Debian's Chromium for the demo's browser test (tests/test_demo.py drives it through the
# playwright Python package; Playwright's own browser download is not used).
# Idempotent; Debian/Ubuntu only; needs root or passwordless sudo.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "install_chromium: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "install_chromium: $(/usr/bin/chromium --version 2>/dev/null || echo chromium installed)"
