/* cn_http.c: HTTP/1.1 heads and chunked bodies (RFC 9112), strictly: a
** head is validated byte by byte as it arrives (cn_http_head_scan), then
** read from one contiguous span (cn_http_start_line, cn_http_next_field)
** and its framing judged (cn_http_field, cn_http_framing). Lines end in
** CRLF only: a lone LF, a bare CR, obs-fold, whitespace before a colon, a
** control byte in a value or a byte outside a token is a 400. Lua binding
** in lcn_http.c. */
#include <string.h>

#include "cn_http.h"

enum {
  S_START, S_START_LF, S_METHOD, S_TARGET, S_VERSION, S_LINE_LF, S_STATUS,
  S_REASON, S_FIELD, S_NAME, S_VALUE, S_VALUE_LF, S_END_LF
};

#define MAX_METHOD 32


/* CLASS: what each byte may be part of. */
enum { TCHAR = 1, VCHAR = 2, TEXT = 4 };
static const unsigned char CLASS[256] = {
  0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  4, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6,
  7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6,
  6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0,
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4};


/* is_tchar says whether ch may appear in a token (RFC 9110 5.6.2). */
static int is_tchar(unsigned ch) { return ch < 256 && (CLASS[ch] & TCHAR); }


/* is_vchar says whether ch is visible ASCII (a target byte). */
static int is_vchar(unsigned ch) { return ch < 256 && (CLASS[ch] & VCHAR); }


/* is_text says whether ch may appear in a field value or a reason phrase:
** visible, obs-text, space or tab. */
static int is_text(unsigned ch) { return ch < 256 && (CLASS[ch] & TEXT); }


static int hex_value(unsigned ch) {
  if (ch - '0' < 10)
    return (int)(ch - '0');
  ch |= 0x20;
  if (ch - 'a' < 6)
    return (int)(ch - 'a' + 10);
  return -1;
}


/* cn_http_head_init readies h for a new head: a request's, or with
** response set a response's. The limits are kept. */
void cn_http_head_init(cn_http_head_t *h, int response) {
  h->len = h->tok = h->nfields = 0;
  h->state = S_START;
  h->major = h->nnoted = 0;
  h->response = (uint8_t)(response != 0);
}


/* version_byte checks byte i of "HTTP/x.y" and returns the next state: the
** same while inside it, S_LINE_LF (request) or S_STATUS (response) at its
** end, or -STATUS. */
static int version_byte(cn_http_head_t *h, unsigned ch) {
  uint32_t i = h->tok++;
  if (i < 5)
    return ch == (unsigned)"HTTP/"[i] ? S_VERSION : -400;
  if (i == 5 || i == 7) {
    if (ch - '0' >= 10)
      return -400;
    if (i == 5)
      h->major = (uint8_t)(ch - '0');
    return S_VERSION;
  }
  if (i == 6)
    return ch == '.' ? S_VERSION : -400;
  if (ch != (h->response ? ' ' : '\r'))
    return -400;
  if (h->major != 1)
    return -505;
  h->tok = 0;
  return h->response ? S_STATUS : S_LINE_LF;
}


/* line_byte handles one byte of the request or status line. */
static int line_byte(cn_http_head_t *h, int st, unsigned ch) {
  switch (st) {
  case S_START:
    if (ch == '\r')
      return S_START_LF; /* empty lines before a request are skipped */
    h->tok = 0;
    if (h->response)
      return version_byte(h, ch);
    h->tok = 1;
    return is_tchar(ch) ? S_METHOD : -400;
  case S_START_LF:
    return ch == '\n' ? S_START : -400;
  case S_METHOD:
    if (ch == ' ') {
      h->tok = 0;
      return S_TARGET;
    }
    return is_tchar(ch) && ++h->tok <= MAX_METHOD ? S_METHOD : -400;
  case S_TARGET:
    if (ch == ' ' && h->tok > 0) {
      h->tok = 0;
      return S_VERSION;
    }
    if (!is_vchar(ch))
      return -400;
    return ++h->tok > h->max_target || h->len > h->max_head ? -414 : S_TARGET;
  case S_VERSION:
    return version_byte(h, ch);
  case S_STATUS:
    if (h->tok++ < 3)
      return ch - '0' < 10 ? S_STATUS : -400;
    if (ch == '\r')
      return S_LINE_LF;
    return ch == ' ' ? S_REASON : -400;
  default: /* S_REASON */
    if (ch == '\r')
      return S_LINE_LF;
    return is_text(ch) ? S_REASON : -400;
  }
}


