/* tls.c - TLS sessions over memory BIOs, the server contexts (certificate
 * pairs chosen by SNI) and the session-ticket key ring every worker shares.
 *
 * Memory BIOs rather than a socket BIO: the socket belongs to libuv, which
 * reads into the worker's buffer and writes with its own queue; the session
 * only turns bytes into bytes, so backpressure, timeouts and the write queue
 * stay where they are for plain connections. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "keygate/log.h"
#include "tls.h"

struct kg_tls_conn {
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	const char *why;
};

/* Mozilla's "intermediate" configuration (TLS 1.2 ciphers; TLS 1.3 keeps
 * OpenSSL's default suites, which are the same three). */
#define KG_TLS12_CIPHERS                                                                                     \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"               \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                 \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define KG_TLS_GROUPS "X25519:prime256v1:secp384r1"

/* ---- session-ticket keys ----
 *
 * One ring for the whole process, not one per SSL_CTX: every worker and
 * every runtime snapshot (a SIGHUP builds new contexts) encrypts tickets
 * with the same current key, so a ticket resumes on any worker and across
 * reloads. The current key is replaced every KG_TICKET_ROTATE seconds; the
 * previous one still decrypts (and the ticket is renewed) for one more
 * period, then the client gets a full handshake. Keys never leave memory. */
#define KG_TICKET_ROTATE 3600

struct ticket_key {
	unsigned char name[16], aes[32], hmac[32];
	int64_t born; /* CLOCK_MONOTONIC seconds; 0: empty slot */
};

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ticket_key ring[2]; /* [0] current, [1] previous */

static int64_t mono_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec + 1; /* never 0, the empty mark */
}

/* The current key (rotating it when due) into *k; false when no random
 * bytes could be had. Called under ring_lock. */
static bool ring_current(struct ticket_key *k)
{
	int64_t now = mono_seconds();
	if (!ring[0].born || now - ring[0].born >= KG_TICKET_ROTATE) {
		struct ticket_key fresh;
		if (RAND_bytes(fresh.name, sizeof(fresh.name)) != 1 || RAND_bytes(fresh.aes, sizeof(fresh.aes)) != 1 ||
		    RAND_bytes(fresh.hmac, sizeof(fresh.hmac)) != 1) {
			OPENSSL_cleanse(&fresh, sizeof(fresh));
			return false;
		}
		fresh.born = now;
		OPENSSL_cleanse(&ring[1], sizeof(ring[1]));
		ring[1] = ring[0];
		ring[0] = fresh;
		OPENSSL_cleanse(&fresh, sizeof(fresh));
	}
	*k = ring[0];
	return true;
}

/* 1: k is the current key; 2: the previous one (renew the ticket); 0: none. */
static int ring_find(const unsigned char name[16], struct ticket_key *k)
{
	int64_t now = mono_seconds();
	for (int i = 0; i < 2; i++) {
		if (!ring[i].born || CRYPTO_memcmp(ring[i].name, name, 16) != 0)
			continue;
		/* the previous key serves one period after it stopped being current */
		if (i == 1 && ring[0].born && now - ring[0].born >= KG_TICKET_ROTATE)
			return 0;
		*k = ring[i];
		return i == 0 ? 1 : 2;
	}
	return 0;
}

static int on_ticket_key(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                         EVP_MAC_CTX *hctx, int enc)
{
	struct ticket_key k;
	int rc = 0;
	char digest[] = "sha256";

	pthread_mutex_lock(&ring_lock);
	if (enc)
		rc = ring_current(&k) ? 1 : -1;
	else
		rc = ring_find(key_name, &k);
	pthread_mutex_unlock(&ring_lock);
	if (rc <= 0)
		return rc; /* 0: not ours or expired: a full handshake; -1: no ticket */

	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac)),
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	if (enc) {
		memcpy(key_name, k.name, sizeof(k.name));
		if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1 ||
		    EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
			rc = -1;
	} else if (EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
		rc = 0;
	}
	if (rc > 0 && EVP_MAC_CTX_set_params(hctx, params) != 1)
		rc = enc ? -1 : 0;
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

/* ---- server contexts ---- */

/* The contexts of a pair list, kept on the default context (ex_data) and
 * freed with it; the default context is not counted in its own list. */
struct sni_list {
	size_t n;
	SSL_CTX *ctx[]; /* ctx[0] is the default itself, not referenced */
};

static int sni_index = -1;
static pthread_once_t sni_once = PTHREAD_ONCE_INIT;

