#!/bin/bash
# Makes the secrets of a FileGrid compose stack (installed in filegrid/node as
# /app/init-secrets.sh and run by the one-shot `secrets` service of docker-compose.yml).
#
#   init-secrets.sh [DIR [PUBLIC_DIR]]
#
# DIR defaults to /etc/filegrid/secrets (a named volume); PUBLIC_DIR, when given, receives a
# world-readable copy of the CA certificate (for Prometheus, which runs as another user).
#
# Each secret is made only when it is missing, and never replaced, so running it again (every
# `docker compose up`) keeps the grid's secrets; `docker compose down -v` deletes the volume
# and with it the secrets. Made with bash and coreutils (/dev/urandom):
#
#   cluster-secret               the secret heads and cluster servers sign requests with
#   zk-auth                      the ZooKeeper digest credential, `filegrid:<password>`
#   admin-token                  the admin client credential, `<access_key>:<secret>`
#   credentials.toml             the heads' credentials file: the admin principal
#   client/filegrid/credentials  the CLI's credentials file (XDG_CONFIG_HOME=DIR/client)
#
# and with openssl (ECDSA P-256) the TLS files of the stack, in DIR/tls:
#
#   ca.pem, ca.key               the stack's CA (10 years); the key stays root's
#   cluster-issuer.pem, .key     an intermediate CA that cluster-server containers sign their
#                                own certificate with at start (their address is known only
#                                then); it may not name the fixed services or loopback
#   <service>.pem, .key          a certificate per fixed-name service (825 days): its compose
#                                name, and for heads also localhost and 127.0.0.1
#
# A certificate is issued again when it is missing, expires within 30 days or no longer chains
# to the CA; the CA itself is kept. Files are written to a temporary name and renamed (the key
# before its certificate), so a stopped run never leaves half a file and a process reloading
# its certificate never sees a mismatched pair. When run as root everything is given to the
# filegrid user (uid 10001), readable by it only, except the CA certificate (public) and the
# CA key (root's).
set -euo pipefail

dir="${1:-/etc/filegrid/secrets}"
owner="${FILEGRID_SECRETS_OWNER:-10001:10001}"

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 -v | tr -d ' \n'; }

# put NAME: writes standard input to DIR/NAME unless it exists; says what it did.
put() {
    local path="$dir/$1" tmp
    if [[ -s "$path" ]]; then
        cat >/dev/null
        echo "kept $1"
        return
    fi
    mkdir -p "$(dirname "$path")"
    tmp="$(mktemp "$path.XXXXXX")"
    cat >"$tmp"
    chmod 0400 "$tmp"
    mv -f "$tmp" "$path"
    echo "made $1"
}

umask 077
mkdir -p "$dir"

random_hex 32 | put cluster-secret
printf 'filegrid:%s\n' "$(random_hex 24)" | put zk-auth
printf 'FG%s:%s\n' "$(random_hex 8 | tr a-f A-F)" "$(random_hex 20)" | put admin-token

token="$(tr -d '\n' <"$dir/admin-token")"
access_key="${token%%:*}"
secret="${token#*:}"
if [[ -z "$access_key" || -z "$secret" || "$token" != *:* ]]; then
    echo "init-secrets: $dir/admin-token is not <access_key>:<secret>; remove it to make a new one" >&2
    exit 1
fi
cat <<TOML | put credentials.toml
# FileGrid client credentials (docs/security.md). Add principals here: heads re-read this
# file within 5 s of a change.
[[principal]]
name = "admin"
access_key = "$access_key"
secret = "$secret"
role = "admin"
TOML
printf 'token = "%s"\n' "$token" | put client/filegrid/credentials

# ---- TLS ----------------------------------------------------------------------------------------

tls="$dir/tls"
mkdir -p "$tls"
command -v openssl >/dev/null || { echo "init-secrets: openssl is not installed" >&2; exit 1; }

# Services with a fixed compose name, and the extra names each certificate carries.
declare -A SERVICE_SANS=(
    [head-server-1]="DNS:head-server-1,DNS:localhost,IP:127.0.0.1"
    [head-server-2]="DNS:head-server-2,DNS:localhost,IP:127.0.0.1"
    [zk-head-monitor]="DNS:zk-head-monitor"
    [test-client]="DNS:test-client"
)
# What the cluster issuer may never certify: every fixed name above and loopback, so a
# cluster container cannot pose as a head to the other processes or to the host.
issuer_excluded() {
    local name out=""
    for name in "${!SERVICE_SANS[@]}"; do out+="excluded;DNS:$name,"; done
    echo "${out}excluded;DNS:localhost,excluded;IP:127.0.0.0/255.0.0.0,excluded;IP:::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
}

