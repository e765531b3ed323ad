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

start head_server_1 "$bin/filegrid-node" head --server-id head_server_1 --zk-hosts "$zk" --listen 127.0.0.1:9669
start head_server_2 "$bin/filegrid-node" head --server-id head_server_2 --zk-hosts "$zk" --listen 127.0.0.1:9670
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
Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
echo "a FileGrid process exited; see $dir/logs" >&2
