/* head.c - the request head judged and rewritten (include/keygate/head.h). */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "keygate/head.h"
#include "keygate/path.h"

kg_err kg_cidr_parse(const char *s, struct kg_cidr *out)
{
	char addr[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n >= sizeof(addr))
		return KG_EINVAL;
	memcpy(addr, s, n);
	addr[n] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		out->prefix = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		out->prefix = 128;
	} else {
		return KG_EINVAL;
	}
	if (slash) {
		unsigned long long v;
		if (kg_str_to_u64(kg_str_c(slash + 1), (unsigned long long)out->prefix, &v) != KG_OK)
			return KG_EINVAL;
		out->prefix = (int)v;
	}
	return KG_OK;
}

/* ---- header classification ---- */

/* True when name appears as a token of a comma-separated header value. */
static bool list_has_token(kg_str list, kg_str name)
{
	size_t i = 0;
	while (i < list.n) {
		size_t j = i;
		while (j < list.n && list.p[j] != ',')
			j++;
		if (kg_str_eq_ci(kg_str_trim((kg_str){ list.p + i, j - i }), name))
			return true;
		i = j + 1;
	}
	return false;
}

/* Bytes below 0x20 in x (the test is exact for existence). */
#define ONES64 0x0101010101010101ULL
#define HAS_CONTROL(x, ones) ((((x) - (ones) * 0x20) & ~(x) & (ones) * 0x80) != 0)

/* name equals lc (lower case, name.n bytes long, at most 24), ASCII
 * case-insensitive. Every byte of name gets 0x20 or'd in and is compared 8,
 * 4 or 2 at a time, with loads that may overlap. Exact for every byte: each
 * byte of the special names is a lower-case letter, '-' or '2' (all with
 * 0x20 set), and b | 0x20 equals one of them only for it and the same byte
 * without 0x20: the upper-case letter, or a control byte (0x0d, 0x12), and
 * a name holding a control byte is never a special name. */
static inline __attribute__((always_inline)) bool is_name_lc(kg_str name, const char *lc)
{
	const char *p = name.p;
	size_t n = name.n;
	if (n >= 8) {
		uint64_t a, b, c, d;
		memcpy(&a, p, 8);
		memcpy(&b, lc, 8);
		memcpy(&c, p + n - 8, 8);
		memcpy(&d, lc + n - 8, 8);
		uint64_t diff = ((a | ONES64 * 0x20) ^ b) | ((c | ONES64 * 0x20) ^ d);
		bool is_control = HAS_CONTROL(a, ONES64) || HAS_CONTROL(c, ONES64);
		if (n > 16) {
			memcpy(&a, p + 8, 8);
			memcpy(&b, lc + 8, 8);
			diff |= (a | ONES64 * 0x20) ^ b;
			is_control = is_control || HAS_CONTROL(a, ONES64);
		}
		return !diff && !is_control;
	}
	if (n >= 4) {
		uint32_t a, b, c, d, ones = 0x01010101u;
		memcpy(&a, p, 4);
		memcpy(&b, lc, 4);
		memcpy(&c, p + n - 4, 4);
		memcpy(&d, lc + n - 4, 4);
		return !(((a | ones * 0x20) ^ b) | ((c | ones * 0x20) ^ d)) && !HAS_CONTROL(a, ones) &&
		       !HAS_CONTROL(c, ones);
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch < 0x20 || (ch | 0x20) != (unsigned char)lc[i])
			return false;
	}
	return true;
}

/* Told apart by length first and then one case-insensitive compare, instead
 * of a compare against each name in turn. */
