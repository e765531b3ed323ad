#!/bin/sh
# Entry point of filegrid/prometheus: runs Prometheus with the given arguments.
#
# The FileGrid jobs of prometheus.yml scrape https (the compose stack runs TLS on every
# listener). When FILEGRID_INSECURE is true the stack runs without TLS, so this script writes a
# copy of the --config.file with `scheme: http` and without the tls_config blocks to
# /tmp/prometheus-insecure.yml and runs Prometheus with that copy instead.
set -eu

case "$(printf '%s' "${FILEGRID_INSECURE:-}" | tr 'A-Z' 'a-z' | tr -d ' ')" in
    true|1|yes|on) ;;
    *) exec /usr/bin/prometheus "$@" ;;
esac

insecure=/tmp/prometheus-insecure.yml
config=""
for a in "$@"; do
    case "$a" in --config.file=*) config="${a#--config.file=}" ;; esac
done
[ -n "$config" ] || config=/etc/prometheus/prometheus.yml
# A tls_config block is its own line and the indented lines below it.
awk '
    /^[[:space:]]*tls_config:[[:space:]]*$/ { match($0, /^[[:space:]]*/); skip = RLENGTH; next }
    skip >= 0 && (match($0, /^[[:space:]]*/) && RLENGTH > skip) && NF { next }
    { skip = -1; sub(/scheme: https$/, "scheme: http"); print }
' skip=-1 "$config" >"$insecure"
echo "start-prometheus: FILEGRID_INSECURE is true: scraping plain http with $insecure" >&2

first=1
for a in "$@"; do
    if [ "$first" = 1 ]; then set --; first=0; fi
    case "$a" in
        --config.file=*) set -- "$@" "--config.file=$insecure" ;;
        *) set -- "$@" "$a" ;;
    esac
done
case " $* " in *" --config.file="*) ;; *) set -- "$@" "--config.file=$insecure" ;; esac
exec /usr/bin/prometheus "$@"
