#!/usr/bin/env bash
# Runs a README command on a fresh Debian: a minimal root made by debootstrap (this
# machine's Debian release) under target/fresh-root, the repository's tracked files copied
# in, and nothing from this machine but its Rust toolchain (rustup's ~/.rustup and
# ~/.cargo, bind-mounted: the README asks for one; its cargo-deb too, if installed) and the
# CA certificates of its network (see below). Whatever the command needs beyond that it must
# install itself, as on a new machine. As root.
#   bash scripts/fresh-debian.sh [COMMAND]     (default: bash scripts/test.sh)
# e.g. bash scripts/fresh-debian.sh 'timeout 60 bash scripts/demo.sh'
set -euo pipefail
cd "$(dirname "$0")/.."
command=${1:-bash scripts/test.sh}
root=$PWD/target/fresh-root
bash scripts/install-deps.sh debootstrap debian-archive-keyring

unmount_all() {
  for m in dev/pts dev proc sys root/.cargo root/.rustup; do
    if mountpoint -q "$root/$m"; then umount -l "$root/$m"; fi
  done
}
trap unmount_all EXIT
unmount_all
rm -rf --one-file-system "$root"
mkdir -p "$root"
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
mirror=${SCIM2LDAP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
echo "debootstrap $suite (minbase) into $root ..." >&2
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1 ||
  { tail -20 "$root.log" >&2; exit 1; }

mkdir -p "$root/src" "$root/root/.cargo" "$root/root/.rustup"
git ls-files -z | xargs -0 cp --parents -t "$root/src"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# A network setting, not a package: CAs this machine adds for its TLS-intercepting egress
# proxy (if any) go in too, for ca-certificates to pick up when the command installs it.
extra_ca=()
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  extra_ca=(PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
fi
mount --bind /proc "$root/proc"
mount --bind /sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mount --bind "$HOME/.cargo" "$root/root/.cargo"
mount --bind "$HOME/.rustup" "$root/root/.rustup"
echo "running in the fresh root: $command" >&2
chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
  PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  CARGO_TARGET_DIR=/src/target "${extra_ca[@]}" bash -c "cd /src && $command"
