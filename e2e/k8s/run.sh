#!/usr/bin/env bash
# FileGrid on a real Kubernetes cluster (kind, k3d or any other), given by KUBECONFIG.
#
# Installs the operator chart (and checks the operator applied its own CRD), a one-node
# ZooKeeper and the minimal FileGrid sample (secured, as every grid is by default), then:
#   1. waits for the grid to become Available, with its Secrets and NetworkPolicy;
#   2. checks the security: no `insecure` in the role files, the heads refuse a wrong
#      credential and plain HTTP, ZooKeeper refuses the grid's nodes without its credential;
#   3. puts a file through the client Service (https, admin credential) and gets it back;
#   4. deletes the leader head's pod and waits for a different leader in status;
#   5. has the head certificate reissued and checks the grid keeps serving without any pod
#      restarting;
#   6. scales cluster servers 3 -> 4 -> 3 (the operator decommissions before shrinking,
#      then deletes the drained server's volume) and checks every file is still there, byte
#      for byte; then 3 -> 4 again, where the re-used ordinal must be live and get chunks;
#      100 uploads through the client Service (CLI, and curl -T where the image has curl);
#      S3 through the client Service (a bucket, 20 objects put and got back byte for byte
#      with curl --aws-sigv4, a listing, one object read through the file API);
#      `kubectl scale` by hand down and up, which the operator undoes without losing a volume;
#   7. upgrades the grid under a steady write and read load: the node image changes to
#      filegrid/node:$TAG-b (the same image re-tagged and loaded into kind/k3d; on another
#      cluster, where it cannot be loaded, a change of logFormat rolls every pod instead);
#      waits until every pod runs the new template and asserts zero failed writes and reads,
#      at most one cluster pod down at any sample, and the leader head restarted last;
#   8. kills a cluster pod (--force, no grace) under the same load and asserts zero failed
#      writes and reads until it is back;
#   9. pauses the grid (filegrid.io/paused), checks a deleted child is not recreated while
#      paused and is once the annotation is removed.
#
# Images filegrid/node, filegrid/zookeeper and filegrid/operator (docker/build-images.sh)
# must be available to the cluster's nodes. Set FILEGRID_E2E_KIND_CLUSTER=<name> or
# FILEGRID_E2E_K3D_CLUSTER=<name> to load them from the local Docker engine first.
# Other settings: FILEGRID_IMAGE_TAG (0.1.0), FILEGRID_E2E_TIMEOUT (seconds per wait, 600),
# FILEGRID_E2E_KEEP=1 keeps the test namespace for inspection, FILEGRID_E2E_INSECURE=1 runs
# the suite on a grid with `security.insecure: true` (steps 2 and 5 are then skipped).
set -euo pipefail

if [ -z "${KUBECONFIG:-}" ]; then
  echo "e2e/k8s: NOT RUN: KUBECONFIG is not set (point it at a kind, k3d or real cluster to run this suite)"
  exit 0
fi

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TAG="${FILEGRID_IMAGE_TAG:-0.1.0}"
TIMEOUT="${FILEGRID_E2E_TIMEOUT:-600}"
NS="filegrid-e2e-$(date +%s)"
OP_NS="filegrid-system"
GRID=demo
INSECURE="${FILEGRID_E2E_INSECURE:-0}"
passed=0
failed=0

log() { echo "[$(date +%H:%M:%S)] $*"; }
ok() { passed=$((passed + 1)); echo "PASS: $*"; }
die() {
  failed=$((failed + 1))
  echo "FAIL: $*"
  kubectl -n "$NS" get filegrid,pods,statefulsets -o wide 2>/dev/null || true
  kubectl -n "$NS" get filegrid "$GRID" -o jsonpath='{.status}' 2>/dev/null || true
  echo
  kubectl -n "$OP_NS" logs -l app.kubernetes.io/name=filegrid-operator --tail=50 2>/dev/null || true
  echo "e2e/k8s: $passed passed, $failed failed"
  exit 1
}

for tool in kubectl helm; do
  command -v "$tool" >/dev/null || { echo "e2e/k8s: $tool is required"; exit 1; }
done
kubectl version >/dev/null 2>&1 || { echo "e2e/k8s: the cluster in KUBECONFIG=$KUBECONFIG is not reachable"; exit 1; }

