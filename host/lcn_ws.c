/* lcn_ws.c: Lua binding of WebSocket frames (cn_ws.c). A frame reader
** belongs to one connection: it takes each frame straight from the
** connection's read chain, unmasks its payload into one Lua string, and
** checks the rules that need the bytes (masking, fragment order, size,
** UTF-8 across fragments, close codes). Reassembly, control frames and
** the close handshake live in lua/coronet/websocket.lua. */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <openssl/rand.h>

#include "cn.h"
#include "lcn.h"

#define READER_MT "coronet.ws.reader"

typedef struct {
  uint64_t max;     /* bytes a message may have */
  uint64_t msg_len; /* bytes of the fragmented message so far */
  uint32_t utf8;    /* UTF-8 state of the text message in progress */
  uint8_t client;   /* reads a server's frames: they must not be masked */
  uint8_t msg_op;   /* opcode of the message in progress, 0 when none */
} ws_reader;


/* reader(client, max_message) -> reader */
static int ws_reader_new(lua_State *L) {
  int client = lua_toboolean(L, 1);
  lua_Number max = luaL_checknumber(L, 2);
  ws_reader *R;
  luaL_argcheck(L, max >= 0, 2, "size must not be negative");
  R = lua_newuserdata(L, sizeof *R);
  memset(R, 0, sizeof *R);
  R->client = (uint8_t)client;
  R->max = (uint64_t)max;
  luaL_getmetatable(L, READER_MT);
  lua_setmetatable(L, -2);
  return 1;
}


static int protocol_fail(lua_State *L, int code) {
  static const char *const why[] = {"protocol error", "invalid utf-8",
                                    "message too big"};
  lcn_op_done();
  lua_pushnil(L);
  lua_pushstring(L, why[code == 1007 ? 1 : code == 1009 ? 2 : 0]);
  lua_pushinteger(L, code);
  return 3;
}


/* frame_wait parks until want bytes are buffered, at most timeout ms
** (0: none) from the start of the read, and not past the connection's
** read deadline. */
static int frame_wait(lua_State *L, cn_conn_t *c, size_t want,
                      uint64_t timeout) {
  int err = c->rerr;
  if (err == 0) {
    err = lcn_conn_wait(L, c, want, NULL, 0, timeout, c->rdeadline,
                        "ws:recv");
    if (err == 0) {
      lua_pushboolean(L, 0);
      return 1;
    }
  } else if (err == CN_EOF && c->in.len > 0) {
    err = CN_EUNEXPEOF;
  }
  lcn_op_done();
  return lcn_fail(L, err);
}


/* push_payload pushes the next n bytes of c's read chain, unmasked when f
** is masked, and drops them. With utf8 it checks them as text. Returns 0
** or -1 for invalid UTF-8 (the string is pushed still). */
static int push_payload(lua_State *L, cn_conn_t *c, const cn_ws_frame_t *f,
                        uint32_t *utf8) {
  luaL_Buffer b;
  uint64_t off = 0;
  int bad = 0;
  luaL_buffinit(L, &b);
  while (off < f->len) {
    char *dst = luaL_prepbuffer(&b);
    size_t k = f->len - off < LUAL_BUFFERSIZE ? (size_t)(f->len - off)
                                              : LUAL_BUFFERSIZE;
    cn_buf_copyout(&c->in, 0, dst, k);
    cn_buf_consume(&c->in, k);
    if (f->masked)
      cn_ws_mask((uint8_t *)dst, k, f->mask, off);
    if (utf8 != NULL && !bad)
      bad = cn_utf8_scan(utf8, (const uint8_t *)dst, k) < 0;
    luaL_addsize(&b, k);
    off += k;
  }
  luaL_pushresult(&b);
  cn_conn_consumed(c);
  return bad ? -1 : 0;
}


/* close_frame pushes what a close frame says: 8, reason, true, code (nil
** when the frame has no body). */
static int close_frame(lua_State *L, cn_conn_t *c, const cn_ws_frame_t *f) {
  uint8_t code[2];
  uint32_t utf8 = 0;
  cn_ws_frame_t rest = *f;
  if (f->len == 1)
    return protocol_fail(L, 1002);
  lua_pushinteger(L, CN_WS_CLOSE);
  if (f->len == 0) {
    lua_pushliteral(L, "");
    lua_pushboolean(L, 1);
    lua_pushnil(L);
    return 4;
  }
  cn_buf_copyout(&c->in, 0, code, 2);
  cn_buf_consume(&c->in, 2);
  if (f->masked)
    cn_ws_mask(code, 2, f->mask, 0);
  rest.len -= 2;
  memcpy(rest.mask, f->mask + 2, 2); /* the reason's bytes continue it */
  memcpy(rest.mask + 2, f->mask, 2);
  if (push_payload(L, c, &rest, &utf8) < 0 || utf8 != 0)
    return protocol_fail(L, 1007);
  if (!cn_ws_close_code_ok((unsigned)(code[0] << 8 | code[1])))
    return protocol_fail(L, 1002);
  lua_pushboolean(L, 1);
  lua_pushinteger(L, code[0] << 8 | code[1]);
  return 4;
}


/* data_frame pushes a data frame: the message's opcode, the payload and
** fin; or fails for invalid UTF-8 in a text message. */
static int data_frame(lua_State *L, cn_conn_t *c, ws_reader *R,
                      const cn_ws_frame_t *f) {
  int op = f->opcode != CN_WS_CONT ? f->opcode : R->msg_op;
  int bad;
  lua_pushinteger(L, op);
  bad = push_payload(L, c, f, op == CN_WS_TEXT ? &R->utf8 : NULL);
  R->msg_len += f->len;
  R->msg_op = (uint8_t)op;
  if (f->fin) {
    bad |= R->utf8 != 0;
    R->msg_op = 0;
    R->msg_len = 0;
    R->utf8 = 0;
  }
  if (bad)
    return protocol_fail(L, 1007);
  lua_pushboolean(L, f->fin);
  return 3;
}


