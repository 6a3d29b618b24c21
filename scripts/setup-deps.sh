#!/bin/sh
# Installs the Debian packages ctrace needs to build and test. The Makefile calls this only
# when a probe (a header or a tool) is missing, so a prepared machine never runs apt.
set -e
PKGS="build-essential pkg-config libsleef-dev libnuma-dev libxxhash-dev libcriterion-dev \
      libjansson-dev libyaml-dev libzip-dev xxhash valgrind libopenblas-dev \
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libmicrohttpd-dev libpcre2-dev chromium curl jq"
ARM_PKGS="libsleef-dev:arm64 libnuma-dev:arm64 libxxhash-dev:arm64 libjansson-dev:arm64 libyaml-dev:arm64 libzip-dev:arm64 libmicrohttpd-dev:arm64 libpcre2-dev:arm64"
if [ "$(id -u)" != 0 ]; then
    echo "setup-deps: missing packages and not root; install as root: apt-get install $PKGS $ARM_PKGS" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# arm64 multiarch: the NEON kernels and forward are cross-built and run under qemu-aarch64,
# and they link the arm64 SLEEF.
dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
apt-get update -qq
apt-get install -y -qq --no-install-recommends $PKGS $ARM_PKGS >/dev/null
echo "setup-deps: installed $PKGS $ARM_PKGS" >&2