cleanup() {
  if [ "${FILEGRID_E2E_KEEP:-0}" = 1 ]; then
    log "keeping namespace $NS"
  else
    kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# Poll a shell condition until it holds or the deadline passes.
wait_for() {
  local what="$1" cond="$2" deadline=$((SECONDS + TIMEOUT))
  log "waiting for $what"
  until eval "$cond"; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${TIMEOUT}s waiting for $what"
    sleep 2
  done
}

fg_field() { kubectl -n "$NS" get filegrid "$GRID" -o jsonpath="{$1}" 2>/dev/null; }
available() { [ "$(fg_field '.status.conditions[?(@.type=="Available")].status')" = True ]; }

images=("filegrid/node:$TAG" "filegrid/zookeeper:$TAG" "filegrid/operator:$TAG")
if [ -n "${FILEGRID_E2E_KIND_CLUSTER:-}" ]; then
  log "loading images into kind cluster $FILEGRID_E2E_KIND_CLUSTER"
  kind load docker-image --name "$FILEGRID_E2E_KIND_CLUSTER" "${images[@]}"
elif [ -n "${FILEGRID_E2E_K3D_CLUSTER:-}" ]; then
  log "loading images into k3d cluster $FILEGRID_E2E_K3D_CLUSTER"
  k3d image import --cluster "$FILEGRID_E2E_K3D_CLUSTER" "${images[@]}"
fi

log "installing the operator chart"
helm upgrade --install filegrid-operator "$ROOT/helm/filegrid-operator" \
  --namespace "$OP_NS" --create-namespace --set image.tag="$TAG" --wait --timeout "${TIMEOUT}s" \
  || die "helm install"
kubectl get crd filegrids.filegrid.io >/dev/null || die "CRD filegrids.filegrid.io not installed"
ok "operator chart installed"
# The leading replica applies its own CRD (crds.apply, on by default): marked with its version
# and managed by the field manager filegrid-operator.
crd_mark() { kubectl get crd filegrids.filegrid.io -o jsonpath='{.metadata.annotations.filegrid\.io/operator-version}' 2>/dev/null; }
wait_for "the CRD applied by the operator" '[ -n "$(crd_mark)" ]'
kubectl get crd filegrids.filegrid.io -o jsonpath='{.metadata.managedFields[*].manager}' \
  | tr ' ' '\n' | grep -qx filegrid-operator || die "the CRD has no fields managed by filegrid-operator"
ok "CRD applied by the operator (version $(crd_mark))"

kubectl create namespace "$NS" >/dev/null
log "starting ZooKeeper in $NS"
kubectl -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: zookeeper}
spec:
  selector: {app: zookeeper}
  ports: [{name: client, port: 2181, targetPort: 2181}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: zookeeper}
spec:
  serviceName: zookeeper
  replicas: 1
  selector: {matchLabels: {app: zookeeper}}
  template:
    metadata: {labels: {app: zookeeper}}
    spec:
      containers:
        - name: zookeeper
          image: filegrid/zookeeper:$TAG
          imagePullPolicy: IfNotPresent
          ports: [{containerPort: 2181}]
          readinessProbe: {tcpSocket: {port: 2181}, periodSeconds: 3}
          # No volume: the image's /var/lib/zookeeper (owned by its zookeeper user) is used as is.
YAML
kubectl -n "$NS" rollout status statefulset/zookeeper --timeout="${TIMEOUT}s" || die "ZooKeeper did not start"

log "applying crds/samples/minimal.yaml"
if [ "$INSECURE" = 1 ]; then
  # The sample ends inside `spec:`; the switch is added there, before the first reconcile.
  { cat "$ROOT/crds/samples/minimal.yaml"; printf '  security:\n    insecure: true\n'; } \
    | kubectl -n "$NS" apply -f - >/dev/null
else
  kubectl -n "$NS" apply -f "$ROOT/crds/samples/minimal.yaml" >/dev/null
fi
if [ "$TAG" != 0.1.0 ]; then
  kubectl -n "$NS" patch filegrid "$GRID" --type merge -p "{\"spec\":{\"image\":\"filegrid/node:$TAG\"}}" >/dev/null
