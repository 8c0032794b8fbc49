/* cn_tls.c: TLS for connections, over OpenSSL. A session reads and writes
** ciphertext through a BIO of our own over two chains of its own (from
** and to the socket), so no OpenSSL call ever touches the socket or
** blocks; it decrypts into the connection's read chain and seals its write
** chain (plaintext) into records when cn_conn.c flushes. Configurations
** (SSL_CTX sets built from certificate files, reloadable, with rotating
** session ticket keys) are shared by every worker. Lua binding in
** lcn_tls.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cn.h"

/* TLS 1.2 suites: forward secret AEADs only (TLS 1.3 keeps OpenSSL's). */
#define CIPHERS12                                                         \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"            \
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"            \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define SEAL_MAX (4 * CN_BLOCK_DATA) /* records waiting: sealing pauses */
#define RECORD 16384                 /* plaintext bytes per record, at most */
#define GATHER_MIN 4096 /* shorter pieces are gathered into one record */
#define TICKET_ROTATION_S 3600.0
#define ALPN_MAX 256
#define HS_TICK_MS 100 /* handshake deadlines are checked this often */

typedef struct build_s build_t;

/* A ticket key: the first of a configuration's encrypts new tickets, the
** second (the one before) still opens old ones, which are then renewed. */
typedef struct {
  unsigned char name[16], aes[32], hmac[32];
  uint64_t born; /* uv_hrtime() */
  int set;
} ticket_key_t;

/* A build: the SSL_CTXs made from one reading of the files. Sessions hold
** a reference, so a reload never pulls one from under them. */
struct build_s {
  int refs; /* atomic */
  int n;
  SSL_CTX *ctx[CN_TLS_MAX_CERTS]; /* ctx[0] the default; SNI picks others */
};

struct cn_tls_conf_s {
  int refs; /* atomic */
  uv_mutex_t lock; /* cur and keys: workers read them, SIGHUP swaps cur */
  build_t *cur;
  cn_tls_opts_t o; /* its strings are the conf's own copies */
  unsigned char alpn[ALPN_MAX];
  unsigned alpn_len;
  uint64_t hs_ms, rotation_ns;
  ticket_key_t keys[2];
  int reloadable; /* some certificate or key is a file */
  cn_tls_conf_t *next; /* in reloadable or in clients */
  cn_tls_conf_t *reload_next; /* cn_tls_reload_all's own list */
};

struct cn_tls_s {
  SSL *ssl;
  cn_conn_t *c;
  cn_tls_conf_t *conf;
  build_t *build;
  cn_buf_t in, out; /* ciphertext from and to the socket */
  cn_tls_t *hprev, *hnext; /* in hs while the handshake runs */
  uint64_t deadline;       /* of the handshake: loop ms */
  int err;          /* the session failed: CN_ETLS* */
  int eof;          /* the socket's read ended: UV_EOF or an error */
  uint8_t done;     /* handshake finished */
  uint8_t notified; /* close_notify sealed */
  uint8_t in_hs;    /* linked in hs */
};

/* The sessions of this worker thread whose handshake runs, and one timer
** for their deadlines. The timer is static: a worker's teardown closes
** it with the loop's other handles. */
static __thread struct {
  uv_timer_t timer;
  uv_loop_t *loop; /* the timer is initialized for it */
  uint64_t due;    /* the timer's, while active */
  cn_tls_t *head;
} hs;

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t glock; /* the two lists below */
static cn_tls_conf_t *reloadable; /* server confs read from files */
static cn_tls_conf_t *clients;    /* client confs, one per CA, kept */
static BIO_METHOD *bio_method;
static __thread char stage[RECORD]; /* small pieces gathered for a record */


/* -- The BIO: ciphertext chains ------------------------------------------ */


static int bio_write(BIO *b, const char *p, int n) {
  cn_tls_t *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (cn_buf_append(&t->out, p, (size_t)n) < 0)
    return -1;
  return n;
}


static int bio_read(BIO *b, char *p, int n) {
  cn_tls_t *t = BIO_get_data(b);
  size_t k = cn_buf_copyout(&t->in, 0, p, (size_t)n);
  BIO_clear_retry_flags(b);
  if (k == 0) {
    BIO_set_retry_read(b); /* cn_conn.c feeds more when it comes */
    return -1;
  }
  cn_buf_consume(&t->in, k);
  return (int)k;
}


static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b, (void)num, (void)ptr;
  return cmd == BIO_CTRL_FLUSH;
}


static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}


static void init_once(void) {
  uv_mutex_init(&glock);
  bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                            "coronet chains");
  BIO_meth_set_write(bio_method, bio_write);
  BIO_meth_set_read(bio_method, bio_read);
  BIO_meth_set_ctrl(bio_method, bio_ctrl);
  BIO_meth_set_create(bio_method, bio_create);
}


