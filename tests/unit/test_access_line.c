/* test_access_line.c - the hand-written access log line against the
 * snprintf formatter it replaced (kept here, as it was in src/access_log.c),
 * byte for byte, over many values. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kgtest.h"

#include "keygate/access_line.h"

/* ---- the formatter before issue 16, verbatim but for its inputs ---- */

static size_t old_put_clean(char *out, size_t cap, kg_str s)
{
	size_t n = 0;
	for (size_t i = 0; i < s.n && n + 4 < cap; i++) {
		unsigned char ch = (unsigned char)s.p[i];
		if (ch < 0x21 || ch >= 0x7f || ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = 'x';
			n += kg_hex_encode(&ch, 1, out + n, false);
		} else {
			out[n++] = (char)ch;
		}
	}
	return n;
}

static size_t old_line(const struct kg_access_fields *f, char *line /* 4096 */)
{
	char method[64], path[2048], principal[256], client[256];
	struct timespec ts = { .tv_sec = f->time_ms / 1000, .tv_nsec = (f->time_ms % 1000) * 1000000 };
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	size_t cn = old_put_clean(client, sizeof(client), f->client);
	size_t mn = old_put_clean(method, sizeof(method), f->method);
	size_t pn = old_put_clean(path, sizeof(path), f->path);
	size_t in = f->is_authenticated ? old_put_clean(principal, sizeof(principal), f->principal) : 0;
	if (!in)
		principal[in++] = '-';
	int n = snprintf(line, 4096,
	                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %.*s \"%.*s %.*s\" %d %llu %lluus scheme=%s principal=%.*s\n",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	                 ts.tv_nsec / 1000000, (int)cn, client, (int)mn, method, (int)pn, path, f->status,
	                 (unsigned long long)f->bytes_out, (unsigned long long)f->duration_us,
	                 f->is_authenticated ? f->scheme : "-", (int)in, principal);
	if (n < 0)
		return 0;
	if ((size_t)n >= 4096) {
		n = 4096 - 1;
		line[n - 1] = '\n';
	}
	return (size_t)n;
}

/* ---- comparing ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int compared;

static void same_bytes(struct kg_access_clock *clk, const struct kg_access_fields *f, const char *what)
{
	char want[4096], got[KG_ACCESS_LINE_ROOM];
	size_t wn = old_line(f, want);
	size_t gn = kg_access_line(clk, f, got);
	compared++;
	if (gn != wn || memcmp(got, want, wn) != 0) {
		size_t i = 0;
		while (i < wn && i < gn && got[i] == want[i])
			i++;
		KG_CHECK(0, "%s: lines differ at byte %zu (lengths got %zu, want %zu):\n got  %.*s\n want %.*s", what, i, gn,
		         wn, (int)(gn > 300 ? 300 : gn), got, (int)(wn > 300 ? 300 : wn), want);
	}
}

/* a string of n bytes drawn from all 256 values, or mostly printable ones */
static kg_str random_bytes(char *buf, size_t n, bool is_odd)
{
	for (size_t i = 0; i < n; i++) {
		unsigned r = (unsigned)next();
		buf[i] = is_odd ? (char)(r & 0xff) : (char)(0x20 + r % 0x60);
	}
	return (kg_str){ buf, n };
}

