#!/usr/bin/env bash
# The demo: a throwaway OpenLDAP (dc=example,dc=org) and the bridge, both on loopback, ready
# for curl. Prints "SCIM base URL: ..." and "Bearer token: ..." then examples; Ctrl-C stops
# everything it started and removes its temporary files.
# With SCIM2LDAP_DEMO_DIRECTORY=active-directory, a throwaway Samba AD DC (EXAMPLE.TEST, on
# 127.0.0.1:389/636) and config.example.ad.toml instead.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
kind=${SCIM2LDAP_DEMO_DIRECTORY:-openldap}
case "$kind" in
  openldap) bash scripts/install-deps.sh slapd ldap-utils curl ca-certificates gcc libc6-dev ;;
  active-directory) bash scripts/install-deps.sh samba samba-ad-dc samba-ad-provision ldb-tools winbind krb5-user ldap-utils curl ca-certificates openssl gcc libc6-dev ;;
  *) echo "SCIM2LDAP_DEMO_DIRECTORY must be openldap or active-directory, not $kind" >&2; exit 2 ;;
esac
export PATH="$HOME/.cargo/bin:$PATH"

echo "building scim2ldap (release) ..." >&2
cargo build --release --locked --quiet
bin=$repo/target/release/scim2ldap

work=$(mktemp -d /tmp/scim2ldap-demo.XXXXXX)
directory_pid=""
bridge_pid=""
cleanup() {
  trap - EXIT INT TERM
  [ -n "$bridge_pid" ] && kill "$bridge_pid" 2>/dev/null && wait "$bridge_pid" 2>/dev/null
  if [ -n "$directory_pid" ] && kill "$directory_pid" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$directory_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$work"
  echo "demo stopped; directory and bridge are gone" >&2
}
trap cleanup EXIT
trap 'exit 0' INT TERM

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

http_port=$(free_port)
export SCIM2LDAP_SERVER__LISTEN="127.0.0.1:$http_port"
# the demo's token store and audit file live with the throwaway directory
export SCIM2LDAP_SERVER__TOKEN_STORE="$work/tokens.json"
export SCIM2LDAP_SERVER__JOURNAL_DIR="$work/journal"
export SCIM2LDAP_AUDIT__FILE="$work/audit.log"
if [ "$kind" = openldap ]; then
  config=config.example.toml
  ldap_port=$(free_port)
  rootpw=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  directory_pid=$(SLAPD_ROOTPW=$rootpw deploy/openldap/throwaway-slapd.sh "$work/ldap" "$ldap_port")
  (umask 077 && printf '%s' "$rootpw" > "$work/bind_password")
  # the bridge talks to slapd over its local socket: the example maps passwords, and a
  # password never travels in clear (ldaps://, StartTLS or ldapi:// only)
  export SCIM2LDAP_LDAP__URL="ldapi://$(printf '%s' "$work/ldap/ldapi" | sed 's#%#%25#g; s#/#%2F#g')"
  ldap="ldapsearch -x -H ldap://127.0.0.1:$ldap_port -D cn=admin,dc=example,dc=org -w $rootpw"
  login="ldapwhoami -x -H ldap://127.0.0.1:$ldap_port -D uid=bjensen,ou=people,dc=example,dc=org -w Demo-Passw0rd!"
  people=ou=people,dc=example,dc=org
  groups_base=ou=groups,dc=example,dc=org
  filter_user='(uid=bjensen)'
