/* main.c: the coronet command line. Parses options into a cn_config_t,
** finds the Lua modules, and hands over to cn_run (cn_worker.c). */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <luajit.h>

#include "cn.h"
#include "lcn.h"

#ifndef CN_LUADIR
#define CN_LUADIR "/usr/local/share/lua/5.1"
#endif

#define DEFAULT_LISTEN "127.0.0.1:7000"

static const char *bus_url; /* --bus */

static const char usage_text[] =
  "usage: coronet [options] SCRIPT [ARGS...]\n"
  "       coronet --run SCRIPT [ARGS...]\n"
  "\n"
  "Runs SCRIPT, a Lua file that returns a handler function, as a TCP\n"
  "server: each accepted connection runs handler(conn) in its own task.\n"
  "\n"
  "Options (they may also follow SCRIPT; '--' ends them):\n"
  "  -l, --listen ADDR       listen on ADDR: HOST:PORT, [IPV6]:PORT, :PORT\n"
  "                          or unix:PATH; repeatable (default " DEFAULT_LISTEN
  ")\n"
  "                          port 0 picks a free port, shown in the startup\n"
  "                          line 'listening on HOST:PORT'; tls://ADDR\n"
  "                          serves TLS\n"
  "      --tls-cert FILE     certificate (PEM, chain after it) for tls://\n"
  "      --tls-key FILE      addresses, and its key; repeat the pair for\n"
  "                          more names: SNI picks the certificate, the\n"
  "                          first is the default. SIGHUP reads them again\n"
  "      --tls-alpn LIST     protocols TLS clients may pick, e.g. http/1.1\n"
  "  -w, --workers N         worker threads, each with its own loop and Lua\n"
  "                          state (default 1; 'auto' = one per core)\n"
  "      --watch             reload SCRIPT when it changes on disk\n"
  "                          (SIGHUP always reloads)\n"
  "  -r, --run               run SCRIPT as a program: its main chunk is the\n"
  "                          first task, arguments after SCRIPT are its own\n"
  "                          (in 'arg' and '...'), and coronet exits when the\n"
  "                          chunk ends or calls os.exit\n"
  "  -c, --max-connections N accept at most N connections at once, all\n"
  "                          workers together (default: no limit but file\n"
  "                          descriptors: accepting pauses while fewer than\n"
  "                          a reserve of them are free); more wait in the\n"
  "                          kernel's accept queue\n"
  "  -g, --grace SECONDS     at SIGINT/SIGTERM, stop accepting and give open\n"
  "                          connections this long to finish (default 10);\n"
  "                          a second signal closes them at once\n"
  "      --read-buffer BYTES stop reading from a peer once this many bytes\n"
  "                          wait unread (default 65536)\n"
  "      --write-buffer BYTES park a writer once this many bytes wait to be\n"
  "                          sent (default 65536)\n"
  "      --reuseport         share the listen addresses with other processes\n"
  "                          (SO_REUSEPORT: the kernel spreads connections);\n"
  "                          without it a used address is an error\n"
  "      --keepalive SECONDS TCP keepalive on accepted and dialed connections\n"
  "                          after SECONDS idle (default 60; 0 = off)\n"
  "      --task-slice SECONDS stop a task that runs this long without\n"
  "                          yielding, if it runs interpreted Lua; report it\n"
  "                          otherwise (default 1; 0 = off; off for --run\n"
  "                          unless given)\n"
  "      --lua-memory BYTES  Lua heap per worker; past it the allocating\n"
  "                          task fails with 'not enough memory' (default\n"
  "                          1g; k, m and g allowed)\n"
  "      --admin ADDR        serve /metrics (Prometheus) and /tasks over\n"
  "                          HTTP on ADDR, e.g. 127.0.0.1:9100 (off unless\n"
  "                          asked; it logs 'admin on ADDR')\n"
  "      --bus URL           coronet.bus spans every process attached to the\n"
  "                          Redis at URL: redis://[:PASSWORD@]HOST[:PORT][/DB],\n"
  "                          HOST:PORT or unix:PATH\n"
  "      --log-level LEVEL   error, warn, info (default) or debug\n"
  "  -q, --quiet             same as --log-level warn\n"
  "  -h, --help              show this help\n"
  "  -V, --version           show versions of coronet, LuaJIT and libuv\n"
  "\n"
  "Scripts require coronet's modules: coronet (spawn, sleep, now),\n"
  "coronet.io, coronet.bufio, ... Errors in a handler end only its\n"
  "connection and are logged with a traceback.\n"
  "\n"
  "Examples:\n"
  "  coronet scripts/echo.lua --listen 127.0.0.1:7000\n"
  "  coronet --watch scripts/chat.lua -l 127.0.0.1:7000 -l unix:/tmp/chat\n"
  "  coronet scripts/echo.lua -l tls://:7443 --tls-cert c.pem --tls-key k.pem\n"
  "  coronet --run scripts/ping.lua 127.0.0.1:7000\n";


