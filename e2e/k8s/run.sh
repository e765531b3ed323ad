#!/usr/bin/env bash
# FileGrid on a real Kubernetes cluster (kind, k3d or any other), given by KUBECONFIG.
#
# Installs the operator chart, a one-node ZooKeeper and the minimal FileGrid sample, then:
#   1. waits for the grid to become Available;
#   2. puts a file through the client Service and gets it back unchanged;
#   3. deletes the leader head's pod and waits for a different leader in status;
#   4. scales cluster servers 3 -> 4 -> 3 (the operator decommissions before shrinking)
#      and checks every file is still there, byte for byte.
#
# Images filegrid/node, filegrid/zookeeper and filegrid/operator (docker/build-images.sh)
# must be available to the cluster's nodes. Set FILEGRID_E2E_KIND_CLUSTER=<name> or
# FILEGRID_E2E_K3D_CLUSTER=<name> to load them from the local Docker engine first.
# Other settings: FILEGRID_IMAGE_TAG (0.1.0), FILEGRID_E2E_TIMEOUT (seconds per wait, 600),
# FILEGRID_E2E_KEEP=1 keeps the test namespace for inspection.
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
kubectl -n "$NS" apply -f "$ROOT/crds/samples/minimal.yaml" >/dev/null
if [ "$TAG" != 0.1.0 ]; then
  kubectl -n "$NS" patch filegrid "$GRID" --type merge -p "{\"spec\":{\"image\":\"filegrid/node:$TAG\"}}" >/dev/null
fi
wait_for "FileGrid $GRID Available" available
[ "$(fg_field .status.readyHeads)" = 2 ] || die "readyHeads is $(fg_field .status.readyHeads), want 2"
[ "$(fg_field .status.readyClusterServers)" = 3 ] || die "readyClusterServers is $(fg_field .status.readyClusterServers), want 3"
[ -n "$(fg_field .status.leader)" ] || die "no leader in status"
[ "$(fg_field .status.observedGeneration)" = "$(fg_field .metadata.generation)" ] || die "observedGeneration lags"
ok "grid Available with 2 heads, 3 cluster servers, leader $(fg_field .status.leader)"

log "starting a client pod"
kubectl -n "$NS" run client --image="filegrid/node:$TAG" --image-pull-policy=IfNotPresent --restart=Never \
  --command -- sleep 86400 >/dev/null
kubectl -n "$NS" wait pod/client --for=condition=Ready --timeout="${TIMEOUT}s" >/dev/null || die "client pod"
HEAD="http://$GRID-head:9669"
client() { kubectl -n "$NS" exec client -- sh -c "$1"; }

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

echo "e2e/k8s: $passed passed, $failed failed"
