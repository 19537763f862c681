/* test_resp_head.c - what llhttp lets through into an upstream response's
 * header fields, and the check src/proxy.c makes on top of it.
 *
 * r_headers_complete relays a field only when its name is a token and its
 * value holds no control byte but HTAB. It used to check both in full
 * (kg_str_is_token, kg_str_is_field_value on the trimmed value); it now
 * checks only kg_head_is_parsed_name_token, because llhttp, run as
 * proxy.c runs it (HTTP_RESPONSE, no lenient flags), refuses the rest. This
 * feeds llhttp every byte value (and every pair of them) in every place of a
 * name and of a value, for the names llhttp parses values of in states of
 * their own, and the CR/LF/obs-fold shapes, whole and split in two reads,
 * and requires the old and the new check to refuse exactly the same heads.
 * A newer llhttp that lets more through fails here. */
#include <stdio.h>
#include <stdlib.h>

#include <llhttp.h>

#include "keygate/head.h"
#include "keygate/str.h"
#include "kgtest.h"

#define MAXH 64

/* The fields as proxy.c's r_header_field and r_header_value collect them:
 * the pieces of one name (or value) llhttp hands over are joined. */
struct got {
	char buf[1 << 16];
	size_t n;
	struct {
		size_t name_off, name_len, value_off, value_len;
	} h[MAXH];
	size_t nh;
	int last_cb;
	bool is_done;
};

static int on_field(llhttp_t *p, const char *at, size_t len)
{
	struct got *g = p->data;
	if (g->last_cb != 1) {
		if (g->nh == MAXH)
			return -1;
		g->h[g->nh].name_off = g->n;
		g->h[g->nh].name_len = g->h[g->nh].value_off = g->h[g->nh].value_len = 0;
		g->nh++;
		g->last_cb = 1;
	}
	if (g->n + len > sizeof(g->buf))
		return -1;
	memcpy(g->buf + g->n, at, len);
	g->n += len;
	g->h[g->nh - 1].name_len += len;
	return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
	struct got *g = p->data;
	if (g->nh == 0)
		return -1; /* a value before any name: proxy.c would index rh[-1] */
	if (g->last_cb != 2) {
		g->h[g->nh - 1].value_off = g->n;
		g->last_cb = 2;
	}
	if (g->n + len > sizeof(g->buf))
		return -1;
	memcpy(g->buf + g->n, at, len);
	g->n += len;
	g->h[g->nh - 1].value_len += len;
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct got *g = p->data;
	g->is_done = true;
	return 1; /* no body: the head is all this looks at */
}

static llhttp_settings_t settings;
static struct got g;

enum verdict { REFUSED_BY_LLHTTP, INCOMPLETE, RELAYED, REFUSED_BY_KEYGATE };

/* Parses head (split in two reads at split) and judges its fields with the
 * old check (is_new false) or the new one. */
static enum verdict judge(const char *head, size_t n, size_t split, bool is_new)
{
	llhttp_t p;
	llhttp_init(&p, HTTP_RESPONSE, &settings);
	p.data = &g;
	g.n = g.nh = 0;
	g.last_cb = 0;
	g.is_done = false;
	llhttp_errno_t e = llhttp_execute(&p, head, split);
	if (e == HPE_OK && !g.is_done)
		e = llhttp_execute(&p, head + split, n - split);
	if (!g.is_done && e != HPE_OK && e != HPE_PAUSED)
		return REFUSED_BY_LLHTTP;
	if (!g.is_done)
		return INCOMPLETE;
	for (size_t i = 0; i < g.nh; i++) {
		kg_str name = { g.buf + g.h[i].name_off, g.h[i].name_len };
		kg_str value = kg_str_trim((kg_str){ g.buf + g.h[i].value_off, g.h[i].value_len });
		bool ok = is_new ? kg_head_is_parsed_name_token(name)
		                 : kg_str_is_token(name) && kg_str_is_field_value(value);
		if (!ok)
			return REFUSED_BY_KEYGATE;
	}
	return RELAYED;
}

static const char *const names[] = { "REFUSED_BY_LLHTTP", "INCOMPLETE", "RELAYED", "REFUSED_BY_KEYGATE" };

static size_t ncases, nrelayed, nllhttp, nkeygate;

/* Both checks give the same verdict for fields (the lines between the
 * status line and the empty line), read whole and, when is_split, split in
 * two reads at every byte. */
static void same_verdict(const char *fields, size_t n, bool is_split)
{
	static char head[4096];
	static const char status[] = "HTTP/1.1 200 OK\r\n", tail[] = "Content-Length: 0\r\n\r\n";
	size_t sn = sizeof(status) - 1, tn = sizeof(tail) - 1;
	if (sn + n + tn > sizeof(head)) {
		KG_CHECK(0, "case too long");
		return;
	}
	memcpy(head, status, sn);
	memcpy(head + sn, fields, n);
	memcpy(head + sn + n, tail, tn);
	size_t len = sn + n + tn;
	size_t first = is_split ? 1 : len, last = len;
	for (size_t split = first; split <= last; split++) {
		enum verdict old = judge(head, len, split, false), new = judge(head, len, split, true);
		ncases++;
		if (old != new) {
			char shown[512];
			size_t k = 0;
			for (size_t i = 0; i < n && k + 5 < sizeof(shown); i++)
				k += (size_t)snprintf(shown + k, sizeof(shown) - k,
				                      fields[i] >= 0x21 && fields[i] < 0x7f && fields[i] != '\\' ? "%c" : "\\x%02x",
				                      (unsigned char)fields[i]);
			KG_CHECK(0, "fields \"%s\" (split at %zu): the old check says %s, the new one %s", shown, split,
			         names[old], names[new]);
			return;
		}
		nrelayed += old == RELAYED;
		nllhttp += old == REFUSED_BY_LLHTTP;
		nkeygate += old == REFUSED_BY_KEYGATE;
	}
}

