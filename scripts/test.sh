#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests against real OpenLDAP servers and
# a Samba Active Directory DC that the tests start on loopback, and the scim2-tester
# conformance suite; then runs the demo for both directories as the README describes it
# (scripts/demo-check.sh); then builds the Debian package and proves it (contents, lintian, the unit's
# security score and verify, install and purge in a debootstrapped Debian root). Installs slapd,
# ldap-utils, openssl, python3-venv and Samba's AD DC first (as root), scim2-tester into a venv,
# and for the package dpkg-dev, lintian, debootstrap, debian-archive-keyring, systemd and
# cargo-deb (scripts/package.sh). promtool comes from Debian's prometheus package, unpacked
# into target/promtool.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh slapd ldap-utils openssl ca-certificates python3 python3-venv gcc libc6-dev \
  samba samba-ad-dc samba-ad-provision ldb-tools winbind krb5-user dnsmasq-base libnss-wrapper
export PATH="$HOME/.cargo/bin:$PATH"
# the external SCIM conformance suite (scim2-tester, PyPI) that tests/conformance.rs runs
venv=target/scim2-tester-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import scim2_tester, httpx2" 2>/dev/null; then
  mkdir -p target
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/conformance/requirements.txt
fi
# the alerting rules, checked and unit-tested with promtool from Debian's prometheus package,
# unpacked under target/ (nothing installed, no Prometheus server started);
# tests/dashboards.rs compares the dashboard's and the alerts' metric names with /metrics
promtool=target/promtool/usr/bin/promtool
if [ ! -x "$promtool" ]; then
  rm -rf target/promtool && mkdir -p target/promtool
  (cd target/promtool && { apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; } \
    && dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb)
fi
"$promtool" check rules deploy/prometheus/alerts.yml
"$promtool" test rules deploy/prometheus/alerts.test.yml
cargo test --locked
# the patches in vendor/ (vendor/README.md) carry their own tests
cargo test --locked -p lber -p ldap3 --lib
# the README's demo command, for both directories, followed step by step
bash scripts/demo-check.sh
bash scripts/package.sh --check
