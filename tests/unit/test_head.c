/* test_head.c - lib/head.c: heads judged (facts or refusals) and the exact
 * upstream heads written for them. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "keygate/head.h"
#include "keygate/path.h"
#include "kgtest.h"

#define MAXF 32

/* A head parsed from "METHOD TARGET HTTP/x.y\r\nName: value\r\n..." (no
 * body; the framing facts are set by the case). */
struct test_head {
	kg_head h;
	kg_head_field f[MAXF];
};

static kg_str trim(const char *p, size_t n)
{
	return kg_str_trim((kg_str){ p, n });
}

static void head_parse(struct test_head *t, const char *raw, const char *peer)
{
	memset(t, 0, sizeof(*t));
	const char *end = raw + strlen(raw);
	const char *eol = strstr(raw, "\r\n");
	const char *sp1 = memchr(raw, ' ', (size_t)(eol - raw));
	const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	t->h.method = (kg_str){ raw, (size_t)(sp1 - raw) };
	t->h.url = (kg_str){ sp1 + 1, (size_t)(sp2 - sp1 - 1) };
	t->h.version_major = sp2[6] - '0';
	t->h.version_minor = sp2[8] - '0';
	for (const char *p = eol + 2; p < end;) {
		const char *e = strstr(p, "\r\n");
		const char *colon = memchr(p, ':', (size_t)(e - p));
		t->f[t->h.nfields++] = (kg_head_field){ { p, (size_t)(colon - p) }, trim(colon + 1, (size_t)(e - colon - 1)) };
		p = e + 2;
	}
	t->h.fields = t->f;
	t->h.peer = kg_str_c(peer);
}

static struct kg_cidr trusted[2];
static char *upgrade_names[] = { "websocket" };

static kg_head_rules rules(void)
{
	KG_CHECK(kg_cidr_parse("10.0.0.0/8", &trusted[0]) == KG_OK, "10.0.0.0/8 does not parse");
	KG_CHECK(kg_cidr_parse("::1", &trusted[1]) == KG_OK, "::1 does not parse");
	return (kg_head_rules){
		.upgrades = { upgrade_names, 1 },
		.trusted = trusted,
		.ntrusted = 2,
		.forwarded_headers = true,
		.up_base = KG_STR("/base"),
		.up_hostport = KG_STR("up:8080"),
	};
}

#define STR(s) (int)(s).n, (s).p

struct judge_case {
	const char *raw;
	const char *peer;
	const char *want_path;   /* NULL: refused */
	int want_status;         /* refused */
	const char *want_why;    /* refused: part of the message */
};

static const struct judge_case judge_cases[] = {
	{ "GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n", "192.0.2.1", NULL, 400, "duplicate Host" },
	{ "GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\nauthorization: b\r\n", "192.0.2.1", NULL, 400,
	  "duplicate Authorization" },
	{ "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n", "192.0.2.1", NULL, 400,
	  "both Content-Length and Transfer-Encoding" },
	{ "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: x\r\ncontent-length: 3\r\n", "192.0.2.1", NULL, 400,
	  "both Content-Length and Transfer-Encoding" },
	{ "GET /a HTTP/1.1\r\nHost: x\r\n: v\r\n", "192.0.2.1", NULL, 400, "invalid header field name" },
	{ "GET /a HTTP/1.1\r\nHost: x\r\nX-A Authorization: v\r\n", "192.0.2.1", NULL, 400,
	  "invalid header field name" },
	{ "GET /a HTTP/2.0\r\nHost: x\r\n", "192.0.2.1", NULL, 505, "HTTP version" },
	{ "GET /a HTTP/1.2\r\nHost: x\r\n", "192.0.2.1", NULL, 505, "HTTP version" },
	{ "GET /a HTTP/1.1\r\nAccept: */*\r\n", "192.0.2.1", NULL, 400, "without a Host" },
	{ "GET /a HTTP/1.0\r\n", "192.0.2.1", "/a", 0, NULL },
	{ "GET /a HTTP/1.1\r\nHost: a b\r\n", "192.0.2.1", NULL, 400, "invalid Host" },
	{ "GET /a HTTP/1.1\r\nHost: x/y\r\n", "192.0.2.1", NULL, 400, "invalid Host" },
	{ "GET /a HTTP/1.1\r\nHost: x:8x\r\n", "192.0.2.1", NULL, 400, "invalid Host" },
	{ "GET /a HTTP/1.1\r\nHost: []\r\n", "192.0.2.1", NULL, 400, "invalid Host" },
	{ "GET /a HTTP/1.1\r\nHost: \r\n", "192.0.2.1", NULL, 400, "invalid Host" },
	{ "GET /a HTTP/1.1\r\nHost: [::1]:8080\r\n", "192.0.2.1", "/a", 0, NULL },
	{ "GET http://example.com:80/a/../b?q=1 HTTP/1.1\r\nHost: other\r\n", "192.0.2.1", "/b", 0, NULL },
	{ "GET HTTPS://example.com?q HTTP/1.1\r\nHost: other\r\n", "192.0.2.1", "/", 0, NULL },
	{ "GET http://user@example.com/a HTTP/1.1\r\nHost: x\r\n", "192.0.2.1", NULL, 400, "invalid authority" },
	{ "GET ftp://example.com/a HTTP/1.1\r\nHost: x\r\n", "192.0.2.1", NULL, 400, "must be a path" },
	{ "OPTIONS * HTTP/1.1\r\nHost: x\r\n", "192.0.2.1", NULL, 400, "asterisk" },
	{ "GET /a#b HTTP/1.1\r\nHost: x\r\n", "192.0.2.1", NULL, 400, "'#'" },
	{ "GET /a\x01 HTTP/1.1\r\nHost: x\r\n", "192.0.2.1", NULL, 400, "control character" },
	{ "GET /public/%2e%2e/admin HTTP/1.1\r\nHost: x\r\n", "192.0.2.1", "/admin", 0, NULL },
	{ "GET //a/./b//c HTTP/1.1\r\nHost: x\r\n", "192.0.2.1", "/a/b/c", 0, NULL },
	{ "GET /a%2Fb HTTP/1.1\r\nHost: x\r\n", "192.0.2.1", NULL, 400, "" },
	{ "GET /a/..;/b HTTP/1.1\r\nHost: x\r\n", "192.0.2.1", NULL, 400, "" },
};

