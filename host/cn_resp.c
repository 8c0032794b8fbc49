/* cn_resp.c: the Redis protocol (RESP2 and RESP3). A streaming reply
** parser that takes bytes in pieces of any size, keeps no copy of them and
** allocates nothing, so a reply can be framed (is it all here yet?) as
** its bytes arrive and decoded, through hooks, once it is; and the
** header encoder commands are built with. Lua binding in lcn_redis.c;
** fuzzed by t/fuzz/fuzz_resp.c. */
#include "cn_resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cn_errno.h"

enum {
  ST_TYPE,    /* the type byte of a value */
  ST_NUM,     /* an integer, length or count, up to its CR */
  ST_LINE,    /* a simple string's bytes, up to its CR */
  ST_BOOL,    /* t or f, then CR */
  ST_NULL,    /* CR at once */
  ST_LF,      /* the LF ending a header line */
  ST_BULK,    /* a length-prefixed string's bytes */
  ST_BULK_CR, /* the CR after them */
  ST_BULK_LF, /* the LF after them */
  ST_ERR      /* failed: stays so until reset */
};


/* cn_resp_init readies p for its first reply, with the default limits and
** no hooks. */
void cn_resp_init(cn_resp_t *p) {
  memset(p, 0, sizeof *p);
  p->max_bulk = CN_RESP_MAX_BULK;
  p->max_reply = CN_RESP_MAX_REPLY;
  p->max_count = CN_RESP_MAX_COUNT;
  p->max_depth = CN_RESP_DEPTH;
}


/* cn_resp_reset forgets the reply in progress (and a failure); limits and
** hooks stay. */
void cn_resp_reset(cn_resp_t *p) {
  p->total = p->num = p->left = 0;
  p->state = ST_TYPE;
  p->neg = p->digits = p->attr = 0;
  p->depth = 0;
  p->err[0] = '\0';
}


static int fail(cn_resp_t *p, const char *fmt, ...)
#ifdef __GNUC__
  __attribute__((format(printf, 2, 3)))
#endif
  ;

static int fail(cn_resp_t *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->err, sizeof p->err, fmt, ap);
  va_end(ap);
  p->state = ST_ERR;
  return CN_EPROTO;
}


/* hook_failed records that a hook stopped the parser with err. */
static int hook_failed(cn_resp_t *p, int err) {
  snprintf(p->err, sizeof p->err, "%s", cn_strerror(err));
  p->state = ST_ERR;
  return err;
}


static int emit_value(cn_resp_t *p, int type, int64_t n) {
  int rc = p->hooks != NULL ? p->hooks->value(p->ud, type, n) : 0;
  return rc < 0 ? hook_failed(p, rc) : 0;
}


static int emit_end(cn_resp_t *p, int type) {
  int rc = p->hooks != NULL ? p->hooks->end(p->ud, type) : 0;
  return rc < 0 ? hook_failed(p, rc) : 0;
}


static int emit_data(cn_resp_t *p, const char *s, size_t n) {
  int rc = p->hooks != NULL && n > 0 ? p->hooks->data(p->ud, s, n) : 0;
  return rc < 0 ? hook_failed(p, rc) : 0;
}


/* show formats byte c for a message: 'x' or 0x0a. */
static const char *show(char *buf, size_t size, unsigned char c) {
  if (c > ' ' && c < 127)
    snprintf(buf, size, "'%c'", c);
  else
    snprintf(buf, size, "0x%02x", c);
  return buf;
}


/* -- Values ending ----------------------------------------------------- */


