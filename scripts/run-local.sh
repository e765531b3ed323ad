#!/usr/bin/env bash
# Runs a local FileGrid as plain processes: ZooKeeper (Debian's package), two heads, three
# cluster servers and a monitor, all on 127.0.0.1. Ctrl-C stops everything.
#
#   FILEGRID_LOCAL_DIR        where data and logs go (default ./.filegrid-local)
#   FILEGRID_ZK_PORT          ZooKeeper client port (default 2181)
#   FILEGRID_LOCAL_INSECURE   1: no credentials, signatures or TLS (anyone reaching the ports
#                             owns the grid)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# Read once and kept out of the servers' environment (they check every FILEGRID_* variable).
insecure=${FILEGRID_LOCAL_INSECURE:-0}
unset FILEGRID_LOCAL_INSECURE

ensure_zookeeper
[ "$insecure" = 1 ] || ensure_openssl
cargo build --release -p filegrid-node --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release

dir=${FILEGRID_LOCAL_DIR:-$PWD/.filegrid-local}
zk_port=${FILEGRID_ZK_PORT:-2181}
mkdir -p "$dir/zk" "$dir/logs"
cat > "$dir/zoo.cfg" <<CFG
tickTime=500
dataDir=$dir/zk
clientPort=$zk_port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
CFG

