#!/usr/bin/env bash
# Debian packages some tests need, installed when missing (as root, with apt-get):
# Chromium and its driver for the browser tests, docker-compose to validate
# docker-compose.yml (no Docker engine is needed for that), curl for the gateway's
# acceptance script. Without root or apt-get it says what to install; the tests that
# need them then fail with the same advice.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v curl >/dev/null || missing+=(curl)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "system-deps: please install ${missing[*]} (e.g. sudo apt-get install -y ${missing[*]})" >&2
fi
