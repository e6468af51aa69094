#!/usr/bin/env bash
# Installs the system packages the tests need, only when missing: a JDK 17 (javac
# builds jvm/, exitless's Spark codecs; java runs PySpark's end-to-end tests) and SoftHSM2, the PKCS#11
# token the KMS tests initialise. Debian/Ubuntu (apt-get); uses sudo when not root.
# Quick when everything is there.
set -euo pipefail
missing=()
{ command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1; } || missing+=(openjdk-17-jdk-headless)
{ command -v softhsm2-util >/dev/null 2>&1 && [ -e /usr/lib/softhsm/libsofthsm2.so ]; } || missing+=(softhsm2)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${missing[*]} and no apt-get here: install them and rerun" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "system-deps: installing ${missing[*]}"
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