pids=()
zk_pid=
stopping=0
cleanup() {
    trap - INT TERM EXIT
    stopping=1
    echo "stopping FileGrid..." >&2
    # FileGrid first (heads release leadership through ZooKeeper), ZooKeeper last.
    for pid in "${pids[@]}"; do [ "$pid" = "$zk_pid" ] || kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do [ "$pid" = "$zk_pid" ] || wait "$pid" 2>/dev/null || true; done
    [ -n "$zk_pid" ] && kill -TERM "$zk_pid" 2>/dev/null
    wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

start() { # name, command...
    local name=$1; shift
    "$@" >"$dir/logs/$name.log" 2>&1 &
    pids+=($!)
}

start zookeeper java -Xmx256m -cp /usr/share/java/zookeeper.jar org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg"
zk_pid=${pids[-1]}
zk_ok() { (exec 3<>/dev/tcp/127.0.0.1/"$zk_port" && echo ruok >&3 && [ "$(cat <&3)" = imok ]) 2>/dev/null; }
for _ in $(seq 150); do
    zk_ok && break
    sleep 0.2
done
zk_ok || { echo "error: ZooKeeper did not start; see $dir/logs/zookeeper.log" >&2; exit 1; }
zk=127.0.0.1:$zk_port

# Security, made on first start and kept in $dir/secrets: a cluster secret the servers sign
# with, a ZooKeeper credential, an admin client credential for the CLI and curl, and a
# self-signed CA with a certificate per process (secrets/tls) for TLS on every listener.
# FILEGRID_LOCAL_INSECURE=1 runs without any of it.
secrets=$dir/secrets
tls_dir=$secrets/tls
head_security=()
scheme=http
cli_tls=()
tls_args() { :; }
if [ "$insecure" = 1 ]; then
    export FILEGRID_INSECURE=true
    if [ -s "$secrets/zk-auth" ]; then
        # ZooKeeper's data in $dir/zk was made by a secured run and belongs to its credential.
        export FILEGRID_ZK_AUTH_FILE=$secrets/zk-auth
    fi
else
    mkdir -p "$secrets"
    chmod 700 "$secrets"
    random() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
    if [ ! -s "$secrets/cluster-secret" ]; then
        (umask 077
         random 32 > "$secrets/cluster-secret"
         printf 'filegrid:%s\n' "$(random 24)" > "$secrets/zk-auth"
         key="FG$(random 8 | tr a-f A-F)"
         cat > "$secrets/credentials.toml" <<TOML
[[principal]]
name = "local-admin"
access_key = "$key"
secret = "$(random 20)"
role = "admin"
TOML
         # The CLI's own credentials file format: token = "<access_key>:<secret>".
         printf 'token = "%s:%s"\n' "$key" "$(sed -n 's/^secret = "\(.*\)"/\1/p' "$secrets/credentials.toml")" > "$secrets/cli-credentials")
    fi
    export FILEGRID_CLUSTER_SECRET_FILE=$secrets/cluster-secret
    export FILEGRID_ZK_AUTH_FILE=$secrets/zk-auth
    head_security=(--credentials-file "$secrets/credentials.toml")
    FILEGRID_TOKEN=$(sed -n 's/^token = "\(.*\)"/\1/p' "$secrets/cli-credentials")
    export FILEGRID_TOKEN
    # TLS: one CA, one certificate per process (server and client usages) for 127.0.0.1,
    # made again when one is missing or expires within 30 days.
    make_local_ca "$tls_dir"
    for name in head_server_1 head_server_2 cluster_server_1 cluster_server_2 cluster_server_3 monitor; do
        issue_local_cert "$tls_dir" "$name" "IP:127.0.0.1,DNS:localhost"
    done
    export FILEGRID_TLS_CA=$tls_dir/ca.pem
    tls_args() { echo "--tls-cert=$tls_dir/$1.pem --tls-key=$tls_dir/$1.key"; }
    scheme=https
    cli_tls=(--ca-cert "$tls_dir/ca.pem")
fi
# shellcheck disable=SC2046  # tls_args prints flags without spaces in their values
start head_server_1 "$bin/filegrid-node" head --server-id head_server_1 --zk-hosts "$zk" --listen 127.0.0.1:9669 --s3-listen 127.0.0.1:9000 \
    "${head_security[@]}" $(tls_args head_server_1)
# shellcheck disable=SC2046
start head_server_2 "$bin/filegrid-node" head --server-id head_server_2 --zk-hosts "$zk" --listen 127.0.0.1:9670 --s3-listen 127.0.0.1:9001 \
    "${head_security[@]}" $(tls_args head_server_2)
for i in 1 2 3; do
    mkdir -p "$dir/cluster_server_$i"
    # shellcheck disable=SC2046
    start "cluster_server_$i" "$bin/filegrid-node" cluster --server-id "cluster_server_$i" --zk-hosts "$zk" \
        --listen "127.0.0.1:970$((i - 1))" --data-dir "$dir/cluster_server_$i" $(tls_args "cluster_server_$i")
done
# shellcheck disable=SC2046
start monitor "$bin/zk_head_server_monitor" --zk-hosts "$zk" --interval 2s --timeout 1s --metrics-listen 127.0.0.1:9092 \
    $(tls_args monitor)

cli() { "$bin/filegrid" --head "$scheme://127.0.0.1:9669" "${cli_tls[@]}" "$@"; }
for _ in $(seq 100); do
    if cli leader >/dev/null 2>&1; then break; fi
    sleep 0.2
done
ca_flag=${cli_tls[*]:+ ${cli_tls[*]}}
cat <<MSG

FileGrid is running (logs in $dir/logs):
  leader:    $(cli leader 2>&1)
  head API:  $scheme://127.0.0.1:9669  $scheme://127.0.0.1:9670
  S3 API:    $scheme://127.0.0.1:9000  $scheme://127.0.0.1:9001  (docs/s3.md)
  monitor:   $scheme://127.0.0.1:9092/metrics
$(if [ "$insecure" = 1 ]; then
    echo "  try:       $bin/filegrid --head http://127.0.0.1:9669 status"
    echo "  security:  OFF (FILEGRID_LOCAL_INSECURE=1): anyone who reaches these ports owns the grid"
  else
    echo "  security:  on: credentials, signed peer calls, ZooKeeper ACLs and TLS on every listener;"
    echo "             secrets in $secrets, the CA and certificates in $tls_dir. For the CLI and curl:"
    echo "  export FILEGRID_TOKEN=\$(sed -n 's/^token = \"\\(.*\\)\"/\\1/p' $secrets/cli-credentials)"
    echo "  $bin/filegrid --head https://127.0.0.1:9669$ca_flag status"
    echo "  curl --cacert $tls_dir/ca.pem -H \"Authorization: Bearer \$FILEGRID_TOKEN\" https://127.0.0.1:9669/v1/files"
    echo "  (or copy $secrets/cli-credentials to ~/.config/filegrid/credentials, and set"
    echo "  FILEGRID_CA_CERT=$tls_dir/ca.pem instead of --ca-cert)"
    echo "  S3 clients: the same key pair, and the CA:"
    echo "  export AWS_ACCESS_KEY_ID=\$(sed -n 's/^access_key = \"\\(.*\\)\"/\\1/p' $secrets/credentials.toml)"
    echo "  export AWS_SECRET_ACCESS_KEY=\$(sed -n 's/^secret = \"\\(.*\\)\"/\\1/p' $secrets/credentials.toml)"
    echo "  export AWS_CA_BUNDLE=$tls_dir/ca.pem"
    echo "  aws --endpoint-url https://127.0.0.1:9000 s3 mb s3://photos"
  fi)
Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
[ "$stopping" = 1 ] || echo "a FileGrid process exited; see $dir/logs" >&2