else
  config=config.example.ad.toml
  rootpw="Dem0-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')!"
  echo "provisioning a throwaway Samba AD DC (about 10 s) ..." >&2
  directory_pid=$(SAMBA_ADMINPASS=$rootpw deploy/samba/throwaway-samba.sh "$work/ad")
  (umask 077 && printf '%s' "$rootpw" > "$work/bind_password")
  for ou in "SCIM Users" "SCIM Archive" "SCIM Groups"; do
    printf 'dn: OU=%s,DC=example,DC=test\nobjectClass: organizationalUnit\nou: %s\n' "$ou" "$ou" \
      | LDAPTLS_CACERT="$work/ad/tls/ca.pem" ldapadd -x -H ldaps://127.0.0.1:636 \
          -D "CN=Administrator,CN=Users,DC=example,DC=test" -w "$rootpw" >/dev/null
  done
  export SCIM2LDAP_LDAP__BIND_DN="CN=Administrator,CN=Users,DC=example,DC=test"
  export SCIM2LDAP_LDAP__CA_FILE="$work/ad/tls/ca.pem"
  ldap="env LDAPTLS_CACERT=$work/ad/tls/ca.pem ldapsearch -x -H ldaps://127.0.0.1:636 -D CN=Administrator,CN=Users,DC=example,DC=test -w $rootpw"
  login="env LDAPTLS_CACERT=$work/ad/tls/ca.pem ldapsearch -x -H ldaps://127.0.0.1:636 -D bjensen@example.test -w Demo-Passw0rd! -b '' -s base -LLL dnsHostName"
  people="OU=SCIM Users,DC=example,DC=test"
  groups_base="OU=SCIM Groups,DC=example,DC=test"
  filter_user='(userPrincipalName=bjensen@example.test)'
fi
export SCIM2LDAP_LDAP__BIND_PASSWORD_FILE="$work/bind_password"
token=$("$bin" token create --config "$config" --tenant default --name demo --expires 1d | awk '/^  scim2ldap_/ {print $1}')
[ -n "$token" ] || { echo "could not create the demo token" >&2; exit 1; }
"$bin" serve --config "$config" 2>>"$work/bridge.log" &
bridge_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$http_port/healthz" >/dev/null 2>&1 && break
  kill -0 "$bridge_pid" 2>/dev/null || { cat "$work/bridge.log" >&2; exit 1; }
  sleep 0.1
done

base="http://127.0.0.1:$http_port/scim/v2"
user_name=bjensen
[ "$kind" = active-directory ] && user_name=bjensen@example.test
cat <<INFO
SCIM base URL: $base
Bearer token: $token

Try it (in another terminal):
  export BASE=$base TOKEN=$token
  # create a user (with a password, as Okta's password sync sends one)
  curl -s -X POST \$BASE/Users -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/scim+json' \\
    -d '{"userName":"$user_name","displayName":"Barbara Jensen","name":{"givenName":"Barbara","familyName":"Jensen"},"emails":[{"type":"work","value":"bjensen@example.com","primary":true}],"password":"Demo-Passw0rd!"}'
  # see the entry in the directory (the password is stored hashed, never as sent)
  $ldap -b "$people" -LLL '$filter_user'
  # log in as that user with the password
  $login
  # find it by filter
  curl -s -G \$BASE/Users -H "Authorization: Bearer \$TOKEN" --data-urlencode 'filter=userName eq "$user_name"'
  # deactivate it (then reactivate with true) — use the id from the create answer
  curl -s -X PATCH \$BASE/Users/ID -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/scim+json' \\
    -d '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}'
  # a group with that user as a member (in the directory under $groups_base)
  curl -s -X POST \$BASE/Groups -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/scim+json' \\
    -d '{"displayName":"Engineering","members":[{"value":"ID"}]}'
  # delete it (disabled and moved to the archive container; SCIM answers 404 afterwards)
  curl -s -X DELETE \$BASE/Users/ID -H "Authorization: Bearer \$TOKEN"
  # who changed what: one JSON record per write
  cat $work/audit.log
  # the demo's tokens (never their secrets); rotate or revoke one without a restart
  SCIM2LDAP_SERVER__TOKEN_STORE=$work/tokens.json $bin token list --config $repo/$config

Bridge log: $work/bridge.log     Press Ctrl-C to stop the demo.
INFO
wait "$bridge_pid" || true
