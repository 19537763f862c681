/* tls.h - TLS with OpenSSL over memory BIOs (tls.c): one session that the
 * caller feeds with the bytes it read from a socket and drains of the bytes
 * to write to it, so the session knows nothing of libuv, llhttp or either
 * side of the proxy. The client side (http.c) uses it with the server
 * contexts built here; the upstream side can use it with a client SSL_CTX of
 * its own (kg__tls_conn_new takes any SSL_CTX).
 *
 * A session is used by one thread at a time (its connection's worker). The
 * server contexts and the session-ticket keys are shared by every worker:
 * a ticket issued on one worker resumes on any other. */
#ifndef KG_TLS_H
#define KG_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "keygate/config.h"
#include "keygate/err.h"
#include "keygate/str.h"

/* kg__tls_read's answers besides a byte count */
#define KG_TLS_AGAIN 0   /* nothing more until more ciphertext is fed */
#define KG_TLS_CLOSED -1 /* the peer ended the session (close_notify) */
#define KG_TLS_ERROR -2  /* handshake or record failure: kg__tls_error says why */

/* Server contexts for a list of certificate pairs: one SSL_CTX per pair,
 * the first the default, the others chosen by SNI (the name the client
 * asks for matched against each certificate's names). TLS 1.2 and 1.3 only,
 * Mozilla's "intermediate" ciphers, ALPN http/1.1, session tickets under
 * the process-wide rotating key ring. certs[i] is a PEM file with the
 * certificate then its chain, keys[i] its PEM private key (both borrowed,
 * read now). On failure why names the file and the problem (KG_ECONFIG).
 * *out is a reference on the default context (free with SSL_CTX_free); the
 * others live as long as it does. */
kg_err kg__tls_server_new(const char *const *certs, const char *const *keys, size_t n, SSL_CTX **out, kg_buf *why);

/* The client context for https upstreams, from cfg's proxy.tls_* settings
 * (borrowed, read now): TLS 1.2 and 1.3, ALPN http/1.1, the peer verified
 * against proxy.tls_ca (a PEM file or a hashed directory) or the system's
 * CAs and its name checked against host (an IP literal against the
 * certificate's IP addresses) unless proxy.tls_verify is false, and
 * proxy.tls_cert/proxy.tls_key shown when the upstream asks (mutual TLS).
 * on_new_session (may be NULL) is handed every session the upstream lets
 * keygate resume (SSL_CTX_sess_set_new_cb's contract: return 1 to keep the
 * reference). On failure why names the setting and file (KG_ECONFIG).
 * *out: returns owned (SSL_CTX_free). */
kg_err kg__tls_client_new(const kg_config *cfg, const char *host, int (*on_new_session)(SSL *, SSL_SESSION *),
                          SSL_CTX **out, kg_buf *why);

/* One TLS session over memory BIOs. */
struct kg_tls_conn;

/* A session on ctx (a reference is taken): a server session when is_server,
 * else a client one (the caller sets SNI and verification on t's SSL via
 * kg__tls_ssl). KG_ENOMEM. *out: returns owned. */
kg_err kg__tls_conn_new(SSL_CTX *ctx, bool is_server, struct kg_tls_conn **out);
void kg__tls_conn_free(struct kg_tls_conn **t);
SSL *kg__tls_ssl(struct kg_tls_conn *t);

/* Hands the session len bytes read from the socket (copied). KG_ENOMEM. */
kg_err kg__tls_feed(struct kg_tls_conn *t, const char *cipher, size_t len);

/* Decrypts into out (up to cap bytes), advancing the handshake first: a
 * byte count, or KG_TLS_AGAIN, KG_TLS_CLOSED or KG_TLS_ERROR. After any
 * call, kg__tls_pending_out may hold handshake bytes, alerts or tickets. */
ssize_t kg__tls_read(struct kg_tls_conn *t, char *out, size_t cap);

/* Encrypts len bytes of plaintext; the records wait in the session for
 * kg__tls_pending_out. KG_EINVAL before the handshake is done (nothing can
 * be sent yet), KG_EIO on a failed session. */
kg_err kg__tls_write(struct kg_tls_conn *t, const char *plain, size_t len);

/* The ciphertext waiting to be sent: *p (borrowed until the next call on t)
 * and its length; kg__tls_consumed(t) once it is copied or written. */
size_t kg__tls_pending_out(struct kg_tls_conn *t, const char **p);
void kg__tls_consumed(struct kg_tls_conn *t);

/* Queues a close_notify (when the handshake finished). */
void kg__tls_shutdown(struct kg_tls_conn *t);

bool kg__tls_is_established(const struct kg_tls_conn *t);

/* Gives back the session's buffers while it is idle (nothing pending
 * either way); they come back with the next bytes. */
void kg__tls_release_buffers(struct kg_tls_conn *t);

/* Why the last kg__tls_read failed, for a log line ("plain HTTP on a TLS
 * port", "protocol version not supported", ...): a static string. */
const char *kg__tls_error(const struct kg_tls_conn *t);

/* Why a client session's handshake failed, for a log line and a 502: the
 * certificate verification's reason when it refused the peer's
 * (X509_verify_cert_error_string), else kg__tls_error's. A static string. */
const char *kg__tls_verify_error(struct kg_tls_conn *t);

#endif