fi
wait_for "FileGrid $GRID Available" available
[ "$(fg_field .status.readyHeads)" = 2 ] || die "readyHeads is $(fg_field .status.readyHeads), want 2"
[ "$(fg_field .status.readyClusterServers)" = 3 ] || die "readyClusterServers is $(fg_field .status.readyClusterServers), want 3"
[ -n "$(fg_field .status.leader)" ] || die "no leader in status"
[ "$(fg_field .status.observedGeneration)" = "$(fg_field .metadata.generation)" ] || die "observedGeneration lags"
ok "grid Available with 2 heads, 3 cluster servers, leader $(fg_field .status.leader)"
[ "$(fg_field '.status.conditions[?(@.type=="Resilient")].status')" = True ] \
  || die "the minimal sample does not survive one pod loss: $(fg_field '.status.conditions[?(@.type=="Resilient")].message')"
ok "Resilient: writes survive the loss of one pod"

grep -q '^standby_proxy = true' <<<"$(kubectl -n "$NS" get configmap "$GRID-config" -o jsonpath='{.data.head\.toml}')" \
  || die "head.toml does not set standby_proxy = true"
ok "standby heads forward to the leader (standby_proxy = true)"

SECRETS=("$GRID-cluster-secret" "$GRID-admin" "$GRID-zookeeper" "$GRID-ca" "$GRID-head-tls" "$GRID-cluster-tls" "$GRID-monitor-tls")
head_toml="$(kubectl -n "$NS" get configmap "$GRID-config" -o jsonpath='{.data.head\.toml}')"
if [ "$INSECURE" = 1 ]; then
  grep -q '^insecure = true' <<<"$head_toml" || die "head.toml of an insecure grid lacks insecure = true"
  for s in "${SECRETS[@]}"; do
    ! kubectl -n "$NS" get secret "$s" >/dev/null 2>&1 || die "insecure grid has Secret $s"
  done
  ok "insecure grid: insecure = true, no Secrets"
else
  kubectl -n "$NS" get secret "${SECRETS[@]}" >/dev/null || die "the grid's Secrets are missing"
  kubectl -n "$NS" get networkpolicy "$GRID" >/dev/null || die "NetworkPolicy $GRID is missing"
  ! grep -q '^insecure' <<<"$head_toml" || die "head.toml still sets insecure"
  grep -q '^credentials_file = "/etc/filegrid-credentials/credentials"' <<<"$head_toml" \
    || die "head.toml does not name the mounted credentials file"
  ok "secured grid: Secrets, NetworkPolicy, role files pointing at them"
fi

log "starting a client pod"
if [ "$INSECURE" = 1 ]; then
  HEAD="http://$GRID-head:9669"
  client_env=""
  client_mounts=""
  client_volumes=""
else
  HEAD="https://$GRID-head:9669"
  # The admin credential and the grid's CA, as a user gets them from the Secrets.
  client_env="
      env:
        - {name: FILEGRID_TOKEN, valueFrom: {secretKeyRef: {name: $GRID-admin, key: token}}}
        - {name: FILEGRID_CA_CERT, value: /etc/grid-ca/ca.crt}"
  client_mounts="
      volumeMounts:
        - {name: ca, mountPath: /etc/grid-ca, readOnly: true}
        - {name: zk, mountPath: /etc/grid-zk, readOnly: true}"
  client_volumes="
  volumes:
    - {name: ca, secret: {secretName: $GRID-head-tls, items: [{key: ca.crt, path: ca.crt}]}}
    - {name: zk, secret: {secretName: $GRID-zookeeper}}"
fi
kubectl -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  restartPolicy: Never
  containers:
    - name: client
      image: filegrid/node:$TAG
      imagePullPolicy: IfNotPresent
      command: [sleep, "86400"]$client_env$client_mounts$client_volumes
YAML
kubectl -n "$NS" wait pod/client --for=condition=Ready --timeout="${TIMEOUT}s" >/dev/null || die "client pod"
client() { kubectl -n "$NS" exec client -- sh -c "$1"; }