CERT_DAYS=825
ISSUER_DAYS=3650
RENEW_SECONDS=$((30 * 86400))

# usable CERT [SECONDS]: CERT exists, chains to the CA and is valid for SECONDS more.
usable() {
    [[ -s "$1" ]] \
        && openssl x509 -in "$1" -noout -checkend "${2:-$RENEW_SECONDS}" >/dev/null 2>&1 \
        && openssl verify -CAfile "$tls/ca.pem" "$1" >/dev/null 2>&1
}

# install TMP_KEY TMP_CERT NAME: renames the pair into place, the key first.
install_pair() {
    chmod 0400 "$1"
    chmod 0444 "$2"
    mv -f "$1" "$tls/$3.key"
    mv -f "$2" "$tls/$3.pem"
}

if [[ -s "$tls/ca.pem" && -s "$tls/ca.key" ]]; then
    echo "kept tls/ca.pem"
else
    key="$(mktemp "$tls/ca.key.XXXXXX")"
    cert="$(mktemp "$tls/ca.pem.XXXXXX")"
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
        -keyout "$key" -out "$cert" -days 3650 -subj "/CN=FileGrid compose CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    install_pair "$key" "$cert" ca
    echo "made tls/ca.pem"
fi

# issue NAME CN EXTENSIONS KEEP_SECONDS DAYS: NAME.pem and NAME.key signed by the CA for DAYS,
# unless one is there that chains to the CA and is valid for KEEP_SECONDS more. EXTENSIONS are
# openssl x509 extension lines.
issue() {
    local name="$1" cn="$2" ext="$3" keep="$4" days="$5" key csr cert extfile
    if usable "$tls/$name.pem" "$keep" && [[ -s "$tls/$name.key" ]]; then
        echo "kept tls/$name.pem"
        return
    fi
    key="$(mktemp "$tls/$name.key.XXXXXX")"
    csr="$(mktemp "$tls/$name.csr.XXXXXX")"
    cert="$(mktemp "$tls/$name.pem.XXXXXX")"
    extfile="$(mktemp "$tls/$name.ext.XXXXXX")"
    printf '%s\n' "$ext" >"$extfile"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$key" -out "$csr" -subj "/CN=$cn" 2>/dev/null
    # -set_serial: a random serial per certificate, no serial file to keep in the volume.
    openssl x509 -req -in "$csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -set_serial "0x$(random_hex 16)" -days "$days" -sha256 -extfile "$extfile" \
        -out "$cert" 2>/dev/null
    rm -f "$csr" "$extfile"
    install_pair "$key" "$cert" "$name"
    echo "made tls/$name.pem"
}

# The issuer is renewed while it still outlives every certificate it may have signed.
issue cluster-issuer "FileGrid compose cluster issuer" "$(printf '%s\n' \
    "basicConstraints=critical,CA:TRUE,pathlen:0" \
    "keyUsage=critical,keyCertSign,cRLSign" \
    "nameConstraints=critical,$(issuer_excluded)")" $(((CERT_DAYS + 30) * 86400)) "$ISSUER_DAYS"

for name in "${!SERVICE_SANS[@]}"; do
    issue "$name" "$name" "$(printf '%s\n' \
        "subjectAltName=${SERVICE_SANS[$name]}" \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth,clientAuth")" "$RENEW_SECONDS" "$CERT_DAYS"
done

if [[ "$(id -u)" == 0 ]]; then
    chown -R "$owner" "$dir"
    # The CA key signs the fixed services' certificates: only this service (root) reads it.
    chown 0:0 "$tls/ca.key"
fi
chmod 0700 "$dir" "$dir/client" "$dir/client/filegrid" "$tls"
chmod 0444 "$tls/ca.pem"

# A public copy of the CA certificate, for processes that run as other users (Prometheus).
if [[ -n "${2:-}" ]]; then
    public="$2"
    mkdir -p "$public"
    if ! cmp -s "$tls/ca.pem" "$public/ca.pem"; then
        tmp="$(mktemp "$public/ca.pem.XXXXXX")"
        cp "$tls/ca.pem" "$tmp"
        chmod 0444 "$tmp"
        mv -f "$tmp" "$public/ca.pem"
        echo "copied tls/ca.pem to $public"
    fi
    chmod 0755 "$public"
fi
echo "secrets ready in $dir"