static int usage_error(const char *fmt, ...)
  __attribute__((format(printf, 1, 2)));


/* usage_error reports a bad command line in one line; returns 2. */
static int usage_error(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "coronet: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see coronet --help)\n");
  return 2;
}


static int parse_size(const char *s, size_t *out) {
  char *end;
  double v;
  errno = 0;
  v = strtod(s, &end);
  if (errno || end == s || v < 0)
    return -1;
  if (*end == 'k' || *end == 'K')
    v *= 1024, end++;
  else if (*end == 'm' || *end == 'M')
    v *= 1024 * 1024, end++;
  else if (*end == 'g' || *end == 'G')
    v *= 1024 * 1024 * 1024, end++;
  if (*end != '\0' || v < 1 || v > 1e12)
    return -1;
  *out = (size_t)v;
  return 0;
}


/* parse_seconds reads a number of seconds, 0 or more (at most a year). */
static int parse_seconds(const char *s, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v >= 0) || v > 31536000)
    return -1;
  *out = v;
  return 0;
}


static int cpu_count(void) {
  uv_cpu_info_t *info;
  int n = 1;
  if (uv_cpu_info(&info, &n) == 0)
    uv_free_cpu_info(info, n);
  return n > 0 ? n : 1;
}


static int file_exists(const char *dir, const char *rel) {
  char path[8192];
  struct stat st;
  if (snprintf(path, sizeof path, "%s/%s", dir, rel) >= (int)sizeof path)
    return 0;
  return stat(path, &st) == 0;
}


/* find_moddir picks the lua/ folder of the source tree next to the binary,
** then an install relative to it, then the configured install place. */
static const char *find_moddir(void) {
  static char exe[4096], found[4200];
  size_t n = sizeof exe;
  const char *tries[] = {"../lua", "../share/lua/5.1", NULL};
  char *slash;
  int i;
  if (uv_exepath(exe, &n) == 0 && (slash = strrchr(exe, '/')) != NULL) {
    *slash = '\0';
    for (i = 0; tries[i] != NULL; i++) {
      snprintf(found, sizeof found, "%s/%s", exe, tries[i]);
      if (file_exists(found, "coronet/boot.lua")) {
        char *real = realpath(found, NULL); /* tidy paths in tracebacks */
        if (real != NULL && strlen(real) < sizeof found)
          strcpy(found, real);
        free(real);
        return found;
      }
    }
  }
  return CN_LUADIR;
}


/* bad_listen reports a listen address that cannot be parsed, saying why
** when it can tell: a port out of range, or a script given to -l. */
static int bad_listen(const char *v) {
  const char *colon = strrchr(v, ':');
  size_t n = strlen(v);
  char *end;
  long port = colon != NULL ? strtol(colon + 1, &end, 10) : -1;
  if (colon != NULL && colon[1] != '\0' && *end == '\0' && port > 65535)
    return usage_error("bad listen address '%s': port %ld out of range "
                       "(0..65535)", v, port);
  if (n > 4 && strcmp(v + n - 4, ".lua") == 0)
    return usage_error("bad listen address '%s': a script? -l takes "
                       "HOST:PORT, [IPV6]:PORT or unix:PATH", v);
  return usage_error("bad listen address '%s': expected HOST:PORT, "
                     "[IPV6]:PORT or unix:PATH", v);
}


/* need_value returns the option's value (from "--opt=value" or the next
** argument), or NULL after a usage error. */
static const char *need_value(int argc, char **argv, int *i, const char *eq) {
  if (eq != NULL)
    return eq + 1;
  if (*i + 1 >= argc)
    return NULL;
  return argv[++*i];
}


static int flag(const char *arg, const char *s, const char *l) {
  return (s != NULL && strcmp(arg, s) == 0) || strcmp(arg, l) == 0;
}


/* is matches an option that takes a value: "-s", "--long" or "--long=v". */
static int is(const char *arg, const char *s, const char *l, const char **eq) {
  size_t n = strlen(l);
  *eq = NULL;
  if ((s != NULL && strcmp(arg, s) == 0) || strcmp(arg, l) == 0)
    return 1;
  if (strncmp(arg, l, n) == 0 && arg[n] == '=') {
    *eq = arg + n;
    return 1;
  }
  return 0;
}


/* tls_opts collects --tls-cert, --tls-key and --tls-alpn. */
static cn_tls_opts_t tls_opts = {1, {NULL}, {NULL}, 0, NULL, NULL, 0, 0};
static int nkeys;