/* read_frame(conn, reader [, timeout]) -> opcode, payload, fin [, code]
**   | nil, err [, close_code] | false
** Takes the next frame. A continuation carries its message's opcode; a
** close frame gives 8, reason, true, code. Refused frames give nil,
** "protocol error" (1002), "message too big" (1009) or "invalid utf-8"
** (1007) and the close code to send. timeout in seconds bounds the
** read. */
static int ws_read_frame(lua_State *L) {
  cn_conn_t *c = lcn_reader_conn(L, 1);
  ws_reader *R = luaL_checkudata(L, 2, READER_MT);
  lua_Number t = luaL_optnumber(L, 3, 0);
  uint64_t timeout = t > 0 ? (uint64_t)(t * 1000 + 0.5) : 0;
  uint8_t hb[CN_WS_MAX_HEADER];
  cn_ws_frame_t f;
  int rc;
  if (c == NULL)
    return 2;
  rc = cn_ws_parse(&f, hb, cn_buf_copyout(&c->in, 0, hb, sizeof hb),
                   R->max - R->msg_len);
  if (rc == 0)
    return frame_wait(L, c, c->in.len + 1, timeout);
  if (rc < 0)
    return protocol_fail(L, -rc);
  if (f.masked == R->client
      || (f.opcode == CN_WS_CONT && R->msg_op == 0)
      || ((f.opcode == CN_WS_TEXT || f.opcode == CN_WS_BINARY) && R->msg_op))
    return protocol_fail(L, 1002); /* masking, or fragments out of order */
  if (c->in.len < f.hlen + f.len)
    return frame_wait(L, c, (size_t)(f.hlen + f.len), timeout);
  lcn_op_done();
  cn_buf_consume(&c->in, f.hlen);
  if (f.opcode == CN_WS_CLOSE)
    return close_frame(L, c, &f);
  if (f.opcode >= CN_WS_CLOSE) {
    lua_pushinteger(L, f.opcode);
    push_payload(L, c, &f, NULL);
    lua_pushboolean(L, 1);
    return 3;
  }
  return data_frame(L, c, R, &f);
}


/* frame(opcode, data [, fin [, masked]]) -> the whole frame as a string;
** masked with a fresh random key when masked. */
static int ws_frame(lua_State *L) {
  int op = (int)luaL_checkinteger(L, 1);
  size_t n, h;
  const char *data = luaL_checklstring(L, 2, &n);
  int fin = lua_isnoneornil(L, 3) || lua_toboolean(L, 3);
  int masked = lua_toboolean(L, 4);
  uint8_t key[4];
  luaL_Buffer b;
  char *p;
  if (masked && RAND_bytes(key, 4) != 1)
    return luaL_error(L, "ws: no random bytes for a mask");
  luaL_buffinit(L, &b);
  p = luaL_prepbuffer(&b);
  h = cn_ws_header((uint8_t *)p, fin, op, n, masked ? key : NULL);
  luaL_addsize(&b, h);
  if (!masked) {
    luaL_addlstring(&b, data, n);
  } else {
    uint64_t off = 0;
    while (off < n) {
      size_t k = n - off < LUAL_BUFFERSIZE ? n - off : LUAL_BUFFERSIZE;
      p = luaL_prepbuffer(&b);
      memcpy(p, data + off, k);
      cn_ws_mask((uint8_t *)p, k, key, off);
      luaL_addsize(&b, k);
      off += k;
    }
  }
  luaL_pushresult(&b);
  return 1;
}


/* head(opcode, length [, fin]) -> the header of an unmasked frame, for a
** payload written after it without a copy */
static int ws_head(lua_State *L) {
  int op = (int)luaL_checkinteger(L, 1);
  lua_Number n = luaL_checknumber(L, 2);
  int fin = lua_isnoneornil(L, 3) || lua_toboolean(L, 3);
  uint8_t h[CN_WS_MAX_HEADER];
  luaL_argcheck(L, n >= 0, 2, "length must not be negative");
  lua_pushlstring(L, (const char *)h,
                  cn_ws_header(h, fin, op, (uint64_t)n, NULL));
  return 1;
}


/* accept(key) -> the Sec-WebSocket-Accept value for key */
static int ws_accept(lua_State *L) {
  size_t n;
  const char *key = luaL_checklstring(L, 1, &n);
  char out[29];
  if (cn_ws_accept(key, n, out) < 0)
    return luaL_error(L, "ws: SHA-1 failed");
  lua_pushlstring(L, out, 28);
  return 1;
}


/* key() -> a fresh Sec-WebSocket-Key */
static int ws_key(lua_State *L) {
  char out[25];
  if (cn_ws_key(out) < 0)
    return luaL_error(L, "ws: no random bytes for a key");
  lua_pushlstring(L, out, 24);
  return 1;
}


/* utf8(s) -> whether s is valid UTF-8 */
static int ws_utf8(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  uint32_t st = 0;
  lua_pushboolean(L, cn_utf8_scan(&st, (const uint8_t *)s, n) == 0 && st == 0);
  return 1;
}


static const luaL_Reg funcs[] = {
  {"reader", ws_reader_new}, {"read_frame", ws_read_frame},
  {"frame", ws_frame},       {"head", ws_head},
  {"accept", ws_accept},     {"key", ws_key},
  {"utf8", ws_utf8},         {NULL, NULL}};


/* luaopen_coronet_ws returns the functions above. */
int luaopen_coronet_ws(lua_State *L) {
  return lcn_lib(L, funcs, READER_MT, NULL);
}