/* span returns where the run of bytes of class cls from s[i] ends, at
** most n. */
static size_t span(const unsigned char *s, size_t i, size_t n, unsigned cls) {
  while (i < n && (CLASS[s[i]] & cls))
    i++;
  return i;
}


/* is_name says whether s, case-insensitively, is the lower-case lit. */
static int is_name(cn_http_str_t s, const char *lit, size_t n) {
  size_t i;
  if (s.n != n)
    return 0;
  for (i = 0; i < n; i++)
    if ((s.p[i] | 0x20) != lit[i] && s.p[i] != lit[i])
      return 0;
  return 1;
}

#define IS(s, lit) is_name(s, lit, sizeof lit - 1)


/* FIRST[n]: the first letter, in lower case, of the framing field name
** of n bytes (Host, Expect, Connection, Content-Length,
** Transfer-Encoding), else 0. */
static const char FIRST[18] = {0, 0, 0, 0, 'h', 0, 'e', 0, 0, 0,
                               'c', 0, 0, 0, 'c', 0, 0, 't'};


/* note_name notes where the field line whose name is s[from..i) starts
** when the name may bear on framing (its length and first letter those
** of a framing field's: cn_http_field tells); past CN_HTTP_NOTED of them,
** for a name begun in an earlier piece (from == NO_NAME), or one that
** starts past 64 KiB, cn_http_fields reads every field line. s is the
** piece that began at byte h->len of the head. */
#define NO_NAME ((size_t)-1)
static void note_name(cn_http_head_t *h, const unsigned char *s,
                      size_t from, size_t i) {
  if (from == NO_NAME || h->len + from > UINT16_MAX) {
    h->nnoted = CN_HTTP_NOTED + 1; /* (a position past noted's range) */
    return;
  }
  if (i - from > 17 || (s[from] | 0x20) != FIRST[i - from])
    return;
  if (h->nnoted < CN_HTTP_NOTED)
    h->noted[h->nnoted] = (uint16_t)(h->len + from);
  if (h->nnoted <= CN_HTTP_NOTED)
    h->nnoted++;
}


/* field_bytes reads bytes *at..n of the field lines and the empty line
** after them, from state st, and moves *at past them. Returns the state
** it stopped in (at n), -CN_HTTP_DONE after the last, or -STATUS. Names
** and values, most of a head's bytes, are read in tight loops. */
static int field_bytes(cn_http_head_t *h, int st, const unsigned char *s,
                       size_t n, size_t *at) {
  size_t i = *at, name = NO_NAME; /* where the current name began */
  for (; i < n; i++) {
    unsigned ch = s[i];
    switch (st) {
    case S_VALUE:
      if ((i = span(s, i, n, TEXT)) == n)
        goto out;
      if (s[i] != '\r')
        return -400;
      st = S_VALUE_LF;
      break;
    case S_NAME:
      if ((i = span(s, i, n, TCHAR)) == n)
        goto out;
      if (s[i] != ':')
        return -400; /* whitespace before the colon */
      note_name(h, s, name, i);
      st = S_VALUE;
      break;
    case S_FIELD:
      if (ch == '\r') {
        st = S_END_LF;
        break;
      }
      if (!(CLASS[ch] & TCHAR)) /* whitespace here is obs-fold */
        return -400;
      if (++h->nfields > h->max_fields)
        return -431;
      name = i;
      st = S_NAME;
      break;
    case S_END_LF:
      if (ch != '\n')
        return -400;
      *at = i + 1;
      return -CN_HTTP_DONE;
    default: /* S_LINE_LF, S_VALUE_LF */
      if (ch != '\n')
        return -400;
      st = S_FIELD;
    }
  }
out:
  *at = i;
  return st;
}


static int is_line_state(int st) {
  return st < S_LINE_LF || st == S_STATUS || st == S_REASON;
}


