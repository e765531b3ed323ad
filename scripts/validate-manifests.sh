#!/usr/bin/env bash
# Validate, offline, every Kubernetes object FileGrid's operator produces:
#  1. renders the install manifests, the CRD and every child of every valid sample
#     (`filegrid-operator render`);
#  2. validates them against the official schemas of a current Kubernetes release
#     (kubernetes-validate, strict: unknown fields are errors);
#  3. checks valid samples pass and invalid samples fail against the CRD's own
#     openAPIV3Schema (check-jsonschema) and its CEL rules (`filegrid-operator check-sample`);
#  4. if `helm` is installed, renders the chart and validates that too.
# Exits non-zero on the first class of failure, after reporting all of them.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
K8S_VERSION="${K8S_VERSION:-1.37.0}"
VENV="$ROOT/.venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-operator}"

if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/check-jsonschema" ]; then
  echo "== creating $VENV with kubernetes-validate and check-jsonschema"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet kubernetes-validate check-jsonschema
fi
KV="$VENV/bin/kubernetes-validate"
CJ="$VENV/bin/check-jsonschema"

echo "== building filegrid-operator"
cargo build --quiet -p filegrid-operator
OP="$CARGO_TARGET_DIR/debug/filegrid-operator"

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
"$OP" render --samples crds/samples --out "$OUT"

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

echo "== Kubernetes $K8S_VERSION schemas: install manifests and every sample's children"
mapfile -t objects < <(find "$OUT/install" "$OUT/children" -name '*.yaml' | sort)
# ServiceMonitor is not a core kind: its shape is checked by the builder tests instead.
core=()
for f in "${objects[@]}"; do
  case "$(basename "$f")" in servicemonitor-*) continue ;; esac
  core+=("$f")
done
if "$KV" --strict --kubernetes-version "$K8S_VERSION" "${core[@]}" >"$OUT/kv.log" 2>&1; then
  echo "ok: ${#core[@]} objects"
else
  cat "$OUT/kv.log"
  fail "kubernetes-validate"
fi

echo "== CRD schema: valid samples pass"
for f in crds/samples/*.yaml; do
  if "$CJ" --schemafile "$OUT/schema/filegrid.json" "$f" >"$OUT/cj.log" 2>&1 && "$OP" check-sample "$f" >"$OUT/cs.log" 2>&1; then
    echo "ok: $f"
  else
    cat "$OUT/cj.log" "$OUT/cs.log"
    fail "$f should be valid"
  fi
done

echo "== CRD schema: invalid samples fail, for the stated reason"
for f in crds/samples/invalid/*.yaml; do
  expect="$(sed -n 's/^# expect: //p' "$f" | head -n1)"
  if [ -z "$expect" ]; then
    fail "$f has no '# expect:' line"
    continue
  fi
  msgs=""
  if ! "$CJ" --schemafile "$OUT/schema/filegrid.json" "$f" >"$OUT/cj.log" 2>&1; then
    msgs+="$(cat "$OUT/cj.log")"$'\n'
  fi
  if ! "$OP" check-sample "$f" >"$OUT/cs.log" 2>&1; then
    msgs+="$(cat "$OUT/cs.log")"$'\n'
  fi
  if [ -z "$msgs" ]; then
    fail "$f was accepted"
  elif ! grep -qF -- "$expect" <<<"$msgs"; then
    echo "$msgs"
    fail "$f was rejected, but not with '$expect'"
  else
    echo "ok: $f rejected ($expect)"
  fi
done

echo "== Helm chart"
if "$CJ" --schemafile helm/filegrid-operator/values.schema.json helm/filegrid-operator/values.yaml >"$OUT/values.log" 2>&1; then
  echo "ok: values.yaml matches values.schema.json"
else
  cat "$OUT/values.log"
  fail "helm/filegrid-operator/values.yaml does not match values.schema.json"
fi
if command -v helm >/dev/null 2>&1; then
  helm lint helm/filegrid-operator
  helm template filegrid-operator helm/filegrid-operator --namespace filegrid-system >"$OUT/helm.yaml"
  if "$KV" --strict --kubernetes-version "$K8S_VERSION" "$OUT/helm.yaml"; then echo "ok: chart"; else fail "helm template"; fi
else
  echo "NOT RUN: helm is not installed; the chart's CRD and RBAC rules are checked by cargo test instead"
fi

if [ "$failures" -gt 0 ]; then
  echo "validate-manifests: $failures failure(s)"
  exit 1
fi
echo "validate-manifests: all checks passed"