/* -- Session tickets ----------------------------------------------------- */


static int key_new(ticket_key_t *k) {
  k->born = uv_hrtime();
  k->set = 1;
  return RAND_bytes(k->name, sizeof k->name) == 1 &&
         RAND_bytes(k->aes, sizeof k->aes) == 1 &&
         RAND_bytes(k->hmac, sizeof k->hmac) == 1;
}


/* current_key returns f's encrypting key, rotating it when its time is
** up. Called with f->lock held. */
static ticket_key_t *current_key(cn_tls_conf_t *f) {
  ticket_key_t *k = &f->keys[0];
  if (k->set && uv_hrtime() - k->born < f->rotation_ns)
    return k;
  f->keys[1] = *k;
  return key_new(k) ? k : NULL;
}


static int mac_init(EVP_MAC_CTX *hctx, const ticket_key_t *k) {
  OSSL_PARAM params[2];
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                               (char *)"SHA256", 0);
  params[1] = OSSL_PARAM_construct_end();
  return EVP_MAC_init(hctx, k->hmac, sizeof k->hmac, params);
}


/* session_of returns the session whose SSL is s: its BIO's data (not
** SSL_set_app_data, which allocates an ex_data array per connection). */
static cn_tls_t *session_of(SSL *s) { return BIO_get_data(SSL_get_rbio(s)); }


/* ticket_cb seals and opens session tickets with the configuration's
** keys, shared by every worker and every SNI certificate. */
static int ticket_cb(SSL *s, unsigned char *name, unsigned char *iv,
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc) {
  cn_tls_t *t = session_of(s);
  cn_tls_conf_t *f = t->conf;
  ticket_key_t k, *cur;
  int i, rc = 0;
  uv_mutex_lock(&f->lock);
  cur = current_key(f);
  if (cur != NULL)
    k = *cur;
  for (i = 0; !enc && cur != NULL && i < 2; i++)
    if (f->keys[i].set && memcmp(name, f->keys[i].name, 16) == 0) {
      k = f->keys[i];
      rc = i == 0 ? 1 : 2; /* 2: an old key, renew the ticket */
      break;
    }
  uv_mutex_unlock(&f->lock);
  if (cur == NULL)
    return -1;
  if (enc) {
    memcpy(name, k.name, 16);
    if (RAND_bytes(iv, 16) != 1 ||
        !EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) ||
        !mac_init(hctx, &k))
      return -1;
    return 1;
  }
  if (rc == 0)
    return 0; /* unknown or expired key: a full handshake */
  if (!EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) ||
      !mac_init(hctx, &k))
    return -1;
  return rc;
}


/* -- Server name and protocol choice ------------------------------------ */


/* sni_cb serves the certificate whose names match what the client asked
** for; the first one when none does. */
static int sni_cb(SSL *s, int *alert, void *arg) {
  cn_tls_t *t = session_of(s);
  const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
  build_t *b = t->build;
  int i;
  (void)alert, (void)arg;
  for (i = 0; name != NULL && b->n > 1 && i < b->n; i++)
    if (X509_check_host(SSL_CTX_get0_certificate(b->ctx[i]), name, 0, 0,
                        NULL) == 1) {
      if (i > 0)
        SSL_set_SSL_CTX(s, b->ctx[i]);
      break;
    }
  return SSL_TLSEXT_ERR_OK;
}