/* element_done runs when a value ended: it counts against the aggregates
** it is in, ending those it completes. Returns CN_RESP_DONE when that was
** the whole reply, else CN_RESP_MORE, or a hook's error. An attribute
** (attr) counts for nothing. */
static int element_done(cn_resp_t *p, int attr) {
  int rc;
  p->state = ST_TYPE;
  while (!attr && p->depth > 0) {
    int type = p->stack[p->depth - 1].type;
    if (--p->stack[p->depth - 1].left > 0)
      return CN_RESP_MORE;
    p->depth--;
    if ((rc = emit_end(p, type)) < 0)
      return rc;
    attr = type == CN_RESP_ATTR;
  }
  if (attr)
    return CN_RESP_MORE;
  cn_resp_reset(p); /* ready for the next reply */
  return CN_RESP_DONE;
}


static int scalar(cn_resp_t *p, int type, int64_t n) {
  int rc = emit_value(p, type, n);
  return rc < 0 ? rc : element_done(p, 0);
}


/* string_header opens a length-prefixed string (BULK, BLOBERR, VERBATIM). */
static int string_header(cn_resp_t *p) {
  int rc;
  if (p->neg) {
    if (p->type == CN_RESP_BULK && p->num == 1)
      return scalar(p, CN_RESP_NULL, 0); /* RESP2's null: $-1 */
    return fail(p, "negative length -%llu", (unsigned long long)p->num);
  }
  if (p->num > p->max_bulk)
    return fail(p, "bulk length %llu over the limit (%llu)",
                (unsigned long long)p->num, (unsigned long long)p->max_bulk);
  if (p->num + 2 > p->max_reply - p->total)
    return fail(p, "reply longer than the limit (%llu bytes)",
                (unsigned long long)p->max_reply);
  if ((rc = emit_value(p, p->type, (int64_t)p->num)) < 0)
    return rc;
  p->left = p->num;
  p->state = p->left > 0 ? ST_BULK : ST_BULK_CR;
  return CN_RESP_MORE;
}


/* aggregate_header opens an ARRAY, MAP, SET, PUSH or ATTR. */
static int aggregate_header(cn_resp_t *p) {
  int type = p->type, pairs = type == CN_RESP_MAP || type == CN_RESP_ATTR;
  int rc;
  if (p->neg) {
    if (type == CN_RESP_ARRAY && p->num == 1)
      return scalar(p, CN_RESP_NULL, 0); /* RESP2's null array: *-1 */
    return fail(p, "negative count -%llu", (unsigned long long)p->num);
  }
  if (p->num > (uint64_t)p->max_count >> pairs)
    return fail(p, "aggregate of %llu elements over the limit (%lld)",
                (unsigned long long)p->num << pairs, (long long)p->max_count);
  if (p->depth >= p->max_depth || p->depth >= CN_RESP_MAX_DEPTH)
    return fail(p, "nesting deeper than %d", p->max_depth);
  if ((rc = emit_value(p, type, (int64_t)p->num)) < 0)
    return rc;
  if (p->num == 0) {
    if ((rc = emit_end(p, type)) < 0)
      return rc;
    return element_done(p, type == CN_RESP_ATTR);
  }
  p->stack[p->depth].left = (int64_t)(p->num << pairs);
  p->stack[p->depth].type = (uint8_t)type;
  p->depth++;
  p->state = ST_TYPE;
  return CN_RESP_MORE;
}


/* header_done acts on a header line once its LF arrived. */
static int header_done(cn_resp_t *p) {
  int rc;
  switch (p->type) {
  case CN_RESP_STATUS:
  case CN_RESP_ERROR:
  case CN_RESP_DOUBLE:
  case CN_RESP_BIGNUM:
    if ((rc = emit_end(p, p->type)) < 0)
      return rc;
    return element_done(p, 0);
  case CN_RESP_BOOL:
    return scalar(p, CN_RESP_BOOL, (int64_t)p->num);
  case CN_RESP_NULL:
    return scalar(p, CN_RESP_NULL, 0);
  case CN_RESP_INT:
    if (p->num > (uint64_t)INT64_MAX + p->neg)
      return fail(p, "integer out of range");
    return scalar(p, CN_RESP_INT,
                  p->neg ? (int64_t)(0 - p->num) : (int64_t)p->num);
  case CN_RESP_BULK:
  case CN_RESP_BLOBERR:
  case CN_RESP_VERBATIM:
    return string_header(p);
  default:
    return aggregate_header(p);
  }
}


