#!/usr/bin/env bash
# Installs what building, testing, benchmarking and the demo need, and nothing when it is all
# there already (a fast path: make test calls this every time).
# Debian packages via apt-get when root; otherwise names what is missing and fails.
# npm packages (the AWS SDK for JavaScript, Powertools, an HCL parser) into tests/node/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."

# header-or-binary : package
checks=(
  "/usr/include/microhttpd.h:libmicrohttpd-dev"
  "/usr/include/x86_64-linux-gnu/curl/curl.h|/usr/include/curl/curl.h|/usr/include/aarch64-linux-gnu/curl/curl.h:libcurl4-openssl-dev"
  "/usr/include/cjson/cJSON.h:libcjson-dev"
  "/usr/include/openssl/hmac.h:libssl-dev"
  "/usr/include/cmocka.h:libcmocka-dev"
  "/usr/bin/pkg-config:pkg-config"
  "/usr/bin/gcc:gcc"
  "/usr/bin/make:make"
  "/usr/bin/curl:curl"
  "/usr/bin/node:nodejs"
  "/usr/bin/npm:npm"
  "/usr/bin/python3:python3"
  "/usr/lib/python3/dist-packages/botocore/__init__.py:python3-botocore"
  "/usr/lib/python3/dist-packages/jsonschema/__init__.py:python3-jsonschema"
  "/usr/lib/python3/dist-packages/yaml/__init__.py:python3-yaml"
  "/usr/bin/go:golang-go"
  "/usr/share/gocode/src/github.com/hashicorp/hcl/v2/hclsyntax/parser.go:golang-github-hashicorp-hcl-v2-dev"
  "/usr/bin/wrk:wrk"
  "/usr/bin/valgrind:valgrind"
  # the lean build (scripts/lean-deps.sh), the layer zips and their tests
  "/usr/bin/dpkg-source:dpkg-dev"
  "/usr/bin/autoreconf:autoconf"
  "/usr/bin/automake:automake"
  "/usr/bin/libtoolize:libtool"
  "/usr/bin/aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu"
  "/usr/aarch64-linux-gnu/include/linux/mman.h:linux-libc-dev-arm64-cross"
  "/usr/aarch64-linux-gnu/lib/libc.so.6:libc6-dev-arm64-cross"
  "/usr/bin/qemu-aarch64:qemu-user"
  "/usr/bin/zip:zip"
  "/usr/bin/unzip:unzip"
  "/usr/bin/socat:socat"
  "/usr/bin/openssl:openssl"
  # the HTML cost report's browser test
  "/usr/bin/chromium:chromium"
  # make lint (CI)
  "/usr/bin/clang-tidy:clang-tidy"
)

missing=()
for c in "${checks[@]}"; do
  paths=${c%:*}
  pkg=${c##*:}
  found=0
  IFS='|' read -ra alts <<<"$paths"
  for p in "${alts[@]}"; do
    [ -e "$p" ] && found=1
  done
  [ "$found" = 1 ] || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  else
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: run as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# npm packages used by the tests, the sample functions and the benchmarks.
# Installed again when package.json is newer than the last install (a package was added).
if [ -f tests/node/package.json ] && { [ ! -f tests/node/node_modules/.stash-installed ] ||
   [ tests/node/package.json -nt tests/node/node_modules/.stash-installed ]; }; then
  echo "deps: installing npm packages in tests/node" >&2
  (cd tests/node && npm install --no-audit --no-fund --loglevel=error >&2 &&
     touch node_modules/.stash-installed)
fi