/* cn_http_head_scan validates the next n bytes of a head. Returns
** CN_HTTP_MORE when all were used and the head goes on; CN_HTTP_DONE when
** it ended, *used bytes into p (h->len counts the whole head); -STATUS
** for a head to refuse: 400 (syntax), 414 (target), 431 (too many or too
** large fields), 505 (HTTP major version not 1). The bytes within
** max_head go in runs through field_bytes and a target loop; those past
** it one at a time, to the first error: 431, or 414 in a target. */
int cn_http_head_scan(cn_http_head_t *h, const char *p, size_t n,
                      size_t *used) {
  const unsigned char *s = (const unsigned char *)p;
  int st = h->state;
  size_t i = 0, lim = 0, start = h->len;
  if (h->len < h->max_head)
    lim = h->max_head - h->len < n ? h->max_head - h->len : n;
  while (i < lim && st >= 0) { /* h->len stays <= max_head meanwhile */
    if (!is_line_state(st)) {
      st = field_bytes(h, st, s, lim, &i);
      continue;
    }
    if (st == S_TARGET || st == S_METHOD) { /* tok bytes of it so far */
      size_t k = i + (st == S_TARGET ? h->max_target : MAX_METHOD) - h->tok,
             from = i;
      i = span(s, i, k < lim ? k : lim, st == S_TARGET ? VCHAR : TCHAR);
      h->tok += (uint32_t)(i - from);
    } else if (st == S_VERSION && h->tok == 0 && lim - i >= 9 &&
               memcmp(s + i, "HTTP/1.", 7) == 0 &&
               (unsigned)(s[i + 7] - '0') < 10 &&
               s[i + 8] == '\r') { /* a request's, whole */
      h->major = 1;
      i += 9;
      st = S_LINE_LF;
      continue;
    }
    if (i < lim)
      st = line_byte(h, st, s[i++]);
  }
  /* the bytes past max_head (the loop above stopped at lim): 431, but in
  ** a target, where line_byte says 414 */
  for (h->len = (uint32_t)(start + i); i < n && st >= 0; i++) {
    h->len++;
    if (st != S_TARGET)
      return -431;
    st = line_byte(h, st, s[i]);
  }
  if (st == -CN_HTTP_DONE) {
    *used = i;
    h->state = S_START;
    return CN_HTTP_DONE;
  }
  if (st < 0)
    return st;
  h->state = (uint8_t)st;
  *used = n;
  return CN_HTTP_MORE;
}


/* -- Reading a validated head -------------------------------------------- */


/* cn_http_start_line reads the request line (or status line) of head, the
** len bytes that cn_http_head_scan validated, into m, and returns the
** offset of the first field line. */
size_t cn_http_start_line(cn_http_msg_t *m, const char *head, size_t len,
                          int response) {
  size_t i = 0, j;
  memset(m, 0, sizeof *m);
  m->length = -1;
  while (i < len && head[i] == '\r')
    i += 2; /* empty lines */
  if (!response) {
    j = i;
    while (head[j] != ' ')
      j++;
    m->method.p = head + i;
    m->method.n = j - i;
    i = ++j;
    while (head[j] != ' ')
      j++;
    m->target.p = head + i;
    m->target.n = j - i;
    m->minor = head[j + 8] - '0';
    return j + 11; /* " HTTP/1.x\r\n" */
  }
  m->minor = head[i + 7] - '0';
  i += 9;
  m->status = (head[i] - '0') * 100 + (head[i + 1] - '0') * 10
              + (head[i + 2] - '0');
  i += 3;
  j = i;
  while (head[j] != '\r')
    j++;
  m->reason.p = head + i + (j > i); /* after the space */
  m->reason.n = j > i ? j - i - 1 : 0;
  return j + 2;
}


static int is_ows(char ch) { return ch == ' ' || ch == '\t'; }


/* trim drops leading and trailing spaces and tabs from s. */
static cn_http_str_t trim(const char *p, size_t n) {
  cn_http_str_t s;
  while (n > 0 && is_ows(*p)) {
    p++;
    n--;
  }
  while (n > 0 && is_ows(p[n - 1]))
    n--;
  s.p = p;
  s.n = n;
  return s;
}


