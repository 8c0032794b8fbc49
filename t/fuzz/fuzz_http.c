/* fuzz_http.c: libFuzzer harness for the HTTP parser (host/cn_http.c).
** The input's first byte picks a request or response head and how the
** rest is split into pieces; the head is scanned piece by piece and
** again in one piece (the verdicts must agree), a complete head is read
** field by field and judged, and the bytes after it go through the
** chunked-body scanner. `make fuzz FUZZ=http` runs it; `make test`
** replays its corpus (t/fuzz/corpus/http). */
#include <stdlib.h>
#include <string.h>

#include "cn_http.h"
#include "fuzz.h"

static void limits(cn_http_head_t *h, int response) {
  cn_http_head_init(h, response);
  h->max_target = 512;
  h->max_head = 4096;
  h->max_fields = 32;
}


/* scan feeds p[0..n) to h in pieces of step bytes (1..16). */
static int scan(cn_http_head_t *h, const char *p, size_t n, size_t step,
                size_t *end) {
  size_t off = 0, used;
  int rc = CN_HTTP_MORE;
  while (off < n) {
    size_t k = n - off < step ? n - off : step;
    rc = cn_http_head_scan(h, p + off, k, &used);
    if (rc != CN_HTTP_MORE) {
      *end = off + used;
      return rc;
    }
    off += k;
  }
  *end = n;
  return rc;
}


/* read_head reads the complete head p[0..len) field by field and judges
** it; cn_http_fields must judge it the same from what the scans in
** pieces (a) and whole (b) noted. */
static void read_head(const char *p, size_t len, int response,
                      const cn_http_head_t *a, const cn_http_head_t *b) {
  cn_http_msg_t m, ma, mb;
  cn_http_str_t name, value;
  size_t pos = cn_http_start_line(&m, p, len, response);
  int rc = 0, rca, rcb;
  ma = mb = m;
  rca = cn_http_fields(&ma, a, p, len, pos);
  rcb = cn_http_fields(&mb, b, p, len, pos);
  while (cn_http_next_field(p, len, &pos, &name, &value))
    if (rc == 0)
      rc = cn_http_field(&m, name, value);
  FUZZ_CHECK(pos == len); /* the fields end exactly at the head's end */
  FUZZ_CHECK(rca == rc && rcb == rc);
  FUZZ_CHECK(rc != 0 || (ma.flags == m.flags && mb.flags == m.flags &&
                         ma.length == m.length && mb.length == m.length));
  if (rc == 0)
    cn_http_framing(&m, response, 0);
  cn_http_keep_alive(&m);
  if (!response && m.target.n > 0) {
    char *copy = malloc(m.target.n);
    size_t n = m.target.n;
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, m.target.p, n);
    cn_http_decode_path(copy, &n);
    FUZZ_CHECK(n <= m.target.n);
    free(copy);
  }
}


static void chunks(const char *p, size_t n) {
  cn_http_chunk_t c;
  size_t off = 0, used;
  cn_http_chunk_init(&c);
  while (off < n) {
    int rc = cn_http_chunk_scan(&c, p + off, n - off, &used);
    off += used;
    if (rc == CN_HTTP_DATA) {
      size_t k = n - off < c.left ? n - off : (size_t)c.left;
      c.left -= k;
      off += k;
    } else if (rc != CN_HTTP_MORE) {
      break;
    }
  }
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cn_http_head_t a, b;
  size_t end_a, end_b;
  int response, ra, rb;
  const char *p = (const char *)data + 1;
  if (size < 1)
    return 0;
  response = data[0] & 1;
  size--;
  limits(&a, response);
  limits(&b, response);
  ra = scan(&a, p, size, (size_t)(data[0] >> 4) + 1, &end_a);
  rb = scan(&b, p, size, size > 0 ? size : 1, &end_b);
  FUZZ_CHECK(ra == rb); /* the split does not change the verdict */
  FUZZ_CHECK(ra != CN_HTTP_DONE || (end_a == end_b && a.len == b.len));
  if (ra == CN_HTTP_DONE) {
    read_head(p, a.len, response, &a, &b);
    chunks(p + end_a, size - end_a);
  } else if (data[0] & 2) {
    chunks(p, size);
  }
  return 0;
}