/* fmt with each '%' replaced by the bytes b[0], b[1], ... in turn */
static void case_with(const char *fmt, const unsigned char *b, bool is_split)
{
	char f[256];
	size_t n = 0, k = 0;
	for (const char *c = fmt; *c && n < sizeof(f); c++)
		f[n++] = *c == '%' ? (char)b[k++] : *c;
	same_verdict(f, n, is_split);
}

/* the names llhttp parses values of in states of their own, and others */
static const char *const value_names[] = {
	"X-A", "Connection", "Proxy-Connection", "Content-Length", "Transfer-Encoding", "Upgrade", "Keep-Alive", "TE",
};

KG_TEST(test_every_byte_in_a_response_header_name_is_judged_as_before)
{
	static const char *const shapes[] = {
		"%: v\r\n", "X%: v\r\n", "%X: v\r\n", "X%Y: v\r\n", "Connection%: close\r\n",
		"Content-Length%: 0\r\n", "Transfer-Encoding%: chunked\r\n", "%Content-Length: 0\r\n",
		"X-A: v\r\n%: w\r\n", "X-A: v\r\n%X: w\r\n",
	};
	for (unsigned b = 0; b < 256; b++) {
		unsigned char c = (unsigned char)b;
		for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
			case_with(shapes[s], &c, false);
		/* every offset of names of 1 to 25 bytes: every word and tail
		 * kg_head_is_parsed_name_token reads */
		for (size_t len = 1; len <= 25; len++)
			for (size_t at = 0; at < len; at++) {
				char f[40];
				memcpy(f, "Abcdefghijklmnopqrstuvwxy", len);
				memcpy(f + len, ": v\r\n", 5);
				f[at] = (char)c;
				same_verdict(f, len + 5, false);
			}
	}
	for (unsigned b = 0; b < 65536; b++) {
		unsigned char c[2] = { (unsigned char)(b >> 8), (unsigned char)b };
		case_with("X%%: v\r\n", c, false);
		case_with("%%: v\r\n", c, false);
	}
}

KG_TEST(test_every_byte_in_a_response_header_value_is_judged_as_before)
{
	static const char *const shapes[] = { "%", "a%", "%a", "a%b", " %", "% ", "\t%\t", "close%", "chunked%",
		                              "5%", "%5", "a,%", "chunked,%", "keep-alive%", "upgrade%", "a%\r\n b" };
	for (size_t nm = 0; nm < sizeof(value_names) / sizeof(value_names[0]); nm++) {
		for (unsigned b = 0; b < 256; b++) {
			unsigned char c = (unsigned char)b;
			for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
				char fmt[128];
				snprintf(fmt, sizeof(fmt), "%s: %s\r\n", value_names[nm], shapes[s]);
				case_with(fmt, &c, false);
			}
		}
		for (unsigned b = 0; b < 65536; b++) {
			unsigned char c[2] = { (unsigned char)(b >> 8), (unsigned char)b };
			char fmt[128];
			snprintf(fmt, sizeof(fmt), "%s: a%%%%b\r\n", value_names[nm]);
			case_with(fmt, c, false);
		}
	}
	KG_CHECK(nrelayed > 0 && nllhttp > 0, "the cases reached both verdicts: %zu relayed, %zu refused by llhttp",
	         nrelayed, nllhttp);
}

KG_TEST(test_cr_lf_and_obs_fold_in_a_response_head_are_judged_as_before)
{
	static const char *const shapes[] = {
		"X-A: a\r\n b\r\n", "X-A: a\r\n\tb\r\n", "X-A: a\n b\r\n", "X-A: a\rb\r\n", "X-A: a\r\r\n",
		"X-A:\r\n b\r\n", "X-A: \r\n", "X-A:\r\n", " X-A: a\r\n", "\tX-A: a\r\n", "X-A : a\r\n", "X-A\t: a\r\n",
		"X-A:a \t \r\n", ": a\r\n", "X-A: a\r\n: b\r\n", "Connection: close\r\n x\r\n", "X-A: a\r\n \r\n",
		"X-A: a\nX-B: b\n", "X-A: a\r\nX-B: b\n", "X-A: a\r\n  \t b \t\r\n", "Transfer-Encoding: chunked\r\n x\r\n",
		"Upgrade: a\r\n b\r\n", "X-A: a\r\n\r\n", "X-A a\r\n", "X-A\r\n", "\r\n",
	};
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		same_verdict(shapes[s], strlen(shapes[s]), true);
	/* the byte after a value's CR, and the first byte of the next line */
	for (unsigned b = 0; b < 256; b++) {
		unsigned char c = (unsigned char)b;
		case_with("X-A: a\r%b\r\n", &c, true);
		case_with("X-A: a\r\n%b\r\n", &c, true);
		case_with("X-A: a\r\n%\r\n", &c, true);
		case_with("X-A:\r%b\r\n", &c, true);
		case_with("X-A:\r\n%b\r\n", &c, true);
		case_with("Connection: close\r\n%b\r\n", &c, true);
	}
	KG_CHECK(nkeygate > 0, "some case reached keygate's own refusal (%zu)", nkeygate);
}

int main(void)
{
	llhttp_settings_init(&settings);
	settings.on_header_field = on_field;
	settings.on_header_value = on_value;
	settings.on_headers_complete = on_headers_complete;
	int r = kg_test_main();
	printf("# %zu heads judged: %zu relayed, %zu refused by llhttp, %zu by keygate\n", ncases, nrelayed, nllhttp,
	       nkeygate);
	return r;
}