/* tls_arg takes a --tls-* option's value. Returns -1, or a usage error. */
static int tls_arg(const char *a, const char *v) {
  if (v == NULL)
    return usage_error("%s needs a value", a);
  if (strcmp(a, "--tls-alpn") == 0 || strncmp(a, "--tls-alpn=", 11) == 0) {
    tls_opts.alpn = v;
    return -1;
  }
  if (strncmp(a, "--tls-cert", 10) == 0) {
    if (tls_opts.ncert == CN_TLS_MAX_CERTS)
      return usage_error("too many certificates (at most %d)",
                         CN_TLS_MAX_CERTS);
    tls_opts.cert[tls_opts.ncert++] = v;
  } else if (nkeys < CN_TLS_MAX_CERTS) {
    tls_opts.key[nkeys++] = v;
  }
  return -1;
}


/* check_tls: tls:// addresses need certificates, each with its key. */
static int check_tls(const cn_config_t *cfg) {
  int i, tls = 0;
  for (i = 0; i < cfg->nlisten; i++)
    tls |= strncmp(cfg->listen[i], "tls://", 6) == 0;
  if (tls_opts.ncert != nkeys)
    return usage_error("%s", "each --tls-cert needs its --tls-key");
  if (tls && tls_opts.ncert == 0)
    return usage_error("%s", "tls:// addresses need --tls-cert and --tls-key");
  return -1;
}


/* parse_args fills cfg. Returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, cn_config_t *cfg) {
  int i, opts = 1, max_set = 0, rc;
  static char *args[1024];
  cn_addr_t addr;
  const char *eq, *v;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!opts || a[0] != '-' || a[1] == '\0') {
      if (cfg->script == NULL) {
        cfg->script = a;
        if (cfg->run)
          opts = 0; /* the rest is the program's */
      } else if (cfg->argc < 1024) {
        args[cfg->argc++] = argv[i];
      }
      continue;
    }
    if (strcmp(a, "--") == 0) {
      opts = 0;
    } else if (flag(a, "-h", "--help")) {
      fputs(usage_text, stdout);
      return 0;
    } else if (flag(a, "-V", "--version")) {
      printf("coronet %s (%s, libuv %s)\n", CN_VERSION, LUAJIT_VERSION,
             uv_version_string());
      return 0;
    } else if (is(a, "-l", "--listen", &eq)) {
      if ((v = need_value(argc, argv, &i, eq)) == NULL)
        return usage_error("%s needs an address", a);
      if (cn_addr_parse(v, &addr) < 0)
        return bad_listen(v);
      if (cfg->nlisten == CN_MAX_LISTEN)
        return usage_error("too many listen addresses (at most %s)", "16");
      cfg->listen[cfg->nlisten++] = v;
    } else if (is(a, "-w", "--workers", &eq)) {
      char *end;
      long n;
      if ((v = need_value(argc, argv, &i, eq)) == NULL)
        return usage_error("%s needs a number or 'auto'", a);
      n = strcmp(v, "auto") == 0 ? cpu_count() : strtol(v, &end, 10);
      if (strcmp(v, "auto") != 0 && (*end != '\0' || n < 1 || n > 256))
        return usage_error("bad worker count '%s': expected 1..256 or auto", v);
      cfg->workers = (int)n;
    } else if (flag(a, NULL, "--watch")) {
      cfg->watch = 1;
    } else if (flag(a, "-r", "--run")) {
      cfg->run = 1;
    } else if (is(a, "-c", "--max-connections", &eq)) {
      if ((v = need_value(argc, argv, &i, eq)) == NULL ||
          parse_size(v, &cfg->max_conns) < 0)
        return usage_error("%s needs a positive number", a);
      max_set = 1;
    } else if (is(a, "-g", "--grace", &eq)) {
      if ((v = need_value(argc, argv, &i, eq)) == NULL)
        return usage_error("%s needs seconds", a);
      if (parse_seconds(v, &cfg->grace) < 0)
        return usage_error("bad grace period '%s': expected seconds", v);
    } else if (is(a, NULL, "--read-buffer", &eq)) {
      if ((v = need_value(argc, argv, &i, eq)) == NULL ||
          parse_size(v, &cfg->read_hwm) < 0)
        return usage_error("%s needs a size in bytes (k and m allowed)", a);
    } else if (is(a, NULL, "--write-buffer", &eq)) {
      if ((v = need_value(argc, argv, &i, eq)) == NULL ||
          parse_size(v, &cfg->write_hwm) < 0)
        return usage_error("%s needs a size in bytes (k and m allowed)", a);
    } else if (is(a, NULL, "--bus", &eq)) {
      if ((v = need_value(argc, argv, &i, eq)) == NULL)
        return usage_error("%s needs a Redis URL", a);
      bus_url = v;
    } else if (is(a, NULL, "--log-level", &eq)) {
      if ((v = need_value(argc, argv, &i, eq)) == NULL ||
          (cn_log_level = cn_log_parse_level(v)) < 0)
        return usage_error("%s needs error, warn, info or debug", a);
    } else if (flag(a, NULL, "--reuseport")) {
      cfg->reuseport = 1;
    } else if (is(a, NULL, "--keepalive", &eq)) {
      double d;
      if ((v = need_value(argc, argv, &i, eq)) == NULL ||
          parse_seconds(v, &d) < 0 || d > 86400 ||
          (d > 0 && d < 1))
        return usage_error("%s needs whole seconds (0 = off)", a);
      cfg->keepalive = (int)d;
    } else if (is(a, NULL, "--task-slice", &eq)) {
      if ((v = need_value(argc, argv, &i, eq)) == NULL ||
          parse_seconds(v, &cfg->task_slice) < 0)
        return usage_error("%s needs seconds (0 = off)", a);
    } else if (is(a, NULL, "--lua-memory", &eq)) {
      if ((v = need_value(argc, argv, &i, eq)) == NULL ||
          parse_size(v, &cfg->lua_memory) < 0 || cfg->lua_memory < (1 << 20))
        return usage_error("%s needs a size of 1m or more", a);
    } else if (is(a, NULL, "--admin", &eq)) {
      if ((v = need_value(argc, argv, &i, eq)) == NULL ||
          cn_addr_parse(v, &addr) < 0 || addr.tls)
        return usage_error("%s needs an address (HOST:PORT or unix:PATH)", a);
      cfg->admin = v;
    } else if (flag(a, "-q", "--quiet")) {
      cn_log_level = CN_LOG_WARN;
    } else if (is(a, NULL, "--tls-cert", &eq) ||
               is(a, NULL, "--tls-key", &eq) ||
               is(a, NULL, "--tls-alpn", &eq)) {
      if ((rc = tls_arg(a, need_value(argc, argv, &i, eq))) >= 0)
        return rc;
    } else {
      return usage_error("unknown option '%s'", a);
    }
  }
  cfg->argv = args;
  if (cfg->script == NULL)
    return usage_error("%s", "no script given");
  if (cfg->run && cfg->nlisten > 0)
    return usage_error("%s", "--listen does not go with --run (a program "
                             "listens with coronet.net.listen)");
  if (!cfg->run && cfg->nlisten == 0)
    cfg->listen[cfg->nlisten++] = DEFAULT_LISTEN;
  if ((rc = check_tls(cfg)) >= 0)
    return rc;
  if (cfg->run)
    cfg->workers = 1;
  if (cfg->task_slice < 0)
    cfg->task_slice = cfg->run ? 0 : 1;
  if (!max_set)
    cfg->max_conns = (size_t)-1; /* descriptors bound it (cn_listen.c) */
  return -1;
}


