#!/bin/bash
# Health check for the FileGrid images (installed as /app/healthcheck.sh).
#
# It needs bash and coreutils, and openssl for processes that speak TLS: plain requests go
# through bash's /dev/tcp, TLS ones through `openssl s_client`.
#
#   healthcheck.sh                   the FileGrid process in this container: GET /health and
#                                    GET /ready on its port must answer 200
#   healthcheck.sh --live            only GET /health (liveness)
#   healthcheck.sh http PORT PATH..  each PATH on 127.0.0.1:PORT must answer 200 (plain HTTP)
#   healthcheck.sh zookeeper [PORT]  ZooKeeper answers `srvr` and is serving
#   healthcheck.sh client            the filegrid CLI finds a leader through one of $FILEGRID_HEADS
#                                    (http:// in place of https:// when FILEGRID_INSECURE is true,
#                                    since an insecure stack runs without TLS)
#
# The port of the local FileGrid process is taken from $FILEGRID_HEALTH_PORT, else from the
# process's own --listen/--metrics-listen flags or FILEGRID_LISTEN/FILEGRID_METRICS_LISTEN, else
# the role's default port (head 9669, cluster 9700, monitor 9092). The process speaks TLS when
# it has --tls-cert or FILEGRID_TLS_CERT: the check then goes over TLS and, when the process has
# a CA (--tls-ca, FILEGRID_TLS_CA), verifies that its certificate chains to that CA and names
# the host it advertises (--advertise-host, FILEGRID_ADVERTISE_HOST), as its peers will.
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

is_ip() { [[ "$1" =~ ^[0-9]+(\.[0-9]+){3}$ || "$1" == *:* ]]; }

# The openssl s_client options that connect to host:port and, with a CA, verify the chain and
# (when given) that the certificate names `name`.
tls_options() {
    local host="$1" port="$2" ca="$3" name="$4"
    printf '%s\n' -connect "$host:$port"
    [[ -n "$ca" ]] || return 0
    printf '%s\n' -CAfile "$ca" -verify_return_error
    if [[ -n "$name" ]]; then
        if is_ip "$name"; then printf '%s\n' -verify_ip "$name"; else printf '%s\n' -verify_hostname "$name"; fi
    fi
}

# Prints the HTTP status code of GET path on host:port over TLS (empty when nothing answers or
# the certificate check fails).
https_status() {
    local host="$1" port="$2" path="$3" ca="$4" name="$5"
    local -a opts
    mapfile -t opts < <(tls_options "$host" "$port" "$ca" "$name")
    printf "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: filegrid-healthcheck\r\nConnection: close\r\n\r\n" "$path" "$host" \
        | timeout "$TIMEOUT" openssl s_client -quiet "${opts[@]}" 2>/dev/null \
        | { IFS=" " read -r _ code _ && echo "$code"; }
}

# Why a TLS connection to host:port fails, in one line (for the unhealthy message).
tls_error() {
    local -a opts
    mapfile -t opts < <(tls_options "$1" "$2" "$3" "$4")
    timeout "$TIMEOUT" openssl s_client -brief "${opts[@]}" </dev/null 2>&1 \
        | grep -m 1 -i -E 'error|refused|unable' || true
}

