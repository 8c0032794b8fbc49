/* cn_watch.c: --watch. Watches the script's directory (so that an editor
** that writes a new file and renames it over the script is still seen)
** and calls back once per burst of changes to a .lua file in it. */
#include <stdlib.h>
#include <string.h>

#include "cn.h"

#define DEBOUNCE_MS 150 /* changes closer than this give one reload */


static void debounce_cb(uv_timer_t *t) {
  cn_watch_t *w = t->data;
  w->cb(w->arg);
}


static int is_lua(const char *name) {
  size_t n = strlen(name);
  return n > 4 && strcmp(name + n - 4, ".lua") == 0;
}


static void event_cb(uv_fs_event_t *h, const char *name, int events,
                     int status) {
  cn_watch_t *w = h->data;
  (void)events;
  if (status < 0) {
    cn_log(CN_LOG_WARN, "watch %s: %s", w->dir, uv_strerror(status));
    return;
  }
  if (name != NULL && strcmp(name, w->base) != 0 && !is_lua(name))
    return;
  uv_timer_start(&w->debounce, debounce_cb, DEBOUNCE_MS, 0);
}


/* cn_watch_start watches the directory of script on loop, calling cb(arg)
** after changes settle. Returns 0 or a UV_E* code. */
int cn_watch_start(cn_watch_t *w, uv_loop_t *loop, const char *script,
                   void (*cb)(void *arg), void *arg) {
  const char *slash = strrchr(script, '/');
  size_t dlen = slash != NULL ? (size_t)(slash - script) : 0;
  int rc;
  memset(w, 0, sizeof *w);
  if (dlen >= sizeof w->dir || strlen(script) - dlen >= sizeof w->base)
    return UV_ENAMETOOLONG;
  if (slash == NULL) {
    strcpy(w->dir, ".");
    strcpy(w->base, script);
  } else {
    memcpy(w->dir, script, dlen == 0 ? 1 : dlen);
    w->dir[dlen == 0 ? 1 : dlen] = '\0';
    strcpy(w->base, slash + 1);
  }
  w->cb = cb;
  w->arg = arg;
  uv_timer_init(loop, &w->debounce);
  w->debounce.data = w;
  uv_fs_event_init(loop, &w->ev);
  w->ev.data = w;
  if ((rc = uv_fs_event_start(&w->ev, event_cb, w->dir, 0)) < 0) {
    cn_watch_close(w);
    return rc;
  }
  w->active = 1;
  return 0;
}


void cn_watch_close(cn_watch_t *w) {
  if (w->closed)
    return;
  w->closed = 1;
  uv_close((uv_handle_t *)&w->ev, NULL);
  uv_close((uv_handle_t *)&w->debounce, NULL);
}