/* -- Bytes ------------------------------------------------------------- */


/* start reads a value's type byte. */
static int start(cn_resp_t *p, unsigned char c) {
  char buf[8];
  int rc;
  p->type = c;
  p->num = 0;
  p->neg = p->digits = 0;
  switch (c) {
  case CN_RESP_STATUS:
  case CN_RESP_ERROR:
  case CN_RESP_DOUBLE:
  case CN_RESP_BIGNUM:
    if ((rc = emit_value(p, c, -1)) < 0)
      return rc;
    p->state = ST_LINE;
    return CN_RESP_MORE;
  case CN_RESP_INT:
  case CN_RESP_BULK:
  case CN_RESP_BLOBERR:
  case CN_RESP_VERBATIM:
  case CN_RESP_ARRAY:
  case CN_RESP_MAP:
  case CN_RESP_SET:
  case CN_RESP_PUSH:
  case CN_RESP_ATTR:
    p->state = ST_NUM;
    return CN_RESP_MORE;
  case CN_RESP_BOOL:
    p->state = ST_BOOL;
    return CN_RESP_MORE;
  case CN_RESP_NULL:
    p->state = ST_NULL;
    return CN_RESP_MORE;
  default:
    return fail(p, "bad type byte %s", show(buf, sizeof buf, c));
  }
}


/* digit reads one byte of an integer, a length or a count. */
static int digit(cn_resp_t *p, unsigned char c) {
  char buf[8];
  if (c == '\r') {
    if (p->digits == 0)
      return fail(p, "empty number");
    p->state = ST_LF;
  } else if (c == '-' && p->digits == 0 && !p->neg) {
    p->neg = 1;
  } else if (c >= '0' && c <= '9') {
    if (p->digits == 19) /* any 19 digits fit in 64 bits */
      return fail(p, "number too long");
    p->num = p->num * 10 + (c - '0');
    p->digits++;
  } else {
    return fail(p, "bad byte %s in a number", show(buf, sizeof buf, c));
  }
  return CN_RESP_MORE;
}


/* one_byte reads a byte in the states that take one at a time. */
static int one_byte(cn_resp_t *p, unsigned char c) {
  char buf[8];
  switch (p->state) {
  case ST_TYPE:
    return start(p, c);
  case ST_NUM:
    return digit(p, c);
  case ST_BOOL:
    if (p->digits == 0 && (c == 't' || c == 'f')) {
      p->num = c == 't';
      p->digits = 1;
      return CN_RESP_MORE;
    }
    if (p->digits == 1 && c == '\r') {
      p->state = ST_LF;
      return CN_RESP_MORE;
    }
    return fail(p, "bad boolean byte %s", show(buf, sizeof buf, c));
  case ST_NULL:
    if (c != '\r')
      return fail(p, "bad null byte %s", show(buf, sizeof buf, c));
    p->state = ST_LF;
    return CN_RESP_MORE;
  case ST_BULK_CR:
    if (c != '\r')
      return fail(p, "bulk string not ended by CRLF");
    p->state = ST_BULK_LF;
    return CN_RESP_MORE;
  case ST_BULK_LF: {
    int rc;
    if (c != '\n')
      return fail(p, "bulk string not ended by CRLF");
    if ((rc = emit_end(p, p->type)) < 0)
      return rc;
    return element_done(p, 0);
  }
  default: /* ST_LF */
    if (c != '\n')
      return fail(p, "CR not followed by LF");
    return header_done(p);
  }
}