/* alpn_cb picks the first of the server's protocols the client offers;
** a client that offers only others is refused (RFC 7301). */
static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg) {
  cn_tls_conf_t *f = arg;
  unsigned char *sel;
  (void)s;
  if (SSL_select_next_proto(&sel, outlen, f->alpn, f->alpn_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}


/* alpn_wire turns "h2,http/1.1" into ALPN's wire format (length-prefixed
** names). Returns the length, or -1 when a name is empty or too long. */
static int alpn_wire(const char *list, unsigned char *out, size_t size) {
  size_t n = 0;
  while (*list != '\0') {
    size_t k = strcspn(list, ",");
    if (k == 0 || k > 255 || n + 1 + k > size)
      return -1;
    out[n++] = (unsigned char)k;
    memcpy(out + n, list, k);
    n += k;
    list += k + (list[k] == ',');
  }
  return (int)n;
}


/* -- Building configurations -------------------------------------------- */


static int is_pem(const char *spec) {
  return strstr(spec, "-----BEGIN") != NULL;
}


static const char *spec_name(const char *spec) {
  return is_pem(spec) ? "(PEM text)" : spec;
}


static int no_password(char *buf, int size, int rw, void *u) {
  (void)buf, (void)size, (void)rw, (void)u;
  return 0; /* encrypted keys fail instead of prompting */
}


/* ssl_reason returns OpenSSL's reason for the last failure, lowercase as
** OpenSSL writes it, and clears the error queue. */
static const char *ssl_reason(void) {
  const char *r = ERR_reason_error_string(ERR_peek_last_error());
  ERR_clear_error();
  return r != NULL ? r : "unknown error";
}


static BIO *open_pem(const char *spec, char *err, size_t size) {
  BIO *b;
  if (is_pem(spec))
    return BIO_new_mem_buf(spec, -1);
  errno = 0;
  if ((b = BIO_new_file(spec, "r")) == NULL)
    snprintf(err, size, "tls: cannot read %s: %s", spec,
             errno != 0 ? uv_strerror(uv_translate_sys_error(errno))
                        : ssl_reason());
  ERR_clear_error();
  return b;
}


/* load_chain makes spec's first certificate ctx's and the rest its chain. */
static int load_chain(SSL_CTX *ctx, const char *spec, char *err,
                      size_t size) {
  BIO *b = open_pem(spec, err, size);
  X509 *x;
  int ok;
  if (b == NULL)
    return -1;
  if ((x = PEM_read_bio_X509_AUX(b, NULL, no_password, NULL)) == NULL) {
    snprintf(err, size, "tls: no certificate in %s", spec_name(spec));
    BIO_free(b);
    ERR_clear_error();
    return -1;
  }
  ok = SSL_CTX_use_certificate(ctx, x);
  X509_free(x);
  while (ok && (x = PEM_read_bio_X509(b, NULL, no_password, NULL)) != NULL)
    if (!(ok = SSL_CTX_add0_chain_cert(ctx, x)))
      X509_free(x);
  BIO_free(b);
  if (!ok) {
    snprintf(err, size, "tls: certificate %s: %s", spec_name(spec),
             ssl_reason());
    return -1;
  }
  ERR_clear_error(); /* the loop ends on "no start line" */
  return 0;
}


static int load_key(SSL_CTX *ctx, const char *spec, const char *cert,
                    char *err, size_t size) {
  BIO *b = open_pem(spec, err, size);
  EVP_PKEY *k;
  int ok;
  if (b == NULL)
    return -1;
  k = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL);
  BIO_free(b);
  if (k == NULL) {
    snprintf(err, size, "tls: no private key in %s (encrypted keys are not "
                        "supported)", spec_name(spec));
    ERR_clear_error();
    return -1;
  }
  ok = SSL_CTX_use_PrivateKey(ctx, k) && SSL_CTX_check_private_key(ctx);
  EVP_PKEY_free(k);
  if (!ok) {
    snprintf(err, size, "tls: key %s does not match certificate %s",
             spec_name(spec), spec_name(cert));
    ERR_clear_error();
    return -1;
  }
  return 0;
}


static SSL_CTX *ctx_new(cn_tls_conf_t *f) {
  SSL_CTX *ctx =
    SSL_CTX_new(f->o.server ? TLS_server_method() : TLS_client_method());
  if (ctx == NULL)
    return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_cipher_list(ctx, CIPHERS12);
  if (f->o.server) {
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_timeout(ctx, 1 + (long)(2 * f->rotation_ns / 1000000000));
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1); /* as Go: one reconnection at a time */
    if (f->alpn_len > 0)
      SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, f);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  }
  return ctx;
}


