/* libFuzzer target: raw bytes -> llhttp (a request, collected as src/http.c
 * collects it) -> kg_head_judge -> kg_head_write_upstream, then the head
 * written upstream is parsed again with llhttp and must hold what the
 * upstream relies on (docs/security.md):
 *   - it parses, with the same method;
 *   - never both Content-Length and Transfer-Encoding, each at most once and
 *     as the judged body says;
 *   - nothing hop-by-hop from the client (Connection and the names any of
 *     its Connection headers list, Keep-Alive, TE, Trailer, Upgrade,
 *     Proxy-*), no client X-Keygate-* in any '_'/'-' spelling, no '_' name
 *     unless allowed, Forwarded/X-Forwarded-Proto/-Host only from a trusted
 *     peer, a consumed credential only when forwarded by configuration;
 *   - the client fields that pass are the client's, in order, unchanged;
 *   - the request-target is up_base + the judged target, whose path is the
 *     judged path, and that path normalises to itself.
 * An input whose first byte is below 0x20 (and not CR or LF) uses it to pick
 * the configuration; other inputs are raw requests under a default one. */
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "keygate/head.h"
#include "keygate/path.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

#define MAX_FIELDS 128
/* keygate adds at most this many fields of its own (Host, X-Forwarded-*,
 * framing, Connection and Upgrade, identity): the client's are capped below
 * MAX_FIELDS by it, so the upstream head always fits the collector */
#define OWN_FIELDS 16

static void require(int cond)
{
	if (!cond)
		abort();
}

/* A head collected from llhttp's callbacks into one buffer. */
struct collect {
	char *buf;
	size_t len, cap;
	size_t url_off, url_len;
	struct {
		size_t name_off, name_len, value_off, value_len;
	} h[MAX_FIELDS];
	size_t nh, max_nh;
	int last_cb;
	int is_done;
	kg_head_field fields[MAX_FIELDS];
};

static int append(struct collect *c, const char *at, size_t len)
{
	if (c->len + len > c->cap)
		return -1;
	memcpy(c->buf + c->len, at, len);
	c->len += len;
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct collect *c = p->data;
	if (!c->url_len)
		c->url_off = c->len;
	c->url_len += len;
	return append(c, at, len);
}

static int on_field(llhttp_t *p, const char *at, size_t len)
{
	struct collect *c = p->data;
	if (c->last_cb != 1) {
		if (c->nh == c->max_nh)
			return -1;
		c->h[c->nh].name_off = c->len;
		c->h[c->nh].name_len = c->h[c->nh].value_off = c->h[c->nh].value_len = 0;
		c->nh++;
		c->last_cb = 1;
	}
	c->h[c->nh - 1].name_len += len;
	return append(c, at, len);
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
	struct collect *c = p->data;
	if (c->last_cb != 2) {
		c->h[c->nh - 1].value_off = c->len;
		c->last_cb = 2;
	}
	c->h[c->nh - 1].value_len += len;
	return append(c, at, len);
}

static int on_headers_complete(llhttp_t *p)
{
	struct collect *c = p->data;
	c->is_done = 1;
	return HPE_PAUSED; /* the head is all this target looks at */
}

/* Parses one request head from in; false when llhttp refuses it (or it is
 * not complete). */
static bool parse_head(const char *in, size_t n, size_t max_fields, struct collect *c, llhttp_t *parser, kg_head *h,
                       const char *peer)
{
	static llhttp_settings_t settings;
	static int is_init;
	if (!is_init) {
		llhttp_settings_init(&settings);
		settings.on_url = on_url;
		settings.on_header_field = on_field;
		settings.on_header_value = on_value;
		settings.on_headers_complete = on_headers_complete;
		is_init = 1;
	}
	memset(c, 0, sizeof(*c));
	c->buf = malloc(n ? n : 1);
	require(c->buf != NULL);
	c->cap = n;
	c->max_nh = max_fields;
	llhttp_init(parser, HTTP_REQUEST, &settings);
	parser->data = c;
	llhttp_errno_t e = llhttp_execute(parser, in, n);
	if (e != HPE_PAUSED || !c->is_done)
		return false;
	for (size_t i = 0; i < c->nh; i++)
		c->fields[i] = (kg_head_field){ { c->buf + c->h[i].name_off, c->h[i].name_len },
			                        kg_str_trim((kg_str){ c->buf + c->h[i].value_off, c->h[i].value_len }) };
	*h = (kg_head){
		.method = kg_str_c(llhttp_method_name(llhttp_get_method(parser))),
		.url = { c->buf + c->url_off, c->url_len },
		.version_major = llhttp_get_http_major(parser),
		.version_minor = llhttp_get_http_minor(parser),
		.fields = c->fields,
		.nfields = c->nh,
		.is_chunked = (parser->flags & F_CHUNKED) != 0,
		.has_content_length = (parser->flags & F_CONTENT_LENGTH) != 0,
		.content_length = parser->content_length,
		.is_upgrade_requested = parser->upgrade != 0,
		.peer = kg_str_c(peer),
	};
	return true;
}

