#!/bin/sh
# What the service's tests need from the system, on a fresh Debian machine: a real MQTT broker (Mosquitto) and a
# real headless browser with its driver (Chromium), from Debian's packages (nothing is downloaded at test time).
set -eu
missing=""
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$missing mosquitto"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "error: the service tests need the Debian packages:$missing; install them as root" >&2
    exit 2
fi
echo "installing$missing (Debian packages, for the service tests)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
