#!/usr/bin/env bash
# Debian's Chromium (and its ChromeDriver) for the browser test in tests/e2e/. Idempotent: does
# nothing when /usr/bin/chromium is already there. Needs root (as on the dev machines and in CI).
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_browser.sh: Chromium is missing and installing it needs root:" >&2
    echo "  sudo apt-get install -y chromium chromium-driver" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
