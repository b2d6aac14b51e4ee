#!/usr/bin/env bash
# Lints the deployment files: hadolint on the Dockerfile, kubernetes-validate (strict schema
# validation) on every manifest, checkov (policy checks) on the manifests and the Dockerfile,
# then checkov's secret scan and a search for PEM private keys over all of deploy/.
# Runs from any directory; CI calls it as `bash deploy/check.sh` from the repository root.
# Exits non-zero when any check fails.
#
# The linters are installed from deploy/requirements-lint.txt into a virtualenv at
# $AUTHGATE_LINT_VENV (default: ${TMPDIR:-/tmp}/authgate-lint-venv), reused while it holds
# exactly those pins. The image itself is not built here.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Kubernetes version whose schemas the manifests must satisfy (shipped by kubernetes-validate).
K8S_VERSION=1.37.0

venv="${AUTHGATE_LINT_VENV:-${TMPDIR:-/tmp}/authgate-lint-venv}"
req=deploy/requirements-lint.txt
stamp="$venv/.authgate-requirements-lint.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

have_linters() {
  [ -x "$venv/bin/hadolint" ] && [ -x "$venv/bin/kubernetes-validate" ] && [ -x "$venv/bin/checkov" ] \
    && [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]
}

if have_linters; then
  echo "deploy: using the linters in $venv"
else
  echo "deploy: installing the linters of $req into $venv (a minute or two the first time)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi

# Quiet, offline checkov: no download of policies or guideline links, no colours.
export ANSI_COLORS_DISABLED=1 LOG_LEVEL=ERROR
checkov=("$venv/bin/checkov" --quiet --compact --skip-download)

failed=()
step() {
  local name="$1"
  shift
  echo
  echo "== $name"
  if "$@"; then
    echo "-- $name: ok"
  else
    echo "-- $name: FAILED"
    failed+=("$name")
  fi
}

manifests=(deploy/kubernetes/*.yaml)

step "hadolint deploy/Dockerfile" \
  "$venv/bin/hadolint" --config deploy/.hadolint.yaml deploy/Dockerfile
step "kubernetes-validate --strict (Kubernetes $K8S_VERSION)" \
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "${manifests[@]}"
step "checkov kubernetes deploy/kubernetes" \
  "${checkov[@]}" -d deploy/kubernetes --framework kubernetes
step "checkov dockerfile deploy/Dockerfile" \
  "${checkov[@]}" -f deploy/Dockerfile --framework dockerfile
step "checkov secrets deploy/" \
  "${checkov[@]}" -d deploy --framework secrets
# checkov's secret scan skips .pem files; no private key may ever sit under deploy/.
no_private_keys() {
  local found
  found="$(grep -rlE -e '-----BEGIN [A-Z ]*PRIVATE KEY-----' deploy || true)"
  [ -z "$found" ] || { echo "private key material in: $found"; return 1; }
}
step "no private keys under deploy/" no_private_keys

echo
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'deploy: FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "deploy: manifests and Dockerfile valid (${SECONDS}s)"