static void sni_list_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct sni_list *l = ptr;
	if (!l)
		return;
	for (size_t i = 1; i < l->n; i++)
		SSL_CTX_free(l->ctx[i]);
	free(l);
}

static void sni_index_init(void)
{
	sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_list_free);
}

/* The pair whose certificate names the host the client asks for; the
 * default one (the first) when it asks for none or no certificate has it. */
static int on_servername(SSL *s, int *alert, void *arg)
{
	const struct sni_list *l = arg;
	const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
	if (!name || !l)
		return SSL_TLSEXT_ERR_OK;
	for (size_t i = 0; i < l->n; i++) {
		X509 *cert = SSL_CTX_get0_certificate(l->ctx[i]);
		if (cert && X509_check_host(cert, name, strlen(name), 0, NULL) == 1) {
			if (i > 0)
				SSL_set_SSL_CTX(s, l->ctx[i]);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_OK;
}

static int on_alpn(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg)
{
	static const unsigned char ours[] = "\x08http/1.1";
	unsigned char *sel = NULL;
	/* keygate speaks HTTP/1.1 only: a client that offers only h2 gets no
	 * ALPN answer and decides for itself whether to go on */
	if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* The reason of the newest OpenSSL error, for a log line. */
static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	return r ? r : "unknown error";
}

static SSL_CTX *pair_load(const char *cert, const char *key, kg_buf *why)
{
	SSL_CTX *ctx = NULL;
	struct stat sb;

	ERR_clear_error();
	if (stat(cert, &sb) != 0) {
		kg_buf_printf(why, "tls.cert %s: %s", cert, strerror(errno));
		goto fail;
	}
	if (stat(key, &sb) != 0) {
		kg_buf_printf(why, "tls.key %s: %s", key, strerror(errno));
		goto fail;
	}
	if (!(ctx = SSL_CTX_new(TLS_server_method()))) {
		kg_buf_printf(why, "tls: cannot create a context: %s", ssl_reason());
		goto fail;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, KG_TLS12_CIPHERS) != 1 || SSL_CTX_set1_groups_list(ctx, KG_TLS_GROUPS) != 1 ||
	    SSL_CTX_set_dh_auto(ctx, 1) != 1) {
		kg_buf_printf(why, "tls: cannot set protocols and ciphers: %s", ssl_reason());
		goto fail;
	}
	/* client-initiated renegotiation only costs the server CPU; a client
	 * that closes without close_notify is an ordinary close, not an error */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* an idle connection keeps no record buffers (nginx does the same) */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* resumption is by tickets only (shared by the workers); a session
	 * cache would be per context and grow with the clients */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_timeout(ctx, KG_TICKET_ROTATE);
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
	SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);

	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		kg_buf_printf(why, "tls.cert %s: not a PEM certificate (chain): %s", cert, ssl_reason());
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		unsigned long e = ERR_peek_last_error();
		/* OpenSSL compares the pair as it loads the key */
		if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
			kg_buf_printf(why, "tls.key %s does not match the certificate in %s", key, cert);
		else
			kg_buf_printf(why, "tls.key %s: not a PEM private key: %s", key, ssl_reason());
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		kg_buf_printf(why, "tls.key %s does not match the certificate in %s", key, cert);
		goto fail;
	}
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

kg_err kg__tls_server_new(const char *const *certs, const char *const *keys, size_t n, SSL_CTX **out, kg_buf *why)
{
	struct sni_list *l = NULL;

	*out = NULL;
	if (n == 0) {
		kg_buf_printf(why, "tls: no certificate (tls.cert and tls.key)");
		return KG_ECONFIG;
	}
	pthread_once(&sni_once, sni_index_init);
	if (sni_index < 0 || !(l = calloc(1, sizeof(*l) + n * sizeof(l->ctx[0]))))
		return KG_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!(l->ctx[i] = pair_load(certs[i], keys[i], why))) {
			for (size_t j = 0; j < i; j++)
				SSL_CTX_free(l->ctx[j]);
			free(l);
			return KG_ECONFIG;
		}
		l->n = i + 1;
	}
	SSL_CTX *def = l->ctx[0];
	if (SSL_CTX_set_ex_data(def, sni_index, l) != 1) {
		for (size_t j = 0; j < n; j++)
			SSL_CTX_free(l->ctx[j]);
		free(l);
		return KG_ENOMEM;
	}
	/* from here l is freed with def (sni_list_free) */
	if (n > 1) {
		SSL_CTX_set_tlsext_servername_callback(def, on_servername);
		SSL_CTX_set_tlsext_servername_arg(def, l);
	}
	*out = def;
	return KG_OK;
}