if [ "$INSECURE" != 1 ]; then
  client "filegrid --head $HEAD leader >/dev/null" || die "the admin credential is refused"
  ! client "FILEGRID_TOKEN=FGAWRONG:wrong-secret-0123456789 filegrid --head $HEAD leader" >/dev/null 2>&1 \
    || die "a wrong credential was accepted"
  ! client "env -u FILEGRID_TOKEN filegrid --head $HEAD leader" >/dev/null 2>&1 \
    || die "a call without credential was accepted"
  ! client "filegrid --head http://$GRID-head:9669 leader" >/dev/null 2>&1 \
    || die "plain HTTP was answered"
  ZK="--zk-hosts zookeeper:2181 --zk-root /filegrid/$NS/$GRID"
  client "filegrid $ZK --zk-auth-file /etc/grid-zk/auth heads >/dev/null" \
    || die "the grid's ZooKeeper credential cannot read its nodes"
  ! client "filegrid $ZK heads" >/dev/null 2>&1 || die "ZooKeeper showed the grid's nodes without its credential"
  ok "heads refuse wrong, missing and plain-HTTP calls; ZooKeeper refuses the grid's nodes without its credential"
fi

# put_file NAME MB: a random file, uploaded and kept in the client pod for comparison.
put_file() {
  client "head -c $(($2 * 1024 * 1024)) /dev/urandom > /tmp/$1 && filegrid --head $HEAD put /tmp/$1 /e2e/$1" \
    || die "put /e2e/$1"
}
check_file() {
  client "rm -f /tmp/$1.out && filegrid --head $HEAD get /e2e/$1 /tmp/$1.out && cmp /tmp/$1 /tmp/$1.out" \
    || die "/e2e/$1 differs or is missing"
}

put_file one 20
check_file one
ok "put and get of a 20 MiB file through the client Service"

old_leader="$(fg_field .status.leader)"
old_epoch="$(fg_field .status.epoch)"
log "deleting the leader's pod $old_leader"
kubectl -n "$NS" delete pod "$old_leader" --wait=false >/dev/null
new_leader_in_status() {
  local l
  l="$(fg_field .status.leader)"
  [ -n "$l" ] && [ "$l" != "$old_leader" ] && [ "$(fg_field .status.epoch)" -gt "$old_epoch" ]
}
wait_for "a new leader in status" new_leader_in_status
check_file one
ok "leader moved from $old_leader to $(fg_field .status.leader) (epoch $old_epoch -> $(fg_field .status.epoch)); file intact"

if [ "$INSECURE" != 1 ]; then
  # Certificate rotation: a deleted certificate Secret is issued again at once; the kubelet
  # updates the mounted files and the processes reload them, with no pod restarting.
  pods_state() {
    kubectl -n "$NS" get pods -l "app.kubernetes.io/instance=$GRID" \
      -o jsonpath='{range .items[*]}{.metadata.uid}:{.status.containerStatuses[0].restartCount} {end}'
  }
  before="$(pods_state)"
  old_cert="$(kubectl -n "$NS" get secret "$GRID-head-tls" -o jsonpath='{.data.tls\.crt}')"
  log "deleting Secret $GRID-head-tls to have the head certificate reissued"
  kubectl -n "$NS" delete secret "$GRID-head-tls" >/dev/null
  reissued() {
    local c
    c="$(kubectl -n "$NS" get secret "$GRID-head-tls" -o jsonpath='{.data.tls\.crt}' 2>/dev/null)"
    [ -n "$c" ] && [ "$c" != "$old_cert" ]
  }
  wait_for "a new head certificate" reissued
  # Secret volumes are refreshed at the kubelet's sync (about a minute), the files are
  # checked every 2 s; then every new connection gets the new certificate.
  sleep 90
  put_file rotated 5
  check_file rotated
  check_file one
  [ "$(pods_state)" = "$before" ] || die "pods restarted or were replaced during the rotation: $before -> $(pods_state)"
  available || die "grid not Available after the rotation"
  ok "head certificate reissued; the grid kept serving with no pod restarted"
fi

log "scaling cluster servers 3 -> 4"
kubectl -n "$NS" patch filegrid "$GRID" --type merge -p '{"spec":{"cluster":{"replicas":4}}}' >/dev/null
wait_for "4 ready cluster servers" '[ "$(fg_field .status.readyClusterServers)" = 4 ] && available'
put_file two 20
ok "scaled up to 4 cluster servers"