enum kg_head_name kg_head_name_id(kg_str name)
{
	/* the first byte rejects most names of a special length that are not
	 * that name (exact: b | 0x20 is a lower-case letter only for it and its
	 * upper case); the whole compare decides */
#define IS(lit) (name.n == sizeof(lit) - 1 && (name.p[0] | 0x20) == (lit)[0] && is_name_lc(name, lit))
	/* a name of a special length that is not that name may still be Proxy-* */
	switch (name.n) {
	case 2:
		if (IS("te"))
			return KG_HEAD_NAME_TE;
		break;
	case 4:
		if (IS("host"))
			return KG_HEAD_NAME_HOST;
		break;
	case 5:
		if (IS("proxy"))
			return KG_HEAD_NAME_PROXY;
		break;
	case 7:
		if (IS("trailer"))
			return KG_HEAD_NAME_TRAILER;
		if (IS("upgrade"))
			return KG_HEAD_NAME_UPGRADE;
		break;
	case 9:
		if (IS("forwarded"))
			return KG_HEAD_NAME_FORWARDED;
		break;
	case 10:
		if (IS("connection"))
			return KG_HEAD_NAME_CONNECTION;
		if (IS("keep-alive"))
			return KG_HEAD_NAME_KEEP_ALIVE;
		break;
	case 13:
		if (IS("authorization"))
			return KG_HEAD_NAME_AUTHORIZATION;
		break;
	case 14:
		if (IS("content-length"))
			return KG_HEAD_NAME_CONTENT_LENGTH;
		if (IS("http2-settings"))
			return KG_HEAD_NAME_HTTP2_SETTINGS;
		break;
	case 15:
		if (IS("x-forwarded-for"))
			return KG_HEAD_NAME_X_FORWARDED_FOR;
		break;
	case 16:
		if (IS("x-forwarded-host"))
			return KG_HEAD_NAME_X_FORWARDED_HOST;
		break;
	case 17:
		if (IS("transfer-encoding"))
			return KG_HEAD_NAME_TRANSFER_ENCODING;
		if (IS("x-forwarded-proto"))
			return KG_HEAD_NAME_X_FORWARDED_PROTO;
		break;
	default:
		break;
	}
	if (name.n >= 6 && (name.p[0] | 0x20) == 'p' && is_name_lc((kg_str){ name.p, 6 }, "proxy-"))
		return KG_HEAD_NAME_PROXY_DASH;
	return KG_HEAD_NAME_OTHER;
#undef IS
}

bool kg_head_is_hop_by_hop_id(enum kg_head_name id, kg_str name, kg_str connection)
{
	if (kg_head_name_is_hop_by_hop(id))
		return true;
	return connection.n && list_has_token(connection, name);
}

bool kg_head_is_hop_by_hop(kg_str name, kg_str connection)
{
	return kg_head_is_hop_by_hop_id(kg_head_name_id(name), name, connection);
}

bool kg_head_has_prefix_dashed(kg_str name, kg_str prefix)
{
	if (name.n < prefix.n)
		return false;
	for (size_t i = 0; i < prefix.n; i++) {
		char a = name.p[i] == '_' ? '-' : name.p[i], b = prefix.p[i];
		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (char)(b - 'A' + 'a');
		if (a != b)
			return false;
	}
	return true;
}

/* The bytes of a Host value by where they may stand, one load per byte:
 * HOST_REG a reg-name (ASCII letters, digits, "-._~!$&'()*+,;=%"),
 * HOST_IP inside an IP literal's brackets (hex digits, ':', '.'), HOST_PORT
 * the port (digits). */
