/* cn_ws.c: WebSocket frame headers (RFC 6455 5.2), masking, close codes,
** the handshake's accept value, and a UTF-8 check that carries a sequence
** split across frames. Lua binding in lcn_ws.c. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cn_ws.h"


/* cn_ws_parse reads the frame header at the start of the n bytes at p into
** f. Returns its length (2 to 14) once complete, 0 when more bytes are
** needed, or -CODE: -1002 for reserved bits or opcodes, a fragmented or
** long (over 125 bytes) control frame or a length not in its shortest
** form; -1009 for a data payload over max (refused before any of it is kept;
** a 2^63 length is a -1002). */
int cn_ws_parse(cn_ws_frame_t *f, const uint8_t *p, size_t n, uint64_t max) {
  size_t need = 2, ext, i;
  uint64_t len;
  if (n < 2)
    return 0;
  f->fin = p[0] >> 7;
  f->opcode = p[0] & 0x0f;
  f->masked = p[1] >> 7;
  len = p[1] & 0x7f;
  if ((p[0] & 0x70) != 0 || (f->opcode > 2 && f->opcode < 8) || f->opcode > 10)
    return -1002;
  if (f->opcode >= 8 && (!f->fin || len > CN_WS_MAX_CONTROL))
    return -1002;
  ext = len == 126 ? 2 : len == 127 ? 8 : 0;
  need += ext + (f->masked ? 4 : 0);
  if (n < need)
    return 0;
  if (ext > 0) {
    for (len = 0, i = 0; i < ext; i++)
      len = len << 8 | p[2 + i];
    if ((ext == 2 && len < 126) || (ext == 8 && len <= 0xffff)
        || (len >> 63) != 0)
      return -1002;
  }
  if (len > max && f->opcode < 8)
    return -1009;
  f->len = len;
  f->hlen = (uint8_t)need;
  if (f->masked)
    memcpy(f->mask, p + 2 + ext, 4);
  return (int)need;
}


/* cn_ws_header writes the header of a frame with len payload bytes into
** out (CN_WS_MAX_HEADER bytes), masked with mask when it is not NULL.
** Returns its length. */
size_t cn_ws_header(uint8_t *out, int fin, int opcode, uint64_t len,
                    const uint8_t *mask) {
  size_t n = 2, i;
  out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
  if (len < 126) {
    out[1] = (uint8_t)len;
  } else if (len <= 0xffff) {
    out[1] = 126;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    n = 4;
  } else {
    out[1] = 127;
    for (i = 0; i < 8; i++)
      out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    n = 10;
  }
  if (mask != NULL) {
    out[1] |= 0x80;
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}


/* cn_ws_mask XORs the n bytes at p with mask, p[0] being byte off of the
** payload. Masking twice unmasks. */
void cn_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off) {
  size_t i = 0;
  uint8_t m[8];
  for (i = 0; i < 8; i++)
    m[i] = mask[(off + i) & 3];
  for (i = 0; i + 8 <= n; i += 8) {
    uint64_t w, k;
    memcpy(&w, p + i, 8);
    memcpy(&k, m, 8);
    w ^= k;
    memcpy(p + i, &w, 8);
  }
  for (; i < n; i++)
    p[i] ^= m[i & 7];
}


/* cn_ws_close_code_ok says whether a peer may send code in a close frame
** (RFC 6455 7.4). */
int cn_ws_close_code_ok(unsigned code) {
  if (code >= 3000 && code <= 4999)
    return 1;
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011);
}


/* cn_ws_accept writes the Sec-WebSocket-Accept value for the key's n
** bytes into out (28 characters and a NUL). Returns 0, or -1. */
int cn_ws_accept(const char *key, size_t n, char out[29]) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL)
           && EVP_DigestUpdate(ctx, key, n)
           && EVP_DigestUpdate(ctx, guid, sizeof guid - 1)
           && EVP_DigestFinal_ex(ctx, md, &mdlen);
  EVP_MD_CTX_free(ctx);
  if (!ok || mdlen != 20)
    return -1;
  EVP_EncodeBlock((unsigned char *)out, md, 20);
  return 0;
}


/* cn_ws_key writes a fresh random Sec-WebSocket-Key (24 characters and a
** NUL) into out. Returns 0, or -1. */
int cn_ws_key(char out[25]) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return -1;
  EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw);
  return 0;
}


/* -- UTF-8 ------------------------------------------------------------- */

/* A state is the count of continuation bytes still due, and the range
** (lo, hi) allowed for the next one, which excludes overlong forms,
** surrogates and code points past U+10FFFF. */
#define STATE(need, lo, hi)                                                  \
  ((uint32_t)(need) | (lo) << 8 | (uint32_t)(hi) << 16)


static uint32_t lead(unsigned ch) {
  if (ch >= 0xc2 && ch <= 0xdf)
    return STATE(1, 0x80, 0xbf);
  if (ch == 0xe0)
    return STATE(2, 0xa0, 0xbf);
  if (ch == 0xed)
    return STATE(2, 0x80, 0x9f);
  if (ch >= 0xe1 && ch <= 0xef)
    return STATE(2, 0x80, 0xbf);
  if (ch == 0xf0)
    return STATE(3, 0x90, 0xbf);
  if (ch == 0xf4)
    return STATE(3, 0x80, 0x8f);
  if (ch >= 0xf1 && ch <= 0xf3)
    return STATE(3, 0x80, 0xbf);
  return 0xffffffffu; /* invalid as a first byte */
}


/* cn_utf8_scan checks the next n bytes of a UTF-8 text; *state (0 at the
** start) carries a sequence split between calls: at the end of the text
** it must be 0 again. Returns 0, or -1 at an invalid byte. */
int cn_utf8_scan(uint32_t *state, const uint8_t *p, size_t n) {
  uint32_t st = *state;
  size_t i = 0;
  while (i < n) {
    unsigned ch = p[i];
    if (st == 0) {
      uint64_t w = 0x8080808080808080ull;
      if (i + 8 <= n)
        memcpy(&w, p + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8; /* eight ASCII bytes */
        continue;
      }
      i++;
      if (ch < 0x80)
        continue;
      if ((st = lead(ch)) == 0xffffffffu)
        return -1;
      continue;
    }
    if (ch < ((st >> 8) & 0xff) || ch > (st >> 16))
      return -1;
    st = (st & 0xff) - 1 == 0 ? 0 : STATE((st & 0xff) - 1, 0x80, 0xbf);
    i++;
  }
  *state = st;
  return 0;
}
