#!/usr/bin/env bash
# A release job's last steps (.github/workflows/release.yml), also run at the
# end of .ci/run: stage platform <key>'s package into <out> from the addon
# this checkout built (no second compile), then smoke-test it: the staged
# addon, with the staged ONNX Runtime library, loads and scores a model.
#   scripts/release-stage.sh <key> <out>     key: linux-x64, linux-arm64, darwin-arm64, win32-x64
set -euo pipefail
cd "$(dirname "$0")/.."
key="${1:?usage: scripts/release-stage.sh <key> <out>}"
out="${2:?usage: scripts/release-stage.sh <key> <out>}"
node scripts/stage-platform.mjs --platform "$key" --out "$out"
node scripts/smoke-platform.mjs "$out"