enum { HOST_REG = 1, HOST_IP = 2, HOST_PORT = 4 };
static const unsigned char host_bytes[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 0,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2, 1, 0, 1, 0, 0,
	0, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,
	0, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Host as RFC 9110 section 7.2 allows it. Anything else (spaces, '/', '@',
 * control bytes) could name a different host to the upstream than to
 * keygate. */
bool kg_head_is_valid_host(kg_str h)
{
	size_t i = 0;
	if (h.n == 0)
		return false;
	if (h.p[0] == '[') {
		for (i = 1; i < h.n && h.p[i] != ']'; i++)
			if (!(host_bytes[(unsigned char)h.p[i]] & HOST_IP))
				return false;
		if (i == h.n || i == 1)
			return false;
		i++;
	} else {
		/* ':' is not a reg-name byte: the name ends there or at a byte
		 * that makes the value invalid (refused just below) */
		while (i < h.n && (host_bytes[(unsigned char)h.p[i]] & HOST_REG))
			i++;
		if (i == 0)
			return false;
	}
	if (i < h.n && h.p[i++] != ':')
		return false;
	for (; i < h.n; i++)
		if (!(host_bytes[(unsigned char)h.p[i]] & HOST_PORT))
			return false;
	return true;
}

/* ---- judging ---- */

static kg_err refuse(kg_head_facts *f, int status, const char *message)
{
	f->status = status;
	f->message = message;
	return status == 500 ? KG_ENOMEM : KG_EINVAL;
}

/* True when every protocol Upgrade asks for is one rules->upgrades tunnels;
 * any other Upgrade request goes upstream as an ordinary request, without
 * its Upgrade headers. */
static bool is_allowed_upgrade(const kg_head_rules *rules, kg_str upgrade)
{
	size_t i = 0, n = 0;
	while (i < upgrade.n) {
		size_t j = i;
		while (j < upgrade.n && upgrade.p[j] != ',')
			j++;
		kg_str proto = kg_str_trim((kg_str){ upgrade.p + i, j - i });
		const char *slash = memchr(proto.p, '/', proto.n);
		if (slash)
			proto.n = (size_t)(slash - proto.p); /* "websocket/13": the name decides */
		if (proto.n) {
			bool is_listed = false;
			for (size_t k = 0; k < rules->upgrades.n && !is_listed; k++)
				is_listed = kg_str_eq_ci(proto, kg_str_c(rules->upgrades.v[k]));
			if (!is_listed)
				return false;
			n++;
		}
		i = j + 1;
	}
	return n > 0;
}

/* 1 for a control byte (below 0x20, 0x7f) and '#': one load per byte of
 * every request target */
static const unsigned char target_forbidden[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

size_t kg_head_forbidden_byte(kg_str target)
{
	size_t i = 0;
	while (i < target.n && !target_forbidden[(unsigned char)target.p[i]])
		i++;
	return i;
}

kg_err kg_head_origin_target(kg_str rest, unsigned path_flags, kg_arena *arena, kg_str *path, kg_str *target,
                             bool *is_restructured, const char **why)
{
	const char *q = memchr(rest.p, '?', rest.n);
	kg_str p = { rest.p, q ? (size_t)(q - rest.p) : rest.n };
	kg_str query = { p.p + p.n, rest.n - p.n };
	if (p.n == 0)
		p = KG_STR("/"); /* "http://host?q" */
	char *out = kg_arena_alloc(arena, p.n + query.n + 1);
	if (!out)
		return KG_ENOMEM;
	size_t n = 0;
	kg_err err = kg_path_normalize(p, path_flags, out, &n, is_restructured, why);
	if (err)
		return err;
	memcpy(out + n, query.p, query.n);
	*path = (kg_str){ out, n };
	*target = (kg_str){ out, n + query.n };
	return KG_OK;
}

/* The target: f->path (normalised) and f->target (that path and the query
 * exactly as sent). Refuses a target that cannot be made unambiguous. */
static kg_err judge_target(const kg_head *h, const kg_head_rules *rules, kg_arena *arena, kg_head_facts *f)
{
	kg_str url = h->url, rest = url;

	f->path = url; /* what the access log shows if the target is refused */
	size_t bad = kg_head_forbidden_byte(url);
	if (bad < url.n)
		return refuse(f, 400, url.p[bad] == '#' ? "'#' in the request target: a fragment is never sent to a server"
		                                        : "control character in the request target");
	if (url.n == 0 || url.p[0] != '/') {
		/* absolute form (RFC 9112 section 3.2.2): its authority replaces Host */
		size_t skip = kg_str_has_prefix_ci(url, KG_STR("http://"))    ? 7
		              : kg_str_has_prefix_ci(url, KG_STR("https://")) ? 8
		                                                               : 0;
		if (!skip)
			return refuse(f, 400, kg_str_eq(url, KG_STR("*"))
			                          ? "the asterisk-form request target (*) is not supported"
			                          : "request target must be a path starting with '/' or an absolute "
			                            "http:// URL");
		size_t end = skip;
		while (end < url.n && url.p[end] != '/' && url.p[end] != '?')
			end++;
		kg_str authority = { url.p + skip, end - skip };
		if (memchr(authority.p, '@', authority.n) || !kg_head_is_valid_host(authority))
			return refuse(f, 400, "invalid authority in the absolute request target");
		f->host = authority;
		rest = (kg_str){ url.p + end, url.n - end };
	}
	kg_str path, target;
	const char *why = NULL;
	kg_err err = kg_head_origin_target(rest, rules->path_flags, arena, &path, &target, NULL, &why);
	if (err == KG_ENOMEM)
		return refuse(f, 500, "out of memory");
	if (err)
		return refuse(f, 400, why ? why : "invalid request path");
	f->path = path;
	f->target = target;
	return KG_OK;
}

static bool ip_in_cidr(const struct kg_cidr *cidr, int family, const unsigned char *addr)
{
	if (cidr->family != family)
		return false;
	int bits = cidr->prefix;
	for (int i = 0; bits > 0; i++, bits -= 8) {
		unsigned char mask = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
		if ((addr[i] & mask) != (cidr->addr[i] & mask))
			return false;
	}
	return true;
}

/* ip as a NUL-terminated address when it parses as IPv4 or IPv6 (the only
 * thing an X-Forwarded-For entry may be: anything else would reach the logs
 * and the throttle's buckets as the client's "address"). */
static bool parse_ip(kg_str ip, char *out, size_t cap, int *family, unsigned char addr[16])
{
	if (ip.n == 0 || ip.n >= cap)
		return false;
	memcpy(out, ip.p, ip.n);
	out[ip.n] = '\0';
	if (inet_pton(AF_INET, out, addr) == 1)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, out, addr) == 1)
		*family = AF_INET6;
	else
		return false;
	return true;
}

