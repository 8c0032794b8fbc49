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
  XX(CN_EPROTO, "EPROTO", -5010, "protocol error")                           \
  XX(CN_EEXIST, "EEXIST", -5101, "exists")                                   \
  XX(CN_ENOTFOUND, "ENOTFOUND", -5102, "not found")                          \
  XX(CN_ENOTNUM, "ENOTNUM", -5103, "not a number")                           \
  XX(CN_ENOSPACE, "ENOSPACE", -5104, "no memory")                            \
  CN_TLS_ERRNO_MAP(XX)

/* TLS (cn_tls.c): the cause of a failed handshake or session. */
#define CN_TLS_ERRNO_MAP(XX)                                                 \
  XX(CN_ETLS, "ETLS", -5200, "tls: handshake failed")                        \
  XX(CN_ETLSPROTO, "ETLSPROTO", -5201, "tls: protocol error")                \
  XX(CN_ETLSTIMEOUT, "ETLSTIMEOUT", -5202, "tls: handshake timeout")         \
  XX(CN_ETLSEOF, "ETLSEOF", -5203, "tls: connection closed during handshake") \
  XX(CN_ETLSVERSION, "ETLSVERSION", -5204, "tls: no common protocol version") \
  XX(CN_ETLSCIPHER, "ETLSCIPHER", -5205, "tls: no shared cipher")            \
  XX(CN_ETLSALPN, "ETLSALPN", -5206, "tls: no common application protocol")  \
  XX(CN_ETLSRENEG, "ETLSRENEG", -5207, "tls: renegotiation refused")         \
  XX(CN_ETLSREJECT, "ETLSREJECT", -5208, "tls: peer rejected the certificate") \
  XX(CN_ETLSVERIFY, "ETLSVERIFY", -5209, "tls: certificate verify failed")   \
  XX(CN_ETLSHOST, "ETLSHOST", -5210,                                         \
     "tls: certificate verify failed: hostname mismatch")                    \
  XX(CN_ETLSCA, "ETLSCA", -5211, "tls: certificate verify failed: unknown ca") \
  XX(CN_ETLSSELF, "ETLSSELF", -5212,                                         \
     "tls: certificate verify failed: self-signed certificate")              \
  XX(CN_ETLSEXPIRED, "ETLSEXPIRED", -5213,                                   \
     "tls: certificate verify failed: certificate expired")                  \
  XX(CN_ETLSNOTYET, "ETLSNOTYET", -5214,                                     \
     "tls: certificate verify failed: certificate not yet valid")            \
  XX(CN_ENOTLS, "ENOTLS", -5215, "not a tls connection")                     \
  XX(CN_EISTLS, "EISTLS", -5216, "already a tls connection")

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
