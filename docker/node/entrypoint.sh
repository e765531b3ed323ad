#!/bin/bash
# Entry point of the filegrid/node image.
#
#   <image> head|cluster|monitor [flags]   runs filegrid-node with that role
#   <image> zk_head_server_monitor|filegrid|filegrid-node [args]   runs that program
#   <image> anything-else                  runs it as a command (e.g. bash)
#
# A cluster server started without a server id or advertise host takes them from its container:
# id `cluster_<hostname>` (the container's short id, so every replica of a scaled compose service
# gets its own) and its IP address on the container network. Explicit flags or FILEGRID_SERVER_ID /
# FILEGRID_ADVERTISE_HOST always win.
#
# TLS. docker-compose.yml gives heads and the monitor FILEGRID_TLS_CERT/KEY/CA from the secrets
# volume. A cluster server's address is known only once its container runs, so its certificate
# cannot be made ahead: when FILEGRID_TLS_ISSUER_CERT and FILEGRID_TLS_ISSUER_KEY name an issuing
# CA and neither FILEGRID_TLS_CERT nor --tls-cert is given, the entry point makes a key and a
# certificate for the advertised host (an IP address or DNS name) and the container's hostname,
# signed by that issuer, in FILEGRID_TLS_RUNTIME_DIR (default /tmp/filegrid-tls; compose puts
# /tmp on a tmpfs, so the key never reaches a disk), and points FILEGRID_TLS_CERT/KEY at them.
# A new certificate is made at every start, since the address may change with a restart.
# The issuer variables are the entry point's own and are removed before the node starts.
#
# FILEGRID_INSECURE=true means what docs/security.md says of `insecure`: no client credentials
# and no peer signatures, and here also no TLS (plain http). The entry point therefore drops
# FILEGRID_CLUSTER_SECRET_FILE, FILEGRID_CREDENTIALS_FILE and the FILEGRID_TLS_* settings from
# the environment of an insecure server (docker-compose.yml sets them for every server, secure
# or not); the ZooKeeper credential stays. Flags given on the command line are left alone.
set -euo pipefail

has_flag() {
    local flag="$1" a
    shift
    for a in "$@"; do
        [[ "$a" == "$flag" || "$a" == "$flag="* ]] && return 0
    done
    return 1
}

# The value of --advertise-host in the arguments, else FILEGRID_ADVERTISE_HOST.
advertised_host() {
    local prev="" a
    for a in "$@"; do
        case "$a" in
            --advertise-host=*) echo "${a#--advertise-host=}"; return ;;
        esac
        [[ "$prev" == --advertise-host ]] && { echo "$a"; return; }
        prev="$a"
    done
    echo "${FILEGRID_ADVERTISE_HOST:-}"
}

container_ip() {
    local ip
    ip="$(getent hosts "$(hostname)" | awk '{ print $1; exit }')"
    echo "${ip:-$(hostname)}"
}

is_ip() { [[ "$1" =~ ^[0-9]+(\.[0-9]+){3}$ || "$1" == *:* ]]; }

# issue_cluster_cert HOST: a key and certificate (chain: leaf, issuer) for HOST and this
# container's hostname, signed by the issuer; exports FILEGRID_TLS_CERT/KEY.
issue_cluster_cert() {
    local host="$1" dir="${FILEGRID_TLS_RUNTIME_DIR:-/tmp/filegrid-tls}" san name
    name="$(hostname)"
    if is_ip "$host"; then san="IP:$host"; else san="DNS:$host"; fi
    [[ "$name" != "$host" ]] && san="$san,DNS:$name"
    (
        umask 077
        mkdir -p "$dir"
        rm -f "$dir"/server.*
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=$name" 2>/dev/null
        printf '%s\n' "subjectAltName=$san" "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth,clientAuth" \
            >"$dir/server.ext"
        openssl x509 -req -in "$dir/server.csr" -CA "$FILEGRID_TLS_ISSUER_CERT" \
            -CAkey "$FILEGRID_TLS_ISSUER_KEY" -set_serial "0x$(head -c 16 /dev/urandom | od -An -tx1 -v | tr -d ' \n')" \
            -days 825 -sha256 -extfile "$dir/server.ext" -out "$dir/server.leaf" 2>/dev/null
        cat "$dir/server.leaf" "$FILEGRID_TLS_ISSUER_CERT" >"$dir/server.pem"
        rm -f "$dir/server.csr" "$dir/server.ext" "$dir/server.leaf"
    ) || { echo "entrypoint: cannot issue a TLS certificate for $host in $dir" >&2; exit 1; }
    export FILEGRID_TLS_CERT="$dir/server.pem" FILEGRID_TLS_KEY="$dir/server.key"
    echo "entrypoint: TLS certificate for $san issued by $FILEGRID_TLS_ISSUER_CERT" >&2
}

case "$(printf '%s' "${FILEGRID_INSECURE:-}" | tr 'A-Z' 'a-z' | tr -d ' ')" in
    true|1|yes|on)
        unset FILEGRID_CLUSTER_SECRET_FILE FILEGRID_CREDENTIALS_FILE \
            FILEGRID_TLS_CERT FILEGRID_TLS_KEY FILEGRID_TLS_CA FILEGRID_TLS_CLIENT_CA \
            FILEGRID_TLS_ISSUER_CERT FILEGRID_TLS_ISSUER_KEY
        ;;
esac

case "${1:-}" in
    head|cluster|monitor)
        if [[ "$1" == cluster ]]; then
            if [[ -z "${FILEGRID_SERVER_ID:-}" ]] && ! has_flag --server-id "$@"; then
                FILEGRID_SERVER_ID="cluster_$(hostname)"
                export FILEGRID_SERVER_ID
            fi
            if [[ -z "${FILEGRID_ADVERTISE_HOST:-}" ]] && ! has_flag --advertise-host "$@"; then
                FILEGRID_ADVERTISE_HOST="$(container_ip)"
                export FILEGRID_ADVERTISE_HOST
            fi
            if [[ -n "${FILEGRID_TLS_ISSUER_CERT:-}" && -n "${FILEGRID_TLS_ISSUER_KEY:-}" \
                && -z "${FILEGRID_TLS_CERT:-}" ]] && ! has_flag --tls-cert "$@"; then
                issue_cluster_cert "$(advertised_host "$@")"
            fi
        fi
        unset FILEGRID_TLS_ISSUER_CERT FILEGRID_TLS_ISSUER_KEY FILEGRID_TLS_RUNTIME_DIR
        exec filegrid-node "$@"
        ;;
    -*|"")
        unset FILEGRID_TLS_ISSUER_CERT FILEGRID_TLS_ISSUER_KEY FILEGRID_TLS_RUNTIME_DIR
        exec filegrid-node "$@"
        ;;
    *)
        unset FILEGRID_TLS_ISSUER_CERT FILEGRID_TLS_ISSUER_KEY FILEGRID_TLS_RUNTIME_DIR
        exec "$@"
        ;;
esac
