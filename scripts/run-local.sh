#!/usr/bin/env bash
# Runs a local FileGrid as plain processes: ZooKeeper (Debian's package), two heads, three
# cluster servers and a monitor, all on 127.0.0.1. Ctrl-C stops everything.
#
#   FILEGRID_LOCAL_DIR   where data and logs go (default ./.filegrid-local)
#   FILEGRID_ZK_PORT     ZooKeeper client port (default 2181)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_zookeeper
cargo build --release -p filegrid-node --bins
bin=$PWD/target/release

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
cleanup() {
    trap - INT TERM EXIT
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
# with, a ZooKeeper credential, and an admin client credential for the CLI and curl.
# FILEGRID_LOCAL_INSECURE=1 runs without it.
secrets=$dir/secrets
head_security=()
if [ "${FILEGRID_LOCAL_INSECURE:-0}" = 1 ]; then
    export FILEGRID_INSECURE=true
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
fi
start head_server_1 "$bin/filegrid-node" head --server-id head_server_1 --zk-hosts "$zk" --listen 127.0.0.1:9669 "${head_security[@]}"
start head_server_2 "$bin/filegrid-node" head --server-id head_server_2 --zk-hosts "$zk" --listen 127.0.0.1:9670 "${head_security[@]}"
for i in 1 2 3; do
    mkdir -p "$dir/cluster_server_$i"
    start "cluster_server_$i" "$bin/filegrid-node" cluster --server-id "cluster_server_$i" --zk-hosts "$zk" \
        --listen "127.0.0.1:970$((i - 1))" --data-dir "$dir/cluster_server_$i"
done
start monitor "$bin/zk_head_server_monitor" --zk-hosts "$zk" --interval 2s --timeout 1s --metrics-listen 127.0.0.1:9092

for _ in $(seq 100); do
    if "$bin/filegrid" --head http://127.0.0.1:9669 leader >/dev/null 2>&1; then break; fi
    sleep 0.2
done
cat <<MSG

FileGrid is running (logs in $dir/logs):
  leader:    $("$bin/filegrid" --head http://127.0.0.1:9669 leader 2>&1)
  head API:  http://127.0.0.1:9669  http://127.0.0.1:9670
  monitor:   http://127.0.0.1:9092/metrics
  try:       $bin/filegrid --head http://127.0.0.1:9669 status
$(if [ "${FILEGRID_LOCAL_INSECURE:-0}" = 1 ]; then
    echo "  security:  OFF (FILEGRID_LOCAL_INSECURE=1): anyone who reaches these ports owns the grid"
  else
    echo "  security:  on; secrets in $secrets. For the CLI and curl:"
    echo "             export FILEGRID_TOKEN=\$(sed -n 's/^token = \"\\(.*\\)\"/\\1/p' $secrets/cli-credentials)"
    echo "             curl -H \"Authorization: Bearer \$FILEGRID_TOKEN\" http://127.0.0.1:9669/v1/files"
    echo "             (or copy $secrets/cli-credentials to ~/.config/filegrid/credentials)"
  fi)
Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
echo "a FileGrid process exited; see $dir/logs" >&2