KG_TEST(test_judge_refuses_ambiguous_heads_and_normalises_the_target)
{
	kg_head_rules r = rules();
	for (size_t i = 0; i < sizeof(judge_cases) / sizeof(judge_cases[0]); i++) {
		const struct judge_case *c = &judge_cases[i];
		struct test_head t;
		kg_arena arena;
		kg_head_facts f;
		kg_arena_init(&arena, 1024);
		head_parse(&t, c->raw, c->peer);
		kg_err err = kg_head_judge(&t.h, &r, &arena, &f);
		if (c->want_path) {
			KG_CHECK(err == KG_OK, "case %zu (%.*s): refused %d '%s', want path %s", i, STR(t.h.url), f.status,
			         f.message ? f.message : "", c->want_path);
			if (err == KG_OK)
				KG_CHECK(kg_str_eq(f.path, kg_str_c(c->want_path)), "case %zu: path '%.*s', want '%s'", i,
				         STR(f.path), c->want_path);
		} else {
			KG_CHECK(err == KG_EINVAL && f.status == c->want_status && f.message &&
			                 strstr(f.message, c->want_why),
			         "case %zu (%.*s): got %s %d '%s', want %d '%s'", i, STR(t.h.url), kg_errname(err), f.status,
			         f.message ? f.message : "", c->want_status, c->want_why);
		}
		kg_arena_destroy(&arena);
	}
}

KG_TEST(test_absolute_form_authority_replaces_host_and_target_keeps_the_query)
{
	kg_head_rules r = rules();
	struct test_head t;
	kg_arena arena;
	kg_head_facts f;
	kg_arena_init(&arena, 1024);
	head_parse(&t, "GET http://example.com:81/a/%2e%2e/b?x=%2e%2e HTTP/1.1\r\nHost: other\r\n", "192.0.2.1");
	KG_CHECK(kg_head_judge(&t.h, &r, &arena, &f) == KG_OK, "refused: %s", f.message);
	KG_CHECK(kg_str_eq(f.host, KG_STR("example.com:81")), "host '%.*s'", STR(f.host));
	KG_CHECK(kg_str_eq(f.target, KG_STR("/b?x=%2e%2e")), "target '%.*s'", STR(f.target));
	kg_arena_destroy(&arena);
}

KG_TEST(test_escaped_slashes_kept_only_when_configured)
{
	kg_head_rules r = rules();
	r.path_flags = KG_PATH_KEEP_ESCAPED_SLASHES;
	struct test_head t;
	kg_arena arena;
	kg_head_facts f;
	kg_arena_init(&arena, 1024);
	head_parse(&t, "GET /a%2fb HTTP/1.1\r\nHost: x\r\n", "192.0.2.1");
	KG_CHECK(kg_head_judge(&t.h, &r, &arena, &f) == KG_OK, "refused: %s", f.message);
	KG_CHECK(kg_str_eq(f.path, KG_STR("/a%2Fb")), "path '%.*s'", STR(f.path));
	kg_arena_destroy(&arena);
}

struct client_case {
	const char *peer;
	const char *xff_headers; /* header lines */
	const char *want_client;
	bool want_trusted;
};

