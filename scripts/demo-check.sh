#!/usr/bin/env bash
# Runs the README's demo (scripts/demo.sh) for each directory and follows the steps it
# prints: create a user, see it in the directory, find it, deactivate it, put it in a group,
# delete it; then stops the demo as Ctrl-C would and checks that it cleaned up.
# scripts/test.sh runs this, so CI proves the demo command.
#   bash scripts/demo-check.sh [openldap|active-directory ...]
set -euo pipefail
cd "$(dirname "$0")/.."
kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(openldap active-directory)
fail() {
  echo "demo-check ($kind): $*" >&2
  [ -n "${log:-}" ] && cat "$log" >&2
  # the demo stops (and removes) what it started, as on Ctrl-C
  if [ -n "${demo:-}" ]; then
    kill -INT -- "-$demo" 2>/dev/null || true
    for _ in $(seq 1 120); do kill -0 "$demo" 2>/dev/null || break; sleep 0.25; done
  fi
  exit 1
}

# the demo builds the release binary first; built here, the readiness wait below times only
# the demo's own start (a clean checkout's release build takes minutes on two cores)
echo "demo-check: building the release binary the demo runs ..." >&2
cargo build --release --locked --quiet

for kind in "${kinds[@]}"; do
  log=$(mktemp)
  SCIM2LDAP_DEMO_DIRECTORY=$kind setsid bash scripts/demo.sh >"$log" 2>&1 &
  demo=$!
  for _ in $(seq 1 1200); do
    grep -q '^Bridge log:' "$log" && break
    kill -0 "$demo" 2>/dev/null || fail "the demo stopped before it was ready"
    sleep 0.25
  done
  grep -q '^Bridge log:' "$log" || fail "the demo was not ready within 5 minutes"
  base=$(sed -n 's/^SCIM base URL: //p' "$log")
  token=$(sed -n 's/^Bearer token: //p' "$log")
  ldap_cmd=$(grep -A1 '# see the entry in the directory' "$log" | tail -1)
  login_cmd=$(grep -A1 '# log in as that user with the password' "$log" | tail -1)
  user_name=bjensen
  [ "$kind" = active-directory ] && user_name=bjensen@example.test
  auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/scim+json')

  created=$(curl -sf -X POST "$base/Users" "${auth[@]}" \
    -d "{\"userName\":\"$user_name\",\"displayName\":\"Barbara Jensen\",\"name\":{\"givenName\":\"Barbara\",\"familyName\":\"Jensen\"},\"emails\":[{\"type\":\"work\",\"value\":\"bjensen@example.com\",\"primary\":true}],\"password\":\"Demo-Passw0rd!\"}") ||
    fail "the create failed"
  id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$created")
  [ -n "$id" ] || fail "no id in $created"
  # the printed ldapsearch finds the entry
  bash -c "$ldap_cmd" | grep -qi "^dn: " || fail "the printed ldapsearch found no entry"
  # the password the create sent logs in, and is not stored as sent
  bash -c "$login_cmd" >/dev/null || fail "the printed login with the user's password failed"
  bash -c "$ldap_cmd" | grep -q -e "Demo-Passw0rd" -e "$(printf 'Demo-Passw0rd!' | base64)" &&
    fail "the password is stored as sent"
  curl -sf -G "$base/Users" "${auth[@]}" --data-urlencode "filter=userName eq \"$user_name\"" |
    grep -q '"totalResults":1' || fail "the filter did not find the user"
  # the example config keeps what SailPoint, Okta and Huntress send: roles, locale, timezone,
  # and a country by name (Entra's form)
  other=sailor
  [ "$kind" = active-directory ] && other=sailor@example.test
  kept=$(curl -sf -X POST "$base/Users" "${auth[@]}" \
    -d "{\"userName\":\"$other\",\"displayName\":\"Sail Or\",\"roles\":[{\"value\":\"Approver\"}],\"locale\":\"en-US\",\"timezone\":\"Europe/Paris\",\"addresses\":[{\"type\":\"work\",\"country\":\"Germany\"}]}") ||
    fail "the create with roles, locale and timezone failed"
  for want in '"roles":[{"value":"Approver"}]' '"locale":"en-US"' '"timezone":"Europe/Paris"' '"country":"DE"'; do
    grep -qF "$want" <<<"$kept" || fail "the demo config did not keep $want: $kept"
  done
  curl -sf -X PATCH "$base/Users/$id" "${auth[@]}" \
    -d '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}' |
    grep -q '"active":false' || fail "the deactivation did not show"
  curl -sf -X POST "$base/Groups" "${auth[@]}" -d "{\"displayName\":\"Engineering\",\"members\":[{\"value\":\"$id\"}]}" |
    grep -q "\"value\":\"$id\"" || fail "the group does not list the user"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$base/Users/$id" "${auth[@]}")" = 204 ] ||
    fail "the delete did not answer 204"
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/Users/$id" "${auth[@]}")" = 404 ] ||
    fail "the deleted user did not answer 404"

  # Ctrl-C: the demo stops the bridge and the directory and removes its files
  work=$(sed -n 's/^Bridge log: \(.*\)\/bridge.log.*/\1/p' "$log")
  [ -d "$work" ] || fail "no work directory in the demo's output"
  kill -INT -- "-$demo"
  for _ in $(seq 1 120); do kill -0 "$demo" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$demo" 2>/dev/null && fail "the demo did not stop on Ctrl-C"
  [ ! -e "$work" ] || fail "$work was left behind"
  curl -s -o /dev/null "$base/../../healthz" && fail "the bridge still answers"
  echo "demo-check: the $kind demo works as the README says" >&2
  rm -f "$log"
done
