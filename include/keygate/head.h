/* head.h - what keygate decides from a request head, and the head it writes
 * upstream: pure functions over plain data (no sockets, no event loop, no
 * globals), so the rules most exposed to the network are unit-tested and
 * fuzzed in one place (docs/security.md explains each rule).
 *
 * The daemon collects a head with llhttp (src/http.c), describes it as a
 * kg_head, has kg_head_judge turn it into kg_head_facts (or a refusal), and,
 * once the request is authorized, kg_head_write_upstream writes what the
 * upstream receives (src/proxy.c sends it). */
#ifndef KEYGATE_HEAD_H
#define KEYGATE_HEAD_H

#include <stdbool.h>
#include <stdint.h>

#include "keygate/arena.h"
#include "keygate/auth.h"
#include "keygate/config.h"
#include "keygate/err.h"
#include "keygate/str.h"

/* An address or a CIDR block of trusted_proxies. */
struct kg_cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;
};

/* Parses "ADDR" or "ADDR/BITS" (IPv4 or IPv6; BITS up to 32 or 128).
 * KG_EINVAL on anything else. */
kg_err kg_cidr_parse(const char *s, struct kg_cidr *out) KG_MUST_CHECK;

/* The header names keygate treats specially, interned as h2o interns its
 * tokens: a name is classified once (kg_head_name_id), and every later
 * question about it (hop-by-hop? Host? framing?) is an integer compare, not
 * string compares. Every other name is KG_HEAD_NAME_OTHER. */
enum kg_head_name {
	KG_HEAD_NAME_OTHER,
	/* hop-by-hop (RFC 9110 section 7.6.1): KG_HEAD_NAME_TE .. KG_HEAD_NAME_PROXY_DASH */
	KG_HEAD_NAME_TE,
	KG_HEAD_NAME_TRAILER,
	KG_HEAD_NAME_UPGRADE,
	KG_HEAD_NAME_CONNECTION,
	KG_HEAD_NAME_KEEP_ALIVE,
	KG_HEAD_NAME_TRANSFER_ENCODING,
	KG_HEAD_NAME_PROXY_DASH, /* Proxy-* (Proxy-Authorization, ...) */
	KG_HEAD_NAME_HOST,
	KG_HEAD_NAME_PROXY,      /* "Proxy" alone: httpoxy */
	KG_HEAD_NAME_FORWARDED,
	KG_HEAD_NAME_AUTHORIZATION,
	KG_HEAD_NAME_CONTENT_LENGTH,
	KG_HEAD_NAME_HTTP2_SETTINGS,
	KG_HEAD_NAME_X_FORWARDED_FOR,
	KG_HEAD_NAME_X_FORWARDED_HOST,
	KG_HEAD_NAME_X_FORWARDED_PROTO,
};

/* The id of a header name (borrowed): ASCII case-insensitive, exact for
 * every other byte ("Host\r" is not Host). */
enum kg_head_name kg_head_name_id(kg_str name);

/* True for the ids of the hop-by-hop names. */
static inline bool kg_head_name_is_hop_by_hop(enum kg_head_name id)
{
	return id >= KG_HEAD_NAME_TE && id <= KG_HEAD_NAME_PROXY_DASH;
}

/* True when name (borrowed), a field name llhttp has parsed, is a token.
 * llhttp 8 without lenient flags (how keygate runs it) hands on only tchar
 * and SP in a name (its loose name table takes SP: "A B: v"), and an empty
 * name (": v"); it refuses every other byte, and every byte of a value but
 * HTAB, SP..~ and obs-text. So of kg_str_is_token only "not empty, no SP" is
 * left to check, 8 bytes at a time. tests/unit/test_resp_head.c feeds llhttp
 * every byte in every place of a name and a value and compares with
 * kg_str_is_token and kg_str_is_field_value, so a newer llhttp that lets
 * more through fails there. Not for names from anywhere else. */
