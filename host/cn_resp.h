/* cn_resp.h: the Redis protocol (RESP2 and RESP3): a streaming reply
** parser and the command encoder, plain C over bytes. Engine in cn_resp.c;
** Lua binding in lcn_redis.c; fuzzed by t/fuzz/fuzz_resp.c. */
#ifndef CN_RESP_H
#define CN_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "cn_buf.h"

#define CN_RESP_MAX_DEPTH 64   /* nesting the parser can hold at most */
#define CN_RESP_MAX_LINE 65536 /* bytes of a simple string, error, number */

/* Default limits (cn_resp_init). */
#define CN_RESP_MAX_BULK (512u << 20)  /* Redis's own proto-max-bulk-len */
#define CN_RESP_MAX_REPLY (1024u << 20) /* bytes of one whole reply */
#define CN_RESP_MAX_COUNT (1 << 24)     /* elements of one aggregate */
#define CN_RESP_DEPTH 32               /* default nesting limit */

enum { CN_RESP_MORE = 0, CN_RESP_DONE = 1 };

/* The types of values, by their RESP type byte. */
enum {
  CN_RESP_STATUS = '+', CN_RESP_ERROR = '-', CN_RESP_INT = ':',
  CN_RESP_BULK = '$', CN_RESP_ARRAY = '*', CN_RESP_NULL = '_',
  CN_RESP_DOUBLE = ',', CN_RESP_BOOL = '#', CN_RESP_BLOBERR = '!',
  CN_RESP_VERBATIM = '=', CN_RESP_BIGNUM = '(', CN_RESP_MAP = '%',
  CN_RESP_SET = '~', CN_RESP_PUSH = '>', CN_RESP_ATTR = '|'
};

/* Hooks see a reply as events, in order. value(type, n) opens a value:
** INT and BOOL carry it in n and are complete; NULL (also RESP2's $-1 and
** *-1) is complete; a string type (STATUS, ERROR, BULK, BLOBERR, VERBATIM,
** DOUBLE, BIGNUM) has n bytes (-1: a line, length unknown), given by data
** calls in one or more pieces, then end(type); an aggregate (ARRAY, MAP,
** SET, PUSH, ATTR) has n elements (a MAP or ATTR: n key-value pairs, 2n
** elements), given as values, then end(type). An ATTR precedes the value
** it describes and does not count as an element. A hook returns 0, or a
** negative error that stops the parser and is returned by feed. */
typedef struct cn_resp_hooks_s {
  int (*value)(void *ud, int type, int64_t n);
  int (*data)(void *ud, const char *p, size_t n);
  int (*end)(void *ud, int type);
} cn_resp_hooks_t;

typedef struct cn_resp_s {
  /* limits: cn_resp_init sets the defaults; change them between replies */
  uint64_t max_bulk;  /* bytes of one string */
  uint64_t max_reply; /* bytes of one reply, headers included */
  int64_t max_count;  /* elements of one aggregate (a map's: 2 per pair) */
  int max_depth;      /* nesting, at most CN_RESP_MAX_DEPTH */
  /* what is called, if anything, for each event (NULL: framing only) */
  const cn_resp_hooks_t *hooks;
  void *ud;
  /* progress through the current reply */
  uint64_t total; /* bytes of it fed so far */
  uint64_t num;   /* the number being read, or a line's length so far */
  uint64_t left;  /* bulk payload bytes still to come */
  uint8_t state, type, neg, digits, attr;
  int depth;
  struct {
    int64_t left; /* elements still to come */
    uint8_t type;
  } stack[CN_RESP_MAX_DEPTH];
  char err[112]; /* what was wrong, once feed failed */
} cn_resp_t;

void cn_resp_init(cn_resp_t *p);
void cn_resp_reset(cn_resp_t *p);
int cn_resp_feed(cn_resp_t *p, const char *buf, size_t n, size_t *used);
int cn_resp_feed_buf(cn_resp_t *p, const cn_buf_t *b, size_t off,
                     size_t *used);
uint64_t cn_resp_need(const cn_resp_t *p);
size_t cn_resp_header(char *dst, int type, size_t n);

#endif