static bool is_trusted(const kg_head_rules *rules, int family, const unsigned char addr[16])
{
	for (size_t i = 0; i < rules->ntrusted; i++)
		if (ip_in_cidr(&rules->trusted[i], family, addr))
			return true;
	return false;
}

/* The client is the socket peer, unless the peer is a trusted proxy: then it
 * is the right-most X-Forwarded-For entry that is not itself trusted. An
 * entry that is not an IP address ends the walk: the hop that passed it on
 * is the last address known to be real. */
static void resolve_client(const kg_head *h, const kg_head_rules *rules, kg_head_facts *f)
{
	kg_str xff = f->xff;
	char tmp[KG_HEAD_ADDR_MAX];
	unsigned char addr[16];
	int family;
	f->client = h->peer;
	f->is_peer_trusted = rules->ntrusted && parse_ip(h->peer, tmp, sizeof(tmp), &family, addr) &&
	                     is_trusted(rules, family, addr);
	if (!f->is_peer_trusted || !xff.n)
		return;
	size_t end = xff.n;
	while (end > 0) {
		size_t start = end;
		while (start > 0 && xff.p[start - 1] != ',')
			start--;
		kg_str ip = kg_str_trim((kg_str){ xff.p + start, end - start });
		if (!parse_ip(ip, tmp, sizeof(tmp), &family, addr))
			return;
		f->client = ip;
		if (!is_trusted(rules, family, addr))
			return;
		end = start ? start - 1 : 0;
	}
}

/* Adds value to the comma-separated list *list: several headers of a list
 * field (RFC 9110 section 5.3) read as one. The first is kept in place; a
 * join is written in arena. */
static kg_err list_join(kg_str *list, kg_str value, kg_arena *arena)
{
	if (!list->n) {
		*list = value;
		return KG_OK;
	}
	size_t n = list->n + 2 + value.n;
	char *p = kg_arena_alloc(arena, n);
	if (!p)
		return KG_ENOMEM;
	memcpy(p, list->p, list->n);
	memcpy(p + list->n, ", ", 2);
	memcpy(p + list->n + 2, value.p, value.n);
	*list = (kg_str){ p, n };
	return KG_OK;
}

static bool has_field(const kg_head *h, kg_str name)
{
	for (size_t i = 0; i < h->nfields; i++)
		if (kg_str_eq_ci(h->fields[i].name, name))
			return true;
	return false;
}