log "scaling cluster servers 4 -> 3"
kubectl -n "$NS" patch filegrid "$GRID" --type merge -p '{"spec":{"cluster":{"replicas":3}}}' >/dev/null
scaled_down() {
  [ "$(kubectl -n "$NS" get statefulset "$GRID-cluster" -o jsonpath='{.spec.replicas}')" = 3 ] \
    && [ -z "$(fg_field .status.decommissioning)" ] \
    && [ "$(fg_field .status.readyClusterServers)" = 3 ] && available
}
wait_for "scale-down to 3 after decommissioning $GRID-cluster-3" scaled_down
check_file one
check_file two
ok "scaled down to 3 cluster servers; no file lost"
wait_for "the drained server's volume deleted by the operator" \
  '! kubectl -n "$NS" get pvc "data-$GRID-cluster-3" >/dev/null 2>&1'
ok "volume data-$GRID-cluster-3 deleted once its server was drained"

# server_field ID COLUMN: a column of `filegrid status` for one cluster server
# (2 state, 4 chunks).
server_field() {
  client "filegrid --head $HEAD status" 2>/dev/null | awk -v id="$1" -v col="$2" '$1 == id { print $col }'
}
log "scaling cluster servers 3 -> 4 again: the re-used ordinal must serve"
kubectl -n "$NS" patch filegrid "$GRID" --type merge -p '{"spec":{"cluster":{"replicas":4}}}' >/dev/null
wait_for "4 ready cluster servers" '[ "$(fg_field .status.readyClusterServers)" = 4 ] && available'
wait_for "$GRID-cluster-3 live again" '[ "$(server_field "$GRID-cluster-3" 2)" = live ]'
for i in 1 2 3 4 5 6; do put_file "again$i" 2; done
wait_for "chunks on $GRID-cluster-3" '[ "$(server_field "$GRID-cluster-3" 4)" -gt 0 ] 2>/dev/null'
ok "3 -> 4 -> 3 -> 4: $GRID-cluster-3 is live again and receives chunks"

log "100 uploads through the client Service (whichever head it picks)"
client "head -c 300000 /dev/urandom > /tmp/svc.bin" || die "making /tmp/svc.bin"
client "i=0; while [ \$i -lt 100 ]; do filegrid --head $HEAD put /tmp/svc.bin /e2e/svc/f\$i >/dev/null || exit 1; i=\$((i+1)); done" \
  || die "an upload through the Service failed"
client "filegrid --head $HEAD ls /e2e/svc/ | wc -l" | grep -qx 100 || die "not 100 files under /e2e/svc/"
if client "command -v curl" >/dev/null 2>&1; then
  if [ "$INSECURE" = 1 ]; then auth=""; else auth="--cacert \$FILEGRID_CA_CERT -H \"Authorization: Bearer \$FILEGRID_TOKEN\""; fi
  client "i=0; while [ \$i -lt 100 ]; do code=\$(curl -sS -o /dev/null -w '%{http_code}' $auth -T /tmp/svc.bin $HEAD/v1/files/e2e/curl/f\$i); [ \"\$code\" = 201 ] || exit 1; i=\$((i+1)); done" \
    || die "a curl -T upload through the Service failed"
  ok "100 CLI uploads and 100 curl -T uploads through the client Service"
else
  ok "100 CLI uploads through the client Service (no curl in the client image: curl -T not checked)"
fi

log "S3 through the client Service (curl --aws-sigv4, the admin credential as access key and secret)"
S3="${HEAD%:9669}:9000"
if [ "$INSECURE" = 1 ]; then
  s3auth=""
else
  # curl does not send x-amz-content-sha256 itself, which S3 requires with a signature.
  s3auth="--cacert \$FILEGRID_CA_CERT --aws-sigv4 aws:amz:us-east-1:s3 --user \"\$FILEGRID_TOKEN\" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD'"
fi
# s3 ARGS...: one curl call, a new connection each time (so the Service picks a head each
# time); prints the HTTP status.
s3() { client "curl -sS -o /tmp/s3.out -w '%{http_code}' $s3auth $1"; }
[ "$(s3 "-X PUT $S3/e2e-s3")" = 200 ] || die "CreateBucket through the Service"
client "head -c 1500000 /dev/urandom > /tmp/s3.bin" || die "making /tmp/s3.bin"
for i in $(seq 0 19); do
  [ "$(s3 "-T /tmp/s3.bin $S3/e2e-s3/dir/obj$i")" = 200 ] || die "PutObject obj$i through the Service"
