#!/bin/bash
# Makes the secrets of a FileGrid compose stack (installed in filegrid/node as
# /app/init-secrets.sh and run by the one-shot `secrets` service of docker-compose.yml).
#
#   init-secrets.sh [DIR]    DIR defaults to /etc/filegrid/secrets (a named volume)
#
# Each file is made only when it is missing, and never replaced, so running it again (every
# `docker compose up`) keeps the grid's secrets; `docker compose down -v` deletes the volume
# and with it the secrets. Made with bash and coreutils only (/dev/urandom):
#
#   cluster-secret               the secret heads and cluster servers sign requests with
#   zk-auth                      the ZooKeeper digest credential, `filegrid:<password>`
#   admin-token                  the admin client credential, `<access_key>:<secret>`
#   credentials.toml             the heads' credentials file: the admin principal
#   client/filegrid/credentials  the CLI's credentials file (XDG_CONFIG_HOME=DIR/client)
#
# Files are written to a temporary name and renamed, so a stopped run never leaves half a
# file. When run as root they are given to the filegrid user (uid 10001), readable by it only.
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

if [[ "$(id -u)" == 0 ]]; then
    chown -R "$owner" "$dir"
fi
chmod 0700 "$dir" "$dir/client" "$dir/client/filegrid"
echo "secrets ready in $dir"
