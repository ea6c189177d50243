#!/bin/sh
# Builds src/image/jpeg/libjpeg-stream.wasm: libjpeg-turbo's decoder (Debian 12's source package 2.1.5, its
# patches applied) and scripts/jpeg/jpeg-shim.c, a streaming, suspending decoder driven through the libjpeg
# API (not TurboJPEG), compiled with Debian 12's Emscripten 3.1.6 into a standalone wasm module. Its imports:
# the memory (the host sizes it) and getTempRet0/setTempRet0 (a scratch slot setjmp uses; one line of JS
# each). Method, limits and measurements: docs/jpeg-decoder.md and the comment at the top of the shim.
#
# The committed .wasm is what tests and deploys use; run this only to rebuild it (as root on Debian 12: it
# installs emscripten and dpkg-dev and enables deb-src for apt). The output is reproducible: the same source
# and compiler give the same bytes (checked: two builds in different directories, one from a fresh download).
# Last build: 178685 bytes, sha256 6794668770132ab24c2c258820749ef2d19a5ca15a70ccd815db1b7c7c8ad3d2
# (also in src/image/jpeg-stream.ts and docs/jpeg-decoder.md).
#
# Usage: sh scripts/build-jpeg-wasm.sh [work-dir]   (default: a fresh temporary directory)
set -eu

VERSION=1:2.1.5-2
UPSTREAM=2.1.5
# sha256 of the source package's files (from the .dsc, checked again here before anything is unpacked).
DSC_SHA256=d718ead0dfbcbc8523665c02a7f7152e31039ded641d022868722623bb3b486d
ORIG_SHA256=254f3642b04e309fee775123133c6464181addc150499561020312ec61c1bf7c
DEBIAN_SHA256=cdb2433c2f7101345c1ffa14efb943787c675b86354691a32490845fe4bc9237
EMSCRIPTEN=3.1.6~dfsg-5

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/src/image/jpeg/libjpeg-stream.wasm"
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK"
cd "$WORK"

if ! command -v emcc >/dev/null || ! command -v dpkg-source >/dev/null; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "emscripten=$EMSCRIPTEN" dpkg-dev
fi
if [ -z "$(apt-cache showsrc libjpeg-turbo 2>/dev/null)" ]; then
  # deb-src for the deb.debian.org entries (Debian 12's deb822 sources file), then refresh the lists.
  sed -i 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources
  apt-get update
fi

DSC="libjpeg-turbo_${VERSION#1:}.dsc"
if [ ! -f "$DSC" ]; then
  apt-get source --download-only "libjpeg-turbo=$VERSION"
