#!/usr/bin/env bash
# The demo: a throwaway OpenLDAP (dc=example,dc=org) and the bridge, both on loopback, ready
# for curl. Prints "SCIM base URL: ..." and "Bearer token: ..." then examples; Ctrl-C stops
# everything it started and removes its temporary files.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bash scripts/install-deps.sh slapd ldap-utils curl ca-certificates
export PATH="$HOME/.cargo/bin:$PATH"

echo "building scim2ldap (release) ..." >&2
cargo build --release --locked --quiet
bin=$repo/target/release/scim2ldap

work=$(mktemp -d /tmp/scim2ldap-demo.XXXXXX)
slapd_pid=""
bridge_pid=""
cleanup() {
  trap - EXIT INT TERM
  [ -n "$bridge_pid" ] && kill "$bridge_pid" 2>/dev/null && wait "$bridge_pid" 2>/dev/null
  [ -n "$slapd_pid" ] && kill "$slapd_pid" 2>/dev/null
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

ldap_port=$(free_port)
http_port=$(free_port)
rootpw=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
slapd_pid=$(SLAPD_ROOTPW=$rootpw deploy/openldap/throwaway-slapd.sh "$work/ldap" "$ldap_port")
(umask 077 && printf '%s' "$rootpw" > "$work/bind_password")

token="scim2ldap_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export SCIM2LDAP_LDAP__URL="ldap://127.0.0.1:$ldap_port"
export SCIM2LDAP_LDAP__BIND_PASSWORD_FILE="$work/bind_password"
export SCIM2LDAP_SERVER__LISTEN="127.0.0.1:$http_port"
export SCIM2LDAP_TENANTS__DEFAULT__TOKENS__DEMO__SHA256=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
"$bin" serve --config config.example.toml 2>>"$work/bridge.log" &
bridge_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$http_port/healthz" >/dev/null 2>&1 && break
  kill -0 "$bridge_pid" 2>/dev/null || { cat "$work/bridge.log" >&2; exit 1; }
  sleep 0.1
done

base="http://127.0.0.1:$http_port/scim/v2"
ldap="ldapsearch -x -H ldap://127.0.0.1:$ldap_port -D cn=admin,dc=example,dc=org -w $rootpw"
cat <<INFO
SCIM base URL: $base
Bearer token: $token

Try it (in another terminal):
  export BASE=$base TOKEN=$token
  # create a user
  curl -s -X POST \$BASE/Users -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/scim+json' \\
    -d '{"userName":"bjensen","name":{"givenName":"Barbara","familyName":"Jensen"},"emails":[{"type":"work","value":"bjensen@example.com","primary":true}]}'
  # see the entry in LDAP
  $ldap -b ou=people,dc=example,dc=org -LLL '(uid=bjensen)' '*' entryUUID pwdAccountLockedTime
  # find it by filter
  curl -s -G \$BASE/Users -H "Authorization: Bearer \$TOKEN" --data-urlencode 'filter=userName eq "bjensen"'
  # patch it, deactivate it (ppolicy lock), reactivate it — use the id from the create answer
  curl -s -X PATCH \$BASE/Users/ID -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/scim+json' \\
    -d '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}'
  # a group with that user as a member (LDAP: cn=Engineering,ou=groups,dc=example,dc=org)
  curl -s -X POST \$BASE/Groups -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/scim+json' \\
    -d '{"displayName":"Engineering","members":[{"value":"ID"}]}'
  # delete it (locked and moved to ou=archive; SCIM answers 404 afterwards)
  curl -s -X DELETE \$BASE/Users/ID -H "Authorization: Bearer \$TOKEN"

Bridge log: $work/bridge.log     Press Ctrl-C to stop the demo.
INFO
wait "$bridge_pid" || true