KG_TEST(test_typical_lines_are_the_bytes_snprintf_wrote)
{
	struct kg_access_clock clk = { 0 };
	struct kg_access_fields f = {
		.time_ms = 1714564800123, .client = KG_STR("127.0.0.1"), .method = KG_STR("GET"),
		.path = KG_STR("/bytes/abc"), .status = 200, .bytes_out = 512, .duration_us = 87,
		.is_authenticated = true, .scheme = "bee", .principal = KG_STR("0123456789abcdef0123456789abcdef"),
	};
	char got[KG_ACCESS_LINE_ROOM];
	size_t n = kg_access_line(&clk, &f, got);
	const char want[] = "2024-05-01T12:00:00.123Z 127.0.0.1 \"GET /bytes/abc\" 200 512 87us scheme=bee "
	                    "principal=0123456789abcdef0123456789abcdef\n";
	KG_CHECK(n == sizeof(want) - 1 && memcmp(got, want, n) == 0, "got %.*s", (int)n, got);
	same_bytes(&clk, &f, "typical");
	f.is_authenticated = false;
	same_bytes(&clk, &f, "anonymous: scheme and principal are -");
	f.is_authenticated = true;
	f.principal = KG_STR("");
	same_bytes(&clk, &f, "authenticated with an empty id: principal=-");
	f.client = KG_STR("::1");
	f.method = KG_STR("");
	f.path = KG_STR("");
	f.status = 0;
	f.bytes_out = 0;
	f.duration_us = 0;
	f.time_ms = 0;
	same_bytes(&clk, &f, "zeros and empties, the epoch");
	f.status = -1;
	f.bytes_out = UINT64_MAX;
	f.duration_us = UINT64_MAX;
	same_bytes(&clk, &f, "extremes");
	f.status = 2147483647;
	same_bytes(&clk, &f, "INT_MAX status");
	f.status = -2147483647 - 1;
	same_bytes(&clk, &f, "INT_MIN status");
}

KG_TEST(test_odd_bytes_are_escaped_alike_and_fields_cut_at_the_same_place)
{
	struct kg_access_clock clk = { 0 };
	static char cb[600], mb[200], pb[5000], ib[700];
	struct kg_access_fields f = { .time_ms = 1700000000000, .scheme = "avalanche", .is_authenticated = true };
	/* every single byte value in every field */
	for (int ch = 0; ch < 256; ch++) {
		char one = (char)ch;
		f.client = f.method = f.path = f.principal = (kg_str){ &one, 1 };
		same_bytes(&clk, &f, "one byte");
	}
	/* lengths around each field's cut, plain and escaped, and runs of both */
	for (int round = 0; round < 3000; round++) {
		bool odd = next() % 2;
		size_t room = (size_t)(next() % 4);
		size_t lens[4] = { 256, 64, 2048, 256 };
		size_t pick = lens[room];
		size_t n = pick - 8 + next() % 16;
		if (next() % 3 == 0)
			n = next() % (pick + 40);
		f.client = random_bytes(cb, next() % 2 ? n % sizeof(cb) : next() % 40, odd);
		f.method = random_bytes(mb, next() % 2 ? n % sizeof(mb) : next() % 10, next() % 2);
		f.path = random_bytes(pb, next() % 2 ? n % sizeof(pb) : next() % 300, next() % 2);
		f.principal = random_bytes(ib, next() % 2 ? n % sizeof(ib) : next() % 64, next() % 2);
		f.is_authenticated = next() % 4 != 0;
		f.status = (int)(next() % 700) - 50;
		f.bytes_out = next() >> (next() % 64);
		f.duration_us = next() >> (next() % 64);
		same_bytes(&clk, &f, "random fields");
	}
}

/* Plain runs are scanned 8 bytes at a time: one odd byte at each place of
 * a long plain field, with every value, and plain fields of every length
 * around the word size and the cut, come out as the byte-by-byte
 * formatter wrote them. */
KG_TEST(test_one_odd_byte_anywhere_in_a_plain_run_is_escaped_alike)
{
	struct kg_access_clock clk = { 0 };
	struct kg_access_fields f = { .time_ms = 1700000000000, .client = KG_STR("10.0.0.1"), .method = KG_STR("GET"),
	                              .scheme = "bee", .is_authenticated = true, .principal = KG_STR("p") };
	char path[40];
	for (size_t at = 0; at < 24; at++)
		for (int v = 0; v < 256; v++) {
			memset(path, 'a' + (int)(at % 26), sizeof(path));
			path[at] = (char)v;
			f.path = (kg_str){ path, 24 + at % 9 };
			same_bytes(&clk, &f, "one odd byte in a plain run");
		}
	static char mb[80];
	memset(mb, 'M', sizeof(mb));
	for (size_t n = 0; n < sizeof(mb); n++) {
		f.method = (kg_str){ mb, n }; /* the method's room is 64: cut from 60 */
		same_bytes(&clk, &f, "a plain method of every length");
	}
}

