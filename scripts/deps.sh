#!/usr/bin/env bash
# Install the Debian packages equirelax needs, only those that are missing.
# Sourced by the other scripts; runs apt-get as root (or through sudo).
set -euo pipefail
eqr_pkgs="build-essential cmake pkg-config libopenblas-dev zlib1g-dev libcmocka-dev dataset-fashion-mnist"
eqr_missing=""
for p in $eqr_pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || eqr_missing="$eqr_missing $p"
done
if [ -n "$eqr_missing" ]; then
  echo "equirelax: installing Debian packages:$eqr_missing" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq $eqr_missing >/dev/null
fi