/* cn_http_next_field reads the field line at *pos of a validated head into
** name and value (without its surrounding whitespace) and moves *pos past
** it. Returns 0, and moves *pos past the head, at the empty line that ends
** the head (or at the end of len bytes, or at a line without a colon and
** CR: as a head that was not validated may end). */
int cn_http_next_field(const char *head, size_t len, size_t *pos,
                       cn_http_str_t *name, cn_http_str_t *value) {
  const char *p = head + *pos, *colon, *cr;
  if (*pos >= len || *p == '\r') {
    *pos += 2;
    return 0;
  }
  colon = memchr(p, ':', len - *pos);
  cr = colon ? memchr(colon, '\r', len - (size_t)(colon - head)) : NULL;
  if (cr == NULL)
    return 0; /* not a validated head: no more fields */
  name->p = p;
  name->n = (size_t)(colon - p);
  *value = trim(colon + 1, (size_t)(cr - colon - 1));
  *pos = (size_t)(cr - head) + 2;
  return 1;
}


/* -- Framing --------------------------------------------------------------- */


/* next_item returns the next element of the comma-separated list s (empty
** elements skipped), trimmed, and moves s past it; n == 0 at the end. */
static cn_http_str_t next_item(cn_http_str_t *s) {
  cn_http_str_t item;
  for (;;) {
    const char *comma = memchr(s->p, ',', s->n);
    size_t k = comma != NULL ? (size_t)(comma - s->p) : s->n;
    item = trim(s->p, k);
    s->p += k + (comma != NULL);
    s->n -= k + (comma != NULL);
    if (item.n > 0 || s->n == 0)
      return item;
  }
}


/* content_length reads one Content-Length value: a list of equal decimal
** numbers. Returns 0, or -400. */
static int content_length(cn_http_msg_t *m, cn_http_str_t v) {
  cn_http_str_t item;
  if (v.n == 0)
    return -400;
  while ((item = next_item(&v)).n > 0) {
    int64_t n = 0;
    size_t i;
    if (item.n > 18)
      return -400;
    for (i = 0; i < item.n; i++) {
      if ((unsigned)item.p[i] - '0' >= 10)
        return -400;
      n = n * 10 + (item.p[i] - '0');
    }
    if (m->length >= 0 && m->length != n)
      return -400; /* two different lengths: which one frames it? */
    m->length = n;
  }
  m->flags |= CN_HTTP_HAS_CL;
  return 0;
}


/* transfer_encoding notes the codings: only one "chunked", last, frames
** a request; other codings are not understood. */
static void transfer_encoding(cn_http_msg_t *m, cn_http_str_t v) {
  cn_http_str_t item;
  m->flags |= CN_HTTP_HAS_TE;
  while ((item = next_item(&v)).n > 0) {
    if (!IS(item, "chunked")) {
      m->flags |= CN_HTTP_BAD_TE;
      m->flags &= ~(unsigned)CN_HTTP_CHUNKED;
    } else if (m->flags & CN_HTTP_SEEN_CHUNKED) {
      m->flags |= CN_HTTP_TWICE;
    } else {
      m->flags |= CN_HTTP_CHUNKED | CN_HTTP_SEEN_CHUNKED;
    }
  }
}


static void connection(cn_http_msg_t *m, cn_http_str_t v) {
  cn_http_str_t item;
  while ((item = next_item(&v)).n > 0) {
    if (IS(item, "close"))
      m->flags |= CN_HTTP_CLOSE;
    else if (IS(item, "keep-alive"))
      m->flags |= CN_HTTP_KEEPALIVE;
    else if (IS(item, "upgrade"))
      m->flags |= CN_HTTP_UPGRADE;
  }
}


/* cn_http_field notes what the field name: value says about framing and
** the connection. Returns 0, or -STATUS: 400 for a bad or conflicting
** Content-Length or a second Host, 417 for an expectation other than
** 100-continue. */
int cn_http_field(cn_http_msg_t *m, cn_http_str_t name, cn_http_str_t value) {
  switch (name.n) {
  case 4:
    if (!IS(name, "host"))
      return 0;
    if (m->flags & CN_HTTP_HOST)
      return -400;
    m->flags |= CN_HTTP_HOST;
    return 0;
  case 6:
    if (!IS(name, "expect"))
      return 0;
    if (!IS(value, "100-continue"))
      return -417;
    m->flags |= CN_HTTP_EXPECT;
    return 0;
  case 10:
    if (IS(name, "connection"))
      connection(m, value);
    return 0;
  case 14:
    return IS(name, "content-length") ? content_length(m, value) : 0;
  case 17:
    if (IS(name, "transfer-encoding"))
      transfer_encoding(m, value);
    return 0;
  default:
    return 0;
  }
}


