/* fuzz_ws.c: libFuzzer harness for WebSocket frames and UTF-8 checking
** (host/cn_ws.c). Frames are parsed one after another from the input
** with a size limit taken from its first byte; each header is written
** back with cn_ws_header and must parse the same; payloads are masked
** twice (unchanged) and checked as UTF-8 whole and in two pieces (same
** verdict). `make fuzz FUZZ=ws` runs it; `make test` replays its corpus
** (t/fuzz/corpus/ws). */
#include <stdlib.h>
#include <string.h>

#include "cn_ws.h"
#include "fuzz.h"

static int utf8_whole(const uint8_t *p, size_t n) {
  uint32_t st = 0;
  return cn_utf8_scan(&st, p, n) == 0 && st == 0;
}


static int utf8_split(const uint8_t *p, size_t n, size_t at) {
  uint32_t st = 0;
  if (at > n)
    at = n;
  return cn_utf8_scan(&st, p, at) == 0 && cn_utf8_scan(&st, p + at, n - at) == 0
         && st == 0;
}


static void payload(const cn_ws_frame_t *f, const uint8_t *p, size_t n) {
  uint8_t *copy = malloc(n + 1);
  FUZZ_CHECK(copy != NULL);
  memcpy(copy, p, n);
  cn_ws_mask(copy, n, f->mask, 3);
  cn_ws_mask(copy, n, f->mask, 3);
  FUZZ_CHECK(memcmp(copy, p, n) == 0);
  FUZZ_CHECK(utf8_whole(p, n) == utf8_split(p, n, n / 2 + (n & 1)));
  free(copy);
}


static void roundtrip(const cn_ws_frame_t *f) {
  uint8_t h[CN_WS_MAX_HEADER];
  cn_ws_frame_t g;
  size_t n = cn_ws_header(h, f->fin, f->opcode, f->len,
                          f->masked ? f->mask : NULL);
  FUZZ_CHECK(cn_ws_parse(&g, h, n, UINT64_MAX) == (int)n);
  FUZZ_CHECK(g.len == f->len && g.fin == f->fin && g.opcode == f->opcode
             && g.masked == f->masked);
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t max;
  size_t off = 1;
  if (size < 1)
    return 0;
  max = (uint64_t)1 << (data[0] & 63);
  while (off < size) {
    cn_ws_frame_t f;
    int rc = cn_ws_parse(&f, data + off, size - off, max);
    if (rc <= 0)
      break;
    roundtrip(&f);
    off += (size_t)rc;
    if (f.len > size - off) {
      payload(&f, data + off, size - off);
      break;
    }
    payload(&f, data + off, (size_t)f.len);
    off += (size_t)f.len;
  }
  return 0;
}
