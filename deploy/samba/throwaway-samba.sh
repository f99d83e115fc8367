#!/usr/bin/env bash
# Provisions and starts a throwaway Samba Active Directory DC on loopback, for the demo and the
# tests.   throwaway-samba.sh DIR
# Needs the Debian packages samba, samba-ad-dc, ldb-tools, winbind, krb5-user. The domain is
# EXAMPLE.TEST (dc=example,dc=test); Administrator's password is $SAMBA_ADMINPASS. Samba binds
# 127.0.0.1:389 (LDAP) and :636 (LDAPS, certificate from a throwaway CA at DIR/tls/ca.pem), so one runs per
# machine. Prints the pid of the samba master process once LDAP answers; with
# SAMBA_WATCH_PID set, samba is stopped when that process ends (and DIR removed when
# SAMBA_CLEANUP is set). Stop: kill "$(cat DIR/pid)".
set -euo pipefail
dir=$1
pass=${SAMBA_ADMINPASS:-Adm1n-Passw0rd!}
if [ ! -x /usr/sbin/samba ] || ! command -v samba-tool >/dev/null; then
  echo "throwaway-samba: samba not found; install it with: apt-get install -y samba samba-ad-dc ldb-tools winbind krb5-user" >&2
  exit 3
fi
if (exec 3<>/dev/tcp/127.0.0.1/389) 2>/dev/null; then
  echo "throwaway-samba: something already listens on 127.0.0.1:389 (another Samba DC?)" >&2
  exit 4
fi
mkdir -p "$dir"
samba-tool domain provision --targetdir="$dir" --realm=EXAMPLE.TEST --domain=EXAMPLE \
  --adminpass="$pass" --server-role=dc --dns-backend=NONE --use-rfc2307 >"$dir/provision.log" 2>&1 \
  || { tail -20 "$dir/provision.log" >&2; exit 5; }
here=$(cd "$(dirname "$0")" && pwd)
"$here/../throwaway-ca.sh" "$dir/tls"
conf=$dir/etc/smb.conf
# loopback only; simple binds allowed on plain LDAP too (real AD wants TLS or signing: the
# bridge uses LDAPS); only the services an LDAP DC needs
sed -i "/^\[global\]/a\\
\tinterfaces = lo\\
\tbind interfaces only = yes\\
\tldap server require strong auth = no\\
\tserver services = ldap, cldap, kdc, rpc, drepl, kcc, ntp_signd\\
\tlog file = $dir/log.%m\\
\tpid directory = $dir/run\\
\ttls enabled = yes\\
\ttls keyfile = $dir/tls/server.key\\
\ttls certfile = $dir/tls/server.pem\\
\ttls cafile = $dir/tls/ca.pem" "$conf"
mkdir -p "$dir/run"
/usr/sbin/samba -s "$conf" -D
# a loaded 2-core CI machine (test binaries starting slapds beside it) has taken over 30 s
for _ in $(seq 1 600); do
  if [ -s "$dir/run/samba.pid" ] && (exec 3<>/dev/tcp/127.0.0.1/636) 2>/dev/null \
     && (exec 3<>/dev/tcp/127.0.0.1/389) 2>/dev/null; then
    pid=$(cat "$dir/run/samba.pid")
    echo "$pid" > "$dir/pid"
    if [ -n "${SAMBA_WATCH_PID:-}" ]; then
      ( while kill -0 "$SAMBA_WATCH_PID" 2>/dev/null; do sleep 1; done
        kill "$pid" 2>/dev/null; sleep 2; [ -n "${SAMBA_CLEANUP:-}" ] && rm -rf "$dir" ) \
        >/dev/null 2>&1 </dev/null &
      disown
    fi
    echo "$pid"
    exit 0
  fi
  sleep 0.2
done
echo "throwaway-samba: LDAP did not answer within 120 s" >&2
tail -20 "$dir"/log.* >&2 || true
# stop what was started, so that a retry finds the ports free
[ -s "$dir/run/samba.pid" ] && kill "$(cat "$dir/run/samba.pid")" 2>/dev/null || true
exit 6