fi
echo "$DSC_SHA256  $DSC
$ORIG_SHA256  libjpeg-turbo_${UPSTREAM}.orig.tar.gz
$DEBIAN_SHA256  libjpeg-turbo_${VERSION#1:}.debian.tar.xz" | sha256sum -c -
rm -rf libjpeg-turbo
dpkg-source -x "$DSC" libjpeg-turbo

cd libjpeg-turbo
# The three headers CMake would generate (jconfig.h.in, jconfigint.h.in, jversion.h.in), with the values of an
# 8-bit, SIMD-less libjpeg (API version 6b, as Debian's libjpeg62-turbo) for a 32-bit target. BUILD is the
# upstream release date, so the output does not depend on the day it was built.
sed -e 's/@JPEG_LIB_VERSION@/62/' -e "s/@VERSION@/$UPSTREAM/" -e 's/@LIBJPEG_TURBO_VERSION_NUMBER@/2001005/' \
  -e 's/@BITS_IN_JSAMPLE@/8/' \
  -e 's/#cmakedefine D_ARITH_CODING_SUPPORTED 1/#define D_ARITH_CODING_SUPPORTED 1/' \
  -e 's/#cmakedefine \([A-Z_]*\).*/\/* #undef \1 *\//' jconfig.h.in >jconfig.h
sed -e 's/@BUILD@/20230203/' -e 's/@INLINE@/__inline__ __attribute__((always_inline))/' \
  -e 's/@THREAD_LOCAL@//' -e 's/@CMAKE_PROJECT_NAME@/libjpeg-turbo/' -e "s/@VERSION@/$UPSTREAM/" \
  -e 's/@SIZE_T@/4/' -e 's/#cmakedefine HAVE_BUILTIN_CTZL/#define HAVE_BUILTIN_CTZL/' \
  -e 's/#cmakedefine \([A-Z_]*\).*/\/* #undef \1 *\//' jconfigint.h.in >jconfigint.h
sed -e 's/@COPYRIGHT_YEAR@/1991-2022/' jversion.h.in >jversion.h

# The decoder's sources (CMakeLists.txt: JPEG_SOURCES less the compressor's) with jsimd_none.c for SIMD and
# without jmemnobs.c (the shim provides jmemsys.h's functions: counted memory and its backing store) and
# jdatasrc.c (the shim's suspending source). jquant*.c: jdmaster.c links them for colour quantisation,
# which is never asked for; the linker drops what is unreachable.
SOURCES="jaricom.c jcomapi.c jdapimin.c jdapistd.c jdarith.c jdcoefct.c jdcolor.c jddctmgr.c jdhuff.c
  jdinput.c jdmainct.c jdmarker.c jdmaster.c jdmerge.c jdphuff.c jdpostct.c jdsample.c jerror.c
  jidctflt.c jidctfst.c jidctint.c jidctred.c jmemmgr.c jquant1.c jquant2.c jutils.c jsimd_none.c"

# Emscripten 3.1.6 (2022) spells its settings -s NAME=VALUE. Why each:
# - STANDALONE_WASM, --no-entry: a plain module with exports, no JS glue (Workers instantiate a precompiled
#   Module and cannot run Emscripten's loader); FILESYSTEM=0: nothing here reads files.
# - SUPPORT_LONGJMP=wasm: setjmp/longjmp as WebAssembly exceptions inside the module (libjpeg's error_exit
#   must not return; see the shim). Needs a runtime with wasm exception handling (V8: workerd, Node >= 17).
# - ALLOW_MEMORY_GROWTH, IMPORTED_MEMORY: the host creates the memory with a maximum (the request's budget
#   plus slack), so even a bug past the shim's own count cannot take more; the instance is dropped after
#   each image.
# - INITIAL_MEMORY / TOTAL_STACK: 3.1.6 defaults to 16 MiB and a 5 MiB stack, which every decode would pay;
#   libjpeg keeps its buffers on the heap (its largest locals are a block's 64-coefficient workspace and
#   the jmp_buf), so 64 KiB of stack is ample. A 12 MP baseline decode at 1/8 fits in the initial 256 KiB.
# - NO_GETENV, NO_PUTENV: jmemmgr.c would read JPEGMEM from the environment (an import the Worker has no
#   use for); jinclude.h defines an unused putenv helper unless told not to.
# - -msimd128: clang vectorises the C colour conversion and upsampling loops; the Worker's wasm has SIMD.
# - no -flto: tried; the same size (178266 bytes) and no measurable difference in decode time (12 MP at 1/8,
#   baseline and progressive, Node 22), so the simpler build stays.
emcc -O3 -msimd128 -DNDEBUG -DNO_GETENV -DNO_PUTENV -I. \
  $SOURCES "$ROOT/scripts/jpeg/jpeg-shim.c" \
  -s STANDALONE_WASM=1 --no-entry -s FILESYSTEM=0 -s SUPPORT_LONGJMP=wasm \
  -s ALLOW_MEMORY_GROWTH=1 -s IMPORTED_MEMORY=1 -s INITIAL_MEMORY=262144 -s TOTAL_STACK=65536 \
  -s EXPORTED_FUNCTIONS=_jls_create,_jls_input_buffer,_jls_input_space,_jls_input_commit,_jls_input_end,_jls_info,_jls_set_scale,_jls_run,_jls_rows,_jls_row_count,_jls_first_row,_jls_error_code,_jls_message,_jls_peak_bytes,_jls_live_bytes \
  -s ERROR_ON_UNDEFINED_SYMBOLS=1 \
  -o "$WORK/libjpeg-stream.wasm"

mkdir -p "$(dirname "$OUT")"
cp "$WORK/libjpeg-stream.wasm" "$OUT"
echo "wrote $OUT: $(wc -c <"$OUT") bytes, sha256 $(sha256sum "$OUT" | cut -d' ' -f1)"
