#!/usr/bin/env bash
# Proves a built scim2ldap .deb (scripts/package.sh --check calls this):
#  1. its contents: binary, unit, conffile, examples, schema, guides, man pages;
#  2. lintian, with no error or warning;
#  3. the unit: systemd-analyze security at most 2.0, and verify;
#  4. a real install and purge in a throwaway Debian root (debootstrap, under target/):
#     the system user, directories and permissions, the binary and man page, a token made
#     before the first start, then purge removes the user, the directories and the config.
# Installs lintian and debootstrap when missing (as root).
#   bash scripts/check-package.sh target/debian/scim2ldap_VERSION_ARCH.deb
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(realpath "$1")
bash scripts/install-deps.sh lintian debootstrap debian-archive-keyring systemd
fail() { echo "check-package: $*" >&2; exit 1; }

echo "== contents" >&2
listing=$(dpkg-deb -c "$deb" | awk '{print $6}')
for path in ./usr/bin/scim2ldap ./usr/lib/systemd/system/scim2ldap.service \
  ./etc/scim2ldap/config.toml ./usr/share/doc/scim2ldap/examples/config.example.toml \
  ./usr/share/doc/scim2ldap/examples/config.example.ad.toml \
  ./usr/share/scim2ldap/openldap/scim2ldap.ldif ./usr/share/doc/scim2ldap/guides/entra-id.md \
  ./usr/share/scim2ldap/grafana/scim2ldap.json ./usr/share/scim2ldap/prometheus/alerts.yml \
  ./usr/share/man/man1/scim2ldap-init.1.gz ./usr/share/man/man1/scim2ldap-safety-release.1.gz \
  ./usr/share/doc/scim2ldap/guides/active-directory.md ./usr/share/man/man1/scim2ldap.1.gz \
  ./usr/share/man/man1/scim2ldap-token-create.1.gz ./usr/share/man/man1/scim2ldap-explain.1.gz \
  ./usr/share/doc/scim2ldap/copyright ./usr/share/doc/scim2ldap/changelog.Debian.gz; do
  grep -qx -- "$path" <<<"$listing" || fail "$path is not in the package"
done
dpkg-deb -f "$deb" Depends | grep -q adduser || fail "Depends lacks adduser"
ctl=$(mktemp -d); trap 'rm -rf "$ctl"' EXIT
dpkg-deb -e "$deb" "$ctl"
grep -qx /etc/scim2ldap/config.toml "$ctl/conffiles" || fail "config.toml is not a conffile"
dpkg-deb -c "$deb"

echo "== lintian" >&2
# lintian warns when run as root; the package is read-only to it
lintian --fail-on error,warning "$deb" 2>&1 | grep -v 'running with root privileges' || true
lintian --fail-on error,warning "$deb" >/dev/null 2>&1 || fail "lintian found errors or warnings"

echo "== unit" >&2
unit=$ctl/scim2ldap.service
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/scim2ldap.service >"$unit"
systemd-analyze security --offline=true --threshold=20 "$unit" | tail -1
systemd-analyze security --offline=true --threshold=20 "$unit" >/dev/null ||
  fail "systemd-analyze security rates the unit above 2.0"

echo "== install and purge in a throwaway Debian root" >&2
root=target/package-root
rm -rf "$root"
mirror=${SCIM2LDAP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
debootstrap --variant=minbase --include=adduser,procps,systemd,man-db "$suite" "$root" "$mirror" \
  >target/package-root.log 2>&1 || { tail -20 target/package-root.log >&2; fail "debootstrap failed"; }
in_root() { chroot "$root" "$@"; }
cp "$deb" "$root/tmp/scim2ldap.deb"
in_root dpkg -i /tmp/scim2ldap.deb
in_root getent passwd scim2ldap >/dev/null || fail "no scim2ldap user after install"
want() { # path owner:group mode
  got=$(in_root stat -c '%U:%G %a' "$1")
  [ "$got" = "$2 $3" ] || fail "$1 is $got, not $2 $3"
}
want /etc/scim2ldap root:scim2ldap 750
want /etc/scim2ldap/config.toml root:scim2ldap 640
want /etc/scim2ldap/cursor.key root:scim2ldap 640
[ "$(in_root stat -c %s /etc/scim2ldap/cursor.key)" = 32 ] || fail "the cursor key is not 32 bytes"
want /var/lib/scim2ldap scim2ldap:scim2ldap 750
want /var/log/scim2ldap scim2ldap:scim2ldap 750
in_root scim2ldap --version
in_root man -w scim2ldap >/dev/null || fail "man scim2ldap finds no page"
in_root systemd-analyze verify scim2ldap.service || fail "systemd-analyze verify failed"
# the packaged config is refused until the admin gives it a bind password, naming the key
set +e
out=$(in_root scim2ldap check-config 2>&1); rc=$?
set -e
[ "$rc" = 2 ] && grep -q 'ldap.bind_password_file' <<<"$out" || fail "check-config on the fresh config: $out"
# a token can be made before the first start, and belongs to the service
in_root scim2ldap token create --tenant default --name first | grep -q '^  scim2ldap_' ||
  fail "token create printed no token"
want /var/lib/scim2ldap/tokens.json scim2ldap:scim2ldap 640
# an audit record and an empty write journal, as the service would have left them
echo '{"operation":"create"}' >"$root/var/log/scim2ldap/audit.log"
mkdir -m 700 "$root/var/lib/scim2ldap/journal"
purged=$(in_root dpkg --purge scim2ldap 2>&1) || fail "purge failed: $purged"
! in_root getent passwd scim2ldap >/dev/null || fail "the user survived purge"
for gone in /etc/scim2ldap /usr/bin/scim2ldap /var/lib/scim2ldap/tokens.json.lock /var/lib/scim2ldap/journal; do
  [ ! -e "$root$gone" ] || fail "$gone survived purge"
done
# what may not be this host's to delete stays, and purge says so: the token store (replicas
# may share it) and the audit records
for kept in /var/lib/scim2ldap/tokens.json /var/log/scim2ldap/audit.log; do
  [ -e "$root$kept" ] || fail "purge deleted $kept"
done
grep -q "purge kept /var/lib/scim2ldap" <<<"$purged" || fail "purge did not say it kept the token store: $purged"
grep -q "purge kept /var/log/scim2ldap" <<<"$purged" || fail "purge did not say it kept the audit records: $purged"
rm -rf "$root" target/package-root.log
echo "check-package: $(basename "$deb") is good" >&2