KG_TEST(test_the_date_text_follows_the_clock_forwards_and_back)
{
	struct kg_access_clock clk = { 0 };
	struct kg_access_fields f = { .client = KG_STR("10.0.0.1"), .method = KG_STR("POST"), .path = KG_STR("/auth"),
	                              .status = 201, .scheme = "-" };
	/* every millisecond of a few seconds, across a minute, a day, a year,
	 * 29 February of a leap year, and 2038 */
	const int64_t starts[] = { 1704067199000, 1709164799000, 1709251199000, 2147483646000, 946684799000, 0 };
	for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++)
		for (int64_t t = starts[s]; t < starts[s] + 2500; t += 1) {
			f.time_ms = t;
			f.duration_us = (uint64_t)(t % 100000);
			same_bytes(&clk, &f, "consecutive milliseconds");
		}
	/* random instants up to year 9999, in no order (a wall clock set back) */
	for (int i = 0; i < 20000; i++) {
		f.time_ms = (int64_t)(next() % 253402300799999ULL);
		same_bytes(&clk, &f, "random instant");
		f.time_ms -= (int64_t)(next() % 3000);
		if (f.time_ms >= 0)
			same_bytes(&clk, &f, "a little earlier");
	}
	KG_CHECK(compared > 0, "compared nothing");
}

/* the numbers are written in place after counting their digits: every
 * count's edges (10^k - 1, 10^k, 10^k + 1, 2^k - 1, 2^k) and the largest
 * values come out as snprintf wrote them */
KG_TEST(test_numbers_at_every_digit_count_edge_are_written_alike)
{
	struct kg_access_clock clk = { 0 };
	struct kg_access_fields f = { .time_ms = 1700000000000, .client = KG_STR("10.0.0.1"), .method = KG_STR("GET"),
	                              .path = KG_STR("/n"), .scheme = "-" };
	uint64_t p = 1;
	for (int k = 0; k < 20; k++, p *= 10) {
		uint64_t vs[] = { p - 1, p, p + 1, p * 2 - 1 };
		for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
			f.bytes_out = vs[i];
			f.duration_us = ~vs[i];
			f.status = (int)(vs[i] % 1000000);
			same_bytes(&clk, &f, "a power of ten's neighbour");
		}
	}
	for (int k = 0; k < 64; k++) {
		f.bytes_out = ((uint64_t)1 << k) - 1;
		f.duration_us = (uint64_t)1 << k;
		same_bytes(&clk, &f, "a power of two's neighbour");
	}
	f.bytes_out = UINT64_MAX;
	f.duration_us = UINT64_MAX - 1;
	f.status = -2147483647 - 1;
	same_bytes(&clk, &f, "the largest values");
}

KG_TEST(test_a_line_longer_than_the_room_is_cut_and_still_ends_the_line)
{
	struct kg_access_clock clk = { 0 };
	static char scheme[3000], pb[2100];
	memset(scheme, 's', sizeof(scheme) - 1);
	struct kg_access_fields f = { .time_ms = 1714564800999, .client = KG_STR("1.2.3.4"), .method = KG_STR("GET"),
	                              .path = random_bytes(pb, sizeof(pb), false), .status = 200,
	                              .is_authenticated = true, .scheme = scheme, .principal = KG_STR("p") };
	for (size_t n = 1000; n < sizeof(scheme); n += 37) {
		scheme[n] = '\0';
		same_bytes(&clk, &f, "long scheme");
		scheme[n] = 's';
	}
	char got[KG_ACCESS_LINE_ROOM];
	size_t gn = kg_access_line(&clk, &f, got);
	KG_CHECK(gn == KG_ACCESS_LINE_ROOM - 1 && got[gn - 1] == '\n', "cut line: %zu bytes, last %02x", gn,
	         (unsigned char)got[gn - 1]);
}

int main(void)
{
	return kg_test_main();
}
