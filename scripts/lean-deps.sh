#!/usr/bin/env bash
# Builds the four libraries stash links (OpenSSL, libcurl, libmicrohttpd, cJSON) from Debian's
# source packages, static, against musl, configured for only what stash uses, and keeps the
# result in a cache outside the clone so a fresh clone on the same machine does not rebuild them.
#
#   scripts/lean-deps.sh prefix ARCH   print the cache folder for ARCH (x86_64 | arm64); no work
#   scripts/lean-deps.sh build ARCH    build it unless the cache has it; print progress
#
# The cache folder is keyed by architecture and by a hash of this script (which holds every
# version and every configure flag) and of the patches it applies (MHD_PATCHES, read from
# scripts/patches/), so changing any of them builds a new folder beside the old one.
# It holds include/, lib/ (libssl.a libcrypto.a libcurl.a libmicrohttpd.a libcjson.a),
# musl.specs (the compiler driver's view of the musl sysroot) and manifest.txt.
#
# Sources come from Debian through apt-get source with a private source list and a private lists
# folder (-o Dir::Etc::SourceList / Dir::State::Lists), never from the machine's apt sources.  The
# Sources index apt reads is signed by Debian's archive key, and apt checks each downloaded file
# against the hash listed there; dpkg-source checks them again against the .dsc.
set -euo pipefail

# Pinned versions.  apt refuses a version the archive no longer serves; the error says which.
V_OPENSSL=3.0.20-1~deb12u2
V_CURL=7.88.1-10+deb12u15
V_MHD=0.9.75-6
V_CJSON=1.7.15-1+deb12u4
V_MUSL=1.2.3-1
SUITES_MAIN="bookworm bookworm-updates"
SUITE_SECURITY="bookworm-security"
MIRROR=${STASH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
MIRROR_SECURITY=${STASH_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# Compiler flags for the libraries: size-optimised sections the final link can drop, hardened.
DEP_CFLAGS="-O2 -fPIE -fstack-protector-strong -ffunction-sections -fdata-sections -g0"

# OpenSSL: no shared objects, no runtime loading of anything (modules, engines, config file),
# and none of the algorithms and protocols an HTTPS client of AWS's endpoints never negotiates.
# TLS 1.2 and 1.3 with AES-GCM, ChaCha20-Poly1305, ECDHE (P-256/P-384/X25519) and RSA/ECDSA
# certificates stay, as does SHA-256 for SigV4.
OPENSSL_OPTS=(no-shared no-module no-engine no-dso no-autoload-config no-tests
  no-legacy no-ssl3 no-dtls no-comp no-srp no-srtp no-ct no-gost no-sm2 no-sm3 no-sm4
  no-idea no-mdc2 no-rc2 no-rc4 no-rc5 no-md4 no-bf no-cast no-camellia no-seed no-aria
  no-whirlpool no-des no-dsa no-cms no-ts no-ocsp no-nextprotoneg no-ui-console
  no-async no-afalgeng no-capieng no-padlockeng no-weak-ssl-ciphers)

# libcurl: HTTP and HTTPS over OpenSSL, the threaded resolver (so a DNS stall honours
# timeouts), proxies from the environment (as the AWS SDKs honour them).  No CA path is baked
# in: stash finds the bundle at run time and sets CURLOPT_CAINFO.
CURL_OPTS=(--disable-shared --enable-static --with-openssl="@PREFIX@" --without-ca-bundle
  --without-ca-path --without-ca-fallback --without-zlib --without-brotli --without-zstd
  --without-libpsl --without-libidn2 --without-nghttp2 --without-ngtcp2 --without-nghttp3
  --without-quiche --without-msh3 --without-hyper --without-libssh2 --without-libssh
  --without-wolfssh --without-librtmp --without-libgsasl --without-gssapi --disable-ldap
  --disable-ldaps --disable-rtsp --disable-dict --disable-telnet --disable-tftp --disable-pop3
  --disable-imap --disable-smb --disable-smtp --disable-gopher --disable-mqtt --disable-ftp
  --disable-file --disable-cookies --disable-doh --disable-mime --disable-netrc
  --disable-alt-svc --disable-hsts --disable-ntlm --disable-ntlm-wb --disable-http-auth
  --disable-crypto-auth --disable-tls-srp --disable-manual --disable-libcurl-option
  --disable-get-easy-options --disable-headers-api --disable-websockets --disable-unix-sockets
  --disable-dateparse --disable-progress-meter --disable-versioned-symbols
  --disable-openssl-auto-load-config --enable-threaded-resolver --enable-ipv6
  --enable-symbol-hiding --disable-verbose --disable-dependency-tracking)

# libmicrohttpd: plain HTTP on loopback; no TLS (and so no GnuTLS), no form parsing, no auth,
# no upgrade.  One patch of stash's own (scripts/patches/, its header says why): the per-request
# reset of a connection's memory pool no longer zeroes the whole pool.
MHD_PATCHES=(libmicrohttpd-pool-reset-no-zero.patch)
MHD_OPTS=(--disable-shared --enable-static --disable-https --without-gnutls --disable-doc
  --disable-examples --disable-curl --disable-postprocessor --disable-dauth --disable-bauth
  --disable-httpupgrade --disable-nls --disable-dependency-tracking)

usage() { echo "usage: $0 prefix|build x86_64|arm64" >&2; exit 2; }
[ $# -eq 2 ] || usage
CMD=$1 ARCH=$2
case $ARCH in
  x86_64) TRIPLE=x86_64-linux-musl DEB_ARCH=amd64 GCC=gcc OSSL_TARGET=linux-x86_64 BINU=
          KHDR=/usr/include KHDR_ASM=/usr/include/x86_64-linux-gnu/asm ;;
  arm64) TRIPLE=aarch64-linux-musl DEB_ARCH=arm64 GCC=aarch64-linux-gnu-gcc OSSL_TARGET=linux-aarch64
         BINU=aarch64-linux-gnu-
         KHDR=/usr/aarch64-linux-gnu/include KHDR_ASM=/usr/aarch64-linux-gnu/include/asm ;;
  *) usage ;;