kg_err kg_head_judge(const kg_head *h, const kg_head_rules *rules, kg_arena *arena, kg_head_facts *out)
{
	kg_head_facts *f = out;
	bool seen_host = false, seen_auth = false;

	memset(f, 0, sizeof(*f));
	/* each name is classified here once; kg_head_write_upstream reads the
	 * ids instead of comparing the names again */
	unsigned char *ids = kg_arena_alloc(arena, h->nfields ? h->nfields : 1);
	if (!ids)
		return refuse(f, 500, "out of memory");
	for (size_t i = 0; i < h->nfields; i++) {
		kg_str name = h->fields[i].name, value = h->fields[i].value;
		/* llhttp lets ": v" and "A B: v" through; an upstream could read
		 * either as some other header */
		if (!kg_str_is_token(name))
			return refuse(f, 400, "invalid header field name");
		enum kg_head_name id = kg_head_name_id(name);
		ids[i] = (unsigned char)id;
		switch (id) {
		case KG_HEAD_NAME_HOST:
			if (seen_host)
				return refuse(f, 400, "duplicate Host header");
			seen_host = true;
			f->host = value;
			break;
		case KG_HEAD_NAME_AUTHORIZATION:
			if (seen_auth)
				return refuse(f, 400, "duplicate Authorization header");
			seen_auth = true;
			f->authorization = value;
			break;
		case KG_HEAD_NAME_CONNECTION:
			/* every Connection header's names are hop-by-hop; an empty
			 * one lists nothing */
			if (value.n && list_join(&f->connection, value, arena))
				return refuse(f, 500, "out of memory");
			break;
		case KG_HEAD_NAME_CONTENT_LENGTH:
			if (has_field(h, KG_STR("Transfer-Encoding")))
				return refuse(f, 400, "both Content-Length and Transfer-Encoding headers");
			break;
		case KG_HEAD_NAME_UPGRADE:
			/* every protocol asked for is judged, not just the last
			 * header's (what keygate writes upstream for a tunnel) */
			if (value.n && list_join(&f->upgrade, value, arena))
				return refuse(f, 500, "out of memory");
			break;
		case KG_HEAD_NAME_X_FORWARDED_FOR:
			/* several X-Forwarded-For headers read as one list */
			if (list_join(&f->xff, value, arena))
				return refuse(f, 500, "out of memory");
			break;
		default:
			break;
		}
	}
	if (h->is_chunked) {
		f->body = KG_BODY_CHUNKED;
	} else if (h->has_content_length && h->content_length > 0) {
		f->body = KG_BODY_LENGTH;
		f->content_length = h->content_length;
	}
	f->is_upgrade = h->is_upgrade_requested && f->upgrade.n && !kg_str_eq(h->method, KG_STR("CONNECT")) &&
	                is_allowed_upgrade(rules, f->upgrade);
	if (h->version_major != 1 || h->version_minor > 1)
		return refuse(f, 505, "HTTP version not supported: keygate speaks HTTP/1.0 and HTTP/1.1");
	if (seen_host ? !kg_head_is_valid_host(f->host) : h->version_minor >= 1)
		return refuse(f, 400, seen_host ? "invalid Host header" : "HTTP/1.1 request without a Host header");
	kg_err err = judge_target(h, rules, arena, f);
	if (err)
		return err;
	resolve_client(h, rules, f);
	f->name_ids = ids;
	f->nname_ids = h->nfields;
	return KG_OK;
}

/* ---- the upstream head ---- */

static bool skip_field(const kg_head_facts *f, const kg_head_rules *rules, kg_str name, enum kg_head_name id,
                       bool is_cred_consumed)
{
	if (f->is_upgrade && id == KG_HEAD_NAME_HTTP2_SETTINGS)
		return false; /* part of an h2c upgrade keygate tunnels: listed in Connection below */
	if (kg_head_name_is_hop_by_hop(id) || (f->connection.n && list_has_token(f->connection, name)))
		return true;
	if (name.n >= 10 && (name.p[0] | 0x20) == 'x' && kg_head_has_prefix_dashed(name, KG_STR("X-Keygate-")))
		return true; /* identity headers are keygate's alone: never forged */
	if (!rules->underscores_in_headers && name.n && memchr(name.p, '_', name.n))
		return true; /* X_Role would reach a CGI upstream as HTTP_X_ROLE, like X-Role */
	switch (id) {
	case KG_HEAD_NAME_HOST:
	case KG_HEAD_NAME_CONTENT_LENGTH:
		return true; /* written once below, from the judged facts */
	case KG_HEAD_NAME_PROXY:
		return true; /* httpoxy: no such header exists, and a CGI upstream reads it as HTTP_PROXY */
	case KG_HEAD_NAME_HTTP2_SETTINGS:
		return true; /* an h2c upgrade keygate does not tunnel goes as a plain request */
	case KG_HEAD_NAME_FORWARDED:
		return !f->is_peer_trusted; /* says who the client is: believed only from a trusted proxy */
	case KG_HEAD_NAME_X_FORWARDED_FOR:
		return rules->forwarded_headers; /* rewritten below, the peer appended */
	case KG_HEAD_NAME_X_FORWARDED_PROTO:
	case KG_HEAD_NAME_X_FORWARDED_HOST:
		return rules->forwarded_headers && !f->is_peer_trusted;
	case KG_HEAD_NAME_AUTHORIZATION:
		return is_cred_consumed && !rules->forward_credentials;
	default:
		return false;
	}
}

/* At least the bytes kg_head_write_upstream writes, so that it reserves once
 * and every piece after is an inline copy (kg_buf_put). An estimate that
 * fell short would only cost a grow: kg_buf_put checks every piece. */
