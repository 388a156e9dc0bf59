#!/usr/bin/env bash
# The pre-commit hook (.pre-commit-hooks.yaml, language: script). pre-commit runs it from its clone
# of this repository with the release-config repository as the working directory. The validator
# is built once, in the clone (the workspace root is a virtual manifest, which `language: rust`
# cannot install), unless RELEASE_CONFIG_VALIDATE names a binary already installed.
set -euo pipefail
if [ -n "${RELEASE_CONFIG_VALIDATE:-}" ]; then
  exec "$RELEASE_CONFIG_VALIDATE" . "$@"
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec cargo run --quiet --release --locked --manifest-path "$here/Cargo.toml" \
  -p release-config-validate -- . "$@"