esac

SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
PATCHES="$(dirname "$SELF")/patches"
CACHE=${STASH_DEPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stash}
KEY=$(cat "$SELF" "${MHD_PATCHES[@]/#/$PATCHES/}" | sha256sum | cut -c1-12)
PREFIX="$CACHE/deps/$ARCH-$KEY"

case $CMD in
  prefix) echo "$PREFIX"; exit 0 ;;
  build) ;;
  *) usage ;;
esac
[ -f "$PREFIX/manifest.txt" ] && exit 0

T0=$(date +%s)
say() { printf '[lean-deps %s %4ds] %s\n' "$ARCH" $(($(date +%s) - T0)) "$*" >&2; }
LOG="$CACHE/logs/$ARCH-$KEY.log"
mkdir -p "$CACHE/logs" "$CACHE/src" "$CACHE/deps"
: >"$LOG"
# run CMD...: the command's output goes to the log; on failure, its tail goes to the terminal.
run() {
  if ! "$@" >>"$LOG" 2>&1; then
    echo "lean-deps: failed: $*" >&2
    tail -n 40 "$LOG" >&2
    echo "lean-deps: full log: $LOG" >&2
    exit 1
  fi
}

# Two builds on the same machine (two clones, two make processes) take turns.
exec 9>"$CACHE/lock"
if ! flock -n 9; then
  say "another build holds $CACHE/lock; waiting for it"
  flock 9
fi
[ -f "$PREFIX/manifest.txt" ] && exit 0

# --- tools ----------------------------------------------------------------------------------
need=()
for t in dpkg-source:dpkg-dev autoreconf:autoconf automake:automake libtoolize:libtool \
         perl:perl make:make flock:util-linux "$GCC":"gcc$([ "$ARCH" = arm64 ] && echo -aarch64-linux-gnu)"; do
  command -v "${t%%:*}" >/dev/null || need+=("${t##*:}")
done
[ "$ARCH" = arm64 ] && [ ! -e /usr/aarch64-linux-gnu/include/linux/mman.h ] && need+=(libc6-dev-arm64-cross linux-libc-dev-arm64-cross)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "lean-deps: missing Debian packages: ${need[*]}" >&2; exit 1; }
  say "installing build tools: ${need[*]}"
  DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# --- sources --------------------------------------------------------------------------------
