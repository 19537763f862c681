/* auth.h - credentials, principals, authenticators and the access decision.
 *
 * A request's Authorization header is classified by shape, never by trying
 * every scheme: "Basic" goes to user/password schemes, "ApiKey" to API keys,
 * "Bearer" by token shape (three dot-separated base64url parts: JWT; the
 * keygate token prefix: keygate token; anything else: Bee-format token).
 * Each shape is handled by at most one registered kg_authenticator.
 */
#ifndef KEYGATE_AUTH_H
#define KEYGATE_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "keygate/arena.h"
#include "keygate/err.h"
#include "keygate/policy.h"
#include "keygate/str.h"

/* The prefix of keygate's own versioned tokens ("kg1." ...). */
#define KG_TOKEN_PREFIX "kg1."

enum kg_cred_kind {
	KG_CRED_NONE = 0,      /* no Authorization header */
	KG_CRED_BASIC,         /* Basic base64(user:password) */
	KG_CRED_BEARER_JWT,    /* Bearer a.b.c */
	KG_CRED_BEARER_KG,     /* Bearer kg1.... */
	KG_CRED_BEARER_BEE,    /* Bearer anything else */
	KG_CRED_APIKEY,        /* ApiKey base64(id:key) */
	KG_CRED_UNKNOWN,       /* a scheme keygate does not handle */
	KG__CRED_COUNT
};

/* Error dialects: each maps a refusal to its own wire format. */
enum kg_dialect {
	KG_DIALECT_KEYGATE = 0,  /* {"code": status, "message": "..."} */
	KG_DIALECT_BEE,          /* {"code": status, "message": "..."} with Bee's messages */
	KG_DIALECT_AVALANCHE,    /* JSON-RPC 2.0 error object */
	KG_DIALECT_ES,           /* {"error": {"type": "security_exception", ...}, "status": N} */
	KG__DIALECT_COUNT
};

struct kg_cred {
	enum kg_cred_kind kind;
	kg_str scheme; /* as sent ("Bearer") */
	kg_str value;  /* what follows the scheme, trimmed; borrowed from the request */
};

/* Classifies an Authorization header value (borrowed; may be KG_STR_NULL). */
struct kg_cred kg_cred_parse(kg_str authorization);

/* The authenticated identity. Strings are owned by the request arena. */
struct kg_principal {
	const char *scheme;   /* "bee", "avalanche", "apikey", "basic", ... (static) */
	kg_str id;            /* token id, key id or user name: safe to log */
	kg_str role;          /* display role for X-Keygate-Role, may be empty */
	kg_rolemask roles;    /* roles in the current policy */
	bool is_superuser;    /* all routes (e.g. an unrestricted token) */
	int64_t expires_at;   /* unix seconds, 0: never */
	const void *scheme_data; /* the scheme's own view (e.g. JWT claims), arena */
};

/* What an authenticator sees of the request. All borrowed. */
struct kg_auth_request {
	kg_str method;
	kg_str path;          /* without query */
	struct kg_cred cred;
	const kg_policy *policy;
	int64_t now;          /* unix seconds */
};

/* A pluggable authentication scheme. Later issues add Bee tokens, Avalanche
 * JWTs, Elasticsearch API keys and Basic users. authenticate() runs on an
 * event loop: it must not block. It returns KG_OK with *out filled, or a
 * precise error (KG_EBADCRED, KG_EEXPIRED, KG_EREVOKED, KG_EFORBIDDEN) and may
 * set *message (static or arena) to the dialect's exact wording. Returning
 * KG_ESLOW asks the caller to run slow() on the thread pool (bcrypt...):
 * KG_OK from it means the credential is now known good (cached), and the
 * caller decides again; an error refuses with *message. */
struct kg_authenticator {
	const char *name;
	enum kg_dialect dialect;
	uint32_t kinds; /* bit (1u << kg_cred_kind) for each shape it handles */
	void *data;
	kg_err (*authenticate)(const struct kg_authenticator *a, const struct kg_auth_request *req,
	                       kg_arena *arena, struct kg_principal *out, const char **message);
	kg_err (*slow)(const struct kg_authenticator *a, const struct kg_auth_request *req, const char **message);
	/* Optional: the scheme decides authorization itself (e.g. JWT endpoint
	 * lists) instead of the role policy. Return KG_OK or KG_EFORBIDDEN. */
	kg_err (*authorize)(const struct kg_authenticator *a, const struct kg_auth_request *req,
	                    const struct kg_principal *p, const char **message);
	void (*destroy)(struct kg_authenticator *a);
	/* Optional: the message of a refusal after slow() failed, when it
	 * depends on the request (Elasticsearch names the user and the path);
	 * arena memory, or NULL to keep slow()'s own. Runs on the event loop. */
	const char *(*slow_refusal)(const struct kg_authenticator *a, const struct kg_auth_request *req, kg_arena *arena);
};