/* line reads a simple string's bytes up to its CR; returns the count
** used. */
static size_t line(cn_resp_t *p, const char *s, size_t n, int *rc) {
  const char *cr = memchr(s, '\r', n);
  size_t k = cr != NULL ? (size_t)(cr - s) : n;
  if (p->num + k > CN_RESP_MAX_LINE) {
    *rc = fail(p, "line longer than %d bytes", CN_RESP_MAX_LINE);
    return 0;
  }
  p->num += k;
  if ((*rc = emit_data(p, s, k)) < 0)
    return 0;
  if (cr == NULL)
    return k;
  p->state = ST_LF;
  return k + 1;
}


/* bulk reads a length-prefixed string's bytes; returns the count used. */
static size_t bulk(cn_resp_t *p, const char *s, size_t n, int *rc) {
  size_t k = p->left < n ? (size_t)p->left : n;
  if ((*rc = emit_data(p, s, k)) < 0)
    return 0;
  p->left -= k;
  if (p->left == 0)
    p->state = ST_BULK_CR;
  return k;
}


/* cn_resp_feed parses the next n bytes of the reply stream. Returns
** CN_RESP_DONE once a whole reply ended, with *used the count of bytes
** taken up to its end (the parser is then ready for the next reply);
** CN_RESP_MORE when all n bytes were taken inside a reply; or CN_EPROTO
** (p->err says why; a malformed or over-limit reply) or a hook's error,
** after which every call fails until cn_resp_reset. */
int cn_resp_feed(cn_resp_t *p, const char *buf, size_t n, size_t *used) {
  size_t i = 0, k;
  int rc = CN_RESP_MORE;
  uint64_t start_total = p->total;
  if (p->state == ST_ERR) {
    *used = 0;
    return CN_EPROTO;
  }
  while (i < n && rc == CN_RESP_MORE) {
    if (p->state == ST_LINE) {
      k = line(p, buf + i, n - i, &rc);
    } else if (p->state == ST_BULK) {
      k = bulk(p, buf + i, n - i, &rc);
    } else {
      k = 1;
      rc = one_byte(p, (unsigned char)buf[i]);
    }
    i += k;
    if (rc == CN_RESP_MORE && (p->total = start_total + i) > p->max_reply)
      rc = fail(p, "reply longer than the limit (%llu bytes)",
                (unsigned long long)p->max_reply);
  }
  *used = i;
  return rc;
}


/* cn_resp_feed_buf feeds the bytes of b from offset off on, as
** cn_resp_feed; *used counts those taken. */
int cn_resp_feed_buf(cn_resp_t *p, const cn_buf_t *b, size_t off,
                     size_t *used) {
  uv_buf_t iov[16];
  size_t done = 0, k;
  int i, n, rc;
  while ((n = cn_buf_iov(b, off + done, iov, 16)) > 0) {
    for (i = 0; i < n; i++) {
      rc = cn_resp_feed(p, iov[i].base, iov[i].len, &k);
      done += k;
      if (rc != CN_RESP_MORE) {
        *used = done;
        return rc;
      }
    }
  }
  *used = done;
  return CN_RESP_MORE;
}


/* cn_resp_need returns how many more bytes the reply in progress needs at
** least before the parser can make progress: the rest of a bulk string
** and its CRLF, else 1. */
uint64_t cn_resp_need(const cn_resp_t *p) {
  switch (p->state) {
  case ST_BULK:
    return p->left + 2;
  case ST_BULK_CR:
    return 2;
  default:
    return 1;
  }
}


/* cn_resp_header writes the header "<type><n>\r\n" (e.g. "*3\r\n",
** "$5\r\n") into dst, which has room for 24 bytes; returns its length. */
size_t cn_resp_header(char *dst, int type, size_t n) {
  char digits[20];
  size_t k = 0, len = 0;
  do {
    digits[k++] = (char)('0' + n % 10);
    n /= 10;
  } while (n > 0);
  dst[len++] = (char)type;
  while (k > 0)
    dst[len++] = digits[--k];
  dst[len++] = '\r';
  dst[len++] = '\n';
  return len;
}
