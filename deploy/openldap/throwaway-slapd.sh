#!/usr/bin/env bash
# Starts a private, throwaway OpenLDAP on loopback, for the demo and the tests.
#   throwaway-slapd.sh DIR PORT
# Needs the Debian packages slapd and ldap-utils. Writes a cn=config into DIR/slapd.d, loads
# the example tree (dc=example,dc=org; rootdn cn=admin,dc=example,dc=org with the password
# in $SLAPD_ROOTPW, default "admin"), starts slapd on ldap://127.0.0.1:PORT/ and prints its
# pid once it answers. Stop it with: kill "$(cat DIR/slapd.pid)"
# It also listens on the local socket DIR/ldapi (ldapi://, percent-encoded path): the demo's
# bridge talks to it there, so that passwords never cross even loopback in clear.
# With SLAPD_STATS_LOG set, slapd logs every operation to DIR/stats.log.
# With SLAPD_NO_MEMBEROF set, there is no memberOf overlay (renames do not move members).
# With SLAPD_TLS_PORT set, it also makes a throwaway CA (DIR/tls/ca.pem) and a certificate for
# 127.0.0.1, offers StartTLS on PORT and listens with ldaps:// on SLAPD_TLS_PORT.
# With SLAPD_SERVER_ID (1, 2, …) and SLAPD_PEER_URL set, it is one provider of a multi-provider
# pair: syncprov, and syncrepl from the peer (refreshAndPersist as the rootdn, retry every
# second). The peer must hold the same entries with the same entryUUIDs: start the second from
# the first's slapcat output, given as SLAPD_SEED_LDIF (loaded instead of the example tree).
# With SLAPD_CONSUMER also set, it is a read-only replica of the peer instead (no
# olcMultiProvider): writes to it are refused ("shadow context").
set -euo pipefail
dir=$1
port=$2
rootpw=${SLAPD_ROOTPW:-admin}
here=$(cd "$(dirname "$0")" && pwd)
for bin in /usr/sbin/slapd /usr/sbin/slapadd; do
  if [ ! -x "$bin" ]; then
    echo "throwaway-slapd: $bin not found; install OpenLDAP with: apt-get install -y slapd ldap-utils" >&2
    exit 3
  fi
done
mkdir -p "$dir/slapd.d" "$dir/data"
tls_config=""
ldapi="ldapi://$(printf '%s' "$dir/ldapi" | sed 's#%#%25#g; s#/#%2F#g')"
urls="ldap://127.0.0.1:$port/ $ldapi/"
if [ -n "${SLAPD_TLS_PORT:-}" ]; then
  tls=$dir/tls
  "$here/../throwaway-ca.sh" "$tls"
  tls_config="olcTLSCACertificateFile: $tls/ca.pem
olcTLSCertificateFile: $tls/server.pem
olcTLSCertificateKeyFile: $tls/server.key"
  urls="$urls ldaps://127.0.0.1:$SLAPD_TLS_PORT/"
fi
# memberOf keeps group members on an entry's new DN when it is renamed; with SLAPD_NO_MEMBEROF
# set it is left out (as in directories without it), so that only the bridge moves members
memberof_config="dn: olcOverlay={1}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {1}memberof
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf
olcMemberOfDangling: ignore
olcMemberOfRefInt: TRUE
"
sssvlv_index=2
if [ -n "${SLAPD_NO_MEMBEROF:-}" ]; then
  memberof_config=""
  sssvlv_index=1
fi
server_id=""
sync_db=""
sync_overlay=""
if [ -n "${SLAPD_SERVER_ID:-}" ]; then
  server_id="olcServerID: $SLAPD_SERVER_ID
"
  sync_db="olcDbIndex: entryCSN eq
olcSyncrepl: rid=00$SLAPD_SERVER_ID provider=$SLAPD_PEER_URL bindmethod=simple binddn=\"cn=admin,dc=example,dc=org\" credentials=$rootpw searchbase=\"dc=example,dc=org\" type=refreshAndPersist retry=\"1 +\" timeout=2 network-timeout=2
${SLAPD_CONSUMER:+#}olcMultiProvider: TRUE
"
  sync_overlay="dn: olcOverlay={$((sssvlv_index + 1))}syncprov,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {$((sssvlv_index + 1))}syncprov
olcSpCheckpoint: 100 1
"
fi
cat > "$dir/config.ldif" <<LDIF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $dir/slapd.pid
olcArgsFile: $dir/slapd.args
${server_id}$tls_config

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: ppolicy
olcModuleLoad: memberof
olcModuleLoad: refint
olcModuleLoad: sssvlv
olcModuleLoad: argon2
olcModuleLoad: pw-sha2
olcModuleLoad: syncprov

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif
include: file:///etc/ldap/schema/nis.ldif
include: file://$here/scim2ldap.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: size.soft=500 size.hard=500 size.prtotal=unlimited

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbDirectory: $dir/data
olcSuffix: dc=example,dc=org
olcRootDN: cn=admin,dc=example,dc=org
olcRootPW: $rootpw
olcDbMaxSize: 1073741824
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: entryUUID eq
olcDbIndex: mail eq
olcDbIndex: scimExternalId eq
olcDbIndex: member eq
${sync_db}olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by users read by * none

dn: olcOverlay={0}ppolicy,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {0}ppolicy
olcPPolicyDefault: cn=default,ou=policies,dc=example,dc=org

$memberof_config
dn: olcOverlay={$sssvlv_index}sssvlv,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSssVlvConfig
olcOverlay: {$sssvlv_index}sssvlv

$sync_overlay
LDIF
/usr/sbin/slapadd -n0 -F "$dir/slapd.d" -l "$dir/config.ldif" >"$dir/slapadd.log" 2>&1 \
  || { cat "$dir/slapadd.log" >&2; exit 4; }
/usr/sbin/slapadd -n1 -F "$dir/slapd.d" -l "${SLAPD_SEED_LDIF:-$here/example-tree.ldif}" >>"$dir/slapadd.log" 2>&1 \
  || { cat "$dir/slapadd.log" >&2; exit 4; }
# SLAPD_EXTRA_LDIF: more entries, loaded offline (fast; slapadd adds entryUUID and the rest)
if [ -n "${SLAPD_EXTRA_LDIF:-}" ]; then
  /usr/sbin/slapadd -q -n1 -F "$dir/slapd.d" -l "$SLAPD_EXTRA_LDIF" >>"$dir/slapadd.log" 2>&1 \
    || { cat "$dir/slapadd.log" >&2; exit 4; }
fi
if [ -n "${SLAPD_STATS_LOG:-}" ]; then
  # in the foreground with the "stats" log (every operation, the attributes each search
  # asks for) on stderr, for tests that prove what the bridge does and does not request
  /usr/sbin/slapd -F "$dir/slapd.d" -h "$urls" -d stats 2>"$dir/stats.log" </dev/null >/dev/null &
  disown
else
  /usr/sbin/slapd -F "$dir/slapd.d" -h "$urls" 2>"$dir/slapd.log" \
    || { cat "$dir/slapd.log" >&2; exit 5; }
fi
for _ in $(seq 1 100); do
  if [ -s "$dir/slapd.pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    cat "$dir/slapd.pid"
    exit 0
  fi
  sleep 0.05
done
echo "throwaway-slapd: slapd did not answer on 127.0.0.1:$port within 5 s" >&2
cat "$dir/slapd.log" >&2
exit 6
