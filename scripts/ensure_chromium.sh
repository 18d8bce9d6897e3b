#!/usr/bin/env bash
# Headless Chromium for the book's browser test, from Debian's packages.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "chromium is missing and we are not root: install Debian's 'chromium' package, then re-run." >&2
    exit 1
  fi
fi
echo "Installing Debian's chromium for the book's browser test..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium
