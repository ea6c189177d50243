/*
 * The only entry points of src/image/jpeg/libjpeg-stream.wasm (built by scripts/build-jpeg-wasm.sh): a
 * streaming, suspending JPEG decoder over libjpeg-turbo 2.1.5's libjpeg API (Debian 12's source package).
 * The host (src/image/jpeg-stream.ts) appends bytes as they arrive and takes decoded rows as they come out;
 * the file is never held whole. Method and measured figures: docs/jpeg-decoder.md.
 *
 * Input. A suspending data source (libjpeg.txt, "I/O suspension"): the bytes live in a fixed window of
 * WINDOW_BYTES inside wasm memory. fill_input_buffer() never blocks: it returns FALSE, libjpeg backs up to the
 * start of the unit it was reading (a whole marker segment, or one MCU of entropy-coded data) and returns
 * JPEG_SUSPENDED / FALSE / 0 rows; jls_run() resumes it when more bytes came. Consumed bytes are dropped
 * (the unread tail is moved to the window's start before each append), so memory does not grow with the
 * file. The largest unit libjpeg must see whole is a marker segment (<= 65535 bytes) or one MCU (< 5 KiB), so
 * a window of 128 KiB always suffices; a file that still fills it without progress is corrupt. APPn/COM
 * segments are skipped without being buffered (skip_input_data remembers what is left to skip).
 * After a suspension, the decoder is resumed only when RESUME_BYTES more bytes are in (or the input ended, or
 * the window is full): libjpeg restarts the unit it was in, so resuming on every tiny append would redo the
 * same MCU over and over.
 *
 * Errors. libjpeg's error_exit must not return. Emscripten 3.1.6 can compile setjmp/longjmp to WebAssembly
 * exception handling (-s SUPPORT_LONGJMP=wasm, "wasm SjLj"): longjmp throws a wasm exception with a tag the
 * module defines itself and setjmp's caller catches it, all inside the module; the only imports it adds are
 * getTempRet0/setTempRet0 (a 32-bit scratch slot, two one-line JS functions), which any host can provide.
 * The default Emscripten SjLj needs JS "invoke_*" trampolines instead, which the Worker would have to
 * reimplement. So every exported function that calls into libjpeg sets a jmp_buf first, and error_exit
 * records a code and longjmps there; the decoder is then marked failed and only answers JLS_ERROR. A warning
 * (corrupt entropy data, extraneous bytes, premature EOI...) is fatal too: the Worker's current decoder
 * (src/image/jpeg.ts) refuses every image libjpeg warns about rather than classify a partly invented picture.
 *
 * Bounded work. A progressive file may hold any number of scans, and every scan is a pass over the whole
 * coefficient buffer (a file of ~349k tiny scans took ~90 s in the current decoder). The progress monitor,
 * which libjpeg calls before each unit of input it absorbs, refuses the file once input_scan_number exceeds
 * the limit the host set (jls_create; the Worker uses 100, docs/jpeg-decoder.md says why), with a code of its
 * own (JLS_E_TOO_MANY_SCANS). djpeg -maxscans does the same from the same hook.
 *
 * Bounded memory. libjpeg takes all its memory through jmemsys.h (this file replaces jmemnobs.c): every
 * allocation is counted against the budget given to jls_create, together with this shim's own window and
 * row buffer; past the budget the allocation fails and libjpeg stops with JERR_OUT_OF_MEMORY, reported as
 * JLS_E_MEMORY. jls_peak_bytes() reports the most ever held. (The Worker also gives the module's memory a
 * maximum, so even a bug here could not take more.)
 *
 * Progressive (and other multi-scan) JPEGs need every coefficient of the image before the first row can be
 * output: libjpeg's whole-image coefficient buffer, 128 bytes per 8x8 block (~36.6 MB for 12 MP 4:2:0). Below
 * 8/8 a component's scaled IDCT reads only some of each block's coefficients (idct_reads: 1 for 1x1, 25 for
 * libjpeg 6b's reduced 2x2, 9 for 3x3, 49 for the reduced 4x4, k*k for 5..7), and this shim keeps only
 * those: libjpeg's memory manager is told that no memory is available, so it keeps only a strip of each
 * virtual coefficient array in memory and pages the rest to a "backing store" (jmemmgr.c); the backing store
 * here is a plain array that keeps, per block, the coefficients the component's IDCT reads (and zeroes the
 * others when a strip is paged back in) plus, in a progressive file with k > 1, a nonzero bit for each of the
 * others, without which AC refinement scans could not be parsed (see struct store). At k = 1 the AC scans of
 * the component (progressive, Ss > 0) are not decoded at all: each scan is an independent entropy-coded
 * segment, so the progress monitor swaps the scan's consume_input for one that skips bytes to the next marker
 * (a memchr for 0xFF that is neither a stuffed 0xFF00 nor a restart marker). Scans are still counted, and the
 * progression bookkeeping (coef_bits, updated when a scan starts) is libjpeg's own, so the pixels are those
 * of a full decode at the same scale. libjpeg-turbo gives a subsampled component a larger IDCT when it can
 * (4:2:0 chroma gets 2n x 2n up to 8 at n/8, jdmaster.c). A 12 MP 4:2:0 progressive JPEG thus needs 6.45 MiB
 * at 1/8 (13.1 MiB when the chroma kept whole blocks), 20.2 MiB at 2/8 and 12.6 MiB at 3/8 (35 MiB whole);
 * figures and the time: docs/jpeg-decoder.md.
 *
 * Arithmetic coding: libjpeg's arithmetic decoder cannot suspend, so such a scan is decoded only once it is
 * in the window whole (see gated_decode_mcu); the window grows for it, within the budget.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JPEG_INTERNALS
#include "jinclude.h"
#include "jpeglib.h"
#include "jerror.h"
#include "jmemsys.h"

extern const char * const jpeg_std_message_table[]; /* jerror.c; jpeg_std_error() would bring stdio */

/* What jls_run() answers. */
#define JLS_NEED_INPUT 0 /* every byte given so far is used up: append more, or end the input */
#define JLS_HEADER 1     /* the header is read (jls_info): call jls_set_scale, then jls_run again */
#define JLS_ROWS 2       /* jls_row_count() rows from jls_first_row() are in jls_rows(): take them, run again */
#define JLS_DONE 3       /* every row is out and EOI was read */
#define JLS_ERROR (-1)   /* jls_error_code(), jls_message() say why; the decoder answers only this from now */

/* jls_error_code(). */
#define JLS_E_CORRUPT 1       /* libjpeg refused the data or warned about it */
#define JLS_E_TOO_MANY_SCANS 2
#define JLS_E_MEMORY 3        /* the budget (or the module's memory) ran out */
#define JLS_E_TRUNCATED 4     /* the input ended before EOI */
#define JLS_E_STATE 5         /* the host called something out of order */
#define JLS_E_UNSUPPORTED 6   /* a colour space with no RGB (2 components, unknown transforms) */

#define WINDOW_BYTES (128 * 1024)
#define RESUME_BYTES 4096
#define ROWS_PER_BATCH 16

enum phase { P_NEW, P_HEADER, P_SCALE, P_START, P_SCANLINES, P_FINISH, P_DONE, P_FAILED };

struct error_mgr {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
};

static struct {
  struct jpeg_decompress_struct cinfo;
  struct error_mgr err;
  struct jpeg_source_mgr src;
  struct jpeg_progress_mgr progress;
  enum phase phase;
  int created;
  /* input */
  JOCTET *window;
  size_t window_cap;       /* WINDOW_BYTES; more only for an arithmetic-coded scan (see gated_decode_mcu) */
  size_t window_base;      /* stream offset of window[0] */
  /* arithmetic-coded scans: decode only once the scan's end is in the window */
  boolean (*real_decode_mcu)(j_decompress_ptr, JBLOCKROW *);
  int gate_scan;           /* input_scan_number the search below is for */
  int gate_open;           /* the scan's end marker is in the window */
  size_t gate_searched;    /* stream offset up to which no end marker was found */
  size_t skip_pending;     /* bytes skip_input_data still has to drop from future input */
  int input_ended;
  int waiting;             /* the last run suspended... */
  size_t waiting_at;       /* ...with this many unread bytes */
  /* limits and accounting */
  size_t budget, live, peak;
  int max_scans;
  int compact;             /* coefficient store keeping what the IDCTs read (see the top) */
  int skipped_scans;
  /* output */
  JSAMPARRAY rows;
  JSAMPLE *row_data;
  int rows_cap, row_count;
  JDIMENSION first_row;
  int error_code;
  char message[JMSG_LENGTH_MAX + 64];
  int32_t info[16];
} st;

/* ---- counted memory (replaces jmemnobs.c) ---- */

static void *counted_alloc(size_t bytes) {
  if (bytes > st.budget - st.live) return NULL;
  void *p = malloc(bytes);
  if (p == NULL) return NULL; /* the module's memory is at its maximum */
  st.live += bytes;
  if (st.live > st.peak) st.peak = st.live;
  return p;
}

static void counted_free(void *p, size_t bytes) {
  if (p == NULL) return;
  free(p);
  st.live -= bytes;
}

GLOBAL(void *) jpeg_get_small(j_common_ptr cinfo, size_t sizeofobject) { return counted_alloc(sizeofobject); }
GLOBAL(void) jpeg_free_small(j_common_ptr cinfo, void *object, size_t sizeofobject) { counted_free(object, sizeofobject); }
GLOBAL(void *) jpeg_get_large(j_common_ptr cinfo, size_t sizeofobject) { return counted_alloc(sizeofobject); }
GLOBAL(void) jpeg_free_large(j_common_ptr cinfo, void *object, size_t sizeofobject) { counted_free(object, sizeofobject); }

/* In compact mode "nothing is available", so jmemmgr.c keeps one strip of each coefficient array in memory
 * and opens a backing store for the rest; otherwise everything lives in memory, within the budget. */
GLOBAL(size_t) jpeg_mem_available(j_common_ptr cinfo, size_t min_bytes_needed, size_t max_bytes_needed,
                                  size_t already_allocated) {
  return st.compact ? 0 : max_bytes_needed;
}

GLOBAL(long) jpeg_mem_init(j_common_ptr cinfo) { return 0; }
GLOBAL(void) jpeg_mem_term(j_common_ptr cinfo) {}

/* ---- the backing store: the coefficients the component's IDCT reads ---- */

/* Which of a block's 64 coefficients (natural order, row * 8 + col) libjpeg-turbo 2.1.5's IDCT of size k x k
 * reads (jddctmgr.c picks it by DCT_scaled_size). Read off the source: jpeg_idct_1x1 (jidctred.c) reads
 * coef_block[0]; jpeg_idct_2x2 (jidctred.c) skips columns 2, 4, 6 in its first pass and reads rows 0, 1, 3,
 * 5, 7 of the others, then workspace columns 0, 1, 3, 5, 7: rows and columns {0,1,3,5,7}, 25 coefficients;
 * jpeg_idct_4x4 (jidctred.c) skips column 4 and row 4: {0,1,2,3,5,6,7} squared, 49; jpeg_idct_3x3, _5x5,
 * _6x6, _7x7 (jidctint.c) read rows and columns 0..k-1, k*k; 8x8 (jidctint.c islow) reads all 64. (The
 * reduced IDCTs of jidctred.c come from libjpeg 6b and drop outputs of the 8-point IDCT, not inputs.) */
static uint64_t idct_reads(int k) {
  static const uint8_t lines[9] = {0, 0x01, 0xAB, 0x07, 0xEF, 0x1F, 0x3F, 0x7F, 0xFF}; /* bit i: row/col i */
  if (k < 1 || k > 8) return ~(uint64_t)0;
  uint64_t m = 0;
  for (int r = 0; r < 8; r++)
    if (lines[k] >> r & 1)
      for (int c = 0; c < 8; c++)
        if (lines[k] >> c & 1) m |= (uint64_t)1 << (r * 8 + c);
  return m;
}

static int popcount64(uint64_t m) {
  int n = 0;
  for (; m; m &= m - 1) n++;
  return n;
}

/* A block in the store: the kept coefficients (JCOEFs, in natural order), then, when a progressive file
 * may still refine the dropped ones, one bit per dropped coefficient: whether it is nonzero. libjpeg's AC
 * refinement decoders (jdphuff.c, jdarith.c decode_mcu_AC_refine) read a correction bit for each nonzero
 * coefficient of the band and count zero ones in runs, so the bitstream parses only if every coefficient
 * of the band is zero exactly when it was; the value of a dropped one is never read by the IDCT, so 1
 * stands in for any nonzero value (a refinement never makes a coefficient zero again). */
struct store {
  int keep_n;             /* coefficients kept per block */
  int flag_n;             /* dropped coefficients with a nonzero flag (0: none kept) */
  uint8_t keep[64];       /* their positions */
  uint8_t flag[64];
  size_t block_bytes;     /* keep_n * 2 + ceil(flag_n / 8) */
  size_t bytes;           /* what we allocated */
  unsigned char *data;
};

#define BLOCK_BYTES ((long)sizeof(JBLOCK))

static void store_check(j_common_ptr cinfo, struct store *s, long offset, long count) {
  long total = (long)(s->bytes / s->block_bytes) * BLOCK_BYTES;
  /* jmemmgr.c moves whole rows of blocks; anything else would be a bug in this reasoning */
  if (offset < 0 || count < 0 || offset % BLOCK_BYTES || count % BLOCK_BYTES || offset + count > total)
    ERREXIT(cinfo, JERR_BAD_ALLOC_CHUNK);
}

static void store_read(j_common_ptr cinfo, backing_store_ptr info, void *buffer, long offset, long count) {
  struct store *s = (struct store *)info->temp_file;
  store_check(cinfo, s, offset, count);
  if (s->keep_n == DCTSIZE2) {
    memcpy(buffer, s->data + offset, (size_t)count);
    return;
  }
  JBLOCKROW blocks = (JBLOCKROW)buffer;
  const unsigned char *p = s->data + (size_t)(offset / BLOCK_BYTES) * s->block_bytes;
  long n = count / BLOCK_BYTES;
  memset(buffer, 0, (size_t)count);
  for (long i = 0; i < n; i++, p += s->block_bytes) {
    JCOEF *b = blocks[i];
    for (int j = 0; j < s->keep_n; j++) memcpy(&b[s->keep[j]], p + 2 * j, sizeof(JCOEF));
    const unsigned char *f = p + 2 * s->keep_n;
    for (int j = 0; j < s->flag_n; j++)
      if (f[j >> 3] >> (j & 7) & 1) b[s->flag[j]] = 1;
  }
}

static void store_write(j_common_ptr cinfo, backing_store_ptr info, void *buffer, long offset, long count) {
  struct store *s = (struct store *)info->temp_file;
  store_check(cinfo, s, offset, count);
  if (s->keep_n == DCTSIZE2) {
    memcpy(s->data + offset, buffer, (size_t)count);
    return;
  }
  JBLOCKROW blocks = (JBLOCKROW)buffer;
  unsigned char *p = s->data + (size_t)(offset / BLOCK_BYTES) * s->block_bytes;
  long n = count / BLOCK_BYTES;
  for (long i = 0; i < n; i++, p += s->block_bytes) {
    const JCOEF *b = blocks[i];
    for (int j = 0; j < s->keep_n; j++) memcpy(p + 2 * j, &b[s->keep[j]], sizeof(JCOEF));
    unsigned char *f = p + 2 * s->keep_n;
    memset(f, 0, s->block_bytes - 2 * (size_t)s->keep_n);
    for (int j = 0; j < s->flag_n; j++)
      if (b[s->flag[j]] != 0) f[j >> 3] |= (unsigned char)(1 << (j & 7));
  }
}

static void store_close(j_common_ptr cinfo, backing_store_ptr info) {
  struct store *s = (struct store *)info->temp_file;
  if (s == NULL) return;
  counted_free(s->data, s->bytes);
  counted_free(s, sizeof(*s));
  info->temp_file = NULL;
}

/* The coefficients a component's store must keep: those its IDCT reads, and, in a progressive file where
 * AC scans of it are decoded (k > 1; at k = 1 every AC scan is skipped, see skip_scan), a nonzero flag for
 * each of the others. */
static uint64_t component_keeps(j_decompress_ptr d, jpeg_component_info *c, uint64_t *flags) {
  uint64_t keep = idct_reads(c->DCT_scaled_size);
  *flags = d->progressive_mode && c->DCT_scaled_size > 1 ? ~keep : 0;
  return keep;
}

/* Which component an array belongs to is not passed in; its size tells: the array for component ci is
 * width_in_blocks x height_in_blocks rounded up to the sampling factors (jdcoefct.c). Two components of the
 * same size but different IDCT sizes (possible only with unusual sampling, e.g. 2x1 and 1x2) share what
 * both read. */
static uint64_t array_keeps(j_decompress_ptr d, long total_bytes, uint64_t *flags) {
  uint64_t keep = 0, f = 0;
  int found = 0;
  for (int ci = 0; ci < d->num_components; ci++) {
    jpeg_component_info *c = &d->comp_info[ci];
    long w = (long)jround_up((long)c->width_in_blocks, (long)c->h_samp_factor);
    long h = (long)jround_up((long)c->height_in_blocks, (long)c->v_samp_factor);
    if (w * h * BLOCK_BYTES != total_bytes) continue;
    uint64_t cf, ck = component_keeps(d, c, &cf);
    keep |= ck;
    f |= cf;
    found = 1;
  }
  if (!found) keep = ~(uint64_t)0;
  *flags = f & ~keep;
  return keep;
}

GLOBAL(void) jpeg_open_backing_store(j_common_ptr cinfo, backing_store_ptr info, long total_bytes_needed) {
  if (!st.compact) ERREXIT(cinfo, JERR_NO_BACKING_STORE);
  struct store *s = counted_alloc(sizeof(*s));
  if (s == NULL) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 100);
  uint64_t flags, keep = array_keeps((j_decompress_ptr)cinfo, total_bytes_needed, &flags);
  s->keep_n = s->flag_n = 0;
  for (int i = 0; i < DCTSIZE2; i++) {
    if (keep >> i & 1) s->keep[s->keep_n++] = (uint8_t)i;
    else if (flags >> i & 1) s->flag[s->flag_n++] = (uint8_t)i;
  }
  s->block_bytes = 2 * (size_t)s->keep_n + ((size_t)s->flag_n + 7) / 8;
  s->bytes = (size_t)(total_bytes_needed / BLOCK_BYTES) * s->block_bytes;
  s->data = counted_alloc(s->bytes);
  if (s->data == NULL) {
    counted_free(s, sizeof(*s));
    ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 101);
  }
  /* Never read before written (jmemmgr.c pre-zeroes undefined rows in memory), but keep it defined. */
  memset(s->data, 0, s->bytes);
  info->temp_file = (FILE *)s; /* the struct's only pointer-sized field; nothing here touches stdio */
  info->read_backing_store = store_read;
  info->write_backing_store = store_write;
  info->close_backing_store = store_close;
}

/* ---- errors ---- */

static void format_message(j_common_ptr cinfo, char *buffer) {
  struct jpeg_error_mgr *err = cinfo->err;
  int code = err->msg_code;
  const char *fmt = NULL;
  if (code > 0 && code <= err->last_jpeg_message) fmt = err->jpeg_message_table[code];
  if (fmt == NULL) {
    snprintf(buffer, JMSG_LENGTH_MAX, "libjpeg message %d", code);
    return;
  }
  if (strstr(fmt, "%s") != NULL)
    snprintf(buffer, JMSG_LENGTH_MAX, fmt, err->msg_parm.s);
  else
    snprintf(buffer, JMSG_LENGTH_MAX, fmt, err->msg_parm.i[0], err->msg_parm.i[1], err->msg_parm.i[2],
             err->msg_parm.i[3], err->msg_parm.i[4], err->msg_parm.i[5], err->msg_parm.i[6], err->msg_parm.i[7]);
}

static void fail(int code) {
  st.error_code = code;
  st.phase = P_FAILED;
  longjmp(st.err.jump, 1);
}

static void error_exit(j_common_ptr cinfo) {
  int code = cinfo->err->msg_code;
  format_message(cinfo, st.message);
  if (code == JERR_OUT_OF_MEMORY || code == JERR_NO_BACKING_STORE) fail(JLS_E_MEMORY);
  /* jdarith.c could not get a byte after the input ended (gated_decode_mcu let it run) */
  if (code == JERR_CANT_SUSPEND && st.input_ended) fail(JLS_E_TRUNCATED);
  fail(JLS_E_CORRUPT);
}

static void emit_message(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return; /* trace messages */
  format_message(cinfo, st.message); /* a warning: corrupt data; refused, as the current decoder does */
  fail(JLS_E_CORRUPT);
}

static void output_message(j_common_ptr cinfo) {}

static void reset_error_mgr(j_common_ptr cinfo) {
  cinfo->err->num_warnings = 0;
  cinfo->err->msg_code = 0;
}

/* ---- the suspending source ---- */

static void init_source(j_decompress_ptr cinfo) {}

/* Called when libjpeg has used every byte from its restart point on; with nothing more in hand, suspend. */
static boolean fill_input_buffer(j_decompress_ptr cinfo) { return FALSE; }

static void skip_input_data(j_decompress_ptr cinfo, long num_bytes) {
  struct jpeg_source_mgr *src = cinfo->src;
  if (num_bytes <= 0) return;
  if ((size_t)num_bytes <= src->bytes_in_buffer) {
    src->next_input_byte += num_bytes;
    src->bytes_in_buffer -= (size_t)num_bytes;
  } else {
    st.skip_pending += (size_t)num_bytes - src->bytes_in_buffer;
    src->next_input_byte += src->bytes_in_buffer;
    src->bytes_in_buffer = 0;
  }
}

static void term_source(j_decompress_ptr cinfo) {}

/* ---- skipping a scan that nothing will read ---- */

static void consumed(j_decompress_ptr d, size_t n) {
  d->src->next_input_byte += n;
  d->src->bytes_in_buffer -= n;
}

/* consume_input for an AC scan of DC-only components: drop entropy-coded bytes up to the next marker. */
static int skip_scan(j_decompress_ptr d) {
  const JOCTET *p = d->src->next_input_byte;
  size_t n = d->src->bytes_in_buffer, i = 0;
  for (;;) {
    const JOCTET *ff = n > i ? memchr(p + i, 0xFF, n - i) : NULL;
    if (ff == NULL) {
      consumed(d, n);
      return JPEG_SUSPENDED;
    }
    size_t j = (size_t)(ff - p) + 1;
    while (j < n && p[j] == 0xFF) j++; /* fill bytes */
    if (j >= n) {
      consumed(d, (size_t)(ff - p)); /* keep the 0xFFs until we see what follows */
      return JPEG_SUSPENDED;
    }
    if (p[j] == 0x00 || (p[j] >= 0xD0 && p[j] <= 0xD7)) { /* stuffed byte, restart marker: still data */
      i = j + 1;
      continue;
    }
    consumed(d, j - 1); /* the marker's 0xFF is next, as next_marker() wants it: no "extraneous bytes" */
    d->input_iMCU_row = d->total_iMCU_rows; /* where consume_data leaves it: the output pass waits on it */
    (*d->inputctl->finish_input_pass)(d);
    return JPEG_SCAN_COMPLETED;
  }
}

static int scan_is_skippable(j_decompress_ptr d) {
  if (!st.compact || !d->progressive_mode || d->Ss == 0) return 0;
  for (int i = 0; i < d->comps_in_scan; i++)
    if (d->cur_comp_info[i]->DCT_scaled_size != 1) return 0;
  return 1;
}

/* libjpeg's arithmetic decoder cannot suspend (jdarith.c: JERR_CANT_SUSPEND when a byte is missing), so an
 * arithmetic-coded scan is decoded only once its end (a marker other than RSTn) is in the window, or the
 * input has ended: until then this wrapper of the entropy decoder's decode_mcu reports a suspension, which
 * the coefficient controller handles as for Huffman data. The window grows to hold the scan, within the
 * budget. Such files are rare (the format was patent-encumbered until 2009; browsers never decoded them). */
static boolean gated_decode_mcu(j_decompress_ptr d, JBLOCKROW *MCU_data) {
  if (st.gate_scan != d->input_scan_number) {
    st.gate_scan = d->input_scan_number;
    st.gate_open = 0;
    st.gate_searched = st.window_base + (size_t)(d->src->next_input_byte - st.window);
  }
  if (!st.gate_open && !st.input_ended) {
    const JOCTET *p = st.window;
    size_t end = (size_t)(d->src->next_input_byte - st.window) + d->src->bytes_in_buffer;
    size_t i = st.gate_searched - st.window_base;
    for (; i + 1 < end; i++) {
      if (p[i] == 0xFF && p[i + 1] != 0x00 && p[i + 1] != 0xFF && (p[i + 1] < 0xD0 || p[i + 1] > 0xD7)) break;
    }
    if (i + 1 >= end) {
      st.gate_searched = st.window_base + i; /* the last byte may be a marker's 0xFF: look at it again */
      return FALSE;
    }
    st.gate_open = 1;
  }
  return (*st.real_decode_mcu)(d, MCU_data);
}

static void gate_arithmetic_scan(j_decompress_ptr d) {
  if (!d->arith_code || d->entropy->decode_mcu == gated_decode_mcu) return;
  st.real_decode_mcu = d->entropy->decode_mcu; /* set per scan by jdarith.c's start_pass */
  d->entropy->decode_mcu = gated_decode_mcu;
}

static void grow_window(void) {
  size_t used = st.src.bytes_in_buffer, cap = st.window_cap * 2;
  JOCTET *bigger = counted_alloc(cap);
  if (bigger == NULL) {
    snprintf(st.message, sizeof(st.message), "an arithmetic-coded scan larger than the memory left (%zu bytes in hand)", used);
    fail(JLS_E_MEMORY);
  }
  memcpy(bigger, st.src.next_input_byte, used);
  st.window_base += (size_t)(st.src.next_input_byte - st.window);
  counted_free(st.window, st.window_cap);
  st.window = bigger;
  st.window_cap = cap;
  st.src.next_input_byte = bigger;
}

static void progress_monitor(j_common_ptr cinfo) {
  j_decompress_ptr d = (j_decompress_ptr)cinfo;
  if (d->input_scan_number > st.max_scans) {
    snprintf(st.message, sizeof(st.message), "more than %d scans", st.max_scans);
    fail(JLS_E_TOO_MANY_SCANS);
  }
  /* A scan has just started when its consume_input is still the coefficient controller's own. */
  if (d->inputctl->consume_input == d->coef->consume_data && scan_is_skippable(d)) {
    d->inputctl->consume_input = skip_scan;
    st.skipped_scans++;
  }
  gate_arithmetic_scan(d);
}

/* ---- the API ---- */

/* Sets up a decoder that may hold at most `budget` bytes and decode at most `max_scans` scans. 0 or JLS_ERROR. */
int jls_create(uint32_t budget, int max_scans) {
  if (st.created) return JLS_ERROR;
  st.created = 1;
  st.budget = budget;
  st.max_scans = max_scans;
  st.phase = P_FAILED;
  st.error_code = JLS_E_MEMORY;
  if (setjmp(st.err.jump)) return JLS_ERROR;
  st.window = counted_alloc(WINDOW_BYTES);
  if (st.window == NULL) return JLS_ERROR;
  st.window_cap = WINDOW_BYTES;
  struct jpeg_error_mgr *err = &st.err.pub;
  memset(err, 0, sizeof(*err));
  err->error_exit = error_exit;
  err->emit_message = emit_message;
  err->output_message = output_message;
  err->format_message = format_message;
  err->reset_error_mgr = reset_error_mgr;
  err->jpeg_message_table = jpeg_std_message_table;
  err->last_jpeg_message = (int)JMSG_LASTMSGCODE - 1;
  st.cinfo.err = err;
  jpeg_create_decompress(&st.cinfo); /* may fail (memory): error_exit lands at the setjmp above */
  st.src.init_source = init_source;
  st.src.fill_input_buffer = fill_input_buffer;
  st.src.skip_input_data = skip_input_data;
  st.src.resync_to_restart = jpeg_resync_to_restart;
  st.src.term_source = term_source;
  st.src.next_input_byte = st.window;
  st.src.bytes_in_buffer = 0;
  st.cinfo.src = &st.src;
  st.progress.progress_monitor = progress_monitor;
  st.cinfo.progress = &st.progress;
  st.phase = P_HEADER;
  st.error_code = 0;
  return 0;
}

/* Where the host copies its next bytes, and how many fit there (0 when the window holds only unread bytes). */
JOCTET *jls_input_buffer(void) {
  if (st.window == NULL) return NULL;
  if (st.src.next_input_byte != st.window) { /* drop what libjpeg consumed */
    st.window_base += (size_t)(st.src.next_input_byte - st.window);
    memmove(st.window, st.src.next_input_byte, st.src.bytes_in_buffer);
    st.src.next_input_byte = st.window;
  }
  return st.window + st.src.bytes_in_buffer;
}

uint32_t jls_input_space(void) {
  jls_input_buffer();
  return st.window == NULL ? 0 : (uint32_t)(st.window_cap - st.src.bytes_in_buffer);
}

/* The host wrote `n` bytes at jls_input_buffer(). */
int jls_input_commit(uint32_t n) {
  if (st.window == NULL || n > st.window_cap - st.src.bytes_in_buffer || st.input_ended) return JLS_ERROR;
  st.src.bytes_in_buffer += n;
  size_t skip = st.skip_pending < st.src.bytes_in_buffer ? st.skip_pending : st.src.bytes_in_buffer;
  st.skip_pending -= skip;
  consumed(&st.cinfo, skip);
  return 0;
}

/* No more bytes will come. */
void jls_input_end(void) { st.input_ended = 1; }

static void set_output_space(j_decompress_ptr d) {
  switch (d->jpeg_color_space) {
  case JCS_GRAYSCALE: /* replicated, as Pillow's convert("RGB") of an "L" image */
  case JCS_YCbCr:
  case JCS_RGB:
    d->out_color_space = JCS_RGB;
    break;
  case JCS_CMYK:
  case JCS_YCCK: /* libjpeg turns YCCK into CMYK; the host makes RGB of it as Pillow does (color.ts) */
    d->out_color_space = JCS_CMYK;
    break;
  default:
    snprintf(st.message, sizeof(st.message), "a JPEG with %d components in an unknown colour space",
             d->num_components);
    fail(JLS_E_UNSUPPORTED);
  }
}

static void fill_info(void) {
  j_decompress_ptr d = &st.cinfo;
  st.info[0] = (int32_t)d->image_width;
  st.info[1] = (int32_t)d->image_height;
  st.info[2] = d->num_components;
  st.info[3] = d->jpeg_color_space;
  st.info[4] = d->progressive_mode;
  st.info[5] = d->inputctl ? d->inputctl->has_multiple_scans : 0;
  st.info[6] = (int32_t)d->scale_num;
  st.info[7] = (int32_t)d->output_width;
  st.info[8] = (int32_t)d->output_height;
  st.info[9] = d->out_color_components;
  st.info[10] = st.compact;
  st.info[11] = d->input_scan_number;
  st.info[12] = st.skipped_scans;
  st.info[13] = d->arith_code;
}

/* [width, height, components, jpeg colour space (J_COLOR_SPACE), progressive, multi-scan, scale_num,
 * output width, output height, output components (3 RGB, 4 CMYK), compact store (some IDCT smaller than 8x8), scans seen, scans skipped,
 * arithmetic coding]; filled after JLS_HEADER and kept up to date by jls_run. */
const int32_t *jls_info(void) {
  fill_info();
  return st.info;
}

/* After JLS_HEADER: decode at scale_num/8 (1..8). */
int jls_set_scale(int scale_num) {
  if (st.phase != P_SCALE || scale_num < 1 || scale_num > 8) {
    if (st.phase != P_FAILED) {
      snprintf(st.message, sizeof(st.message), "jls_set_scale(%d) out of order or out of range", scale_num);
      st.error_code = JLS_E_STATE;
      st.phase = P_FAILED;
    }
    return JLS_ERROR;
  }
  if (setjmp(st.err.jump)) return JLS_ERROR;
  j_decompress_ptr d = &st.cinfo;
  d->scale_num = (unsigned int)scale_num;
  d->scale_denom = 8;
  set_output_space(d);
  jpeg_calc_output_dimensions(d);
  st.compact = 0;
  if (d->inputctl->has_multiple_scans)
    for (int ci = 0; ci < d->num_components; ci++)
      if (d->comp_info[ci].DCT_scaled_size < DCTSIZE) st.compact = 1;
  st.rows_cap = d->rec_outbuf_height > ROWS_PER_BATCH ? d->rec_outbuf_height : ROWS_PER_BATCH;
  size_t row_bytes = (size_t)d->output_width * (size_t)d->out_color_components;
  if (row_bytes > st.budget / (size_t)st.rows_cap) ERREXIT1(d, JERR_OUT_OF_MEMORY, 102);
  st.row_data = counted_alloc(row_bytes * (size_t)st.rows_cap);
  st.rows = counted_alloc(sizeof(JSAMPROW) * (size_t)st.rows_cap);
  if (st.row_data == NULL || st.rows == NULL) ERREXIT1(d, JERR_OUT_OF_MEMORY, 103);
  for (int i = 0; i < st.rows_cap; i++) st.rows[i] = st.row_data + row_bytes * (size_t)i;
  st.phase = P_START;
  return 0;
}

static int suspended(void) {
  if (st.input_ended) {
    snprintf(st.message, sizeof(st.message), "the data ends before the image does");
    fail(JLS_E_TRUNCATED);
  }
  if (st.src.bytes_in_buffer >= st.window_cap) {
    if (!st.cinfo.arith_code || st.real_decode_mcu == NULL) {
      /* a unit larger than any valid one: it never ends */
      snprintf(st.message, sizeof(st.message), "a marker segment or MCU longer than %d bytes", WINDOW_BYTES);
      fail(JLS_E_CORRUPT);
    }
    grow_window(); /* an arithmetic-coded scan must be in the window whole */
  }
  st.waiting = 1;
  st.waiting_at = st.src.bytes_in_buffer;
  return JLS_NEED_INPUT;
}

/* Decodes as far as the bytes in hand allow; see JLS_* for what comes back. */
int jls_run(void) {
  j_decompress_ptr d = &st.cinfo;
  if (st.phase == P_FAILED) return JLS_ERROR;
  if (!st.created || st.phase == P_NEW) return JLS_ERROR;
  if (st.phase == P_DONE) return JLS_DONE;
  if (st.phase == P_SCALE) return JLS_HEADER;
  if (st.waiting && !st.input_ended && st.src.bytes_in_buffer < st.window_cap &&
      st.src.bytes_in_buffer < st.waiting_at + RESUME_BYTES)
    return JLS_NEED_INPUT; /* not worth restarting the unit it stopped in yet */
  st.waiting = 0;
  if (setjmp(st.err.jump)) return JLS_ERROR;
  switch (st.phase) {
  case P_HEADER: {
    int r = jpeg_read_header(d, TRUE);
    if (r == JPEG_SUSPENDED) return suspended();
    st.phase = P_SCALE;
    fill_info();
    return JLS_HEADER;
  }
  case P_START:
    if (!jpeg_start_decompress(d)) return suspended();
    gate_arithmetic_scan(d); /* a single-scan file is decoded while rows are read */
    st.phase = P_SCANLINES;
    /* fall through */
  case P_SCANLINES: {
    st.row_count = 0;
    st.first_row = d->output_scanline;
    while (st.row_count < st.rows_cap && d->output_scanline < d->output_height) {
      JDIMENSION got = jpeg_read_scanlines(d, st.rows + st.row_count, (JDIMENSION)(st.rows_cap - st.row_count));
      if (got == 0) break;
      st.row_count += (int)got;
    }
    if (st.row_count > 0) {
      if (d->output_scanline >= d->output_height) st.phase = P_FINISH;
      return JLS_ROWS;
    }
    if (d->output_scanline < d->output_height) return suspended();
    st.phase = P_FINISH;
  }
    /* fall through */
  case P_FINISH:
    if (!jpeg_finish_decompress(d)) return suspended();
    st.phase = P_DONE;
    fill_info();
    return JLS_DONE;
  default:
    return JLS_ERROR;
  }
}

JSAMPLE *jls_rows(void) { return st.row_data; }
int jls_row_count(void) { return st.row_count; }
uint32_t jls_first_row(void) { return st.first_row; }
int jls_error_code(void) { return st.error_code; }
const char *jls_message(void) { return st.message; }
uint32_t jls_peak_bytes(void) { return (uint32_t)st.peak; }
uint32_t jls_live_bytes(void) { return (uint32_t)st.live; }