/* The set of enabled schemes plus the rules that decide a request. */
struct kg_auth_config {
	const struct kg_authenticator *by_kind[KG__CRED_COUNT]; /* borrowed */
	const kg_policy *policy;                                /* borrowed */
	bool require_auth;
	bool has_bearer; /* a Bearer scheme is on (for the 401 challenge) */
	enum kg_dialect default_dialect;
	/* route owners: a path claimed by a scheme's preset answers in its dialect */
	bool (*route_dialect)(void *data, kg_str path, enum kg_dialect *out);
	void *route_dialect_data;
};

struct kg_decision {
	int status;              /* 200, 401, 403 (500/503 on internal trouble) */
	kg_err err;              /* KG_OK when allowed */
	enum kg_dialect dialect; /* the dialect a refusal is written in */
	const char *message;     /* precise reason, may be NULL (dialect default) */
	bool is_authenticated;   /* principal is filled */
	bool is_public;
	const struct kg_authenticator *scheme; /* the one that judged, or NULL */
	struct kg_principal principal;
	int64_t retry_after;     /* seconds, for a 429 or 503 (0: no Retry-After) */
};

/* Decides one request: public path? credential present and valid? role
 * allowed? Pure and non-blocking (KG_ESLOW in d->err means: run the scheme's
 * slow() off-loop and decide again). */
void kg_auth_decide(const struct kg_auth_config *ac, kg_str method, kg_str path, kg_str authorization,
                    int64_t now, kg_arena *arena, struct kg_decision *d);

/* Turns d into a refusal: status, error, the dialect it is written in and
 * a message (static or arena, NULL: the dialect's default). */
void kg_decision_refuse(struct kg_decision *d, int status, kg_err err, enum kg_dialect dialect, const char *message);

/* The off-loop half of a KG_ESLOW decision (thread pool): runs the slow()
 * of the scheme that asked for it on the same request. KG_OK: decide again. */
kg_err kg_auth_slow(const struct kg_auth_config *ac, kg_str authorization, int64_t now, const char **message);

/* Renders a refusal in a dialect: sets *status and writes the body into out,
 * *content_type gets a static string. */
kg_err kg_dialect_render(enum kg_dialect d, int status, kg_err err, const char *message, kg_buf *out,
                         const char **content_type);

/* The WWW-Authenticate header lines (static, "" when the dialect sends
 * none) that go with a 401 in dialect d: for a protected route, where
 * is_basic/is_bearer say which schemes could have answered it; or, when
 * is_login, for a dialect's own password endpoint (Bee's POST /auth). The
 * one place each dialect's challenge is written. */
const char *kg_dialect_challenge(enum kg_dialect d, bool is_login, bool is_basic, bool is_bearer);

/* Room for any kg_throttle_message and for kg_retry_after_header's line. */
#define KG_THROTTLE_MESSAGE_MAX 96
#define KG_RETRY_AFTER_MAX 48

/* The refusal of a password check that was not run, worded as dialect d
 * words it: err KG_ETHROTTLED (429: too many failed attempts from the
 * client's address; retry in retry_after seconds) or KG_EUNAVAILABLE (503:
 * too many password checks queued). Sets *status and writes the message,
 * NUL-terminated, into buf (cap bytes, KG_THROTTLE_MESSAGE_MAX is enough);
 * the caller renders it in its dialect's body. KG_EINVAL for another err,
 * KG_ETOOBIG when cap is too small. The one place these are worded. */
kg_err kg_throttle_message(enum kg_dialect d, kg_err err, int64_t retry_after, int *status, char *buf, size_t cap);

/* Writes the header line "Retry-After: N\r\n" (N = seconds, at least 1),
 * NUL-terminated, into buf (cap bytes, KG_RETRY_AFTER_MAX is enough);
 * KG_ETOOBIG when it does not fit. */
kg_err kg_retry_after_header(int64_t seconds, char *buf, size_t cap);

/* The keygate dialect's body {"code": status, "message": message}. */
kg_err kg_error_json(int status, const char *message, kg_buf *out);

/* Parses a dialect name ("keygate", "bee", "avalanche", "elasticsearch"). */
int kg_dialect_parse(const char *name);

#endif
