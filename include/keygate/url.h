/* url.h - HOST:PORT and http:// URLs as keygate's settings write them
 * (listen, upstream), parsed in one place for the config checks and for the
 * server that connects and binds with the values.
 *
 * Both parsers are pure: they borrow the input, return views into it and
 * allocate nothing; their only side effect is the problem text appended to
 * why. They parse configuration, not network input: a request's Host header
 * and absolute-form target follow RFC 9110's stricter grammar in src/http.c.
 */
#ifndef KEYGATE_URL_H
#define KEYGATE_URL_H

#include <stdbool.h>

#include "keygate/err.h"
#include "keygate/str.h"

typedef struct kg_hostport {
	kg_str host;     /* borrowed: the name or address, without IPv6 brackets; never empty */
	kg_str hostport; /* borrowed: host and port as written, brackets kept (the Host header form) */
	unsigned port;   /* 1..65535, or 0 when the input names no port */
	bool is_ipv6;    /* written in brackets, and inet_pton accepts it as IPv6 */
} kg_hostport;

/* Parses "HOST", "HOST:PORT", "[IPV6]" or "[IPV6]:PORT" filling all of s.
 * A HOST is 1..255 bytes without space, control bytes or any of /?#@[]\ and
 * without ':' (an IPv6 address goes in brackets); a PORT is decimal 1..65535.
 * is_port_required rejects the forms without a port. s is borrowed and out
 * points into it. On error returns KG_EINVAL and appends to why (borrowed,
 * may be NULL) one line quoting s, as in "'[::1]x80': expected ':' and a
 * port after ']'"; out is then unspecified. */
kg_err kg_hostport_parse(kg_str s, bool is_port_required, kg_hostport *out, kg_buf *why) KG_MUST_CHECK;

typedef struct kg_url {
	kg_hostport authority; /* port 0 when the URL names none (80 for http, 443 for https) */
	kg_str path;           /* borrowed: from the first '/' after the authority, as written; empty when none */
	bool is_https;         /* https://: keygate speaks TLS to it */
} kg_url;

/* Parses an upstream URL, http://HOST[:PORT][/PATH] or
 * https://HOST[:PORT][/PATH]: the scheme in lower case, the authority as kg_hostport_parse takes it, no userinfo, query or
 * fragment, and no space or control byte anywhere. url is borrowed and out
 * points into it. On error returns KG_EINVAL and appends to why (borrowed,
 * may be NULL) one line quoting url. */
kg_err kg_url_parse(kg_str url, kg_url *out, kg_buf *why) KG_MUST_CHECK;

#endif
