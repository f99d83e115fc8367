#!/usr/bin/env bash
# Makes a throwaway CA (DIR/ca.pem) and a server certificate for 127.0.0.1 / localhost
# (DIR/server.pem, DIR/server.key), for the test and demo directories.
#   throwaway-ca.sh DIR [SAN...]   (more subjectAltName entries, e.g. DNS:dc1.example.test IP:127.0.0.2)
set -euo pipefail
tls=$1
shift
san="IP:127.0.0.1,DNS:localhost"
for extra in "$@"; do san="$san,$extra"; done
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/ca.key" -out "$tls/ca.pem" -days 2 \
  -subj "/CN=scim2ldap throwaway CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$tls/server.key" -out "$tls/server.csr" \
  -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' "$san" > "$tls/ext.cnf"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
  -out "$tls/server.pem" -days 2 -extfile "$tls/ext.cnf" 2>/dev/null
chmod 600 "$tls/server.key" "$tls/ca.key"