/* ---- independent statements of the rules (not lib/head.c's code) ---- */

static bool eq_ci(kg_str a, const char *b)
{
	return kg_str_eq_ci(a, kg_str_c(b));
}

/* name starts with prefix (lower case), ASCII case-insensitive, '_' in name
 * read as '-' */
static bool starts_dashed(kg_str name, const char *prefix)
{
	size_t n = strlen(prefix);
	if (name.n < n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char a = name.p[i] == '_' ? '-' : name.p[i];
		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (a != prefix[i])
			return false;
	}
	return true;
}

/* name is listed in the value of any of the original head's Connection headers */
static bool is_connection_listed(const kg_head *h, kg_str name)
{
	for (size_t i = 0; i < h->nfields; i++) {
		if (!eq_ci(h->fields[i].name, "Connection"))
			continue;
		kg_str v = h->fields[i].value;
		size_t s = 0;
		for (size_t j = 0; j <= v.n; j++)
			if (j == v.n || v.p[j] == ',') {
				kg_str token = kg_str_trim((kg_str){ v.p + s, j - s });
				if (token.n && kg_str_eq_ci(token, name)) /* an empty token names nothing */
					return true;
				s = j + 1;
			}
	}
	return false;
}

static bool is_static_hop(kg_str name)
{
	return eq_ci(name, "Connection") || eq_ci(name, "Keep-Alive") || eq_ci(name, "TE") || eq_ci(name, "Trailer") ||
	       eq_ci(name, "Transfer-Encoding") || eq_ci(name, "Upgrade") || kg_str_has_prefix_ci(name, KG_STR("Proxy-"));
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	unsigned cfg = 0x06; /* default: forwarded headers, a trusted peer */
	if (size && data[0] < 0x20 && data[0] != '\r' && data[0] != '\n') {
		cfg = data[0];
		data++;
		size--;
	}
	struct kg_cidr trusted[2];
	require(kg_cidr_parse("10.0.0.0/8", &trusted[0]) == KG_OK && kg_cidr_parse("::1", &trusted[1]) == KG_OK);
	char *upgrades[] = { "websocket", "h2c" };
	kg_head_rules rules = {
		.path_flags = cfg & 0x01 ? KG_PATH_KEEP_ESCAPED_SLASHES : 0,
		.upgrades = { upgrades, cfg & 0x10 ? 2 : 1 },
		.trusted = trusted,
		.ntrusted = 2,
		.underscores_in_headers = cfg & 0x08,
		.forwarded_headers = cfg & 0x02,
		.forward_credentials = cfg & 0x10,
		.preserve_host = cfg & 0x01,
		.up_base = cfg & 0x08 ? KG_STR("/base") : KG_STR(""),
		.up_hostport = KG_STR("up:8080"),
	};
	const char *peer = cfg & 0x04 ? "10.0.0.1" : "192.0.2.1";
	struct kg_principal who = { .scheme = "apikey", .id = KG_STR("k1"), .role = KG_STR("admin") };
	bool is_authenticated = cfg & 0x01;
	bool is_cred_consumed = is_authenticated && !(cfg & 0x08);

	char *in = malloc(size ? size : 1); /* exact size: ASan sees any over-read */
	require(in != NULL);
	memcpy(in, data, size);
	struct collect *c = malloc(sizeof(*c)), *uc = malloc(sizeof(*uc));
	require(c && uc);
	llhttp_t parser, uparser;
	kg_head h, uh;
	kg_arena arena;
	kg_head_facts f;
	kg_buf out = { 0 };
	kg_arena_init(&arena, 1024);
	c->buf = uc->buf = NULL;

	if (!parse_head(in, size, MAX_FIELDS - OWN_FIELDS, c, &parser, &h, peer))
		goto out;
	if (kg_head_judge(&h, &rules, &arena, &f) != KG_OK) {
		require(f.message && f.message[0] && (f.status == 400 || f.status == 505 || f.status == 500));
		goto out;
	}
	require(kg_head_write_upstream(&h, &f, &rules, is_authenticated ? &who : NULL, is_cred_consumed, &out) ==
	        KG_OK);

	/* it parses, as a request with the same method */
	require(parse_head(out.p, out.n, MAX_FIELDS, uc, &uparser, &uh, peer));
	require(kg_str_eq(uh.method, h.method));
	require(uh.version_major == 1 && uh.version_minor == 1);

	/* the target: up_base + the judged target; its path is the judged path
	 * and normalises to itself */
	require(uh.url.n == rules.up_base.n + (f.target.n ? f.target.n : 1));
	require(memcmp(uh.url.p, rules.up_base.p, rules.up_base.n) == 0);
	kg_str target = { uh.url.p + rules.up_base.n, uh.url.n - rules.up_base.n };
	require(f.target.n == 0 || kg_str_eq(target, f.target));
	require(f.path.n <= f.target.n && memcmp(f.path.p, f.target.p, f.path.n) == 0);
	require(f.path.n == f.target.n || f.target.p[f.path.n] == '?');
	require(memchr(f.path.p, '?', f.path.n) == NULL);
	char *again = malloc(f.path.n ? f.path.n : 1);
	require(again != NULL);
	size_t again_n = 0;
	bool is_restructured = true;
	require(kg_path_normalize(f.path, rules.path_flags, again, &again_n, &is_restructured, NULL) == KG_OK);
	require(again_n == f.path.n && memcmp(again, f.path.p, again_n) == 0 && !is_restructured);
	free(again);

	/* the fields: the client's come first (Host is never the client's),
	 * then keygate's */
	size_t first_own = uh.nfields;
	for (size_t i = 0; i < uh.nfields; i++)
		if (eq_ci(uh.fields[i].name, "Host")) {
			first_own = i;
			break;
		}
	require(first_own < uh.nfields);
	size_t k = 0; /* the client fields passed must be a subsequence of the original ones */
	for (size_t i = 0; i < first_own; i++) {
		kg_str name = uh.fields[i].name;
		while (k < h.nfields && !(kg_str_eq(h.fields[k].name, name) && kg_str_eq(h.fields[k].value, uh.fields[i].value)))
			k++;
		require(k < h.nfields);
		k++;
		bool is_tunnel_settings = f.is_upgrade && eq_ci(name, "HTTP2-Settings");
		require(kg_str_is_token(name) && kg_str_is_field_value(uh.fields[i].value));
		require(!is_static_hop(name));
		require(is_tunnel_settings || !is_connection_listed(&h, name));
		require(!starts_dashed(name, "x-keygate-"));
		require(rules.underscores_in_headers || !memchr(name.p, '_', name.n));
		require(!eq_ci(name, "Content-Length") && !eq_ci(name, "Host"));
		require(is_tunnel_settings || !eq_ci(name, "HTTP2-Settings"));
		require(f.is_peer_trusted || !eq_ci(name, "Forwarded"));
		require(f.is_peer_trusted || !rules.forwarded_headers ||
		        !(eq_ci(name, "X-Forwarded-Proto") || eq_ci(name, "X-Forwarded-Host")));
		require(!rules.forwarded_headers || !eq_ci(name, "X-Forwarded-For"));
		require(!is_cred_consumed || rules.forward_credentials || !eq_ci(name, "Authorization"));
	}
	int n_host = 0, n_cl = 0, n_te = 0, n_conn = 0, n_upgrade = 0, n_id = 0;
	for (size_t i = first_own; i < uh.nfields; i++) {
		kg_str name = uh.fields[i].name, value = uh.fields[i].value;
		if (eq_ci(name, "Host")) {
			n_host++;
		} else if (eq_ci(name, "Content-Length")) {
			n_cl++;
			require(f.body == KG_BODY_LENGTH && uparser.content_length == f.content_length);
		} else if (eq_ci(name, "Transfer-Encoding")) {
			n_te++;
			require(f.body == KG_BODY_CHUNKED && kg_str_eq(value, KG_STR("chunked")));
		} else if (eq_ci(name, "Connection")) {
			n_conn++;
			require(f.is_upgrade);
		} else if (eq_ci(name, "Upgrade")) {
			n_upgrade++;
			require(f.is_upgrade && kg_str_eq(value, f.upgrade));
		} else if (starts_dashed(name, "x-keygate-")) {
			n_id++;
			require(is_authenticated);
		} else {
			require(rules.forwarded_headers && starts_dashed(name, "x-forwarded-"));
		}
	}
	require(n_host == 1 && n_cl <= 1 && n_te <= 1 && !(n_cl && n_te));
	require(n_conn == (f.is_upgrade ? 1 : 0) && n_upgrade == n_conn);
	require(n_id == (is_authenticated ? 3 : 0));
	require((f.body == KG_BODY_LENGTH) == (n_cl == 1) && (f.body == KG_BODY_CHUNKED) == (n_te == 1));

out:
	free(c->buf);
	free(uc->buf);
	free(c);
	free(uc);
	free(in);
	kg_buf_free(&out, false);
	kg_arena_destroy(&arena);
	return 0;
}