static void build_unref(build_t *b) {
  int i;
  if (b == NULL || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  for (i = 0; i < b->n; i++)
    SSL_CTX_free(b->ctx[i]);
  free(b);
}


static int load_ca(SSL_CTX *ctx, const char *ca, char *err, size_t size) {
  X509_STORE *st = SSL_CTX_get_cert_store(ctx);
  BIO *b;
  X509 *x;
  int n = 0;
  if (ca == NULL) {
    if (SSL_CTX_set_default_verify_paths(ctx))
      return 0;
    snprintf(err, size, "tls: the system's CA store: %s", ssl_reason());
    return -1;
  }
  if ((b = open_pem(ca, err, size)) == NULL)
    return -1;
  while ((x = PEM_read_bio_X509(b, NULL, no_password, NULL)) != NULL) {
    n += X509_STORE_add_cert(st, x);
    X509_free(x);
  }
  BIO_free(b);
  ERR_clear_error();
  if (n > 0)
    return 0;
  snprintf(err, size, "tls: no CA certificate in %s", spec_name(ca));
  return -1;
}


/* build_new reads f's certificates and keys (or CA) into a new build. */
static int build_new(cn_tls_conf_t *f, build_t **out, char *err,
                     size_t size) {
  build_t *b = calloc(1, sizeof *b);
  int i, n = f->o.server ? f->o.ncert : 1;
  if (b == NULL)
    return CN_ENOMEM;
  b->refs = 1;
  for (i = 0; i < n; i++) {
    int rc;
    if ((b->ctx[i] = ctx_new(f)) == NULL) {
      snprintf(err, size, "tls: %s", ssl_reason());
      rc = -1;
    } else if (f->o.server) {
      rc = load_chain(b->ctx[i], f->o.cert[i], err, size);
      if (rc == 0)
        rc = load_key(b->ctx[i], f->o.key[i], f->o.cert[i], err, size);
    } else {
      rc = load_ca(b->ctx[i], f->o.ca, err, size);
    }
    b->n = i + 1;
    if (rc < 0) {
      build_unref(b);
      return -1;
    }
  }
  *out = b;
  return 0;
}


static char *dup(const char *s) { return s != NULL ? strdup(s) : NULL; }


static void conf_free(cn_tls_conf_t *f) {
  int i;
  build_unref(f->cur);
  for (i = 0; i < f->o.ncert; i++) {
    free((char *)f->o.cert[i]);
    free((char *)f->o.key[i]);
  }
  free((char *)f->o.ca);
  free((char *)f->o.alpn);
  uv_mutex_destroy(&f->lock);
  free(f);
}


/* conf_alloc copies o into a new configuration without a build. */
static int conf_alloc(const cn_tls_opts_t *o, cn_tls_conf_t **out, char *err,
                      size_t size) {
  cn_tls_conf_t *f = calloc(1, sizeof *f);
  double hto = o->handshake_timeout > 0 ? o->handshake_timeout
                                       : CN_TLS_HANDSHAKE_S;
  double rot = o->ticket_rotation > 0 ? o->ticket_rotation : TICKET_ROTATION_S;
  int i, n;
  if (f == NULL)
    return CN_ENOMEM;
  uv_mutex_init(&f->lock);
  f->refs = 1;
  f->o = *o;
  f->o.ca = dup(o->ca);
  f->o.alpn = dup(o->alpn);
  for (i = 0; i < o->ncert; i++) {
    f->o.cert[i] = dup(o->cert[i]);
    f->o.key[i] = dup(o->key[i]);
    f->reloadable |= !is_pem(o->cert[i]) || !is_pem(o->key[i]);
  }
  f->hs_ms = (uint64_t)(hto * 1000);
  f->rotation_ns = (uint64_t)(rot * 1e9);
  *out = f;
  if (o->alpn != NULL && o->server) {
    if ((n = alpn_wire(o->alpn, f->alpn, sizeof f->alpn)) < 0) {
      snprintf(err, size, "tls: bad ALPN list '%s'", o->alpn);
      return -1;
    }
    f->alpn_len = (unsigned)n;
  }
  return 0;
}


/* find_client returns the cached client configuration for ca, or NULL.
** Called with glock held. */
static cn_tls_conf_t *find_client(const char *ca) {
  cn_tls_conf_t *f;
  for (f = clients; f != NULL; f = f->next)
    if (ca == NULL ? f->o.ca == NULL
                   : f->o.ca != NULL && strcmp(f->o.ca, ca) == 0)
      return f;
  return NULL;
}


/* cn_tls_conf_new builds a configuration from o: a server's certificates
** and keys are read and checked at once, a client's CA store too (the
** system's: cached, one per process). Returns 0, or -1 after writing
** one line saying what is wrong into err (CN_ENOMEM without). Reads
** files: call it off the loop (main, or the thread pool). */
int cn_tls_conf_new(const cn_tls_opts_t *o, cn_tls_conf_t **out, char *err,
                    size_t size) {
  cn_tls_conf_t *f = NULL, *have;
  int rc;
  uv_once(&once, init_once);
  if (o->server && (o->ncert < 1 || o->ncert > CN_TLS_MAX_CERTS)) {
    snprintf(err, size, "tls: a server needs 1 to %d certificates",
             CN_TLS_MAX_CERTS);
    return -1;
  }
  if ((rc = conf_alloc(o, &f, err, size)) == 0)
    rc = build_new(f, &f->cur, err, size);
  if (rc < 0) {
    if (f != NULL)
      conf_free(f);
    return rc;
  }
  uv_mutex_lock(&glock);
  if (!o->server && (have = find_client(o->ca)) != NULL) {
    cn_tls_conf_ref(have);
    uv_mutex_unlock(&glock);
    conf_free(f); /* another worker built it meanwhile */
    *out = have;
    return 0;
  }
  if (!o->server || f->reloadable) {
    cn_tls_conf_t **list = o->server ? &reloadable : &clients;
    f->next = *list;
    *list = f;
    f->refs += !o->server; /* the cache's own reference */
  }
  uv_mutex_unlock(&glock);
  *out = f;
  return 0;
}


/* cn_tls_client_conf returns (with a reference) the client configuration
** already built for ca (NULL: the system's store), or NULL. */
cn_tls_conf_t *cn_tls_client_conf(const char *ca) {
  cn_tls_conf_t *found;
  uv_once(&once, init_once);
  uv_mutex_lock(&glock);
  if ((found = find_client(ca)) != NULL)
    cn_tls_conf_ref(found);
  uv_mutex_unlock(&glock);
  return found;
}


void cn_tls_conf_ref(cn_tls_conf_t *f) {
  __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
}


void cn_tls_conf_unref(cn_tls_conf_t *f) {
  cn_tls_conf_t **p;
  if (f == NULL || __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  uv_mutex_lock(&glock);
  for (p = &reloadable; *p != NULL; p = &(*p)->next)
    if (*p == f) {
      *p = f->next;
      break;
    }
  uv_mutex_unlock(&glock);
  conf_free(f);
}


int cn_tls_conf_server(const cn_tls_conf_t *f) { return f->o.server; }


/* cn_tls_reload_all reads the files of every server configuration again
** (SIGHUP): new sessions get the new certificates, open ones keep theirs.
** A configuration whose files fail keeps its old build; the log says
** why. Runs on the control thread, never on a loop. */
void cn_tls_reload_all(void) {
  cn_tls_conf_t *f, *todo = NULL;
  char err[512];
  uv_once(&once, init_once);
  uv_mutex_lock(&glock); /* not held while files are read */
  for (f = reloadable; f != NULL; f = f->next) {
    cn_tls_conf_ref(f);
    f->reload_next = todo;
    todo = f;
  }
  uv_mutex_unlock(&glock);
  while ((f = todo) != NULL) {
    build_t *b, *old;
    todo = f->reload_next;
    if (build_new(f, &b, err, sizeof err) < 0) {
      cn_log(CN_LOG_ERROR, "reloading certificates failed, the old ones "
                           "stay: %s", err);
    } else {
      uv_mutex_lock(&f->lock);
      old = f->cur;
      f->cur = b;
      uv_mutex_unlock(&f->lock);
      build_unref(old);
      cn_log(CN_LOG_INFO, "reloaded certificate %s%s",
             spec_name(f->o.cert[0]), f->o.ncert > 1 ? " and the others" : "");
    }
    cn_tls_conf_unref(f);
  }
}


/* cn_tls_cleanup drops the cached client configurations (at exit). */
void cn_tls_cleanup(void) {
  cn_tls_conf_t *f;
  uv_once(&once, init_once);
  uv_mutex_lock(&glock);
  f = clients;
  clients = NULL;
  uv_mutex_unlock(&glock);
  while (f != NULL) {
    cn_tls_conf_t *next = f->next;
    cn_tls_conf_unref(f);
    f = next;
  }
}


/* -- Failures ------------------------------------------------------------ */


static int verify_error(long v) {
  switch (v) {
  case X509_V_ERR_HOSTNAME_MISMATCH:
  case X509_V_ERR_IP_ADDRESS_MISMATCH:
    return CN_ETLSHOST;
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
  case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
  case X509_V_ERR_CERT_UNTRUSTED:
    return CN_ETLSCA;
  case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    return CN_ETLSSELF;
  case X509_V_ERR_CERT_HAS_EXPIRED:
    return CN_ETLSEXPIRED;
  case X509_V_ERR_CERT_NOT_YET_VALID:
    return CN_ETLSNOTYET;
  default:
    return CN_ETLSVERIFY;
  }
}


/* ssl_error names the cause of the failure OpenSSL just reported. */
static int ssl_error(cn_tls_t *t, unsigned long e) {
  if (ERR_GET_LIB(e) != ERR_LIB_SSL)
    return t->done ? CN_ETLSPROTO : CN_ETLS;
  switch (ERR_GET_REASON(e)) {
  case SSL_R_CERTIFICATE_VERIFY_FAILED:
    return verify_error(SSL_get_verify_result(t->ssl));
  case SSL_R_NO_SHARED_CIPHER:
    return CN_ETLSCIPHER;
  case SSL_R_UNSUPPORTED_PROTOCOL:
  case SSL_R_NO_PROTOCOLS_AVAILABLE:
  case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    return CN_ETLSVERSION;
  case SSL_R_NO_APPLICATION_PROTOCOL:
  case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
    return CN_ETLSALPN;
  case SSL_R_NO_RENEGOTIATION:
  case SSL_R_TLSV1_ALERT_NO_RENEGOTIATION:
    return CN_ETLSRENEG;
  case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
  case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
  case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    return CN_ETLSREJECT;
  case SSL_R_WRONG_VERSION_NUMBER:
  case SSL_R_HTTP_REQUEST:
  case SSL_R_HTTPS_PROXY_REQUEST:
  case SSL_R_PACKET_LENGTH_TOO_LONG:
  case SSL_R_RECORD_LENGTH_MISMATCH:
  case SSL_R_UNKNOWN_PROTOCOL:
  case SSL_R_UNEXPECTED_MESSAGE:
  case SSL_R_UNEXPECTED_RECORD:
  case SSL_R_BAD_RECORD_TYPE:
  case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
  case SSL_R_ENCRYPTED_LENGTH_TOO_LONG:
  case SSL_R_LENGTH_MISMATCH:
  case SSL_R_BAD_LENGTH:
    return CN_ETLSPROTO;
  default:
    return t->done ? CN_ETLSPROTO : CN_ETLS;
  }
}


/* stop_timer takes t out of the handshake deadlines. */
static void stop_timer(cn_tls_t *t) {
  if (!t->in_hs)
    return;
  t->in_hs = 0;
  if (t->hprev != NULL)
    t->hprev->hnext = t->hnext;
  else
    hs.head = t->hnext;
  if (t->hnext != NULL)
    t->hnext->hprev = t->hprev;
}


/* fail ends c's session with err: the alert OpenSSL wrote still leaves,
** then reads and writes fail with err and the tasks waiting wake. */
static void fail(cn_conn_t *c, int err) {
  cn_tls_t *t = c->tls;
  unsigned long e = ERR_peek_last_error();
  if (t->err != 0)
    return;
  if (cn_log_level >= CN_LOG_DEBUG) {
    char why[256] = "";
    if (e != 0)
      ERR_error_string_n(e, why, sizeof why);
    cn_log(CN_LOG_DEBUG, "conn %llu: %s%s%s", (unsigned long long)c->id,
           cn_strerror(err), why[0] ? ": " : "", why);
  }
  ERR_clear_error();
  stop_timer(t);
  cn_buf_reset(&t->in);
  t->err = err;
  cn_conn_flush(c); /* the alert; sealing stops at t->err */
  if (c->rerr == 0)
    c->rerr = err;
  if (c->werr == 0)
    c->werr = err;
  cn_conn_kick(c);
}


/* fail_ssl fails c with the cause of OpenSSL's result rc. */
static void fail_ssl(cn_conn_t *c, int rc) {
  cn_tls_t *t = c->tls;
  unsigned long e = ERR_peek_last_error();
  int kind = SSL_get_error(t->ssl, rc);
  if (kind == SSL_ERROR_SSL && e != 0)
    fail(c, ssl_error(t, e));
  else if (t->eof != 0 && !t->done)
    fail(c, t->eof == UV_EOF ? CN_ETLSEOF : t->eof);
  else
    fail(c, t->done ? CN_ETLSPROTO : CN_ETLS);
}


static void hs_cb(uv_timer_t *h);


/* hs_arm makes the handshake timer fire at due (loop ms) or earlier. */
static void hs_arm(uint64_t due) {
  uint64_t now = uv_now(hs.loop);
  if (uv_is_active((uv_handle_t *)&hs.timer) && hs.due <= due)
    return;
  hs.due = due;
  uv_timer_start(&hs.timer, hs_cb, due > now ? due - now : 0, 0);
}


/* hs_cb fails the sessions whose handshake outlived its deadline and
** drops their peers at once (their EOF stops reading; the owner closes
** the handle). */
static void hs_cb(uv_timer_t *h) {
  uint64_t now = uv_now(hs.loop), next = UINT64_MAX;
  cn_tls_t *t, *n;
  (void)h;
  for (t = hs.head; t != NULL; t = n) {
    n = t->hnext;
    if (t->deadline <= now) {
      cn_conn_t *c = t->c;
      uv_os_fd_t fd;
      fail(c, CN_ETLSTIMEOUT);
      if (uv_fileno(&c->h.handle, &fd) == 0)
        shutdown(fd, SHUT_RDWR);
    } else if (t->deadline < next) {
      next = t->deadline;
    }
  }
  if (next != UINT64_MAX)
    hs_arm(next > now + HS_TICK_MS ? next : now + HS_TICK_MS);
}


/* start_timer gives t's handshake until ms from now. */
static void start_timer(cn_tls_t *t, uv_loop_t *loop, uint64_t ms) {
  if (hs.loop != loop) {
    uv_timer_init(loop, &hs.timer);
    hs.loop = loop;
  }
  t->deadline = uv_now(loop) + ms;
  t->in_hs = 1;
  t->hprev = NULL;
  t->hnext = hs.head;
  if (hs.head != NULL)
    hs.head->hprev = t;
  hs.head = t;
  hs_arm(t->deadline);
}


/* -- The session ----------------------------------------------------------- */


/* decrypt moves every complete record's plaintext into c's read chain;
** close_notify ends it with EOF. */
static void decrypt(cn_conn_t *c) {
  cn_tls_t *t = c->tls;
  for (;;) {
    char *p;
    size_t n, got;
    int rc, kind;
    if (t->in.len == 0 && !SSL_has_pending(t->ssl))
      break; /* SSL_read would only allocate its buffer again */
    if (cn_buf_reserve(&c->in, &p, &n) < 0) {
      fail(c, CN_ENOMEM);
      break;
    }
    if ((rc = SSL_read_ex(t->ssl, p, n, &got)) == 1) {
      cn_buf_commit(&c->in, got);
      continue;
    }
    kind = SSL_get_error(t->ssl, rc);
    if (kind == SSL_ERROR_ZERO_RETURN && c->rerr == 0)
      c->rerr = CN_EOF;
    else if (kind != SSL_ERROR_WANT_READ && kind != SSL_ERROR_ZERO_RETURN)
      fail_ssl(c, rc);
    break;
  }
  cn_buf_trim(&c->in);
  if (c->pump_out == NULL)
    cn_buf_settle(&c->in);
}


/* advance runs c's session on the ciphertext that arrived: the handshake,
** then decryption, then sending what OpenSSL has to say. Returns 1 when
** a reader has news (plaintext, EOF or an error). */
static int advance(cn_conn_t *c) {
  cn_tls_t *t = c->tls;
  size_t before = c->in.len;
  int rc;
  ERR_clear_error();
  if (!t->done) {
    if ((rc = SSL_do_handshake(t->ssl)) != 1) {
      if (SSL_get_error(t->ssl, rc) != SSL_ERROR_WANT_READ || t->eof != 0) {
        fail_ssl(c, rc);
        return 1;
      }
      cn_conn_flush(c);
      return 0;
    }
    t->done = 1;
    stop_timer(t);
    cn_conn_kick(c); /* a task waiting for the handshake */
  }
  decrypt(c);
  if (t->eof != 0 && c->rerr == 0)
    c->rerr = t->eof; /* EOF without close_notify counts as EOF */
  cn_conn_flush(c);
  return c->in.len > before || c->rerr != 0;
}


/* session_new returns a session of f's current build, or NULL. */
static cn_tls_t *session_new(cn_tls_conf_t *f) {
  cn_tls_t *t = calloc(1, sizeof *t);
  BIO *bio = NULL;
  if (t == NULL)
    return NULL;
  uv_mutex_lock(&f->lock);
  t->build = f->cur;
  __atomic_add_fetch(&t->build->refs, 1, __ATOMIC_RELAXED);
  uv_mutex_unlock(&f->lock);
  if ((t->ssl = SSL_new(t->build->ctx[0])) == NULL ||
      (bio = BIO_new(bio_method)) == NULL) {
    SSL_free(t->ssl);
    build_unref(t->build);
    free(t);
    return NULL;
  }
  BIO_set_data(bio, t);
  SSL_set_bio(t->ssl, bio, bio);
  cn_tls_conf_ref(f);
  t->conf = f;
  return t;
}


/* client_setup makes s a client asking what cl says: the name is sent as
** SNI (not an IP address) and checked against the certificate. Returns 0
** or CN_ETLSALPN. */
static int client_setup(SSL *s, const cn_tls_client_t *cl) {
  unsigned char alpn[ALPN_MAX];
  int n = cl->alpn != NULL ? alpn_wire(cl->alpn, alpn, sizeof alpn) : 0;
  SSL_set_connect_state(s);
  SSL_set_verify(s, cl->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
  if (cl->name != NULL &&
      !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), cl->name)) {
    SSL_set_tlsext_host_name(s, cl->name);
    SSL_set1_host(s, cl->name);
  }
  ERR_clear_error();
  if (n < 0 || (n > 0 && SSL_set_alpn_protos(s, alpn, (unsigned)n)))
    return CN_ETLSALPN;
  return 0;
}


static void session_free(cn_tls_t *t) {
  SSL_free(t->ssl); /* and the BIO */
  cn_buf_reset(&t->in);
  cn_buf_reset(&t->out);
  build_unref(t->build);
  cn_tls_conf_unref(t->conf);
  stop_timer(t);
  free(t);
}


/* cn_tls_start makes c a TLS connection as a server of f's certificates
** (cl NULL) or as a client asking cl; the handshake runs as bytes come
** and go, within f's handshake timeout. Bytes already read join the
** ciphertext. The write chain must be empty (STARTTLS: the plaintext
** reply has left). Returns 0 or CN_EISTLS, CN_ENOMEM, CN_ETLSALPN. */
int cn_tls_start(cn_conn_t *c, cn_tls_conf_t *f, const cn_tls_client_t *cl) {
  cn_tls_t *t;
  int rc;
  if (c->tls != NULL)
    return CN_EISTLS;
  if ((t = session_new(f)) == NULL)
    return CN_ENOMEM;
  if (cl == NULL)
    SSL_set_accept_state(t->ssl);
  else if ((rc = client_setup(t->ssl, cl)) < 0) {
    session_free(t);
    return rc;
  }
  t->c = c;
  cn_buf_init(&t->in, &c->w->pool);
  cn_buf_init(&t->out, &c->w->pool);
  start_timer(t, &c->w->loop, f->hs_ms);
  c->tls = t;
  cn_buf_move(&t->in, &c->in, c->in.len);
  if (c->rerr != 0)
    t->eof = c->rerr;
  advance(c);
  return 0;
}


cn_buf_t *cn__tls_rbuf(cn_tls_t *t) { return &t->in; }
cn_buf_t *cn__tls_wire(cn_tls_t *t) { return &t->out; }


/* cn__tls_read takes the result of a socket read into c's ciphertext
** (cn_conn.c's read callback): n bytes, 0, or EOF or an error. Returns 1
** when a reader has news. */
int cn__tls_read(cn_conn_t *c, ssize_t n) {
  cn_tls_t *t = c->tls;
  if (n > 0) {
    cn_buf_commit(&t->in, (size_t)n);
  } else {
    cn_buf_trim(&t->in);
    if (n == 0)
      return 0;
    t->eof = (int)n;
  }
  if (t->err != 0) {
    cn_buf_reset(&t->in);
    return n < 0;
  }
  return advance(c);
}


/* cn__tls_seal turns c's write chain into records in its wire chain, as
** long as fewer than SEAL_MAX bytes wait there, and once the chain is
** empty after close or close_write, a close_notify. Plaintext waits for
** the handshake (and is dropped if c closes before). Returns 0 or an
** error for the write side. */
int cn__tls_seal(cn_conn_t *c) {
  cn_tls_t *t = c->tls;
  if (t->err != 0)
    return 0;
  if (!t->done) {
    if (c->flags & CN_CONN_CLOSED)
      cn_buf_consume(&c->out, c->out.len);
    return 0;
  }
  while (c->out.len > 0 && t->out.len < SEAL_MAX) {
    uv_buf_t iov;
    const char *p;
    size_t k, done;
    cn_buf_iov(&c->out, 0, &iov, 1);
    if (iov.len < GATHER_MIN && c->out.len > iov.len) {
      k = cn_buf_copyout(&c->out, 0, stage, sizeof stage);
      p = stage;
    } else {
      k = iov.len < RECORD ? iov.len : RECORD;
      p = iov.base;
    }
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, p, k, &done) != 1) {
      ERR_clear_error();
      return CN_ENOMEM; /* our BIO takes every byte it has memory for */
    }
    cn_buf_consume(&c->out, done);
  }
  if (c->out.len == 0 && !t->notified &&
      (c->flags & (CN_CONN_WSHUT | CN_CONN_CLOSED))) {
    t->notified = 1;
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
  }
  return 0;
}