int main(int argc, char **argv) {
  cn_config_t cfg;
  struct stat st;
  int rc;
  memset(&cfg, 0, sizeof cfg);
  cfg.workers = 1;
  cfg.grace = 10;
  cfg.read_hwm = 65536;
  cfg.write_hwm = 65536;
  cfg.keepalive = 60;
  cfg.task_slice = -1; /* 1 s for a server, off for --run */
  cfg.lua_memory = (size_t)1 << 30;
  if ((rc = parse_args(argc, argv, &cfg)) >= 0)
    return rc;
  if (stat(cfg.script, &st) < 0) {
    fprintf(stderr, "coronet: cannot open script %s: %s\n", cfg.script,
            uv_strerror(uv_translate_sys_error(errno)));
    return 1;
  }
  if (!S_ISREG(st.st_mode)) {
    fprintf(stderr, "coronet: cannot open script %s: not a regular file\n",
            cfg.script);
    return 1;
  }
  cfg.moddir = find_moddir();
  if (tls_opts.ncert > 0) {
    char err[512];
    if (cn_tls_conf_new(&tls_opts, &cfg.tls, err, sizeof err) < 0) {
      fprintf(stderr, "coronet: %s\n", err);
      return 1;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (bus_url != NULL && cn_busredis_start(bus_url) < 0)
    return usage_error("bad --bus URL '%s': expected redis://HOST[:PORT][/DB]"
                       ", HOST:PORT or unix:PATH", bus_url);
  rc = cn_run(&cfg, &lcn_host_hooks);
  cn_busredis_stop();
  cn_tls_conf_unref(cfg.tls);
  cn_tls_cleanup();
  return rc;
}