static const struct client_case client_cases[] = {
	/* an untrusted peer's X-Forwarded-For says nothing */
	{ "192.0.2.1", "X-Forwarded-For: 1.2.3.4\r\n", "192.0.2.1", false },
	{ "10.0.0.1", "X-Forwarded-For: 1.2.3.4, 10.0.0.2\r\n", "1.2.3.4", true },
	{ "10.0.0.1", "X-Forwarded-For: 5.5.5.5, 1.2.3.4\r\n", "1.2.3.4", true },
	/* several headers are one list */
	{ "10.0.0.1", "X-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 10.9.9.9\r\n", "1.2.3.4", true },
	/* a non-address entry ends the walk at the last real hop */
	{ "10.0.0.1", "X-Forwarded-For: 1.2.3.4, garbage, 10.0.0.2\r\n", "10.0.0.2", true },
	{ "10.0.0.1", "X-Forwarded-For: 1.2.3.4, \r\n", "10.0.0.1", true },
	{ "10.0.0.1", "X-Forwarded-For: 1.2.3.4:80\r\n", "10.0.0.1", true },
	{ "10.0.0.1", "X-Forwarded-For: 10.0.0.3\r\n", "10.0.0.3", true },
	{ "::1", "X-Forwarded-For: 2001:db8::1\r\n", "2001:db8::1", true },
	{ "10.0.0.1", "", "10.0.0.1", true },
	{ "unknown", "X-Forwarded-For: 1.2.3.4\r\n", "unknown", false },
};

KG_TEST(test_client_address_walks_x_forwarded_for_only_through_trusted_proxies)
{
	kg_head_rules r = rules();
	for (size_t i = 0; i < sizeof(client_cases) / sizeof(client_cases[0]); i++) {
		const struct client_case *c = &client_cases[i];
		char raw[512];
		snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: x\r\n%s", c->xff_headers);
		struct test_head t;
		kg_arena arena;
		kg_head_facts f;
		kg_arena_init(&arena, 1024);
		head_parse(&t, raw, c->peer);
		KG_CHECK(kg_head_judge(&t.h, &r, &arena, &f) == KG_OK, "case %zu refused: %s", i, f.message);
		KG_CHECK(kg_str_eq(f.client, kg_str_c(c->want_client)) && f.is_peer_trusted == c->want_trusted,
		         "case %zu: client %.*s trusted %d, want %s %d", i, (int)f.client.n, f.client.p, f.is_peer_trusted,
		         c->want_client,
		         c->want_trusted);
		kg_arena_destroy(&arena);
	}
}

struct upgrade_case {
	const char *upgrade;
	bool is_requested;
	const char *method;
	bool want;
};

static const struct upgrade_case upgrade_cases[] = {
	{ "websocket", true, "GET", true },
	{ "WebSocket/13", true, "GET", true },
	{ "websocket, h2c", true, "GET", false },
	{ "h2c", true, "GET", false },
	{ " , ", true, "GET", false },
	{ "h2c\r\nUpgrade: websocket", true, "GET", false }, /* every Upgrade header counts */
	{ "websocket", false, "GET", false }, /* no Connection: upgrade */
	{ "websocket", true, "CONNECT", false },
};

KG_TEST(test_only_listed_upgrades_are_tunnels)
{
	kg_head_rules r = rules();
	for (size_t i = 0; i < sizeof(upgrade_cases) / sizeof(upgrade_cases[0]); i++) {
		const struct upgrade_case *c = &upgrade_cases[i];
		char raw[256];
		snprintf(raw, sizeof(raw), "%s /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: %s\r\n", c->method,
		         c->upgrade);
		struct test_head t;
		kg_arena arena;
		kg_head_facts f;
		kg_arena_init(&arena, 1024);
		head_parse(&t, raw, "192.0.2.1");
		t.h.is_upgrade_requested = c->is_requested;
		KG_CHECK(kg_head_judge(&t.h, &r, &arena, &f) == KG_OK, "case %zu refused: %s", i, f.message);
		KG_CHECK(f.is_upgrade == c->want, "case %zu (%s): is_upgrade %d, want %d", i, c->upgrade, f.is_upgrade,
		         c->want);
		kg_arena_destroy(&arena);
	}
}

/* ---- upstream heads, exact bytes ---- */

struct write_case {
	const char *name;
	const char *raw;
	const char *peer;
	bool is_chunked, has_length;
	uint64_t length;
	bool is_upgrade_requested;
	bool underscores, forwarded, forward_credentials, preserve_host;
	bool is_authenticated, is_cred_consumed;
	const char *want;
};