/* cn_http_fields runs the field lines of a validated head (at pos of the
** len bytes at head, which h scanned) through cn_http_field, and returns
** the first failure, or 0: only those h noted, when it could (the others
** do not bear on framing). */
int cn_http_fields(cn_http_msg_t *m, const cn_http_head_t *h,
                   const char *head, size_t len, size_t pos) {
  cn_http_str_t name, value;
  int k, rc;
  if (h->nnoted <= CN_HTTP_NOTED) {
    for (k = 0; k < h->nnoted; k++) {
      pos = h->noted[k];
      cn_http_next_field(head, len, &pos, &name, &value);
      if ((rc = cn_http_field(m, name, value)) < 0)
        return rc;
    }
    return 0;
  }
  while (cn_http_next_field(head, len, &pos, &name, &value))
    if ((rc = cn_http_field(m, name, value)) < 0)
      return rc;
  return 0;
}


/* cn_http_framing decides, once every field went through cn_http_field,
** how m's body is framed (m->body). Requests: both Content-Length and
** Transfer-Encoding, Transfer-Encoding in HTTP/1.0, codings that do not
** end in one chunked, or an HTTP/1.1 request without Host is a 400;
** another coding before chunked a 501. Responses
** (head_request: to a HEAD) follow RFC 9112 6.3. Returns 0 or -STATUS. */
int cn_http_framing(cn_http_msg_t *m, int response, int head_request) {
  unsigned f = m->flags;
  if (response) {
    if (head_request || m->status / 100 == 1 || m->status == 204
        || m->status == 304)
      m->body = 0;
    else if (f & CN_HTTP_HAS_TE)
      m->body = f & CN_HTTP_CHUNKED ? CN_HTTP_BODY_CHUNKED : CN_HTTP_BODY_CLOSE;
    else
      m->body = f & CN_HTTP_HAS_CL ? m->length : CN_HTTP_BODY_CLOSE;
    return 0;
  }
  if ((f & CN_HTTP_HAS_TE) && ((f & CN_HTTP_HAS_CL) || m->minor == 0))
    return -400;
  if (m->minor >= 1 && !(f & CN_HTTP_HOST))
    return -400;
  if (f & CN_HTTP_HAS_TE) {
    if (!(f & CN_HTTP_CHUNKED) || (f & CN_HTTP_TWICE))
      return -400; /* the body's end cannot be known */
    if (f & CN_HTTP_BAD_TE)
      return -501;
    m->body = CN_HTTP_BODY_CHUNKED;
    return 0;
  }
  m->body = m->length >= 0 ? m->length : 0;
  return 0;
}


/* cn_http_keep_alive says whether the connection may carry another
** message after m: HTTP/1.1 unless "Connection: close", HTTP/1.0 only
** with "Connection: keep-alive". */
int cn_http_keep_alive(const cn_http_msg_t *m) {
  if (m->flags & CN_HTTP_CLOSE)
    return 0;
  return m->minor >= 1 || (m->flags & CN_HTTP_KEEPALIVE);
}


/* cn_http_decode_path decodes the %XX escapes of the n bytes at p in
** place and updates n. Returns 0, or -400 for a bad escape or a NUL. */
int cn_http_decode_path(char *p, size_t *n) {
  size_t i, o = 0;
  for (i = 0; i < *n; i++, o++) {
    int hi, lo;
    if (p[i] != '%') {
      p[o] = p[i];
      continue;
    }
    if (i + 2 >= *n)
      return -400;
    hi = hex_value((unsigned char)p[i + 1]);
    lo = hex_value((unsigned char)p[i + 2]);
    if (hi < 0 || lo < 0 || (hi | lo) == 0)
      return -400;
    p[o] = (char)(hi * 16 + lo);
    i += 2;
  }
  *n = o;
  return 0;
}


/* -- Chunked bodies ------------------------------------------------------- */