/* ---- sessions ---- */

kg_err kg__tls_conn_new(SSL_CTX *ctx, bool is_server, struct kg_tls_conn **out)
{
	struct kg_tls_conn *t = calloc(1, sizeof(*t));
	*out = NULL;
	if (!t)
		return KG_ENOMEM;
	t->ssl = SSL_new(ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		SSL_free(t->ssl);
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		free(t);
		return KG_ENOMEM;
	}
	/* an empty read BIO means "wait for more", not end of stream */
	BIO_set_mem_eof_return(t->rbio, -1);
	BIO_set_mem_eof_return(t->wbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	if (is_server)
		SSL_set_accept_state(t->ssl);
	else
		SSL_set_connect_state(t->ssl);
	*out = t;
	return KG_OK;
}

void kg__tls_conn_free(struct kg_tls_conn **t)
{
	if (!t || !*t)
		return;
	SSL_free((*t)->ssl); /* frees the BIOs too */
	free(*t);
	*t = NULL;
}

SSL *kg__tls_ssl(struct kg_tls_conn *t)
{
	return t->ssl;
}

bool kg__tls_is_established(const struct kg_tls_conn *t)
{
	return SSL_is_init_finished(t->ssl);
}

kg_err kg__tls_feed(struct kg_tls_conn *t, const char *cipher, size_t len)
{
	while (len > 0) {
		int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
		int n = BIO_write(t->rbio, cipher, chunk);
		if (n <= 0)
			return KG_ENOMEM;
		cipher += n;
		len -= (size_t)n;
	}
	return KG_OK;
}

/* A failed handshake or record, in words an operator can act on. */
static const char *failure_reason(unsigned long e)
{
	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return e ? ERR_reason_error_string(e) : "TLS failure";
	switch (ERR_GET_REASON(e)) {
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
		return "plain HTTP on a TLS port";
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_UNKNOWN_PROTOCOL:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		return "protocol version not supported (keygate speaks TLS 1.2 and 1.3)";
	case SSL_R_NO_SHARED_CIPHER:
		return "no shared cipher";
	case SSL_R_NO_SHARED_GROUPS:
		return "no shared key exchange group";
	default: {
		const char *r = ERR_reason_error_string(e);
		return r ? r : "TLS failure";
	}
	}
}

ssize_t kg__tls_read(struct kg_tls_conn *t, char *out, size_t cap)
{
	ERR_clear_error();
	int n = SSL_read(t->ssl, out, cap > INT32_MAX ? INT32_MAX : (int)cap);
	if (n > 0)
		return n;
	switch (SSL_get_error(t->ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return KG_TLS_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return KG_TLS_CLOSED;
	default:
		t->why = failure_reason(ERR_peek_last_error());
		ERR_clear_error();
		return KG_TLS_ERROR;
	}
}

kg_err kg__tls_write(struct kg_tls_conn *t, const char *plain, size_t len)
{
	if (!SSL_is_init_finished(t->ssl))
		return KG_EINVAL;
	ERR_clear_error();
	while (len > 0) {
		int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
		int n = SSL_write(t->ssl, plain, chunk);
		if (n <= 0) {
			t->why = failure_reason(ERR_peek_last_error());
			ERR_clear_error();
			return KG_EIO;
		}
		plain += n;
		len -= (size_t)n;
	}
	return KG_OK;
}

size_t kg__tls_pending_out(struct kg_tls_conn *t, const char **p)
{
	char *data = NULL;
	long n = BIO_get_mem_data(t->wbio, &data);
	*p = data;
	return n > 0 ? (size_t)n : 0;
}

void kg__tls_consumed(struct kg_tls_conn *t)
{
	(void)BIO_reset(t->wbio);
}

void kg__tls_shutdown(struct kg_tls_conn *t)
{
	if (!SSL_is_init_finished(t->ssl))
		return;
	ERR_clear_error();
	(void)SSL_shutdown(t->ssl);
	ERR_clear_error();
}

void kg__tls_release_buffers(struct kg_tls_conn *t)
{
	/* a memory BIO keeps its largest size: fresh ones hold nothing */
	if (BIO_ctrl_pending(t->rbio) != 0 || BIO_ctrl_pending(t->wbio) != 0)
		return;
	BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
	if (!r || !w) {
		BIO_free(r);
		BIO_free(w);
		return;
	}
	BIO_set_mem_eof_return(r, -1);
	BIO_set_mem_eof_return(w, -1);
	SSL_set_bio(t->ssl, r, w); /* frees the old pair */
	t->rbio = r;
	t->wbio = w;
}

const char *kg__tls_error(const struct kg_tls_conn *t)
{
	return t->why ? t->why : "TLS failure";
}

/* ---- the client context (keygate -> https upstreams) ---- */

kg_err kg__tls_client_new(const kg_config *cfg, const char *host, int (*on_new_session)(SSL *, SSL_SESSION *),
                          SSL_CTX **out, kg_buf *why)
{
	SSL_CTX *ctx = NULL;
	struct stat sb;
	unsigned char a[sizeof(struct in6_addr)];
	kg_err err = KG_ECONFIG;

	*out = NULL;
	ERR_clear_error();
	if (!(ctx = SSL_CTX_new(TLS_client_method()))) {
		kg_buf_printf(why, "upstream tls: cannot create a context: %s", ssl_reason());
		err = KG_ENOMEM;
		goto out;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, KG_TLS12_CIPHERS) != 1 || SSL_CTX_set1_groups_list(ctx, KG_TLS_GROUPS) != 1 ||
	    SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9) != 0) {
		kg_buf_printf(why, "upstream tls: cannot set protocols and ciphers: %s", ssl_reason());
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* resumption: the caller keeps the newest session it is handed (TLS 1.3
	 * tickets come after the handshake, so SSL_get1_session at its end would
	 * miss them); OpenSSL's own cache would only grow */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	if (on_new_session)
		SSL_CTX_sess_set_new_cb(ctx, on_new_session);

	if (cfg->proxy_tls_ca[0]) {
		int ok = 0;
		if (stat(cfg->proxy_tls_ca, &sb) != 0) {
			kg_buf_printf(why, "proxy.tls_ca %s: %s", cfg->proxy_tls_ca, strerror(errno));
			goto out;
		}
		if (S_ISDIR(sb.st_mode))
			ok = SSL_CTX_load_verify_dir(ctx, cfg->proxy_tls_ca);
		else
			ok = SSL_CTX_load_verify_file(ctx, cfg->proxy_tls_ca);
		if (ok != 1) {
			kg_buf_printf(why, "proxy.tls_ca %s: no PEM CA certificate in it: %s", cfg->proxy_tls_ca,
			              ssl_reason());
			goto out;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		kg_buf_printf(why, "upstream tls: cannot load the system's CA certificates: %s", ssl_reason());
		goto out;
	}

	if (cfg->proxy_tls_verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		/* the name check: an IP literal is matched against the certificate's
		 * IP addresses, a name against its DNS names (no partial wildcards) */
		X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
		bool is_ip = inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
		X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) : X509_VERIFY_PARAM_set1_host(vp, host, 0)) != 1) {
			kg_buf_printf(why, "upstream tls: cannot check the name %s: %s", host, ssl_reason());
			goto out;
		}
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}

	if (cfg->proxy_tls_cert[0]) {
		if (stat(cfg->proxy_tls_cert, &sb) != 0) {
			kg_buf_printf(why, "proxy.tls_cert %s: %s", cfg->proxy_tls_cert, strerror(errno));
			goto out;
		}
		if (stat(cfg->proxy_tls_key, &sb) != 0) {
			kg_buf_printf(why, "proxy.tls_key %s: %s", cfg->proxy_tls_key, strerror(errno));
			goto out;
		}
		if (SSL_CTX_use_certificate_chain_file(ctx, cfg->proxy_tls_cert) != 1) {
			kg_buf_printf(why, "proxy.tls_cert %s: not a PEM certificate (chain): %s", cfg->proxy_tls_cert,
			              ssl_reason());
			goto out;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, cfg->proxy_tls_key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			kg_buf_printf(why, "proxy.tls_key %s: not a PEM private key, or not the key of %s: %s",
			              cfg->proxy_tls_key, cfg->proxy_tls_cert, ssl_reason());
			goto out;
		}
	}
	*out = ctx;
	ctx = NULL;
	err = KG_OK;
out:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return err;
}

/* Why a client handshake failed: the verification's own words when the
 * certificate was refused ("certificate has expired", "Hostname mismatch",
 * "unable to get local issuer certificate"), else kg__tls_error's. */
const char *kg__tls_verify_error(struct kg_tls_conn *t)
{
	long v = SSL_get_verify_result(t->ssl);
	if (v != X509_V_OK)
		return X509_verify_cert_error_string(v);
	return kg__tls_error(t);
}