static const struct write_case write_cases[] = {
	{ "hop-by-hop, identity and underscore headers from an untrusted client are dropped",
	  "GET /x/../y?q=1 HTTP/1.1\r\nHost: public\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
	  "Keep-Alive: 5\r\nTE: trailers\r\nTrailer: X-T\r\nProxy-Authorization: p\r\nProxy-Connection: x\r\n"
	  "X-Keygate-Role: admin\r\nX_Keygate_Principal: bob\r\nx-keygate_scheme: s\r\nX_Role: admin\r\n"
	  "Forwarded: for=1.2.3.4\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n"
	  "X-Forwarded-Host: evil\r\nAuthorization: Bearer k\r\nProxy: http://evil:3128\r\nAccept: */*\r\n",
	  "192.0.2.1", false, false, 0, false, false, true, false, false, true, true,
	  "GET /base/y?q=1 HTTP/1.1\r\nAccept: */*\r\nHost: up:8080\r\n"
	  "X-Forwarded-For: 1.2.3.4, 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: public\r\n"
	  "X-Keygate-Scheme: apikey\r\nX-Keygate-Principal: k1\r\nX-Keygate-Role: admin\r\n\r\n" },
	{ "a trusted proxy's Forwarded and X-Forwarded-Proto/-Host stand; Content-Length written once",
	  "POST /x HTTP/1.1\r\nHost: public\r\nContent-Length: 5\r\nForwarded: for=1.2.3.4\r\n"
	  "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: site\r\n",
	  "10.0.0.1", false, true, 5, false, false, true, false, false, false, false,
	  "POST /base/x HTTP/1.1\r\nForwarded: for=1.2.3.4\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: site\r\n"
	  "Host: up:8080\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.1\r\nContent-Length: 5\r\n\r\n" },
	{ "names listed in any of several Connection headers are hop-by-hop",
	  "GET /x HTTP/1.1\r\nHost: h\r\nConnection: X-A\r\nX-A: 1\r\nConnection: keep-alive, X-B\r\nX-B: 2\r\n"
	  "X-C: 3\r\n",
	  "192.0.2.1", false, false, 0, false, false, false, false, false, false, false,
	  "GET /base/x HTTP/1.1\r\nX-C: 3\r\nHost: up:8080\r\n\r\n" },
	{ "Transfer-Encoding written once, as chunked",
	  "PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n",
	  "192.0.2.1", true, false, 0, false, false, false, false, true, false, false,
	  "PUT /base/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" },
	{ "a listed upgrade is a tunnel: Connection and Upgrade written by keygate, h2 settings kept",
	  "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: websocket\r\n"
	  "HTTP2-Settings: AAA\r\nSec-WebSocket-Key: k\r\n",
	  "192.0.2.1", false, false, 0, true, false, false, false, false, false, false,
	  "GET /base/ws HTTP/1.1\r\nHTTP2-Settings: AAA\r\nSec-WebSocket-Key: k\r\nHost: up:8080\r\n"
	  "Connection: upgrade, HTTP2-Settings\r\nUpgrade: websocket\r\n\r\n" },
	{ "an upgrade not listed goes as a plain request",
	  "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAA\r\n",
	  "192.0.2.1", false, false, 0, true, false, false, false, false, false, false,
	  "GET /base/ws HTTP/1.1\r\nHost: up:8080\r\n\r\n" },
	{ "underscores allowed: X_Role kept, X_Keygate_ still dropped; a credential not consumed is forwarded",
	  "GET / HTTP/1.1\r\nHost: h\r\nX_Role: r\r\nX_KEYGATE_ROLE: admin\r\nAuthorization: Basic x\r\n",
	  "192.0.2.1", false, false, 0, false, true, false, false, false, false, false,
	  "GET /base/ HTTP/1.1\r\nX_Role: r\r\nAuthorization: Basic x\r\nHost: up:8080\r\n\r\n" },
	{ "forward_credentials keeps a consumed credential",
	  "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic x\r\n",
	  "192.0.2.1", false, false, 0, false, false, false, true, false, true, true,
	  "GET /base/ HTTP/1.1\r\nAuthorization: Basic x\r\nHost: up:8080\r\nX-Keygate-Scheme: apikey\r\n"
	  "X-Keygate-Principal: k1\r\nX-Keygate-Role: admin\r\n\r\n" },
	{ "every special name in odd case is recognised",
	  "GET / HTTP/1.1\r\nhOST: h\r\npROXY: x\r\nfORWARDED: f\r\nx-FORWARDED-fOR: 1.2.3.4\r\n"
	  "X-forwarded-PROTO: https\r\nx-forwarded-HOST: e\r\nAUTHORIZATION: Bearer k\r\nhttp2-SETTINGS: A\r\n"
	  "KEEP-alive: 1\r\ntE: x\r\ntRAILER: x\r\nuPGRADE: foo\r\nPROXY-x: 1\r\nx-KEYGATE-role: r\r\n"
	  "CONTENT-length: 0\r\nAccept: a\r\n",
	  "192.0.2.1", false, false, 0, false, false, true, false, false, false, true,
	  "GET /base/ HTTP/1.1\r\nAccept: a\r\nHost: up:8080\r\nX-Forwarded-For: 1.2.3.4, 192.0.2.1\r\n"
	  "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n" },
	{ "a name one byte off a special one, of the same length, goes as sent",
	  "GET / HTTP/1.1\r\nHost: h\r\nHosu: 1\r\nProxz: 1\r\nTF: 1\r\nTrailes: 1\r\nUpgradf: 1\r\n"
	  "Forwardee: 1\r\nConnectiom: 1\r\nKeep-Alivf: 1\r\nAuthorizatiom: 1\r\nContent-Lengtj: 1\r\n"
	  "HTTP2-Settingz: 1\r\nX-Forwarded-Fos: 1\r\nX-Forwarded-Hosu: 1\r\nTransfer-Encodinf: 1\r\n"
	  "X-Forwarded-Protp: 1\r\nProxy: 1\r\nProxyx-a: 1\r\nProxy-: 1\r\nX-Keygatex: 1\r\n",
	  "192.0.2.1", false, false, 0, false, false, true, false, false, false, true,
	  "GET /base/ HTTP/1.1\r\nHosu: 1\r\nProxz: 1\r\nTF: 1\r\nTrailes: 1\r\nUpgradf: 1\r\n"
	  "Forwardee: 1\r\nConnectiom: 1\r\nKeep-Alivf: 1\r\nAuthorizatiom: 1\r\nContent-Lengtj: 1\r\n"
	  "HTTP2-Settingz: 1\r\nX-Forwarded-Fos: 1\r\nX-Forwarded-Hosu: 1\r\nTransfer-Encodinf: 1\r\n"
	  "X-Forwarded-Protp: 1\r\nProxyx-a: 1\r\nX-Keygatex: 1\r\nHost: up:8080\r\n"
	  "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n" },
	{ "HTTP/1.0 without Host gets the upstream's; X-Forwarded-Host only when there was one",
	  "GET /a HTTP/1.0\r\n",
	  "192.0.2.1", false, false, 0, false, false, true, false, true, false, false,
	  "GET /base/a HTTP/1.1\r\nHost: up:8080\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n\r\n" },
};