done
for i in $(seq 0 19); do
  [ "$(s3 "$S3/e2e-s3/dir/obj$i")" = 200 ] && client "cmp /tmp/s3.bin /tmp/s3.out" \
    || die "GetObject obj$i through the Service differs"
done
# The prefix's slash encoded: curl signs the query as it is written.
[ "$(s3 "'$S3/e2e-s3?list-type=2&prefix=dir%2F'")" = 200 ] || die "ListObjectsV2 through the Service"
client "grep -o '<Key>' /tmp/s3.out | wc -l" | grep -qx 20 || die "ListObjectsV2 did not list 20 keys"
# One namespace: the bucket is a directory of the file API.
client "filegrid --head $HEAD get /e2e-s3/dir/obj7 /tmp/s3.native && cmp /tmp/s3.bin /tmp/s3.native" \
  || die "an object put through S3 does not read back through the file API"
ok "S3 through the client Service: CreateBucket, 20 PutObject and GetObject (byte for byte), ListObjectsV2, and the same bytes through the file API"

log "scaling the cluster StatefulSet by hand"
kubectl -n "$NS" scale statefulset "$GRID-cluster" --replicas=2 >/dev/null
wait_for "the operator to restore 4 cluster servers" \
  '[ "$(kubectl -n "$NS" get statefulset "$GRID-cluster" -o jsonpath="{.spec.replicas}")" = 4 ] && [ "$(fg_field .status.readyClusterServers)" = 4 ] && available'
for n in 2 3; do
  kubectl -n "$NS" get pvc "data-$GRID-cluster-$n" >/dev/null || die "volume data-$GRID-cluster-$n lost to a scale-down by hand"
done
check_file one
check_file two
kubectl -n "$NS" scale statefulset "$GRID-cluster" --replicas=5 >/dev/null
wait_for "the operator to restore 4 after a scale-up by hand" \
  '[ "$(kubectl -n "$NS" get statefulset "$GRID-cluster" -o jsonpath="{.spec.replicas}")" = 4 ] && available'
wait_for "the extra ordinal's volume deleted once it is drained or forgotten" \
  '! kubectl -n "$NS" get pvc "data-$GRID-cluster-4" >/dev/null 2>&1'
check_file one
ok "scaling by hand is undone (down: volumes kept; up: the extra volume deleted once drained); files intact"

# Upgrade under load. The load runs in the client pod, one upload and one download (compared
# byte for byte) after another, and counts every failed operation; nothing is retried.
log "upgrading the grid under a steady write and read load"
kubectl -n "$NS" exec -i client -- sh -c 'cat > /tmp/load.sh' <<'SH'
head -c 200000 /dev/urandom > /tmp/load.bin
w=0; r=0; wf=0; rf=0; i=0
rm -f /tmp/load.stop /tmp/load.done /tmp/load.err
while [ ! -e /tmp/load.stop ]; do
  i=$((i + 1))
  if filegrid --head "$HEAD" put /tmp/load.bin "/e2e/load/f$i" >/dev/null 2>>/tmp/load.err; then
    w=$((w + 1))
    # The file just written, and the first one (written before the rollout began).
    for f in "f$i" f1; do
      if filegrid --head "$HEAD" get "/e2e/load/$f" /tmp/load.out 2>>/tmp/load.err \
        && cmp -s /tmp/load.bin /tmp/load.out; then
        r=$((r + 1))
      else
        rf=$((rf + 1))
        echo "$(date +%T) read $f failed" >>/tmp/load.err
      fi
    done
  else
    wf=$((wf + 1))
    echo "$(date +%T) write f$i failed" >>/tmp/load.err
  fi
  echo "$w $r $wf $rf" >/tmp/load.count
done
echo done >/tmp/load.done
SH
# In the background of the pod (no terminal, so it outlives this exec).
client "HEAD=$HEAD sh /tmp/load.sh </dev/null >/dev/null 2>&1 &" || die "starting the load"
load_count() { client "cat /tmp/load.count 2>/dev/null" 2>/dev/null || true; }
wait_for "the load to run" '[ "$(load_count | cut -d" " -f1)" -ge 5 ] 2>/dev/null'

upgrade_leader="$(fg_field .status.leader)"
upgrade_epoch="$(fg_field .status.epoch)"
upgrade_standby="$(kubectl -n "$NS" get pods -l "app.kubernetes.io/instance=$GRID,app.kubernetes.io/component=head" \
  -o jsonpath='{.items[*].metadata.name}' | tr ' ' '\n' | grep -vx "$upgrade_leader" | head -n 1)"