# check_paths HOST PORT TLS CA NAME PATH...: each PATH answers 200 (TLS is "tls" or "plain").
check_paths() {
    local host="$1" port="$2" tls="$3" ca="$4" name="$5" path code scheme=http
    shift 5
    [[ "$tls" == tls ]] && scheme=https
    for path in "$@"; do
        if [[ "$tls" == tls ]]; then
            code="$(https_status "$host" "$port" "$path" "$ca" "$name")"
            [[ -n "$code" ]] || fail "GET $scheme://$host:$port$path answered nothing: $(tls_error "$host" "$port" "$ca" "$name")"
        else
            code="$(http_status "$host" "$port" "$path")"
        fi
        [[ "$code" == 200 ]] || fail "GET $scheme://$host:$port$path answered '${code:-nothing}'"
    done
    echo "healthy: $scheme://$host:$port $*${name:+ (certificate names $name)}"
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

# Prints "host port tls ca name" for the local FileGrid process's /health: tls is "tls" or
# "plain", ca the CA file it trusts and name the host it advertises ("-" when unknown).
local_endpoint() {
    local pid
    if ! pid="$(filegrid_pid)"; then
        [[ -n "${FILEGRID_HEALTH_PORT:-}" ]] && { echo "127.0.0.1 $FILEGRID_HEALTH_PORT plain - -"; return; }
        fail "no filegrid-node or zk_head_server_monitor process is running"
    fi
    local -a args
    mapfile -t args < <(tr '\0' '\n' <"/proc/$pid/cmdline")
    local role="" listen="" metrics="" cert="" ca="" advertise="" i a
    [[ "${args[0]##*/}" == zk_head_server_monitor ]] && role=monitor
    for ((i = 1; i < ${#args[@]}; i++)); do
        a="${args[$i]}"
        case "$a" in
            head|cluster|monitor) [[ -z "$role" ]] && role="$a" ;;
            --listen) listen="${args[$((i + 1))]:-}" ;;
            --listen=*) listen="${a#--listen=}" ;;
            --metrics-listen) metrics="${args[$((i + 1))]:-}" ;;
            --metrics-listen=*) metrics="${a#--metrics-listen=}" ;;
            --tls-cert) cert="${args[$((i + 1))]:-}" ;;
            --tls-cert=*) cert="${a#--tls-cert=}" ;;
            --tls-ca) ca="${args[$((i + 1))]:-}" ;;
            --tls-ca=*) ca="${a#--tls-ca=}" ;;
            --advertise-host) advertise="${args[$((i + 1))]:-}" ;;
            --advertise-host=*) advertise="${a#--advertise-host=}" ;;
        esac
    done
    local environ
    environ="$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null)"
    penv() { sed -n "s/^$1=//p" <<<"$environ"; }
    listen="${listen:-$(penv FILEGRID_LISTEN)}"
    metrics="${metrics:-$(penv FILEGRID_METRICS_LISTEN)}"
    cert="${cert:-$(penv FILEGRID_TLS_CERT)}"
    ca="${ca:-$(penv FILEGRID_TLS_CA)}"
    advertise="${advertise:-$(penv FILEGRID_ADVERTISE_HOST)}"
    local tls=plain
    [[ -n "$cert" ]] && tls=tls
    if [[ -n "${FILEGRID_HEALTH_PORT:-}" ]]; then
        echo "127.0.0.1 $FILEGRID_HEALTH_PORT $tls ${ca:--} ${advertise:--}"
        return
    fi
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
    echo "$host $port $tls ${ca:--} ${advertise:--}"
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
    case "$(printf '%s' "${FILEGRID_INSECURE:-}" | tr 'A-Z' 'a-z' | tr -d ' ')" in
        true|1|yes|on) heads="${heads//https:\/\//http://}" ;;
    esac
    for head in ${heads//,/ }; do
        if timeout "$TIMEOUT" filegrid --head "$head" leader --json >/dev/null 2>&1; then
            echo "healthy: $head names a leader"
            return 0
        fi
    done
    fail "no head in $heads names a leader"
}

# The local process's endpoint, checked for each path given.
check_local() {
    local endpoint host port tls ca name
    endpoint="$(local_endpoint)" || exit 1
    read -r host port tls ca name <<<"$endpoint"
    [[ "$ca" == - ]] && ca=""
    [[ "$name" == - ]] && name=""
    check_paths "$host" "$port" "$tls" "$ca" "$name" "$@"
}

case "${1:-}" in
    "") check_local /health /ready ;;
    --live) check_local /health ;;
    http)
        [[ $# -ge 3 ]] || fail "usage: healthcheck.sh http PORT PATH..."
        port="$2"
        shift 2
        check_paths 127.0.0.1 "$port" plain "" "" "$@"
        ;;
    zookeeper) check_zookeeper "${2:-2181}" ;;
    client) check_client ;;
    -h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0" ;;
    *) fail "unknown check '$1' (see --help)" ;;
esac
