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
# FILEGRID_INSECURE=true means what docs/security.md says of `insecure`: no client credentials
# and no peer signatures. The entry point therefore drops FILEGRID_CLUSTER_SECRET_FILE and
# FILEGRID_CREDENTIALS_FILE from the environment of an insecure server (docker-compose.yml sets
# them for every server, secure or not); the ZooKeeper credential stays.
set -euo pipefail

has_flag() {
    local flag="$1" a
    shift
    for a in "$@"; do
        [[ "$a" == "$flag" || "$a" == "$flag="* ]] && return 0
    done
    return 1
}

container_ip() {
    local ip
    ip="$(getent hosts "$(hostname)" | awk '{ print $1; exit }')"
    echo "${ip:-$(hostname)}"
}

case "$(printf '%s' "${FILEGRID_INSECURE:-}" | tr 'A-Z' 'a-z' | tr -d ' ')" in
    true|1|yes|on) unset FILEGRID_CLUSTER_SECRET_FILE FILEGRID_CREDENTIALS_FILE ;;
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
        fi
        exec filegrid-node "$@"
        ;;
    -*|"")
        exec filegrid-node "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