before_revision="$(kubectl -n "$NS" get statefulset "$GRID-cluster" -o jsonpath='{.status.currentRevision}')"
if [ -n "${FILEGRID_E2E_KIND_CLUSTER:-}${FILEGRID_E2E_K3D_CLUSTER:-}" ] && command -v docker >/dev/null; then
  NEW_IMAGE="filegrid/node:$TAG-b"
  docker tag "filegrid/node:$TAG" "$NEW_IMAGE"
  if [ -n "${FILEGRID_E2E_KIND_CLUSTER:-}" ]; then
    kind load docker-image --name "$FILEGRID_E2E_KIND_CLUSTER" "$NEW_IMAGE"
  else
    k3d image import --cluster "$FILEGRID_E2E_K3D_CLUSTER" "$NEW_IMAGE"
  fi
  log "changing the image to $NEW_IMAGE"
  kubectl -n "$NS" patch filegrid "$GRID" --type merge -p "{\"spec\":{\"image\":\"$NEW_IMAGE\"}}" >/dev/null
  upgraded_what="image $NEW_IMAGE"
else
  log "no kind/k3d cluster to load a re-tagged image into: changing logFormat to text instead"
  kubectl -n "$NS" patch filegrid "$GRID" --type merge -p '{"spec":{"logFormat":"text"}}' >/dev/null
  upgraded_what="logFormat text"
fi

# sts_field NAME PATH
sts_field() { kubectl -n "$NS" get statefulset "$1" -o jsonpath="{$2}" 2>/dev/null; }
rolled() {
  local c="$GRID-cluster" h="$GRID-head"
  [ "$(sts_field "$c" .status.currentRevision)" != "$before_revision" ] \
    && [ "$(sts_field "$c" .status.currentRevision)" = "$(sts_field "$c" .status.updateRevision)" ] \
    && [ "$(sts_field "$c" .status.updatedReplicas)" = "$(sts_field "$c" .spec.replicas)" ] \
    && [ "$(sts_field "$h" .status.updatedReplicas)" = "$(sts_field "$h" .spec.replicas)" ] \
    && [ "$(sts_field "$c" .status.readyReplicas)" = "$(sts_field "$c" .spec.replicas)" ] \
    && [ "$(sts_field "$h" .status.readyReplicas)" = "$(sts_field "$h" .spec.replicas)" ] \
    && [ "$(fg_field '.status.conditions[?(@.type=="Progressing")].status')" = False ] \
    && available
}
# Four cluster servers, each restarted only after a repair pass saw the last one back (up to
# a minute apart when nothing is short), then the heads.
deadline=$((SECONDS + 2 * TIMEOUT))
most_down=0
last_line=""
until rolled; do
  [ "$SECONDS" -lt "$deadline" ] || die "timed out after $((2 * TIMEOUT))s waiting for the rollout of $upgraded_what"
  down="$(kubectl -n "$NS" get pods -l "app.kubernetes.io/instance=$GRID,app.kubernetes.io/component=cluster" \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -cvx True || true)"
  # A pod being recreated is not listed at all: it counts as down too.
  want="$(sts_field "$GRID-cluster" .spec.replicas)"
  have="$(kubectl -n "$NS" get pods -l "app.kubernetes.io/instance=$GRID,app.kubernetes.io/component=cluster" -o name | wc -l)"
  if [ -n "$want" ] && [ "$want" -gt "$have" ]; then down=$((down + want - have)); fi
  if [ "$down" -gt "$most_down" ]; then most_down="$down"; fi
  line="$(fg_field .status.rollout)"
  if [ -n "$line" ] && [ "$line" != "$last_line" ]; then
    log "rollout: $line (partition $(sts_field "$GRID-cluster" .spec.updateStrategy.rollingUpdate.partition))"
    last_line="$line"
  fi
  sleep 2
done
client "touch /tmp/load.stop" || die "stopping the load"
wait_for "the load to stop" 'client "test -e /tmp/load.done" 2>/dev/null'
read -r writes reads failed_writes failed_reads <<<"$(load_count)"
log "load: $writes writes, $reads reads, $failed_writes failed writes, $failed_reads failed reads"
if [ "${failed_writes:-1}" != 0 ] || [ "${failed_reads:-1}" != 0 ]; then
  client "cat /tmp/load.err" || true
  die "the upgrade dropped operations: $failed_writes failed writes, $failed_reads failed reads"
