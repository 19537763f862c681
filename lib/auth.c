/* auth.c - credential classification, the access decision, error dialects. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "keygate/auth.h"
#include "keygate/es.h"

/* 1 for a byte that is neither a JWT part's character (base64url or '=')
 * nor the separator. A table, because this scan runs over every Bearer
 * token of every request: a chain of range compares per byte was a tenth
 * of a JWT request's instructions. */
#define X 1
static const unsigned char jwt_other[256] = {
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, /* controls */
	X, X, X, X, X, X, X, X, X, X, X, X, X, 0, 0, X, /* space ! " # $ % & ' ( ) * + , - . / */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, X, X, X, 0, X, X, /* 0-9 : ; < = > ? */
	X, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* @ A-O */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, X, X, X, X, 0, /* P-Z [ \ ] ^ _ */
	X, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* ` a-o */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, X, X, X, X, X, /* p-z { | } ~ DEL */
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, /* 0x80- */
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
};
#undef X

/* Whether any of the 16 bytes at p is not in jwt_other's set, the same
 * question as the table's for 16 bytes at once: GCC's and Clang's vector
 * extensions make each comparison one SIMD instruction (SSE2 on x86-64),
 * about twenty for the 16 bytes where the table took some sixty. A JWT
 * of 250 bytes went from ~1,050 instructions to ~350.
 * Letters: (c | 0x20) - 'a' < 26 holds for A-Z and a-z only. */
typedef unsigned char kg_u8x16 __attribute__((vector_size(16)));
typedef signed char kg_s8x16 __attribute__((vector_size(16)));

static bool has_other_in_16(const unsigned char *p)
{
	kg_u8x16 c;
	memcpy(&c, p, sizeof(c));
	kg_u8x16 letter = (c | 0x20) - 'a', digit = c - '0';
	kg_s8x16 ok = (letter < 26) | (digit < 10) | (c == '-') | (c == '_') | (c == '=') | (c == '.');
	uint64_t w[2]; /* every byte of ok is 0xff (in the set) or 0 */
	memcpy(w, &ok, sizeof(w));
	return (w[0] & w[1]) != UINT64_MAX;
}

/* Three base64url parts separated by dots, the first two non-empty (the
 * signature part of an unsigned JWT may be empty; we still call it a JWT so
 * the JWT scheme can refuse it with its own message). The dots are found
 * by memchr; then 16 bytes at a time, and one OR per byte of the rest,
 * say whether any byte is neither a part's nor a dot. */
static bool looks_like_jwt(kg_str v)
{
	if (v.n == 0)
		return false;
	const char *end = v.p + v.n;
	const char *d1 = memchr(v.p, '.', v.n);
	if (!d1 || d1 == v.p)
		return false;
	const char *d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
	if (!d2 || d2 == d1 + 1 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
		return false;
	const unsigned char *p = (const unsigned char *)v.p;
	size_t i = 0;
	for (; i + 16 <= v.n; i += 16)
		if (has_other_in_16(p + i))
			return false;
	unsigned char other = 0;
	for (; i < v.n; i++)
		other |= jwt_other[p[i]];
	return other == 0;
}

struct kg_cred kg_cred_parse(kg_str h)
{
	struct kg_cred c = { KG_CRED_NONE, KG_STR_NULL, KG_STR_NULL };
	size_t sp;

	h = kg_str_trim(h);
	if (h.n == 0)
		return c;
	for (sp = 0; sp < h.n && h.p[sp] != ' ' && h.p[sp] != '\t'; sp++)
		;
	c.scheme = (kg_str){ h.p, sp };
	c.value = kg_str_trim((kg_str){ h.p + sp, h.n - sp });
	if (kg_str_eq_ci(c.scheme, KG_STR("Basic")))
		c.kind = KG_CRED_BASIC;
	else if (kg_str_eq_ci(c.scheme, KG_STR("ApiKey")))
		c.kind = KG_CRED_APIKEY;
	else if (kg_str_eq_ci(c.scheme, KG_STR("Bearer"))) {
		if (kg_str_has_prefix(c.value, KG_STR(KG_TOKEN_PREFIX)))
			c.kind = KG_CRED_BEARER_KG;
		else if (looks_like_jwt(c.value))
			c.kind = KG_CRED_BEARER_JWT;
		else
			c.kind = KG_CRED_BEARER_BEE;
	} else
		c.kind = KG_CRED_UNKNOWN;
	return c;
}

static enum kg_dialect route_dialect(const struct kg_auth_config *ac, kg_str path)
{
	enum kg_dialect d;
	if (ac->route_dialect && ac->route_dialect(ac->route_dialect_data, path, &d))
		return d;
	return ac->default_dialect;
}

void kg_decision_refuse(struct kg_decision *d, int status, kg_err err, enum kg_dialect dialect, const char *message)
{
	d->status = status;
	d->err = err;
	d->dialect = dialect;
	d->message = message;
}

void kg_auth_decide(const struct kg_auth_config *ac, kg_str method, kg_str path, kg_str authorization,
                    int64_t now, kg_arena *arena, struct kg_decision *d)
{
	memset(d, 0, sizeof(*d));
	d->status = 200;
	d->dialect = ac->default_dialect;

	struct kg_auth_request req = {
		.method = method,
		.path = path,
		.cred = kg_cred_parse(authorization),
		.policy = ac->policy,
		.now = now,
	};
	const struct kg_authenticator *a = ac->by_kind[req.cred.kind];
	/* When the policy's roles will decide (a scheme without its own
	 * authorize), one walk of its trie answers both questions of this
	 * request: is the path public, and may the principal's roles call it.
	 * Otherwise only the first is asked, without the method's slot. */
	bool is_public = false;
	kg_rolemask allowed = 0;
	if (ac->policy && a && !a->authorize)
		allowed = kg_policy_decide(ac->policy, method, path, &is_public);
	else if (ac->policy)
		is_public = kg_policy_is_public(ac->policy, path);
	if (is_public) {
		d->is_public = true;
		return;
	}
	if (!a) {
		/* no credential, or one that no enabled scheme handles */
		if (ac->require_auth) {
			enum kg_dialect rd = route_dialect(ac, path);
			const char *msg = NULL;
			if (rd == KG_DIALECT_ES && req.cred.kind == KG_CRED_NONE) {
				/* Elasticsearch names the request in its refusal */
				kg_buf b = { 0 };
				if (kg_buf_printf(&b, KG_ES_REASON_MISSING, (int)path.n, path.p) == KG_OK)
					msg = kg_arena_strdup(arena, kg_buf_str(&b)).p;
				kg_buf_free(&b, false);
			} else if (rd == KG_DIALECT_ES) {
				msg = KG_ES_REASON_BAD_CREDENTIALS;
			}
			kg_decision_refuse(d, 401, req.cred.kind == KG_CRED_NONE ? KG_ENOCRED : KG_ESCHEME, rd, msg);
		}
		return;
	}

	d->scheme = a;
	const char *msg = NULL;
	kg_err err = a->authenticate(a, &req, arena, &d->principal, &msg);
	if (err == KG_ESLOW) {
		d->err = KG_ESLOW;
		return;
	}
	/* AvalancheGo answered every refusal of a protected endpoint with 401 */
	int forbidden = a->dialect == KG_DIALECT_AVALANCHE ? 401 : 403;
	if (err == KG_EFORBIDDEN) {
		kg_decision_refuse(d, forbidden, err, a->dialect, msg);
		return;
	}
	if (err == KG_ETHROTTLED) {
		kg_decision_refuse(d, 429, err, a->dialect, msg);
		return;
	}
	if (err) {
		kg_decision_refuse(d, 401, err, a->dialect, msg);
		return;
	}
	d->is_authenticated = true;

	if (a->authorize) {
		msg = NULL;
		if (a->authorize(a, &req, &d->principal, &msg) != KG_OK)
			kg_decision_refuse(d, forbidden, KG_EFORBIDDEN, a->dialect, msg);
		return;
	}
	if (d->principal.is_superuser)
		return;
	if (!ac->policy || (allowed & d->principal.roles) == 0)
		kg_decision_refuse(d, 403, KG_EFORBIDDEN, a->dialect, NULL);
}

kg_err kg_auth_slow(const struct kg_auth_config *ac, kg_str authorization, int64_t now, const char **message)
{
	struct kg_auth_request req = { .cred = kg_cred_parse(authorization), .policy = ac->policy, .now = now };
	const struct kg_authenticator *a = ac->by_kind[req.cred.kind];
	if (!a || !a->slow)
		return KG_EINVAL;
	return a->slow(a, &req, message);
}

static const char *default_message(kg_err err, int status)
{
	switch (err) {
	case KG_ENOCRED: return "missing credential: this route needs an Authorization header";
	case KG_ESCHEME: return "unsupported credential: no enabled scheme accepts this Authorization header";
	case KG_EBADCRED: return "invalid credential";
	case KG_EEXPIRED: return "credential expired";
	case KG_EREVOKED: return "credential revoked";
	case KG_EFORBIDDEN: return "the credential does not grant access to this route";
	case KG_ETHROTTLED: return "too many failed attempts; retry later";
	default: break;
	}
	return status >= 500 ? "internal error" : kg_strerror(err);
}

/* Bee's exact wording (ethersphere/bee api/auth.go, v2.1.0). */
static const char *bee_message(kg_err err)
{
	switch (err) {
	case KG_ENOCRED:
	case KG_ESCHEME: return "Missing bearer token";
	case KG_EEXPIRED: return "Token expired";
	case KG_EREVOKED: return "Token revoked";
	case KG_EFORBIDDEN: return "Provided security token does not grant access to the resource";
	case KG_EBADCRED: return "Invalid token";
	default: return NULL;
	}
}

/* AvalancheGo's (api/auth/auth.go, v1.11.1). */
static const char *avalanche_message(kg_err err)
{
	switch (err) {
	case KG_ENOCRED: return "auth token not provided";
	case KG_ESCHEME: return "couldn't parse auth token. Header \"Authorization\" should be \"Bearer TOKEN.GOES.HERE\"";
	case KG_EREVOKED: return "the provided auth token was revoked";
	case KG_EFORBIDDEN: return "the provided auth token does not allow access to this endpoint";
	case KG_EEXPIRED: return "token is expired";
	case KG_EBADCRED: return "signature is invalid";
	default: return NULL;
	}
}

/* Elasticsearch's (x-pack security, 8.x): a credential that did not pass
 * is never described further on the wire. */
static const char *es_message(kg_err err)
{
	switch (err) {
	case KG_EBADCRED:
	case KG_EEXPIRED:
	case KG_EREVOKED:
	case KG_ESCHEME: return KG_ES_REASON_BAD_CREDENTIALS;
	default: return NULL;
	}
}

kg_err kg_error_json(int status, const char *message, kg_buf *out)
{
	kg_err err = kg_buf_printf(out, "{\"code\":%d,\"message\":", status);
	if (!err)
		err = kg_buf_append_json_string(out, kg_str_c(message));
	if (!err)
		err = kg_buf_append(out, "}", 1);
	return err;
}

kg_err kg_dialect_render(enum kg_dialect d, int status, kg_err err, const char *message, kg_buf *out,
                         const char **content_type)
{
	kg_err e;
	if (!message && d == KG_DIALECT_BEE)
		message = bee_message(err);
	if (!message && d == KG_DIALECT_AVALANCHE)
		message = avalanche_message(err);
	if (!message && d == KG_DIALECT_ES)
		message = es_message(err);
	if (!message)
		message = default_message(err, status);
	*content_type = "application/json";
	switch (d) {
	case KG_DIALECT_AVALANCHE:
		/* what AvalancheGo's auth middleware wrote for protected endpoints */
		e = kg_buf_printf(out, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":");
		if (!e)
			e = kg_buf_append_json_string(out, kg_str_c(message));
		if (!e)
			e = kg_buf_printf(out, "},\"id\":1}");
		return e;
	case KG_DIALECT_ES:
		/* Elasticsearch's security_exception, with its challenges repeated
		 * in the body of a 401 (lib/es.c) */
		if (status == 401) {
			/* a refusal is worded by the dialect of the scheme that refused:
			 * in this one only an API key whose secret matched is expired or
			 * invalidated, and recent ES tells its holder which */
			const char *why = err == KG_EEXPIRED   ? "api key is expired"
			                  : err == KG_EREVOKED ? "api key has been invalidated"
			                                       : NULL;
			return kg_es_error_401(out, kg_str_c(message), why ? kg_str_c(why) : KG_STR_NULL);
		}
		{
			struct kg_es_fail f = { .status = status, .type = "security_exception" };
			e = kg_buf_appends(&f.reason, kg_str_c(message));
			if (!e)
				e = kg_es_error_json(out, &f, KG_STR_NULL);
			kg_es_fail_free(&f);
		}
		return e;
	case KG_DIALECT_BEE:
	case KG_DIALECT_KEYGATE:
	default:
		return kg_error_json(status, message, out);
	}
}

const char *kg_dialect_challenge(enum kg_dialect d, bool is_login, bool is_basic, bool is_bearer)
{
	switch (d) {
	case KG_DIALECT_AVALANCHE:
		return ""; /* AvalancheGo's middleware sent none */
	case KG_DIALECT_ES:
		return kg_es_www_authenticate_lines;
	case KG_DIALECT_BEE:
		if (is_login)
			return "WWW-Authenticate: Basic realm=\"Restricted\"\r\n"; /* Bee's /auth, as Bee wrote it */
		break; /* a protected route answers like keygate's */
	case KG_DIALECT_KEYGATE:
	default:
		break;
	}
	return is_basic && is_bearer ? "WWW-Authenticate: Bearer realm=\"keygate\"\r\n"
	                               "WWW-Authenticate: Basic realm=\"keygate\", charset=\"UTF-8\"\r\n"
	       : is_basic            ? "WWW-Authenticate: Basic realm=\"keygate\", charset=\"UTF-8\"\r\n"
	                             : "WWW-Authenticate: Bearer realm=\"keygate\"\r\n";
}

kg_err kg_throttle_message(enum kg_dialect d, kg_err err, int64_t retry_after, int *status, char *buf, size_t cap)
{
	/* Each dialect keeps the wording its clients have always seen: Bee's
	 * /auth capitalises like Bee's own messages, AvalancheGo's says
	 * "password"; Elasticsearch has no such refusal of its own and reads
	 * keygate's. */
	const char *failed = d == KG_DIALECT_BEE       ? "Too many failed attempts"
	                     : d == KG_DIALECT_AVALANCHE ? "too many failed password attempts"
	                                                 : "too many failed attempts";
	const char *busy = d == KG_DIALECT_BEE ? "Too many password checks in progress; retry later"
	                                       : "too many password checks in progress; retry later";
	int n;
	if (err == KG_ETHROTTLED) {
		*status = 429;
		n = snprintf(buf, cap, "%s; retry in %lld seconds", failed, (long long)retry_after);
	} else if (err == KG_EUNAVAILABLE) {
		*status = 503;
		n = snprintf(buf, cap, "%s", busy);
	} else {
		return KG_EINVAL;
	}
	return n < 0 || (size_t)n >= cap ? KG_ETOOBIG : KG_OK;
}

kg_err kg_retry_after_header(int64_t seconds, char *buf, size_t cap)
{
	/* a client told to retry in 0 seconds retries at once: never less than 1 */
	int n = snprintf(buf, cap, "Retry-After: %lld\r\n", (long long)(seconds > 0 ? seconds : 1));
	return n < 0 || (size_t)n >= cap ? KG_ETOOBIG : KG_OK;
}

int kg_dialect_parse(const char *name)
{
	static const char *const names[] = { "keygate", "bee", "avalanche", "elasticsearch" };
	for (int i = 0; i < KG__DIALECT_COUNT; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}