static inline bool kg_head_is_parsed_name_token(kg_str name)
{
	/* haszero(x ^ SPs) of graphics.stanford.edu/~seander/bithacks.html:
	 * exact for "some byte is SP"; the last word overlaps the one before */
	const uint64_t ones = 0x0101010101010101ULL, high = ones * 0x80, sp = ones * ' ';
	const char *p = name.p;
	size_t n = name.n;
	uint64_t x;
	uint32_t y, z;
	if (n >= 8) {
		for (size_t i = 0; i + 8 < n; i += 8) {
			memcpy(&x, p + i, 8);
			x ^= sp;
			if ((x - ones) & ~x & high)
				return false;
		}
		memcpy(&x, p + n - 8, 8);
		x ^= sp;
		return !((x - ones) & ~x & high);
	}
	if (n >= 4) {
		memcpy(&y, p, 4);
		memcpy(&z, p + n - 4, 4);
		y ^= (uint32_t)sp;
		z ^= (uint32_t)sp;
		return !((((y - (uint32_t)ones) & ~y) | ((z - (uint32_t)ones) & ~z)) & (uint32_t)high);
	}
	for (size_t i = 0; i < n; i++)
		if (p[i] == ' ')
			return false;
	return n > 0;
}

/* One header field as received: name raw, value without surrounding OWS.
 * Both borrowed. */
typedef struct kg_head_field {
	kg_str name, value;
} kg_head_field;

/* A request head as the parser saw it. Everything is borrowed. */
typedef struct kg_head {
	kg_str method;                /* "GET", as llhttp names it */
	kg_str url;                   /* the request target, as sent */
	int version_major, version_minor;
	const kg_head_field *fields;
	size_t nfields;
	bool is_chunked;              /* llhttp: Transfer-Encoding ends in chunked */
	bool has_content_length;      /* llhttp: a Content-Length header */
	uint64_t content_length;
	bool is_upgrade_requested;    /* llhttp: Upgrade with Connection: upgrade */
	kg_str peer;                  /* the socket peer's address as text */
	bool is_tls;                  /* it came over TLS: X-Forwarded-Proto https */
} kg_head;

enum kg_body_kind { KG_BODY_NONE, KG_BODY_LENGTH, KG_BODY_CHUNKED };

#define KG_HEAD_ADDR_MAX 64

/* What kg_head_judge found. Strings borrow from the kg_head's bytes or the
 * arena passed to it. */
typedef struct kg_head_facts {
	kg_str host;          /* Host, or the absolute-form target's authority; empty: none (HTTP/1.0) */
	kg_str authorization, connection, upgrade;
	kg_str xff;           /* every X-Forwarded-For header, joined with ", " */
	enum kg_body_kind body;
	uint64_t content_length; /* KG_BODY_LENGTH */
	bool is_upgrade;      /* a tunnel: every protocol Upgrade asks for is in rules->upgrades */
	kg_str path;          /* normalised: the path judged, seen by the schemes and sent upstream
	                       * (the target as sent when the target itself is refused: for the log) */
	kg_str target;        /* path + the query exactly as sent */
	bool is_peer_trusted; /* the socket peer is in rules->trusted */
	kg_str client;        /* the client: the peer, or an X-Forwarded-For entry (see kg_head_judge);
	                       * a view of h's peer or fields, an IP address under KG_HEAD_ADDR_MAX bytes
	                       * unless it is the peer as given */
	const unsigned char *name_ids; /* the kg_head_name of each of h's fields, in order (arena) */
	size_t nname_ids;
	/* a refusal: the status (400, 500, 505) and a static message */
	int status;
	const char *message;
} kg_head_facts;

/* The settings a head is judged and rewritten under; one per runtime, every
 * pointer borrowed from the configuration for the runtime's life. */
typedef struct kg_head_rules {
	unsigned path_flags;          /* KG_PATH_KEEP_ESCAPED_SLASHES: proxy.escaped_slashes keep */
	kg_strlist upgrades;          /* proxy.upgrades */
	const struct kg_cidr *trusted; /* trusted_proxies */
	size_t ntrusted;
	bool underscores_in_headers;  /* proxy.underscores_in_headers */
	bool forwarded_headers;       /* proxy.forwarded_headers */
	bool forward_credentials;     /* proxy.forward_credentials */
	bool preserve_host;           /* proxy.preserve_host */
	kg_str up_base;               /* the upstream URL's path prefix, "" when none */
	kg_str up_hostport;           /* the Host header when not preserving the client's */
} kg_head_rules;