KG_TEST(test_upstream_head_exact_bytes)
{
	struct kg_principal who = { .scheme = "apikey", .id = KG_STR("k1"), .role = KG_STR("admin") };
	for (size_t i = 0; i < sizeof(write_cases) / sizeof(write_cases[0]); i++) {
		const struct write_case *c = &write_cases[i];
		kg_head_rules r = rules();
		r.underscores_in_headers = c->underscores;
		r.forwarded_headers = c->forwarded;
		r.forward_credentials = c->forward_credentials;
		r.preserve_host = c->preserve_host;
		struct test_head t;
		kg_arena arena;
		kg_head_facts f;
		kg_buf out = { 0 };
		kg_arena_init(&arena, 1024);
		head_parse(&t, c->raw, c->peer);
		t.h.is_chunked = c->is_chunked;
		t.h.has_content_length = c->has_length;
		t.h.content_length = c->length;
		t.h.is_upgrade_requested = c->is_upgrade_requested;
		KG_CHECK(kg_head_judge(&t.h, &r, &arena, &f) == KG_OK, "%s: refused: %s", c->name, f.message);
		KG_CHECK(kg_head_write_upstream(&t.h, &f, &r, c->is_authenticated ? &who : NULL, c->is_cred_consumed,
		                                &out) == KG_OK,
		         "%s: write failed", c->name);
		KG_CHECK(out.n == strlen(c->want) && memcmp(out.p, c->want, out.n) == 0, "%s:\n got: %.*s\nwant: %s",
		         c->name, (int)out.n, out.p ? out.p : "", c->want);
		kg_buf_free(&out, false);
		kg_arena_destroy(&arena);
	}
}

KG_TEST(test_hop_by_hop_names)
{
	static const char *hop[] = { "connection", "KEEP-ALIVE", "te", "Trailer", "transfer-encoding",
		                     "Upgrade", "Proxy-Authorization", "proxy-anything" };
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		KG_CHECK(kg_head_is_hop_by_hop(kg_str_c(hop[i]), KG_STR_NULL), "%s is not hop-by-hop", hop[i]);
	KG_CHECK(!kg_head_is_hop_by_hop(KG_STR("Accept"), KG_STR("close")), "Accept is hop-by-hop");
	KG_CHECK(kg_head_is_hop_by_hop(KG_STR("x-a"), KG_STR("close ,  X-A ,b")), "a Connection-listed name is kept");
	KG_CHECK(!kg_head_is_hop_by_hop(KG_STR("X-A"), KG_STR("X-AB")), "a prefix of a listed name is hop-by-hop");
}

/* What kg_head_is_hop_by_hop answered before names were told apart by
 * length: a compare against each name in turn. */
static bool is_hop_by_hop_reference(kg_str name)
{
	static const char *hop[] = { "Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade" };
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (kg_str_eq_ci(name, kg_str_c(hop[i])))
			return true;
	return kg_str_has_prefix_ci(name, KG_STR("Proxy-"));
}

