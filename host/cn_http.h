/* cn_http.h: HTTP/1.1 message heads and chunked bodies (RFC 9112), parsed
** strictly from plain bytes: no libuv, no Lua, so that a fuzzer drives
** them as the host does. Engine in cn_http.c; Lua binding in lcn_http.c. */
#ifndef CN_HTTP_H
#define CN_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* What the scanners return besides -STATUS (-400, -414, -431, -505...). */
enum {
  CN_HTTP_MORE = 0, /* every byte given was used: give more */
  CN_HTTP_DONE = 1, /* the head (or the chunked body) ended */
  CN_HTTP_DATA = 2  /* chunk data follows: the caller takes left bytes */
};

/* A head scan validates a head as its bytes arrive, in pieces of any size,
** remembering only a few counters. Limits are set by cn_http_head_init's
** caller before the first byte. */
#define CN_HTTP_NOTED 4 /* framing field lines a scan notes, at most */
typedef struct cn_http_head_s {
  uint32_t max_target; /* request-target bytes; past them: 414 */
  uint32_t max_head;   /* bytes of the whole head; past them: 431 */
  uint32_t max_fields; /* header fields; past them: 431 */
  uint32_t len;        /* bytes scanned so far */
  uint32_t tok;        /* bytes of the current token */
  uint32_t nfields;
  uint8_t response; /* a status line instead of a request line */
  uint8_t state;
  uint8_t major;
  uint8_t nnoted; /* framing field lines noted (past CN_HTTP_NOTED: all) */
  uint16_t noted[CN_HTTP_NOTED]; /* where they start in the head */
} cn_http_head_t;

void cn_http_head_init(cn_http_head_t *h, int response);
int cn_http_head_scan(cn_http_head_t *h, const char *p, size_t n,
                      size_t *used);

/* A piece of a contiguous, validated head. */
typedef struct cn_http_str_s {
  const char *p;
  size_t n;
} cn_http_str_t;

enum {
  CN_HTTP_CHUNKED = 1 << 0,   /* Transfer-Encoding: chunked, last */
  CN_HTTP_CLOSE = 1 << 1,     /* Connection: close */
  CN_HTTP_KEEPALIVE = 1 << 2, /* Connection: keep-alive */
  CN_HTTP_UPGRADE = 1 << 3,   /* Connection: upgrade */
  CN_HTTP_EXPECT = 1 << 4,    /* Expect: 100-continue */
  CN_HTTP_HAS_CL = 1 << 5,    /* a Content-Length field */
  CN_HTTP_HAS_TE = 1 << 6,    /* a Transfer-Encoding field */
  CN_HTTP_HOST = 1 << 7,      /* a Host field */
  CN_HTTP_BAD_TE = 1 << 8,    /* a coding other than chunked */
  CN_HTTP_SEEN_CHUNKED = 1 << 9,
  CN_HTTP_TWICE = 1 << 10     /* chunked more than once */
};

/* How a body is framed (cn_http_msg_t.body when not a length). */
enum { CN_HTTP_BODY_CHUNKED = -1, CN_HTTP_BODY_CLOSE = -2 };

/* A message read from a validated head. */
typedef struct cn_http_msg_s {
  cn_http_str_t method, target; /* requests */
  cn_http_str_t reason;         /* responses */
  int status;                   /* responses */
  int minor;                    /* HTTP/1.minor */
  int64_t length;               /* Content-Length, -1 when none */
  unsigned flags;               /* CN_HTTP_CHUNKED... */
  int64_t body;                 /* bytes, or CN_HTTP_BODY_* */
} cn_http_msg_t;

size_t cn_http_start_line(cn_http_msg_t *m, const char *head, size_t len,
                          int response);
int cn_http_next_field(const char *head, size_t len, size_t *pos,
                       cn_http_str_t *name, cn_http_str_t *value);
int cn_http_field(cn_http_msg_t *m, cn_http_str_t name, cn_http_str_t value);
int cn_http_fields(cn_http_msg_t *m, const cn_http_head_t *h,
                   const char *head, size_t len, size_t pos);
int cn_http_framing(cn_http_msg_t *m, int response, int head_request);
int cn_http_keep_alive(const cn_http_msg_t *m);
int cn_http_decode_path(char *p, size_t *n);

/* A chunked body's framing, scanned as its bytes arrive. */
typedef struct cn_http_chunk_s {
  uint64_t left;  /* data bytes of the current chunk not yet taken */
  uint32_t line;  /* bytes of the current size line, or of the trailers */
  uint8_t state;
  uint8_t digits;
} cn_http_chunk_t;

#define CN_HTTP_CHUNK_LINE 4096   /* a size line with its extensions */
#define CN_HTTP_TRAILERS 16384    /* the trailer section */

void cn_http_chunk_init(cn_http_chunk_t *c);
int cn_http_chunk_scan(cn_http_chunk_t *c, const char *p, size_t n,
                       size_t *used);

#endif