fi
if [ "${writes:-0}" -eq 0 ] || [ "${reads:-0}" -eq 0 ]; then die "the load made no operations"; fi
[ "$most_down" -le 1 ] || die "$most_down cluster pods were down at once during the rollout"
# Leader last: the old leader's pod was replaced after the standby's, and a standby took over.
# (RFC 3339 UTC timestamps compare as strings.)
created() { kubectl -n "$NS" get pod "$1" -o jsonpath='{.metadata.creationTimestamp}'; }
if [ -n "$upgrade_standby" ] && [[ "$(created "$upgrade_leader")" < "$(created "$upgrade_standby")" ]]; then
  die "the leader $upgrade_leader was restarted before the standby $upgrade_standby"
fi
[ "$(fg_field .status.epoch)" -gt "$upgrade_epoch" ] || die "leadership did not move during the head rollout"
check_file one
check_file two
ok "upgrade ($upgraded_what) under load: $writes writes and $reads reads, none failed; at most $most_down cluster pod down at a time; leader $upgrade_leader restarted last (now $(fg_field .status.leader))"

# A cluster pod killed under the same load: writes and reads go on around it.
log "killing a cluster pod under a steady write and read load"
client "HEAD=$HEAD sh /tmp/load.sh </dev/null >/dev/null 2>&1 &" || die "starting the load again"
wait_for "the load to run again" 'client "test ! -e /tmp/load.done" 2>/dev/null && [ "$(load_count | cut -d" " -f1)" -ge 5 ] 2>/dev/null'
victim="$GRID-cluster-1"
# shellcheck disable=SC2034  # read by the wait_for condition below (eval)
victim_uid="$(kubectl -n "$NS" get pod "$victim" -o jsonpath='{.metadata.uid}')"
kubectl -n "$NS" delete pod "$victim" --grace-period=0 --force >/dev/null 2>&1
wait_for "$victim back and Ready" \
  '[ "$(kubectl -n "$NS" get pod "$victim" -o jsonpath="{.metadata.uid}" 2>/dev/null)" != "$victim_uid" ] \
   && kubectl -n "$NS" wait pod "$victim" --for=condition=Ready --timeout=5s >/dev/null 2>&1 && available'
# shellcheck disable=SC2034  # read by the wait_for condition below (eval)
base_writes="$(load_count | cut -d" " -f1)"
wait_for "writes after the pod's return" '[ "$(load_count | cut -d" " -f1)" -ge $((base_writes + 5)) ] 2>/dev/null'
client "touch /tmp/load.stop" || die "stopping the load"
wait_for "the load to stop" 'client "test -e /tmp/load.done" 2>/dev/null'
read -r writes reads failed_writes failed_reads <<<"$(load_count)"
if [ "${failed_writes:-1}" != 0 ] || [ "${failed_reads:-1}" != 0 ]; then
  client "cat /tmp/load.err" || true
  die "a killed cluster pod failed operations: $failed_writes failed writes, $failed_reads failed reads"
fi
ok "cluster pod $victim killed under load: $writes writes and $reads reads, none failed"

log "pausing the grid"
paused_cond() { fg_field '.status.conditions[?(@.type=="ReconciliationPaused")].status'; }
kubectl -n "$NS" annotate filegrid "$GRID" filegrid.io/paused=true >/dev/null
wait_for "ReconciliationPaused=True" '[ "$(paused_cond)" = True ]'
kubectl -n "$NS" delete service "$GRID-monitor" --wait=true >/dev/null
sleep 20
! kubectl -n "$NS" get service "$GRID-monitor" >/dev/null 2>&1 || die "a paused grid's Service was recreated"
kubectl -n "$NS" annotate filegrid "$GRID" filegrid.io/paused- >/dev/null
wait_for "Service $GRID-monitor recreated after resuming" \
  'kubectl -n "$NS" get service "$GRID-monitor" >/dev/null 2>&1 && [ "$(paused_cond)" = False ]'
ok "paused: nothing repaired; resumed: repaired"

echo "e2e/k8s: $passed passed, $failed failed"
