/* url.c - HOST:PORT and http:// or https:// URLs from the configuration (keygate/url.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>

#include "keygate/url.h"

static kg_err __attribute__((format(printf, 2, 3))) bad(kg_buf *why, const char *fmt, ...)
{
	if (why) {
		va_list ap;
		va_start(ap, fmt);
		(void)kg_buf_vprintf(why, fmt, ap);
		va_end(ap);
	}
	return KG_EINVAL;
}

/* s is the authority; whole is the value quoted in problems (s itself, or
 * the URL around it). */
static kg_err parse_hostport(kg_str whole, kg_str s, bool is_port_required, kg_hostport *out, kg_buf *why)
{
	const char *p = s.p, *port = NULL;
	size_t n = s.n;
	int wn = (int)whole.n;

	*out = (kg_hostport){ .hostport = s };
	if (n && p[0] == '[') {
		const char *end = memchr(p, ']', n);
		char addr[INET6_ADDRSTRLEN + 1];
		struct in6_addr a6;
		if (!end)
			return bad(why, "'%.*s': missing ']' after the IPv6 address", wn, whole.p);
		size_t hostlen = (size_t)(end - p - 1);
		if (hostlen >= sizeof(addr) || (memcpy(addr, p + 1, hostlen), addr[hostlen] = '\0',
		                                inet_pton(AF_INET6, addr, &a6) != 1))
			return bad(why, "'%.*s': '%.*s' is not an IPv6 address", wn, whole.p, (int)hostlen, p + 1);
		if (end + 1 < p + n) {
			if (end[1] != ':')
				return bad(why, "'%.*s': expected ':' and a port after ']'", wn, whole.p);
			port = end + 2;
		}
		out->host = (kg_str){ p + 1, hostlen };
		out->is_ipv6 = true;
	} else {
		const char *colon = NULL;
		for (size_t i = 0; i < n; i++)
			if (p[i] == ':') {
				if (colon)
					return bad(why, "'%.*s': put an IPv6 address in brackets, as in [::1]:8080", wn,
					           whole.p);
				colon = p + i;
			}
		size_t hostlen = colon ? (size_t)(colon - p) : n;
		port = colon ? colon + 1 : NULL;
		if (hostlen == 0)
			return bad(why, "'%.*s': the host is empty", wn, whole.p);
		if (hostlen > 255)
			return bad(why, "'%.*s': the host name is too long", wn, whole.p);
		for (size_t i = 0; i < hostlen; i++)
			if ((unsigned char)p[i] <= ' ' || memchr("/?#@[]\\", p[i], 7))
				return bad(why, "'%.*s': bad character in the host name", wn, whole.p);
		out->host = (kg_str){ p, hostlen };
	}
	if (!port) {
		if (is_port_required)
			return bad(why, "'%.*s': expected HOST:PORT", wn, whole.p);
		return KG_OK;
	}
	unsigned long long v;
	if (kg_str_to_u64((kg_str){ port, (size_t)(p + n - port) }, 65535, &v) != KG_OK || v == 0)
		return bad(why, "'%.*s': the port must be a number between 1 and 65535", wn, whole.p);
	out->port = (unsigned)v;
	return KG_OK;
}

kg_err kg_hostport_parse(kg_str s, bool is_port_required, kg_hostport *out, kg_buf *why)
{
	return parse_hostport(s, s, is_port_required, out, why);
}

kg_err kg_url_parse(kg_str url, kg_url *out, kg_buf *why)
{
	int un = (int)url.n;

	*out = (kg_url){ 0 };
	size_t scheme = 0;
	if (kg_str_has_prefix(url, KG_STR("https://"))) {
		scheme = 8;
		out->is_https = true;
	} else if (kg_str_has_prefix(url, KG_STR("http://"))) {
		scheme = 7;
	} else {
		return bad(why, "'%.*s': expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]", un, url.p);
	}
	kg_str rest = { url.p + scheme, url.n - scheme };
	const char *slash = memchr(rest.p, '/', rest.n);
	kg_str authority = { rest.p, slash ? (size_t)(slash - rest.p) : rest.n };
	if (memchr(url.p, '?', url.n) || memchr(url.p, '#', url.n))
		return bad(why, "'%.*s': an upstream URL cannot have a query or fragment", un, url.p);
	if (memchr(authority.p, '@', authority.n))
		return bad(why, "'%.*s': credentials in the upstream URL are not supported", un, url.p);
	for (size_t i = 0; i < url.n; i++)
		if ((unsigned char)url.p[i] <= ' ' || url.p[i] == 0x7f)
			return bad(why, "'%.*s': the URL contains a space or control character", un, url.p);
	kg_err err = parse_hostport(url, authority, false, &out->authority, why);
	if (err)
		return err;
	out->path = (kg_str){ rest.p + authority.n, rest.n - authority.n };
	return KG_OK;
}
