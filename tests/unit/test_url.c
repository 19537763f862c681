#include <string.h>
#include <stdlib.h>

#include "keygate/url.h"
#include "kgtest.h"

/* Checks err and why against the row: want_why NULL for a success (true:
 * go on to check the parts), else the problem it must report. */
static bool check_outcome(const char *in, kg_err err, const kg_buf *why, const char *want_why)
{
	const char *got = why->p ? why->p : "";
	if (want_why) {
		KG_CHECK(err == KG_EINVAL, "'%s': got %s, want KG_EINVAL", in, kg_errname(err));
		KG_CHECK(strcmp(got, want_why) == 0, "'%s': problem '%s', want '%s'", in, got, want_why);
		return false;
	}
	KG_CHECK(err == KG_OK, "'%s': got %s (%s)", in, kg_errname(err), got);
	KG_CHECK(why->n == 0, "'%s': problem '%s' on success", in, got);
	return err == KG_OK;
}

/* One row per input: the parts it parses into, or the problem it reports. */
KG_TEST(test_hostport_parse_table)
{
	static const struct {
		const char *in;
		bool is_port_required;
		const char *host; /* NULL: an error */
		unsigned port;
		bool is_ipv6;
		const char *why;
	} cases[] = {
		{ "127.0.0.1:8080", true, "127.0.0.1", 8080, false, NULL },
		{ "localhost:65535", true, "localhost", 65535, false, NULL },
		{ "0.0.0.0:1", true, "0.0.0.0", 1, false, NULL },
		{ "[::1]:8080", true, "::1", 8080, true, NULL },
		{ "[::]:443", true, "::", 443, true, NULL },
		{ "[fe80::1%eth0]:80", true, NULL, 0, false, "'[fe80::1%eth0]:80': 'fe80::1%eth0' is not an IPv6 address" },
		{ "backend", false, "backend", 0, false, NULL },
		{ "[::1]", false, "::1", 0, true, NULL },
		{ "backend:080", false, "backend", 80, false, NULL },
		{ "backend", true, NULL, 0, false, "'backend': expected HOST:PORT" },
		{ "[::1]", true, NULL, 0, false, "'[::1]': expected HOST:PORT" },
		{ "", false, NULL, 0, false, "'': the host is empty" },
		{ ":8080", true, NULL, 0, false, "':8080': the host is empty" },
		{ "h:0", true, NULL, 0, false, "'h:0': the port must be a number between 1 and 65535" },
		{ "h:65536", true, NULL, 0, false, "'h:65536': the port must be a number between 1 and 65535" },
		{ "h:", true, NULL, 0, false, "'h:': the port must be a number between 1 and 65535" },
		{ "h:+80", true, NULL, 0, false, "'h:+80': the port must be a number between 1 and 65535" },
		{ "h:http", true, NULL, 0, false, "'h:http': the port must be a number between 1 and 65535" },
		{ "::1:8080", true, NULL, 0, false, "'::1:8080': put an IPv6 address in brackets, as in [::1]:8080" },
		{ "[::1:8080", true, NULL, 0, false, "'[::1:8080': missing ']' after the IPv6 address" },
		{ "[nope]:80", true, NULL, 0, false, "'[nope]:80': 'nope' is not an IPv6 address" },
		{ "[]:80", true, NULL, 0, false, "'[]:80': '' is not an IPv6 address" },
		{ "[::1]x80", true, NULL, 0, false, "'[::1]x80': expected ':' and a port after ']'" },
		{ "[::1]:", true, NULL, 0, false, "'[::1]:': the port must be a number between 1 and 65535" },
		{ "a b:80", true, NULL, 0, false, "'a b:80': bad character in the host name" },
		{ "a@b:80", true, NULL, 0, false, "'a@b:80': bad character in the host name" },
		{ "a/b:80", true, NULL, 0, false, "'a/b:80': bad character in the host name" },
		{ "a\\b:80", true, NULL, 0, false, "'a\\b:80': bad character in the host name" },
		{ "a]b:80", true, NULL, 0, false, "'a]b:80': bad character in the host name" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_hostport hp;
		kg_buf why = { 0 };
		kg_str in = kg_str_c(cases[i].in);
		kg_err err = kg_hostport_parse(in, cases[i].is_port_required, &hp, &why);
		if (check_outcome(cases[i].in, err, &why, cases[i].host ? NULL : cases[i].why)) {
			KG_CHECK(kg_str_eq(hp.host, kg_str_c(cases[i].host)), "'%s': host '%.*s', want '%s'", cases[i].in,
			         (int)hp.host.n, hp.host.p, cases[i].host);
			KG_CHECK(kg_str_eq(hp.hostport, in), "'%s': hostport '%.*s'", cases[i].in, (int)hp.hostport.n,
			         hp.hostport.p);
			KG_CHECK(hp.port == cases[i].port, "'%s': port %u, want %u", cases[i].in, hp.port, cases[i].port);
			KG_CHECK(hp.is_ipv6 == cases[i].is_ipv6, "'%s': is_ipv6 %d", cases[i].in, hp.is_ipv6);
		}
		kg_buf_free(&why, false);
	}
}

KG_TEST(test_hostport_host_name_of_255_bytes_is_the_limit)
{
	char name[300];
	kg_hostport hp;
	kg_buf why = { 0 };
	memset(name, 'a', sizeof(name));
	memcpy(name + 255, ":80", 3);
	KG_CHECK(kg_hostport_parse((kg_str){ name, 258 }, true, &hp, NULL) == KG_OK && hp.host.n == 255,
	         "a 255-byte host name must parse");
	name[255] = 'a';
	memcpy(name + 256, ":80", 3);
	KG_CHECK(kg_hostport_parse((kg_str){ name, 259 }, true, &hp, &why) == KG_EINVAL, "256 bytes must not parse");
	KG_CHECK(why.p && strstr(why.p, "': the host name is too long"), "problem '%s'", why.p ? why.p : "");
	kg_buf_free(&why, false);
}

KG_TEST(test_hostport_stays_within_its_length)
{
	/* "h:80" followed by bytes that are not part of the value */
	kg_hostport hp;
	KG_CHECK(kg_hostport_parse((kg_str){ "h:80x", 4 }, true, &hp, NULL) == KG_OK && hp.port == 80,
	         "a parser reading past s.n would see the 'x'");
	KG_CHECK(kg_hostport_parse((kg_str){ "[::1]:9", 5 }, true, &hp, NULL) == KG_EINVAL,
	         "'[::1]' without its port is missing the port");
}

KG_TEST(test_url_parse_table)
{
	static const struct {
		const char *in;
		const char *hostport; /* NULL: an error */
		const char *host;
		unsigned port;
		const char *path;
		const char *why;
	} cases[] = {
		{ "http://127.0.0.1:9000", "127.0.0.1:9000", "127.0.0.1", 9000, "", NULL },
		{ "http://backend:9000/api", "backend:9000", "backend", 9000, "/api", NULL },
		{ "http://backend", "backend", "backend", 0, "", NULL },
		{ "http://backend/", "backend", "backend", 0, "/", NULL },
		{ "http://[::1]:9000/", "[::1]:9000", "::1", 9000, "/", NULL },
		{ "http://[::1]/a/b//", "[::1]", "::1", 0, "/a/b//", NULL },
		{ "https://backend:8443/api", "backend:8443", "backend", 8443, "/api", NULL },
		{ "https://backend", "backend", "backend", 0, "", NULL },
		{ "https://[::1]/", "[::1]", "::1", 0, "/", NULL },
		{ "HTTPS://backend", NULL, NULL, 0, NULL, "'HTTPS://backend': expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]" },
		{ "HTTP://backend", NULL, NULL, 0, NULL, "'HTTP://backend': expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]" },
		{ "backend:9000", NULL, NULL, 0, NULL, "'backend:9000': expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]" },
		{ "ftp://backend", NULL, NULL, 0, NULL, "'ftp://backend': expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]" },
		{ "", NULL, NULL, 0, NULL, "'': expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]" },
		{ "http://", NULL, NULL, 0, NULL, "'http://': the host is empty" },
		{ "http:///api", NULL, NULL, 0, NULL, "'http:///api': the host is empty" },
		{ "http://b/api?x=1", NULL, NULL, 0, NULL, "'http://b/api?x=1': an upstream URL cannot have a query or fragment" },
		{ "http://b#f", NULL, NULL, 0, NULL, "'http://b#f': an upstream URL cannot have a query or fragment" },
		{ "http://u:p@b/", NULL, NULL, 0, NULL, "'http://u:p@b/': credentials in the upstream URL are not supported" },
		{ "http://b/a@c", "b", "b", 0, "/a@c", NULL },
		{ "http://b/a b", NULL, NULL, 0, NULL, "'http://b/a b': the URL contains a space or control character" },
		{ "http://b/a\x7f", NULL, NULL, 0, NULL, "'http://b/a\x7f': the URL contains a space or control character" },
		{ "http://b:0/", NULL, NULL, 0, NULL, "'http://b:0/': the port must be a number between 1 and 65535" },
		{ "http://[::1/", NULL, NULL, 0, NULL, "'http://[::1/': missing ']' after the IPv6 address" },
		{ "http://::1/", NULL, NULL, 0, NULL, "'http://::1/': put an IPv6 address in brackets, as in [::1]:8080" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kg_url u;
		kg_buf why = { 0 };
		kg_err err = kg_url_parse(kg_str_c(cases[i].in), &u, &why);
		if (check_outcome(cases[i].in, err, &why, cases[i].hostport ? NULL : cases[i].why)) {
			KG_CHECK(kg_str_eq(u.authority.hostport, kg_str_c(cases[i].hostport)), "'%s': hostport '%.*s'",
			         cases[i].in, (int)u.authority.hostport.n, u.authority.hostport.p);
			KG_CHECK(kg_str_eq(u.authority.host, kg_str_c(cases[i].host)), "'%s': host '%.*s'", cases[i].in,
			         (int)u.authority.host.n, u.authority.host.p);
			KG_CHECK(u.authority.port == cases[i].port, "'%s': port %u", cases[i].in, u.authority.port);
			KG_CHECK(kg_str_eq(u.path, kg_str_c(cases[i].path)), "'%s': path '%.*s', want '%s'", cases[i].in,
			         (int)u.path.n, u.path.p, cases[i].path);
			KG_CHECK(u.is_https == (strncmp(cases[i].in, "https://", 8) == 0), "'%s': is_https %d", cases[i].in,
			         u.is_https);
		}
		kg_buf_free(&why, false);
	}
}

KG_TEST(test_url_nul_byte_is_a_control_character)
{
	kg_url u;
	KG_CHECK(kg_url_parse((kg_str){ "http://b/\0x", 11 }, &u, NULL) == KG_EINVAL,
	         "a NUL inside the URL must be refused, not end it");
}

int main(void)
{
	return kg_test_main();
}
