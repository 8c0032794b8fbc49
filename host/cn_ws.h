/* cn_ws.h: WebSocket frames (RFC 6455) and UTF-8 checking over plain
** bytes: no libuv, no Lua, so that a fuzzer drives them as the host does.
** Engine in cn_ws.c; Lua binding in lcn_ws.c. */
#ifndef CN_WS_H
#define CN_WS_H

#include <stddef.h>
#include <stdint.h>

enum {
  CN_WS_CONT = 0, CN_WS_TEXT = 1, CN_WS_BINARY = 2,
  CN_WS_CLOSE = 8, CN_WS_PING = 9, CN_WS_PONG = 10
};

#define CN_WS_MAX_HEADER 14
#define CN_WS_MAX_CONTROL 125

/* A frame's header. */
typedef struct cn_ws_frame_s {
  uint64_t len;   /* payload bytes */
  uint8_t fin;
  uint8_t opcode;
  uint8_t masked;
  uint8_t hlen;   /* header bytes: 2 to 14 */
  uint8_t mask[4];
} cn_ws_frame_t;

int cn_ws_parse(cn_ws_frame_t *f, const uint8_t *p, size_t n, uint64_t max);
size_t cn_ws_header(uint8_t *out, int fin, int opcode, uint64_t len,
                    const uint8_t *mask);
void cn_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off);
int cn_ws_close_code_ok(unsigned code);
int cn_ws_accept(const char *key, size_t n, char out[29]);
int cn_ws_key(char out[25]);

/* UTF-8 checking carried across pieces: *state starts at 0. */
int cn_utf8_scan(uint32_t *state, const uint8_t *p, size_t n);

#endif
