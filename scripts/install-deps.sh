#!/usr/bin/env bash
# Installs what the demo and the tests need on Debian: the named apt packages (when missing)
# and checks for a Rust toolchain. Run as root when packages are missing.
#   scripts/install-deps.sh PACKAGE...
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${missing[*]}; run this as root (or: sudo apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  echo "installing ${missing[*]} ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
    [ -x "$d/cargo" ] && export PATH="$d:$PATH"
  done
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "no Rust toolchain found: install a current stable Rust with rustup (https://rustup.rs)," >&2
  echo "e.g.  curl -sSf https://sh.rustup.rs | sh -s -- -y  then open a new shell." >&2
  echo "(Debian 12's own cargo package is too old to build scim2ldap.)" >&2
  exit 1
fi
