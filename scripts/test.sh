#!/usr/bin/env bash
# Runs every FileGrid test suite that can run on this machine and says which could not.
#   unit + integration tests (real ZooKeeper, real processes), operator manifest validation,
#   the fault-injection suite's short run, the compose end-to-end suite (when a Docker engine
#   answers), the Kubernetes suite (when KUBECONFIG is set).
# Environment: FILEGRID_E2E_COMPOSE=auto|1|0 (default auto), FILEGRID_E2E_K8S=auto|1|0,
#   FILEGRID_FAULTS=1|0 (default 1), FILEGRID_FAULTS_SEED, FILEGRID_FAULTS_ROUNDS (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# The suites build a test workspace, release binaries and container images, and write chunks:
# say up front when the disk is short, since a full disk fails every later stage at once.
free_gib=$(df -P -BG . | awk 'NR == 2 { sub("G", "", $4); print $4 }')
echo "==> free disk where the build runs: ${free_gib} GiB" >&2
if [ "${free_gib:-0}" -lt 15 ]; then
    echo "warning: under 15 GiB free; the suites need about 15 GiB (builds, images, chunks)" >&2
fi

ensure_zookeeper
# aws-cli, boto3, rclone and s3cmd for the S3 tests (node/tests/s3_clients.rs).
ensure_s3_clients

results=()
run_suite() {
    local name=$1; shift
    echo "==> $name" >&2
    local start=$SECONDS
    if "$@"; then
        results+=("PASS     $name ($((SECONDS - start))s)")
    else
        results+=("FAIL     $name ($((SECONDS - start))s)")
        failed=1
    fi
}
failed=0

if cargo nextest --version >/dev/null 2>&1; then
    run_suite "cargo tests (nextest)" cargo nextest run --workspace --no-fail-fast
else
    run_suite "cargo tests" cargo test --workspace --no-fail-fast
fi

# Tests that need root (they mount a small tmpfs to fill a real disk). Named: other ignored
# tests (the 200,000-chunk file, most of an hour) are run by hand.
if [ "$(id -u)" = 0 ] && cargo nextest --version >/dev/null 2>&1; then
    run_suite "root-only tests (real full disk)" cargo nextest run -p filegrid-node --test chunk_store --run-ignored ignored-only
else
    results+=("NOT RUN  root-only tests (real full disk): need root and cargo-nextest")
fi

run_suite "operator manifests" scripts/validate-manifests.sh

# The fault-injection suite's short run (e2e/faults, docs/reliability.md): 20 faults on a real
# grid while clients write and read; fails on a lost acknowledged write, a stale or invented
# read, an epoch out of order, or a file not back to full replication. The seed is printed;
# FILEGRID_FAULTS_SEED and FILEGRID_FAULTS_ROUNDS repeat or lengthen a run.
case "${FILEGRID_FAULTS:-1}" in
    0) results+=("NOT RUN  fault injection (FILEGRID_FAULTS=0)") ;;
    *)
        faults_args=(--rounds "${FILEGRID_FAULTS_ROUNDS:-20}")
        [ -n "${FILEGRID_FAULTS_SEED:-}" ] && faults_args+=(--seed "$FILEGRID_FAULTS_SEED")
        run_suite "fault injection (${FILEGRID_FAULTS_ROUNDS:-20} rounds)" \
            bash -c 'cargo build -q -p filegrid-node --bins && cargo run -q -p filegrid-faults -- "$@"' _ "${faults_args[@]}"
        # The suite's own check: a write lost behind FileGrid's back must fail a run.
        if cargo nextest --version >/dev/null 2>&1; then
            run_suite "fault injection self-check" \
                cargo nextest run -p filegrid-faults --run-ignored ignored-only
        fi ;;
esac

case "${FILEGRID_E2E_COMPOSE:-auto}" in
    0) results+=("NOT RUN  compose e2e (FILEGRID_E2E_COMPOSE=0)") ;;
    *)
        if docker info >/dev/null 2>&1; then
            run_suite "compose e2e" e2e/compose/run.sh
        elif [ "${FILEGRID_E2E_COMPOSE:-auto}" = 1 ]; then
            results+=("FAIL     compose e2e (no Docker engine answers)"); failed=1
        else
            results+=("NOT RUN  compose e2e (no Docker engine answers)")
        fi ;;
esac

case "${FILEGRID_E2E_K8S:-auto}" in
    0) results+=("NOT RUN  kubernetes e2e (FILEGRID_E2E_K8S=0)") ;;
    *)
        if [ -n "${KUBECONFIG:-}" ]; then
            run_suite "kubernetes e2e" e2e/k8s/run.sh
        else
            results+=("NOT RUN  kubernetes e2e (no KUBECONFIG)")
        fi ;;
esac

echo
echo "FileGrid test summary:"
printf '  %s\n' "${results[@]}"
exit $failed