/* What kg_head_name_id answers, by a compare against each name in turn. */
static enum kg_head_name name_id_reference(kg_str name)
{
	static const struct {
		const char *name;
		enum kg_head_name id;
	} names[] = {
		{ "TE", KG_HEAD_NAME_TE },
		{ "Trailer", KG_HEAD_NAME_TRAILER },
		{ "Upgrade", KG_HEAD_NAME_UPGRADE },
		{ "Connection", KG_HEAD_NAME_CONNECTION },
		{ "Keep-Alive", KG_HEAD_NAME_KEEP_ALIVE },
		{ "Transfer-Encoding", KG_HEAD_NAME_TRANSFER_ENCODING },
		{ "Host", KG_HEAD_NAME_HOST },
		{ "Proxy", KG_HEAD_NAME_PROXY },
		{ "Forwarded", KG_HEAD_NAME_FORWARDED },
		{ "Authorization", KG_HEAD_NAME_AUTHORIZATION },
		{ "Content-Length", KG_HEAD_NAME_CONTENT_LENGTH },
		{ "HTTP2-Settings", KG_HEAD_NAME_HTTP2_SETTINGS },
		{ "X-Forwarded-For", KG_HEAD_NAME_X_FORWARDED_FOR },
		{ "X-Forwarded-Host", KG_HEAD_NAME_X_FORWARDED_HOST },
		{ "X-Forwarded-Proto", KG_HEAD_NAME_X_FORWARDED_PROTO },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (kg_str_eq_ci(name, kg_str_c(names[i].name)))
			return names[i].id;
	return kg_str_has_prefix_ci(name, KG_STR("Proxy-")) ? KG_HEAD_NAME_PROXY_DASH : KG_HEAD_NAME_OTHER;
}

/* The id kg_head_judge interned for name (the one field of an HTTP/1.0
 * head), checked against the reference, and the upstream head written from
 * the interned ids byte for byte the one written by classifying each name
 * again. Names judge refuses (not a token) have no ids to check. */
static void check_interned(kg_str name, kg_arena *arena, size_t *judged)
{
	kg_head_field field = { name, KG_STR("v") };
	kg_head h = { .method = KG_STR("GET"), .url = KG_STR("/"), .version_major = 1, .version_minor = 0,
		      .fields = &field, .nfields = 1, .peer = KG_STR("192.0.2.1") };
	kg_head_rules r = rules();
	kg_head_facts f;
	kg_arena_reset(arena);
	if (kg_head_judge(&h, &r, arena, &f) != KG_OK)
		return;
	(*judged)++;
	enum kg_head_name want = name_id_reference(name);
	KG_CHECK(f.name_ids && f.nname_ids == 1 && f.name_ids[0] == want, "'%.*s': interned id %d, want %d",
	         (int)name.n, name.p, f.name_ids && f.nname_ids == 1 ? f.name_ids[0] : -1, (int)want);
	kg_buf interned = { 0 }, classified = { 0 };
	KG_CHECK(kg_head_write_upstream(&h, &f, &r, NULL, true, &interned) == KG_OK, "write");
	f.name_ids = NULL;
	f.nname_ids = 0;
	KG_CHECK(kg_head_write_upstream(&h, &f, &r, NULL, true, &classified) == KG_OK, "write");
	KG_CHECK(interned.n == classified.n && memcmp(interned.p, classified.p, interned.n) == 0,
	         "'%.*s': the head from interned ids differs:\n%.*s\nfrom the names classified again:\n%.*s",
	         (int)name.n, name.p, (int)interned.n, interned.p, (int)classified.n, classified.p);
	kg_buf_free(&interned, false);
	kg_buf_free(&classified, false);
}

/* Every hop-by-hop name and every other name keygate treats specially,
 * with each byte replaced by each of the 256 values (so a case fold that is
 * not exactly ASCII's, '\r' read as '-' say, would show): the answer is the
 * reference's every time, and so is the id kg_head_judge interns for it. */
KG_TEST(test_hop_by_hop_by_length_answers_as_the_name_compares_did)
{
	kg_arena arena;
	size_t judged = 0;
	kg_arena_init(&arena, 1024);
	static const char *names[] = { "Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
		                       "Proxy-Authorization", "Proxy-", "Proxy", "Host", "Forwarded", "Authorization",
		                       "Content-Length", "HTTP2-Settings", "X-Forwarded-For", "X-Forwarded-Host",
		                       "X-Forwarded-Proto" };
	size_t checked = 0, nnames = sizeof(names) / sizeof(names[0]);
	/* then Proxy-* of every length up to 20: those of a special name's
	 * length go through that length's case first */
	for (size_t i = 0; i < nnames + 15; i++) {
		char buf[32];
		const char *proxy_dash = "Proxy-Abcdefghijklmn";
		const char *name = i < nnames ? names[i] : proxy_dash;
		size_t n = i < nnames ? strlen(name) : 6 + (i - nnames);
		memcpy(buf, name, n);
		KG_CHECK(kg_head_is_hop_by_hop((kg_str){ buf, n }, KG_STR_NULL) == is_hop_by_hop_reference((kg_str){ buf, n }),
		         "'%.*s' answered unlike the reference", (int)n, buf);
		KG_CHECK(kg_head_name_id((kg_str){ buf, n }) == name_id_reference((kg_str){ buf, n }),
		         "'%.*s': id %d, want %d", (int)n, buf, (int)kg_head_name_id((kg_str){ buf, n }),
		         (int)name_id_reference((kg_str){ buf, n }));
		check_interned((kg_str){ buf, n }, &arena, &judged);
		for (size_t at = 0; at < n; at++)
			for (int v = 0; v < 256; v++) {
				memcpy(buf, name, n);
				buf[at] = (char)v;
				kg_str s = { buf, n };
				bool got = kg_head_is_hop_by_hop(s, KG_STR_NULL), want = is_hop_by_hop_reference(s);
				KG_CHECK(got == want, "'%.*s' (byte %zu = 0x%02x): hop-by-hop %d, want %d", (int)n, buf, at, v,
				         got, want);
				enum kg_head_name id = kg_head_name_id(s), want_id = name_id_reference(s);
				KG_CHECK(id == want_id, "'%.*s' (byte %zu = 0x%02x): id %d, want %d", (int)n, buf, at, v,
				         (int)id, (int)want_id);
				check_interned(s, &arena, &judged);
				checked++;
			}
	}
	KG_CHECK(checked > 40000, "only %zu names checked", checked);
	KG_CHECK(judged > 20000, "only %zu names judged", judged);
	kg_arena_destroy(&arena);
}

/* kg_head_is_valid_host as it was before its byte table: <ctype.h> and
 * memchr per byte. */
static bool is_valid_host_reference(kg_str h)
{
	size_t i = 0;
	if (h.n == 0)
		return false;
	if (h.p[0] == '[') {
		for (i = 1; i < h.n && h.p[i] != ']'; i++)
			if (!isxdigit((unsigned char)h.p[i]) && h.p[i] != ':' && h.p[i] != '.')
				return false;
		if (i == h.n || i == 1)
			return false;
		i++;
	} else {
		for (; i < h.n && h.p[i] != ':'; i++)
			if (!isalnum((unsigned char)h.p[i]) && !memchr("-._~!$&'()*+,;=%", h.p[i], 16))
				return false;
		if (i == 0)
			return false;
	}
	if (i < h.n && h.p[i++] != ':')
		return false;
	for (; i < h.n; i++)
		if (!isdigit((unsigned char)h.p[i]))
			return false;
	return true;
}

/* Hosts of every shape, each byte replaced by each of the 256 values: the
 * table says what the ctype checks said, every time. */
KG_TEST(test_valid_host_by_table_answers_as_the_ctype_checks_did)
{
	static const char *hosts[] = { "example.com", "127.0.0.1:8080", "[::1]:443", "[2001:db8::a.b]", "a-b_c~!$&'()*+,;=%:",
		                       ":80", "[]", "[::1]x", "h:", "[v1.x]:1", "A.Z", "x:1:2" };
	size_t checked = 0, valid = 0;
	for (size_t k = 0; k < sizeof(hosts) / sizeof(hosts[0]); k++) {
		char buf[64];
		size_t n = strlen(hosts[k]);
		memcpy(buf, hosts[k], n);
		KG_CHECK(kg_head_is_valid_host((kg_str){ buf, n }) == is_valid_host_reference((kg_str){ buf, n }),
		         "'%s' answered unlike the reference", hosts[k]);
		for (size_t at = 0; at <= n; at++) /* at == n: one byte appended */
			for (int v = 0; v < 256; v++) {
				memcpy(buf, hosts[k], n);
				buf[at] = (char)v;
				kg_str h = { buf, at == n ? n + 1 : n };
				bool got = kg_head_is_valid_host(h), want = is_valid_host_reference(h);
				KG_CHECK(got == want, "'%.*s' (byte %zu = 0x%02x): valid %d, want %d", (int)h.n, buf, at, v,
				         got, want);
				checked++;
				valid += want;
			}
	}
	KG_CHECK(checked > 25000 && valid > 1000, "only %zu hosts checked, %zu valid", checked, valid);
}

/* The head is appended to what the buffer holds, and a head far larger
 * than the buffer's first reservation comes out whole. */
KG_TEST(test_upstream_head_appends_and_grows)
{
	kg_head_rules r = rules();
	static char raw[16384];
	size_t n = (size_t)snprintf(raw, sizeof(raw), "GET /a HTTP/1.1\r\nHost: h\r\n");
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(raw + n, sizeof(raw) - n, "X-Field-%03d: %040d\r\n", i, i);
	struct test_head t;
	kg_arena arena;
	kg_head_facts f;
	kg_arena_init(&arena, 1024);
	memset(&t, 0, sizeof(t));
	/* head_parse holds MAXF fields: the 200 are laid out here */
	static kg_head_field fields[256];
	head_parse(&t, "GET /a HTTP/1.1\r\nHost: h\r\n", "192.0.2.1");
	size_t nf = 0;
	fields[nf++] = t.f[0];
	for (const char *p = strstr(raw, "\r\n") + 2; *p;) {
		const char *e = strstr(p, "\r\n"), *colon = memchr(p, ':', (size_t)(e - p));
		if (!(colon[-1] == 't' && p[0] == 'H')) /* Host is fields[0] */
			fields[nf++] = (kg_head_field){ { p, (size_t)(colon - p) }, trim(colon + 1, (size_t)(e - colon - 1)) };
		p = e + 2;
	}
	t.h.fields = fields;
	t.h.nfields = nf;
	r.forwarded_headers = false;
	KG_CHECK(kg_head_judge(&t.h, &r, &arena, &f) == KG_OK, "refused: %s", f.message);
	kg_buf out = { 0 };
	KG_CHECK(kg_buf_appends(&out, KG_STR("prefix|")) == KG_OK, "prefix");
	KG_CHECK(kg_head_write_upstream(&t.h, &f, &r, NULL, false, &out) == KG_OK, "write failed");
	kg_buf want = { 0 };
	KG_CHECK(kg_buf_appends(&want, KG_STR("prefix|GET /base/a HTTP/1.1\r\n")) == KG_OK, "want");
	for (size_t i = 1; i < nf; i++)
		KG_CHECK(kg_buf_appends(&want, fields[i].name) == KG_OK && kg_buf_appends(&want, KG_STR(": ")) == KG_OK &&
		                 kg_buf_appends(&want, fields[i].value) == KG_OK &&
		                 kg_buf_appends(&want, KG_STR("\r\n")) == KG_OK,
		         "want");
	KG_CHECK(kg_buf_appends(&want, KG_STR("Host: up:8080\r\n\r\n")) == KG_OK, "want");
	KG_CHECK(nf == 201 && out.n == want.n && memcmp(out.p, want.p, out.n) == 0 && out.p[out.n] == '\0',
	         "%zu fields; got %zu bytes, want %zu", nf, out.n, want.n);
	kg_buf_free(&out, false);
	kg_buf_free(&want, false);
	kg_arena_destroy(&arena);
}

KG_TEST(test_cidr_parse)
{
	struct kg_cidr c;
	KG_CHECK(kg_cidr_parse("192.168.0.0/16", &c) == KG_OK && c.family == AF_INET && c.prefix == 16, "v4 /16");
	KG_CHECK(kg_cidr_parse("2001:db8::/32", &c) == KG_OK && c.family == AF_INET6 && c.prefix == 32, "v6 /32");
	KG_CHECK(kg_cidr_parse("10.0.0.1", &c) == KG_OK && c.prefix == 32, "bare v4");
	KG_CHECK(kg_cidr_parse("10.0.0.0/33", &c) == KG_EINVAL, "/33 accepted");
	KG_CHECK(kg_cidr_parse("10.0.0.0/", &c) == KG_EINVAL, "empty prefix accepted");
	KG_CHECK(kg_cidr_parse("example.com", &c) == KG_EINVAL, "a name accepted");
}

KG_TEST(test_forbidden_byte_and_origin_target)
{
	KG_CHECK(kg_head_forbidden_byte(KG_STR("/a?b=%00")) == 8, "escapes are not forbidden bytes: none found");
	KG_CHECK(kg_head_forbidden_byte(KG_STR("/a#b")) == 2, "'#' at 2");
	KG_CHECK(kg_head_forbidden_byte((kg_str){ "/a\tb", 4 }) == 2, "TAB at 2");
	KG_CHECK(kg_head_forbidden_byte(KG_STR("/a\x7f")) == 2, "DEL at 2");
	for (int v = 0; v < 256; v++) {
		char t[4] = { '/', 'a', (char)v, 'b' };
		bool want = v < 0x20 || v == 0x7f || v == '#';
		size_t got = kg_head_forbidden_byte((kg_str){ t, sizeof(t) });
		KG_CHECK(got == (want ? 2u : 4u), "byte 0x%02x: forbidden at %zu, want %d", v, got, want ? 2 : 4);
	}
	static const struct {
		const char *rest, *path, *target;
		bool is_restructured;
	} cases[] = {
		{ "", "/", "/", false },
		{ "?q=1", "/", "/?q=1", false },
		{ "/a/../b?x=../y", "/b", "/b?x=../y", true },
		{ "/%41b//c?%2e", "/Ab/c", "/Ab/c?%2e", true },
		{ "/plain", "/plain", "/plain", false },
	};
	kg_arena a;
	kg_arena_init(&a, 1024);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_str path, target;
		bool re = !cases[i].is_restructured;
		const char *why = NULL;
		kg_err err = kg_head_origin_target(kg_str_c(cases[i].rest), 0, &a, &path, &target, &re, &why);
		KG_CHECK(err == KG_OK && kg_str_eq(path, kg_str_c(cases[i].path)) &&
		                 kg_str_eq(target, kg_str_c(cases[i].target)) && re == cases[i].is_restructured,
		         "'%s': err %d path '%.*s' target '%.*s' restructured %d", cases[i].rest, (int)err, (int)path.n,
		         path.p, (int)target.n, target.p, re);
	}
	kg_str path, target;
	const char *why = NULL;
	KG_CHECK(kg_head_origin_target(KG_STR("/a%2fb"), 0, &a, &path, &target, NULL, &why) == KG_EINVAL && why &&
	                 strstr(why, "encoded '/'"),
	         "an escaped slash is refused by default: %s", why ? why : "(no message)");
	KG_CHECK(kg_head_origin_target(KG_STR("/a%2fb"), KG_PATH_KEEP_ESCAPED_SLASHES, &a, &path, &target, NULL, &why) ==
	                         KG_OK &&
	                 kg_str_eq(path, KG_STR("/a%2Fb")),
	         "kept with KG_PATH_KEEP_ESCAPED_SLASHES");
	kg_arena_destroy(&a);
}

int main(void)
{
	return kg_test_main();
}