static size_t upstream_head_estimate(const kg_head *h, const kg_head_facts *f, const kg_head_rules *rules,
                                     const struct kg_principal *who)
{
	size_t n = 256 /* the fixed texts below, all together */ + h->method.n + rules->up_base.n + f->target.n +
	           f->host.n * 2 + rules->up_hostport.n + f->xff.n + h->peer.n + f->upgrade.n;
	for (size_t i = 0; i < h->nfields; i++)
		n += h->fields[i].name.n + h->fields[i].value.n + 4;
	if (who)
		n += strlen(who->scheme) + who->id.n + who->role.n;
	return n;
}

kg_err kg_head_write_upstream(const kg_head *h, const kg_head_facts *f, const kg_head_rules *rules,
                              const struct kg_principal *who, bool is_cred_consumed, kg_buf *b)
{
	kg_err err = KG_OK;
	bool has_proto = false, has_host = false, has_h2_settings = false;

	if ((err = kg_buf_reserve(b, upstream_head_estimate(h, f, rules, who))))
		return err;
#define OUT(s) do { if ((err = kg_buf_put(b, (s)))) return err; } while (0)
	OUT(h->method);
	OUT(KG_STR(" "));
	OUT(rules->up_base);
	OUT(f->target.n ? f->target : KG_STR("/"));
	OUT(KG_STR(" HTTP/1.1\r\n"));
	/* the ids kg_head_judge interned, when f was judged from this head */
	const unsigned char *ids = f->nname_ids == h->nfields ? f->name_ids : NULL;
	for (size_t i = 0; i < h->nfields; i++) {
		kg_str name = h->fields[i].name;
		enum kg_head_name id = ids ? (enum kg_head_name)ids[i] : kg_head_name_id(name);
		if (skip_field(f, rules, name, id, is_cred_consumed))
			continue;
		/* a trusted proxy in front (TLS offload) knows the scheme and host
		 * the client used: its X-Forwarded-Proto/-Host stand */
		has_proto = has_proto || id == KG_HEAD_NAME_X_FORWARDED_PROTO;
		has_host = has_host || id == KG_HEAD_NAME_X_FORWARDED_HOST;
		has_h2_settings = has_h2_settings || id == KG_HEAD_NAME_HTTP2_SETTINGS;
		OUT(name);
		OUT(KG_STR(": "));
		OUT(h->fields[i].value);
		OUT(KG_STR("\r\n"));
	}
	OUT(KG_STR("Host: "));
	OUT(rules->preserve_host && f->host.n ? f->host : rules->up_hostport);
	OUT(KG_STR("\r\n"));
	if (rules->forwarded_headers) {
		OUT(KG_STR("X-Forwarded-For: "));
		if (f->xff.n) {
			OUT(f->xff);
			OUT(KG_STR(", "));
		}
		OUT(h->peer);
		OUT(KG_STR("\r\n"));
		if (!has_proto)
			OUT(h->is_tls ? KG_STR("X-Forwarded-Proto: https\r\n") : KG_STR("X-Forwarded-Proto: http\r\n"));
		if (f->host.n && !has_host) {
			OUT(KG_STR("X-Forwarded-Host: "));
			OUT(f->host);
			OUT(KG_STR("\r\n"));
		}
	}
	if (f->body == KG_BODY_LENGTH) {
		OUT(KG_STR("Content-Length: "));
		if ((err = kg_buf_append_u64(b, f->content_length)))
			return err;
		OUT(KG_STR("\r\n"));
	} else if (f->body == KG_BODY_CHUNKED) {
		OUT(KG_STR("Transfer-Encoding: chunked\r\n"));
	}
	if (f->is_upgrade) {
		OUT(has_h2_settings ? KG_STR("Connection: upgrade, HTTP2-Settings\r\nUpgrade: ")
		                    : KG_STR("Connection: upgrade\r\nUpgrade: "));
		OUT(f->upgrade);
		OUT(KG_STR("\r\n"));
	}
	if (who) {
		OUT(KG_STR("X-Keygate-Scheme: "));
		OUT(kg_str_c(who->scheme));
		OUT(KG_STR("\r\nX-Keygate-Principal: "));
		OUT(who->id);
		OUT(KG_STR("\r\n"));
		if (who->role.n) {
			OUT(KG_STR("X-Keygate-Role: "));
			OUT(who->role);
			OUT(KG_STR("\r\n"));
		}
	}
	OUT(KG_STR("\r\n"));
#undef OUT
	return KG_OK;
}