/* cn__tls_free ends c's session (its handle closed). */
void cn__tls_free(cn_conn_t *c) {
  cn_tls_t *t = c->tls;
  c->tls = NULL;
  session_free(t);
}


/* cn_tls_status returns 1 once c's handshake finished, 0 while it runs,
** else why it failed (CN_ENOTLS for a plain connection). */
int cn_tls_status(const cn_conn_t *c) {
  if (c->tls == NULL)
    return CN_ENOTLS;
  if (c->tls->err != 0)
    return c->tls->err;
  return c->tls->done;
}


/* cn_tls_info fills info with what c's finished handshake negotiated.
** Returns 0 or what cn_tls_status says when it has not finished. */
int cn_tls_info(const cn_conn_t *c, cn_tls_info_t *info) {
  const unsigned char *alpn;
  unsigned alen;
  SSL *s;
  X509 *peer;
  int st = cn_tls_status(c);
  static __thread char proto[256];
  if (st != 1)
    return st == 0 ? CN_ETLS : st;
  s = c->tls->ssl;
  memset(info, 0, sizeof *info);
  info->version = SSL_get_version(s);
  info->cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(s));
  SSL_get0_alpn_selected(s, &alpn, &alen);
  if (alen > 0) {
    memcpy(proto, alpn, alen);
    proto[alen] = '\0';
    info->alpn = proto;
  }
  info->sni = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
  info->resumed = SSL_session_reused(s);
  info->server = SSL_is_server(s);
  info->verified = !info->server && SSL_get_verify_mode(s) != SSL_VERIFY_NONE &&
                   SSL_get_verify_result(s) == X509_V_OK;
  if ((peer = SSL_get0_peer_certificate(s)) != NULL) {
    BIO *b = BIO_new(BIO_s_mem());
    int n;
    X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
    n = BIO_read(b, info->peer, sizeof info->peer - 1);
    info->peer[n > 0 ? n : 0] = '\0';
    BIO_free(b);
  }
  return 0;
}