/* Judges h under rules into *out (overwritten). Refuses ambiguity: a second
 * Host or Authorization, Content-Length with Transfer-Encoding, an HTTP
 * version other than 1.0/1.1 (505), HTTP/1.1 without Host, an invalid Host,
 * a target that is not origin or absolute http(s) form, holds a control
 * byte or '#', or whose path kg_path_normalize refuses. The client is the
 * peer unless the peer is trusted: then the right-most X-Forwarded-For entry
 * that is not itself trusted, a non-address entry ending the walk. Several
 * X-Forwarded-For headers are joined in arena; the normalised path and
 * target are written there too, and out->name_ids (each field's name
 * interned, for kg_head_write_upstream).
 * Returns KG_OK; KG_EINVAL when refused (out->status, out->message say how
 * to answer); KG_ENOMEM (status 500). */
kg_err kg_head_judge(const kg_head *h, const kg_head_rules *rules, kg_arena *arena, kg_head_facts *out);

/* Appends to out the head sent upstream for h as judged in f: the method,
 * rules->up_base + f->target, HTTP/1.1; the client's fields except the
 * hop-by-hop ones (and any its Connection names), X-Keygate-* in any
 * '_'/'-' spelling, names with '_' (unless rules->underscores_in_headers),
 * Host and the framing headers (written once, from f->body), Forwarded and
 * X-Forwarded-Proto/-Host from an untrusted peer, X-Forwarded-For (rewritten
 * with the peer appended when rules->forwarded_headers), Authorization when
 * is_cred_consumed and not rules->forward_credentials; then Host,
 * X-Forwarded-* (Proto https when h->is_tls), the framing, Connection/Upgrade for a tunnel, and the
 * identity headers of who (borrowed; NULL: none). Of h it reads the method,
 * the fields and the peer; the body and upgrade facts come from f, and
 * each field's name id from f->name_ids (classified again when f holds
 * none for h's number of fields).
 * KG_ENOMEM when out cannot grow. */
kg_err kg_head_write_upstream(const kg_head *h, const kg_head_facts *f, const kg_head_rules *rules,
                              const struct kg_principal *who, bool is_cred_consumed, kg_buf *out) KG_MUST_CHECK;

/* True for a hop-by-hop header (RFC 9110 section 7.6.1: Connection,
 * Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*) or one the
 * Connection header value (may be empty) lists. */
bool kg_head_is_hop_by_hop(kg_str name, kg_str connection);
/* The same for a name already interned: id is kg_head_name_id(name). */
bool kg_head_is_hop_by_hop_id(enum kg_head_name id, kg_str name, kg_str connection);

/* True when name starts with prefix, ASCII case-insensitive, '_' in name
 * read as '-' (CGI and friends see both as the same header). */
bool kg_head_has_prefix_dashed(kg_str name, kg_str prefix);

/* True when h is a valid Host value (RFC 9110 section 7.2): a reg-name or
 * an IP literal, then an optional port. */
bool kg_head_is_valid_host(kg_str h);

/* The index of target's first byte that no normalisation can make
 * unambiguous, a control byte or '#' (a fragment), or target.n. */
size_t kg_head_forbidden_byte(kg_str target);

/* The path and target of an origin-form target (rest is "/path?query", or
 * "" or "?query" after an absolute form's authority, read as "/"): *path is
 * the path normalised under path_flags (kg_path_normalize), *target that
 * path and the query exactly as sent, both in arena. is_restructured may be
 * NULL. KG_EINVAL: *why names the problem (static); KG_ENOMEM. The one
 * place a proxied target and a forward-auth check's original URI are made
 * into the path that is judged. */
kg_err kg_head_origin_target(kg_str rest, unsigned path_flags, kg_arena *arena, kg_str *path, kg_str *target,
                             bool *is_restructured, const char **why);

#endif
