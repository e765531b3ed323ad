#!/bin/bash
# Health check for the FileGrid images (installed as /app/healthcheck.sh).
#
# It needs nothing but bash and coreutils: requests go through bash's /dev/tcp.
#
#   healthcheck.sh                   the FileGrid process in this container: GET /health and
#                                    GET /ready on its port must answer 200
#   healthcheck.sh --live            only GET /health (liveness)
#   healthcheck.sh http PORT PATH..  each PATH on 127.0.0.1:PORT must answer 200
#   healthcheck.sh zookeeper [PORT]  ZooKeeper answers `srvr` and is serving
#   healthcheck.sh client            the filegrid CLI finds a leader through one of $FILEGRID_HEADS
#
# The port of the local FileGrid process is taken from $FILEGRID_HEALTH_PORT, else from the
# process's own --listen/--metrics-listen flags or FILEGRID_LISTEN/FILEGRID_METRICS_LISTEN, else
# the role's default port (head 9669, cluster 9700, monitor 9092).
set -u

TIMEOUT="${FILEGRID_HEALTH_TIMEOUT:-3}"

fail() { echo "unhealthy: $*" >&2; exit 1; }

# Prints the HTTP status code of GET path on host:port (empty when nothing answers).
http_status() {
    # shellcheck disable=SC2016  # the inner script expands its own arguments
    timeout "$TIMEOUT" bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: filegrid-healthcheck\r\nConnection: close\r\n\r\n" "$2" "$0" >&3
        IFS=" " read -r _ code _ <&3 && echo "$code"
    ' "$1" "$2" "$3" 2>/dev/null
}

check_paths() {
    local host="$1" port="$2" path code
    shift 2
    for path in "$@"; do
        code="$(http_status "$host" "$port" "$path")"
        [[ "$code" == 200 ]] || fail "GET http://$host:$port$path answered '${code:-nothing}'"
    done
    echo "healthy: http://$host:$port $*"
}

# Finds the FileGrid process in this container; prints its pid.
filegrid_pid() {
    local d argv0
    for d in /proc/[0-9]*; do
        argv0="$(tr '\0' '\n' <"$d/cmdline" 2>/dev/null | head -n 1)"
        case "${argv0##*/}" in
            filegrid-node|zk_head_server_monitor) echo "${d#/proc/}"; return 0 ;;
        esac
    done
    return 1
}

# Prints "host port" where the local FileGrid process serves /health.
local_endpoint() {
    if [[ -n "${FILEGRID_HEALTH_PORT:-}" ]]; then
        echo "127.0.0.1 $FILEGRID_HEALTH_PORT"
        return
    fi
    local pid
    pid="$(filegrid_pid)" || fail "no filegrid-node or zk_head_server_monitor process is running"
    local -a args
    mapfile -t args < <(tr '\0' '\n' <"/proc/$pid/cmdline")
    local role="" listen="" metrics="" i a
    [[ "${args[0]##*/}" == zk_head_server_monitor ]] && role=monitor
    for ((i = 1; i < ${#args[@]}; i++)); do
        a="${args[$i]}"
        case "$a" in
            head|cluster|monitor) [[ -z "$role" ]] && role="$a" ;;
            --listen) listen="${args[$((i + 1))]:-}" ;;
            --listen=*) listen="${a#--listen=}" ;;
            --metrics-listen) metrics="${args[$((i + 1))]:-}" ;;
            --metrics-listen=*) metrics="${a#--metrics-listen=}" ;;
        esac
    done
    local env_listen env_metrics
    env_listen="$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^FILEGRID_LISTEN=//p')"
    env_metrics="$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^FILEGRID_METRICS_LISTEN=//p')"
    listen="${listen:-$env_listen}"
    metrics="${metrics:-$env_metrics}"
    local addr
    case "$role" in
        head) addr="${listen:-0.0.0.0:9669}" ;;
        cluster) addr="${listen:-0.0.0.0:9700}" ;;
        monitor) addr="${metrics:-0.0.0.0:9092}" ;;
        *) fail "cannot tell the role of process $pid (${args[*]})" ;;
    esac
    local host="${addr%:*}" port="${addr##*:}"
    host="${host#[}"
    host="${host%]}"
    case "$host" in "" | 0.0.0.0 | :: ) host=127.0.0.1 ;; esac
    echo "$host $port"
}

check_zookeeper() {
    local port="${1:-2181}" reply
    # shellcheck disable=SC2016  # the inner script expands its own arguments
    reply="$(timeout "$TIMEOUT" bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
        printf srvr >&3
        cat <&3
    ' "$port" 2>/dev/null)"
    grep -q '^Mode: ' <<<"$reply" || fail "ZooKeeper on port $port is not serving: ${reply:-no answer}"
    echo "healthy: zookeeper $(grep '^Mode: ' <<<"$reply")"
}

check_client() {
    local heads="${FILEGRID_HEADS:-http://head-server-1:9669,http://head-server-2:9669}" head
    for head in ${heads//,/ }; do
        if timeout "$TIMEOUT" filegrid --head "$head" leader --json >/dev/null 2>&1; then
            echo "healthy: $head names a leader"
            return 0
        fi
    done
    fail "no head in $heads names a leader"
}

case "${1:-}" in
    "")
        read -r host port <<<"$(local_endpoint)" || exit 1
        check_paths "$host" "$port" /health /ready
        ;;
    --live)
        read -r host port <<<"$(local_endpoint)" || exit 1
        check_paths "$host" "$port" /health
        ;;
    http)
        [[ $# -ge 3 ]] || fail "usage: healthcheck.sh http PORT PATH..."
        port="$2"
        shift 2
        check_paths 127.0.0.1 "$port" "$@"
        ;;
    zookeeper) check_zookeeper "${2:-2181}" ;;
    client) check_client ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) fail "unknown check '$1' (see --help)" ;;
esac
