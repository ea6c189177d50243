#!/bin/sh
# Builds src/image/webp/libwebp-dec.wasm: libwebp's decoder (Debian 12's source package, security patches
# applied) and scripts/webp/webp-shim.c, compiled with Debian 12's Emscripten 3.1.6 into a standalone wasm
# module with no imports the Worker has to provide beyond two that only fire on a fatal error.
#
# The committed .wasm is what tests, CI and deploys use; run this only to rebuild it (as root on Debian 12:
# it installs emscripten and dpkg-dev and enables deb-src for apt). The output is reproducible: the same
# source and compiler give the same bytes (checked: two builds in different directories, one from a fresh
# download). Last build: 235143 bytes, sha256 dd3cb75a6ce095a9db5321a36f086806b6f89e199173e15dd29a978909a95e55
# (also in src/image/webp.ts and docs/platform-notes.md, "WebP").
#
# Usage: sh scripts/build-webp-wasm.sh [work-dir]   (default: a fresh temporary directory)
set -eu

VERSION=1.2.4-0.2+deb12u1
# sha256 of the source package's files (from the .dsc, checked again here before anything is unpacked).
DSC_SHA256=d9ed0b59e2010f255c28d0869fd15b31f9b08aed757bfc91862d43aa9ec1aa99
ORIG_SHA256=7bf5a8a28cc69bcfa8cb214f2c3095703c6b73ac5fba4d5480c205331d9494df
DEBIAN_SHA256=69cdba4dfe2e1b34d55fa80c1b29c31cacd40dd183812d6bcca7e508a2f7afcd
EMSCRIPTEN=3.1.6~dfsg-5

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/src/image/webp/libwebp-dec.wasm"
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK"
cd "$WORK"

if ! command -v emcc >/dev/null || ! command -v dpkg-source >/dev/null; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "emscripten=$EMSCRIPTEN" dpkg-dev
fi
if ! apt-cache showsrc libwebp >/dev/null 2>&1 || [ -z "$(apt-cache showsrc libwebp 2>/dev/null)" ]; then
  # deb-src for the deb.debian.org entries (Debian 12's deb822 sources file), then refresh the lists.
  sed -i 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources
  apt-get update
fi

if [ ! -f "libwebp_${VERSION}.dsc" ]; then
  apt-get source --download-only "libwebp=$VERSION"
fi
echo "$DSC_SHA256  libwebp_${VERSION}.dsc
$ORIG_SHA256  libwebp_1.2.4.orig.tar.gz
$DEBIAN_SHA256  libwebp_${VERSION}.debian.tar.xz" | sha256sum -c -
rm -rf libwebp
dpkg-source -x "libwebp_${VERSION}.dsc" libwebp # applies debian/patches (CVE-2023-4863 among them)

cd libwebp
# The decoder's sources (makefile.unix: DEC_OBJS, DSP_DEC_OBJS, UTILS_DEC_OBJS) without the files for
# other CPUs (SSE, NEON, MIPS), which compile to nothing here; thread_utils without WEBP_USE_THREAD runs the work inline.
SOURCES="src/dec/alpha_dec.c src/dec/buffer_dec.c src/dec/frame_dec.c src/dec/idec_dec.c src/dec/io_dec.c
  src/dec/quant_dec.c src/dec/tree_dec.c src/dec/vp8_dec.c src/dec/vp8l_dec.c src/dec/webp_dec.c
  src/dsp/alpha_processing.c src/dsp/cpu.c src/dsp/dec.c src/dsp/dec_clip_tables.c src/dsp/filters.c
  src/dsp/lossless.c src/dsp/rescaler.c src/dsp/upsampling.c src/dsp/yuv.c
  src/utils/bit_reader_utils.c src/utils/color_cache_utils.c src/utils/filters_utils.c
  src/utils/huffman_utils.c src/utils/quant_levels_dec_utils.c src/utils/random_utils.c
  src/utils/rescaler_utils.c src/utils/thread_utils.c src/utils/utils.c"

# Emscripten 3.1.6 (2022) spells its settings -s NAME=VALUE. Why each:
# - STANDALONE_WASM, --no-entry: a plain module with exports, no JS glue (Workers instantiate a precompiled
#   Module and cannot run Emscripten's loader); FILESYSTEM=0: libwebp's decoder reads no files.
# - ALLOW_MEMORY_GROWTH, IMPORTED_MEMORY: the Worker creates each decode's memory itself with a maximum (what
#   it reserved for the image), so a hostile file can make libwebp's malloc fail (a 422) but never take more;
#   memory grows with the image, and the Worker drops the instance and its memory after each decode.
# - INITIAL_MEMORY / TOTAL_STACK: 3.1.6 defaults to 16 MiB and a 5 MiB stack, which every decode would pay;
#   libwebp's decoder keeps its buffers on the heap, 64 KiB of stack is ample (measured: see the tests).
# - -msimd128: the Worker's wasm supports SIMD (as the project's kernels use); clang vectorises the C paths.
emcc -O3 -msimd128 -flto -DNDEBUG -I. \
  $SOURCES "$ROOT/scripts/webp/webp-shim.c" \
  -s STANDALONE_WASM=1 --no-entry -s FILESYSTEM=0 \
  -s ALLOW_MEMORY_GROWTH=1 -s IMPORTED_MEMORY=1 -s INITIAL_MEMORY=262144 -s TOTAL_STACK=65536 \
  -s EXPORTED_FUNCTIONS=_webp_decode_scaled,_webp_last_status,_malloc,_free \
  -s ERROR_ON_UNDEFINED_SYMBOLS=1 \
  -o "$WORK/libwebp-dec.wasm"

mkdir -p "$(dirname "$OUT")"
cp "$WORK/libwebp-dec.wasm" "$OUT"
echo "wrote $OUT: $(wc -c <"$OUT") bytes, sha256 $(sha256sum "$OUT" | cut -d' ' -f1)"