APT="$CACHE/apt"
mkdir -p "$APT/lists/partial" "$APT/$DEB_ARCH/lists/partial"
{
  for s in $SUITES_MAIN; do echo "deb-src [signed-by=$KEYRING] $MIRROR $s main"; done
  echo "deb-src [signed-by=$KEYRING] $MIRROR_SECURITY $SUITE_SECURITY main"
} >"$APT/sources.list"
APT_SRC=(-o Dir::Etc::SourceList="$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null
         -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache")
fetch_source() { # package version -> $CACHE/src/<package>_<version>/ holds the .dsc and tarballs
  local dir="$CACHE/src/$1_$2"
  [ -f "$dir/.ok" ] && return 0
  rm -rf "$dir" && mkdir -p "$dir"
  say "apt-get source $1=$2"
  (cd "$dir" && run apt-get source --download-only "${APT_SRC[@]}" "$1=$2")
  touch "$dir/.ok"
}
if [ ! -f "$CACHE/src/$(echo openssl_$V_OPENSSL)/.ok" ] || [ ! -f "$CACHE/src/curl_$V_CURL/.ok" ] ||
   [ ! -f "$CACHE/src/libmicrohttpd_$V_MHD/.ok" ] || [ ! -f "$CACHE/src/cjson_$V_CJSON/.ok" ]; then
  say "apt-get update (private deb-src lists in $APT)"
  run apt-get update "${APT_SRC[@]}"
fi
fetch_source openssl "$V_OPENSSL"
fetch_source curl "$V_CURL"
fetch_source libmicrohttpd "$V_MHD"
fetch_source cjson "$V_CJSON"

# musl's static C library and headers for ARCH, from Debian's binary package, unpacked into the
# cache (no multiarch install: that would drag the machine's own packages along).
SYSROOT="$CACHE/musl/$ARCH-$V_MUSL"
if [ ! -f "$SYSROOT/.ok" ]; then
  say "musl $V_MUSL for $DEB_ARCH"
  rm -rf "$SYSROOT" && mkdir -p "$SYSROOT/deb"
  echo "deb [arch=$DEB_ARCH signed-by=$KEYRING] $MIRROR bookworm main" >"$APT/$DEB_ARCH/sources.list"
  APT_BIN=(-o Dir::Etc::SourceList="$APT/$DEB_ARCH/sources.list" -o Dir::Etc::SourceParts=/dev/null
           -o Dir::State::Lists="$APT/$DEB_ARCH/lists" -o Dir::State::Status=/dev/null
           -o Dir::Cache="$APT/cache" -o APT::Architecture="$DEB_ARCH"
           -o APT::Architectures::="$DEB_ARCH")
  run apt-get update "${APT_BIN[@]}"
  (cd "$SYSROOT/deb" && run apt-get download "${APT_BIN[@]}" "musl:$DEB_ARCH=$V_MUSL" "musl-dev:$DEB_ARCH=$V_MUSL")
  for d in "$SYSROOT"/deb/*.deb; do run dpkg-deb -x "$d" "$SYSROOT/root"; done
  touch "$SYSROOT/.ok"
fi
MUSL_LIB="$SYSROOT/root/usr/lib/$TRIPLE"
MUSL_INC="$SYSROOT/root/usr/include/$TRIPLE"

# --- the build folder -----------------------------------------------------------------------
WORK="$CACHE/work/$ARCH-$KEY"
OUT="$PREFIX.tmp"
rm -rf "$WORK" "$OUT"
mkdir -p "$WORK" "$OUT/lib" "$OUT/include" "$OUT/kernel"

# The compiler: the host's gcc (or the aarch64 cross gcc) told by a specs file to use musl's
# start files, headers and libc instead of glibc's.  -static-pie is supported (rcrt1.o).
cat >"$OUT/musl.specs" <<EOF
%rename cpp_options old_cpp_options

*cpp_options:
-nostdinc -isystem $MUSL_INC -isystem include%s %(old_cpp_options)

*cc1:
%(cc1_cpu) -nostdinc -isystem $MUSL_INC -isystem include%s

*link_libgcc:
-L$MUSL_LIB -L .%s

*libgcc:
libgcc.a%s %:if-exists(libgcc_eh.a%s)

*startfile:
%{static-pie:$MUSL_LIB/rcrt1.o;:%{!shared:$MUSL_LIB/Scrt1.o}} $MUSL_LIB/crti.o crtbeginS.o%s

*endfile:
crtendS.o%s $MUSL_LIB/crtn.o

*link:
%{static-pie:-static -pie --no-dynamic-linker -z text;:-dynamic-linker /lib/ld-musl-$ARCH.so.1 %{shared:-shared} %{static:-static}} -nostdlib %{rdynamic:-export-dynamic}
EOF
# musl's headers do not include the kernel's; OpenSSL and curl need a few (linux/mman.h...).
# Link the kernel's own header folders, and only those, after musl's.
ln -s "$KHDR/linux" "$OUT/kernel/linux"
ln -s "$KHDR/asm-generic" "$OUT/kernel/asm-generic"
ln -s "$KHDR_ASM" "$OUT/kernel/asm"
CC_LEAN="$GCC -specs=$OUT/musl.specs"
CFLAGS_LEAN="$DEP_CFLAGS -idirafter$OUT/kernel"
export AR=${BINU}ar RANLIB=${BINU}ranlib
HOST=$TRIPLE
MAKEJ=-j$(nproc)

unpack() { # package version -> folder with Debian's patches applied
  local d="$WORK/src-$1"
  run dpkg-source -x "$CACHE/src/$1_$2/$1_$2.dsc" "$d"
  echo "$d"
}

# OpenSSL
say "openssl $V_OPENSSL: unpack"
S=$(unpack openssl "$V_OPENSSL")
mkdir -p "$WORK/openssl" && cd "$WORK/openssl"
say "openssl: configure ${OPENSSL_OPTS[*]}"
CC="$CC_LEAN" run perl "$S/Configure" "$OSSL_TARGET" --prefix="$OUT" --libdir=lib \
  --openssldir=/etc/pki/tls "${OPENSSL_OPTS[@]}" $CFLAGS_LEAN
say "openssl: build (the longest step: about 2-3 minutes on 2 cores)"
run make $MAKEJ build_libs
run make install_dev
say "openssl: done"

# libcurl: Debian applies its NSS and GnuTLS patches last, to make the other flavours of the
# package; they change the build files only.  Take them back out, then regenerate configure
# from the patched configure.ac, as Debian's own build does.
say "curl $V_CURL: unpack"
S=$(unpack curl "$V_CURL")
(cd "$S" && run patch -R -p1 -i debian/patches/99_nss.patch && run patch -R -p1 -i debian/patches/90_gnutls.patch)
say "curl: autoreconf"
(cd "$S" && run autoreconf -fi)
mkdir -p "$WORK/curl" && cd "$WORK/curl"
say "curl: configure"
CURL_ARGS=("${CURL_OPTS[@]/@PREFIX@/$OUT}")
CC="$CC_LEAN" CFLAGS="$CFLAGS_LEAN" CPPFLAGS="-I$OUT/include" LDFLAGS="-L$OUT/lib" \
  LIBS="-lssl -lcrypto -pthread" run "$S/configure" --host="$HOST" --prefix="$OUT" "${CURL_ARGS[@]}"
say "curl: build (about a minute)"
run make $MAKEJ -C lib
run make -C lib install
run make -C include install
say "curl: done"

# libmicrohttpd
say "libmicrohttpd $V_MHD: unpack"
S=$(unpack libmicrohttpd "$V_MHD")
for p in "${MHD_PATCHES[@]}"; do
  say "libmicrohttpd: patch $p"
  run patch -p1 -d "$S" -i "$PATCHES/$p"
done
mkdir -p "$WORK/mhd" && cd "$WORK/mhd"
say "libmicrohttpd: configure"
CC="$CC_LEAN" CFLAGS="$CFLAGS_LEAN" run "$S/configure" --host="$HOST" --prefix="$OUT" "${MHD_OPTS[@]}"
say "libmicrohttpd: build"
run make $MAKEJ -C src/microhttpd
run make -C src/microhttpd install
run make -C src/include install
say "libmicrohttpd: done"

# cJSON: one source file; its CMake build adds nothing stash needs.
say "cjson $V_CJSON: unpack and build"
S=$(unpack cjson "$V_CJSON")
mkdir -p "$WORK/cjson" "$OUT/include/cjson" && cd "$WORK/cjson"
run $CC_LEAN $CFLAGS_LEAN -std=c89 -c "$S/cJSON.c" -o cJSON.o
run "$AR" rcs "$OUT/lib/libcjson.a" cJSON.o
cp "$S/cJSON.h" "$OUT/include/cjson/cJSON.h"

# The specs file names the final folder, not the temporary one.
sed -i "s|$OUT|$PREFIX|g" "$OUT/musl.specs"
rm -f "$OUT/kernel/linux" "$OUT/kernel/asm-generic" "$OUT/kernel/asm"
ln -s "$KHDR/linux" "$OUT/kernel/linux"
ln -s "$KHDR/asm-generic" "$OUT/kernel/asm-generic"
ln -s "$KHDR_ASM" "$OUT/kernel/asm"
rm -rf "$OUT/bin" "$OUT/share" "$OUT/lib/pkgconfig" "$OUT/lib"/*.la
{
  echo "arch $ARCH ($TRIPLE)"
  echo "openssl $V_OPENSSL: ${OPENSSL_OPTS[*]}"
  echo "curl $V_CURL: ${CURL_OPTS[*]}"
  echo "libmicrohttpd $V_MHD: ${MHD_OPTS[*]}; patches: ${MHD_PATCHES[*]}"
  echo "cjson $V_CJSON"
  echo "musl $V_MUSL"
  echo "cflags $DEP_CFLAGS"
  echo "built $(date -u +%FT%TZ) in $(($(date +%s) - T0)) s"
} >"$OUT/manifest.txt"
mv "$OUT" "$PREFIX"
rm -rf "$WORK"
say "built in $(($(date +%s) - T0)) s: $PREFIX"
