#!/usr/bin/env bash
# Runs the whole test suite: unit tests and integration tests against real OpenLDAP servers
# that the tests start on loopback. Installs slapd, ldap-utils and openssl first (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh slapd ldap-utils openssl ca-certificates
export PATH="$HOME/.cargo/bin:$PATH"
cargo test --locked
