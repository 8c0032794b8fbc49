/* cn_errno.h: every coronet error code, its name and message, defined once.
** Codes are negative ints; libuv's codes (negated errno values) pass
** through unchanged and take their text from libuv. */
#ifndef CN_ERRNO_H
#define CN_ERRNO_H

#include <uv.h>

/* XX(code, name, value, message) */
#define CN_ERRNO_MAP(XX)                                                     \
  XX(CN_ECLOSED, "ECLOSED", -5001, "closed")                                 \
  XX(CN_ETIMEOUT, "ETIMEOUT", -5002, "timeout")                              \
  XX(CN_ELINE, "ELINE", -5003, "line too long")                              \
  XX(CN_EBUSYR, "EBUSYR", -5004, "busy reading")                             \
  XX(CN_EBUSYW, "EBUSYW", -5005, "busy writing")                             \
  XX(CN_EUNEXPEOF, "EUNEXPEOF", -5006, "unexpected eof")                     \
  XX(CN_ERESET, "ERESET", -5007, "reset")                                    \
  XX(CN_ENOMEM, "ENOMEM", -5008, "out of memory")                            \
  XX(CN_EADDR, "EADDR", -5009, "bad address")                               \
  XX(CN_EEXIST, "EEXIST", -5101, "exists")                                   \
  XX(CN_ENOTFOUND, "ENOTFOUND", -5102, "not found")                          \
  XX(CN_ENOTNUM, "ENOTNUM", -5103, "not a number")                           \
  XX(CN_ENOSPACE, "ENOSPACE", -5104, "no memory")

enum {
  CN_EOF = UV_EOF,
#define XX(code, name, value, msg) code = value,
  CN_ERRNO_MAP(XX)
#undef XX
  CN_EMAX_ = 0
};

/* cn_strerror returns the short message for err: "eof", "closed", "reset",
** "timeout", or libuv's text ("connection refused") for OS errors. */
const char *cn_strerror(int err);

/* cn_err_name returns the symbolic name of err ("ECLOSED", "ECONNRESET"). */
const char *cn_err_name(int err);

#endif
