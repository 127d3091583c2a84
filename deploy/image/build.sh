#!/usr/bin/env bash
# The container image's build steps (deploy/Dockerfile's build stage), which
# also run outside Docker, so that CI exercises every step but the pull:
#
#   deploy/image/build.sh STAGE            build the addon, the TypeScript and the
#                                          platform package, then stage
#   deploy/image/build.sh --reuse STAGE    stage this checkout's built artefacts
#                                          (CI: no second release compile)
#
# Staging packs the published tarballs (scripts/pack.mjs) and installs them
# into STAGE/app as a user's `npm install oxinfer` would (production
# dependencies, no install scripts, nothing compiled), plus the health check.
# The runtime stage copies STAGE/app to /app.
set -euo pipefail
cd "$(dirname "$0")/../.."

reuse=0
if [ "${1:-}" = "--reuse" ]; then reuse=1; shift; fi
stage="${1:?usage: deploy/image/build.sh [--reuse] STAGE}"

if [ "$reuse" = 0 ]; then
  npm run build:native
  npm run build:ts
  npm run build:platform
fi
# This machine's platform package (src/platform.ts's table), staged by build:platform.
platform_dir="$(node -e "const { platform } = require('./src/platform.js').currentPlatform(); if (!platform) process.exit(1); console.log('packages/' + platform.dir + '/' + platform.ortLibrary)")" || {
  echo "build.sh: oxinfer publishes no platform package for this machine" >&2; exit 1; }
for f in index.js binding.js "$platform_dir"; do
  [ -e "$f" ] || { echo "build.sh: $f is missing: build first (npm run build) or drop --reuse" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
node scripts/pack.mjs "$work/dist" > "$work/tarballs.json"
node deploy/image/stage.mjs "$work/tarballs.json" "$stage"
