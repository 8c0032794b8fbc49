/* cn_errno.c: error names and messages (codes in cn_errno.h). */
#include "cn_errno.h"


const char *cn_strerror(int err) {
  switch (err) {
#define XX(code, name, value, msg) \
  case code:                       \
    return msg;
    CN_ERRNO_MAP(XX)
#undef XX
  case UV_EOF:
    return "eof";
  case UV_ECONNRESET:
  case UV_EPIPE:
    return "reset";
  case UV_ETIMEDOUT:
    return "timeout";
  case UV_ECANCELED:
    return "closed";
  default:
    return uv_strerror(err);
  }
}


const char *cn_err_name(int err) {
  switch (err) {
#define XX(code, name, value, msg) \
  case code:                       \
    return name;
    CN_ERRNO_MAP(XX)
#undef XX
  default:
    return uv_err_name(err);
  }
}
