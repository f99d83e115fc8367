#!/usr/bin/env bash
# Provisions and starts two Samba Active Directory DCs of one domain on loopback, replicating
# with each other, for the high-availability tests.   throwaway-samba-pair.sh DIR
# DC1 (dc1.example.test) listens on 127.0.0.2, DC2 (dc2.example.test, joined to DC1) on
# 127.0.0.3: LDAP 389, LDAPS 636 (certificates from one throwaway CA, DIR/tls/ca.pem, naming
# the DC), Kerberos, RPC, and DNS on 53 (SAMBA_INTERNAL: both answer the domain's SRV records).
# The domain is EXAMPLE.TEST; Administrator's password is $SAMBA_ADMINPASS.
# Names resolve without touching /etc/hosts: every samba process runs under nss_wrapper
# (Debian's libnss-wrapper) with DIR/hosts, which lists both DCs and their replication names
# (<NTDS Settings GUID>._msdcs.example.test). Each DC has its own krb5.conf (its own KDC first),
# socket directories and short replication intervals (a few seconds, instead of minutes).
# Prints "PID1 PID2" once both answer LDAP; DIR/dcN/pid holds each (a process group each).
# Stop: kill -- -PID for both; with SAMBA_WATCH_PID set, both stop when that process ends.
# Start one again after a stop:  throwaway-samba-pair.sh DIR start N
set -euo pipefail
dir=$1
pass=${SAMBA_ADMINPASS:-Adm1n-Passw0rd!}
here=$(cd "$(dirname "$0")" && pwd)
wrapper=/usr/lib/x86_64-linux-gnu/libnss_wrapper.so
[ -e "$wrapper" ] || wrapper=$(ls /usr/lib/*/libnss_wrapper.so 2>/dev/null | head -1)
if [ ! -x /usr/sbin/samba ] || [ -z "$wrapper" ] || [ ! -e "$wrapper" ]; then
  echo "throwaway-samba-pair: needs samba and nss_wrapper: apt-get install -y samba samba-ad-dc samba-ad-provision ldb-tools winbind krb5-user libnss-wrapper" >&2
  exit 3
fi

ip() { echo "127.0.0.$(($1 + 1))"; }

# what every samba process of DC N runs with
env_of() {
  echo "LD_PRELOAD=$wrapper NSS_WRAPPER_HOSTS=$dir/hosts KRB5_CONFIG=$dir/dc$1/krb5.conf"
}

with_env() { # N command...
  local n=$1; shift
  env $(env_of "$n") "$@"
}

start() { # N
  local n=$1 d=$dir/dc$1
  rm -f "$d/run/samba.pid"
  with_env "$n" /usr/sbin/samba -s "$d/etc/smb.conf" -D
  for _ in $(seq 1 150); do
    if [ -s "$d/run/samba.pid" ] && (exec 3<>"/dev/tcp/$(ip "$n")/389") 2>/dev/null \
       && (exec 3<>"/dev/tcp/$(ip "$n")/636") 2>/dev/null; then
      cat "$d/run/samba.pid" > "$d/pid"
      return 0
    fi
    sleep 0.2
  done
  echo "throwaway-samba-pair: DC$n did not answer LDAP within 30 s" >&2
  tail -20 "$d"/log.* >&2 || true
  exit 6
}

if [ "${2:-}" = start ]; then
  start "$3"
  cat "$dir/dc$3/pid"
  exit 0
fi

for n in 1 2; do
  if (exec 3<>"/dev/tcp/$(ip "$n")/389") 2>/dev/null; then
    echo "throwaway-samba-pair: something already listens on $(ip "$n"):389" >&2
    exit 4
  fi
  mkdir -p "$dir/dc$n/run" "$dir/dc$n/sockets"
done
cat > "$dir/hosts" <<HOSTS
127.0.0.2 dc1.example.test dc1
127.0.0.3 dc2.example.test dc2
HOSTS
for n in 1 2; do
  other=$((3 - n))
  cat > "$dir/dc$n/krb5.conf" <<KRB5
[libdefaults]
  default_realm = EXAMPLE.TEST
  dns_lookup_kdc = false
  dns_lookup_realm = false
[realms]
  EXAMPLE.TEST = {
    kdc = $(ip "$n")
    kdc = $(ip "$other")
  }
KRB5
done
"$here/../throwaway-ca.sh" "$dir/tls" DNS:dc1.example.test DNS:dc2.example.test IP:127.0.0.2 IP:127.0.0.3 >/dev/null

# the settings both DCs share, after [global]
settings() { # N
  local n=$1 d=$dir/dc$1
  cat <<CONF
	interfaces = $(ip "$n")/8
	bind interfaces only = yes
	ldap server require strong auth = no
	server services = ldap, cldap, kdc, rpc, drepl, kcc, ntp_signd, dns
	log file = $d/log.%m
	pid directory = $d/run
	ncalrpc dir = $d/sockets/ncalrpc
	winbindd socket directory = $d/sockets/winbindd
	ntp signd socket directory = $d/sockets/ntp_signd
	dreplsrv:periodic_interval = 5
	dreplsrv:periodic_startup_interval = 2
	kccsrv:periodic_interval = 10
	kccsrv:periodic_startup_interval = 2
	tls enabled = yes
	tls keyfile = $dir/tls/server.key
	tls certfile = $dir/tls/server.pem
	tls cafile = $dir/tls/ca.pem
CONF
}

configure() { # N
  local conf=$dir/dc$1/etc/smb.conf
  # provision and join copy this machine's smb.conf globals (its log file, its shares):
  # ours replace them
  sed -i '/^\tinterfaces = /d; /^\tbind interfaces only = /d; /^\tlog file = /d; /^\tlogging = /d' "$conf"
  settings "$1" > "$dir/dc$1/settings"
  sed -i "/^\[global\]/r $dir/dc$1/settings" "$conf"
}

# DC1: a new domain
with_env 1 samba-tool domain provision --targetdir="$dir/dc1" --realm=EXAMPLE.TEST --domain=EXAMPLE \
  --adminpass="$pass" --server-role=dc --dns-backend=SAMBA_INTERNAL --use-rfc2307 \
  --host-name=dc1 --host-ip=127.0.0.2 --option="interfaces=127.0.0.2/8" \
  --option="bind interfaces only=yes" --option="netbios name=DC1" \
  >"$dir/dc1/provision.log" 2>&1 || { tail -20 "$dir/dc1/provision.log" >&2; exit 5; }
configure 1
start 1
# DC1's own service principals (among them the one replication asks tickets for), which
# samba's dnsupdate service, left out above, would register: DC2 copies them when it joins
with_env 1 samba_spnupdate -s "$dir/dc1/etc/smb.conf" >"$dir/dc1/spnupdate.log" 2>&1 \
  || { tail -20 "$dir/dc1/spnupdate.log" >&2; exit 5; }

# DC2: joined to DC1's domain
with_env 2 samba-tool domain join EXAMPLE.TEST DC --targetdir="$dir/dc2" \
  -U "EXAMPLE\\Administrator%$pass" --server=dc1.example.test --dns-backend=SAMBA_INTERNAL \
  --option="workgroup=EXAMPLE" --option="realm=EXAMPLE.TEST" \
  --option="netbios name=DC2" --option="interfaces=127.0.0.3/8" --option="bind interfaces only=yes" \
  >"$dir/dc2/join.log" 2>&1 || { tail -30 "$dir/dc2/join.log" >&2; exit 7; }
configure 2

# replication finds each DC as <its NTDS Settings objectGUID>._msdcs.example.test
for n in 1 2; do
  guid=$(ldbsearch -H "$dir/dc1/private/sam.ldb" \
    -b "CN=NTDS Settings,CN=DC$n,CN=Servers,CN=Default-First-Site-Name,CN=Sites,CN=Configuration,DC=example,DC=test" \
    -s base objectGUID 2>/dev/null | sed -n 's/^objectGUID: //p')
  [ -n "$guid" ] || { echo "throwaway-samba-pair: no NTDS Settings GUID for DC$n" >&2; exit 8; }
  echo "$(ip "$n") $guid._msdcs.example.test" >> "$dir/hosts"
done
start 2
# DC2's DNS records (loopback addresses are otherwise skipped)
with_env 2 samba_dnsupdate -s "$dir/dc2/etc/smb.conf" --current-ip=127.0.0.3 --use-samba-tool \
  >"$dir/dc2/dnsupdate.log" 2>&1 || { tail -20 "$dir/dc2/dnsupdate.log" >&2; exit 9; }
if [ -n "${SAMBA_WATCH_PID:-}" ]; then
  # both DCs (each its own process group) go when the watched process ends
  ( while kill -0 "$SAMBA_WATCH_PID" 2>/dev/null; do sleep 1; done
    for n in 1 2; do kill -9 -- "-$(cat "$dir/dc$n/pid")" 2>/dev/null; done ) \
    >/dev/null 2>&1 </dev/null &
  disown
fi
echo "$(cat "$dir/dc1/pid") $(cat "$dir/dc2/pid")"