enum {
  C_SIZE, C_SIZE_MORE, C_SIZE_END, C_EXT, C_SIZE_LF, C_DATA, C_DATA_CR,
  C_DATA_LF, C_TRAILER, C_TR_NAME, C_TR_VALUE, C_TR_LF, C_END_LF
};


/* cn_http_chunk_init readies c for a new chunked body. */
void cn_http_chunk_init(cn_http_chunk_t *c) {
  memset(c, 0, sizeof *c);
  c->state = C_SIZE;
}


/* size_byte handles one byte of a chunk-size line. */
static int size_byte(cn_http_chunk_t *c, int st, unsigned ch) {
  int v;
  if (++c->line > CN_HTTP_CHUNK_LINE)
    return -400;
  switch (st) {
  case C_SIZE:
  case C_SIZE_MORE:
    if ((v = hex_value(ch)) >= 0) {
      if (++c->digits > 15)
        return -400; /* past 2^60: no body is that long */
      c->left = c->left * 16 + (uint64_t)v;
      return C_SIZE_MORE;
    }
    if (st == C_SIZE)
      return -400;
    /* fall through */
  case C_SIZE_END:
    if (ch == ' ' || ch == '\t')
      return C_SIZE_END;
    if (ch == ';')
      return C_EXT;
    return ch == '\r' ? C_SIZE_LF : -400;
  case C_EXT:
    if (ch == '\r')
      return C_SIZE_LF;
    return is_text(ch) ? C_EXT : -400;
  default: /* C_SIZE_LF */
    if (ch != '\n')
      return -400;
    c->line = 0;
    return c->left > 0 ? C_DATA : C_TRAILER;
  }
}


/* trailer_byte handles one byte after chunk data, or of the trailers. */
static int trailer_byte(cn_http_chunk_t *c, int st, unsigned ch) {
  if (st >= C_TRAILER && ++c->line > CN_HTTP_TRAILERS)
    return -431;
  switch (st) {
  case C_DATA_CR:
    return ch == '\r' ? C_DATA_LF : -400;
  case C_DATA_LF:
    c->digits = 0;
    c->line = 0;
    return ch == '\n' ? C_SIZE : -400;
  case C_TRAILER:
    if (ch == '\r')
      return C_END_LF;
    return is_tchar(ch) ? C_TR_NAME : -400;
  case C_TR_NAME:
    if (ch == ':')
      return C_TR_VALUE;
    return is_tchar(ch) ? C_TR_NAME : -400;
  case C_TR_VALUE:
    if (ch == '\r')
      return C_TR_LF;
    return is_text(ch) ? C_TR_VALUE : -400;
  case C_TR_LF:
    return ch == '\n' ? C_TRAILER : -400;
  default: /* C_END_LF */
    return ch == '\n' ? -CN_HTTP_DONE : -400;
  }
}


/* cn_http_chunk_scan reads the framing of a chunked body from the n bytes
** at p, and sets *used to the bytes it took. Returns CN_HTTP_DATA when
** c->left bytes of chunk data follow (the caller takes them, lowering
** c->left, and calls again); CN_HTTP_MORE when it used all n; CN_HTTP_DONE
** after the last chunk and the trailers (which are checked, not kept);
** -400 for bad framing, -431 for trailers that are too large. */
int cn_http_chunk_scan(cn_http_chunk_t *c, const char *p, size_t n,
                       size_t *used) {
  const unsigned char *s = (const unsigned char *)p;
  int st = c->state;
  size_t i = 0;
  if (st == C_DATA) {
    if (c->left > 0) {
      *used = 0;
      return CN_HTTP_DATA;
    }
    st = C_DATA_CR;
  }
  for (; i < n; i++) {
    st = st <= C_SIZE_LF ? size_byte(c, st, s[i]) : trailer_byte(c, st, s[i]);
    if (st < 0) {
      c->state = (uint8_t)C_END_LF;
      *used = i + 1;
      return st == -CN_HTTP_DONE ? CN_HTTP_DONE : st;
    }
    if (st == C_DATA) {
      c->state = C_DATA;
      *used = i + 1;
      return CN_HTTP_DATA;
    }
  }
  c->state = (uint8_t)st;
  *used = n;
  return CN_HTTP_MORE;
}
