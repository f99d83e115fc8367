#!/usr/bin/env bash
# Builds the Debian package with cargo-deb: target/debian/scim2ldap_VERSION_ARCH.deb (the
# binary, the systemd unit, the config as a conffile, the example configs, the OpenLDAP
# schema, the guides and the man pages). With --check it then proves the package
# (scripts/check-package.sh). Installs dpkg-dev and cargo-deb when missing (as root).
#   bash scripts/package.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh dpkg-dev gzip
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb (once) ..." >&2
  cargo install cargo-deb --version 3.8.0 --locked --quiet
fi
cargo build --release --locked --quiet
rm -rf target/man
target/release/scim2ldap man target/man
gzip -9n target/man/*.1
deb=$(cargo deb --no-build --locked --quiet)
echo "built $deb" >&2
if [ "${1:-}" = "--check" ]; then
  bash scripts/check-package.sh "$deb"
fi
