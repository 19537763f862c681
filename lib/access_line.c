/* access_line.c - one access log line, by hand (see access_line.h). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "keygate/access_line.h"

/* A cursor over the line that, like snprintf, keeps counting past the end
 * so the caller can tell a cut line. */
struct line {
	char *p;
	size_t n;   /* bytes the whole line needs */
	size_t cap;
};

/* Copies n bytes of s, as many as fit; the count goes on past the end. A
 * constant n (the fixed texts) compiles to a few moves. */
static inline void put(struct line *l, const char *s, size_t n)
{
	if (l->n + n <= l->cap)
		memcpy(l->p + l->n, s, n);
	else if (l->n < l->cap)
		memcpy(l->p + l->n, s, l->cap - l->n);
	l->n += n;
}

/* v in decimal (kg_u64_dec_to), written in place when the line has room
 * (the common case: no staging copy), else staged and cut by put */
static void put_u64(struct line *l, uint64_t v)
{
	size_t len = kg_u64_dec_len(v);
	if (l->n + len <= l->cap) {
		kg_u64_dec_to(v, l->p + l->n + len);
		l->n += len;
		return;
	}
	char d[KG_U64_DEC_MAX];
	kg_str s = kg_u64_dec(v, d);
	put(l, s.p, s.n);
}

static void put_int(struct line *l, int v)
{
	if (v < 0) {
		put(l, "-", 1);
		put_u64(l, (uint64_t)0 - (uint64_t)(int64_t)v);
	} else {
		put_u64(l, (uint64_t)v);
	}
}

/* 1 for the bytes put_clean writes as \xNN: below 0x21, from 0x7f, '"' and
 * '\\' (one load per byte instead of four compares) */
static const unsigned char is_escaped[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* True when none of the 8 bytes at p is one put_clean escapes: each test
 * below is exact for "some byte is ..." (the bit tricks of
 * graphics.stanford.edu/~seander/bithacks.html), so a word passes only when
 * every byte would pass is_escaped. */
static inline bool is_plain8(const char *p)
{
	const uint64_t ones = 0x0101010101010101ULL, high = ones * 0x80;
	uint64_t x, q, b;
	memcpy(&x, p, 8);
	q = x ^ (ones * '"');
	b = x ^ (ones * '\\');
	uint64_t bad = ((x - ones * 0x21) & ~x)  /* a byte below 0x21 */
	               | (x + ones) | x           /* a byte from 0x7f */
	               | ((q - ones) & ~q)        /* '"' */
	               | ((b - ones) & ~b);       /* '\\' */
	return (bad & high) == 0;
}

/* Copies s escaping the bytes that could forge a line or a field, cut where
 * the escaped text reaches room - 4: the rooms and the cut are those of the
 * fixed buffers the snprintf version copied each field into first. */
static void put_clean(struct line *l, kg_str s, size_t room)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0, i = 0;
	if (s.n + 4 <= room) {
		/* the common field, shorter than its room: its first plain run
		 * (all of it, usually) in one scan and one copy, as the first
		 * turn of the loop below would take it, without the bounds */
		size_t j = 0;
		while (s.n - j >= 8 && is_plain8(s.p + j))
			j += 8;
		while (j < s.n && !is_escaped[(unsigned char)s.p[j]])
			j++;
		if (j) {
			put(l, s.p, j);
			n = i = j;
		}
	}
	while (i < s.n && n + 4 < room) {
		/* runs of plain bytes are the common case: one bound for the run
		 * (what the room still takes, at least this byte), then one copy */
		size_t end = i + (room - 4 - n) < s.n ? i + (room - 4 - n) : s.n;
		size_t j = i;
		while (end - j >= 8 && is_plain8(s.p + j))
			j += 8;
		while (j < end && !is_escaped[(unsigned char)s.p[j]])
			j++;
		if (j > i) {
			put(l, s.p + i, j - i);
			n += j - i;
			i = j;
			continue;
		}
		unsigned char ch = (unsigned char)s.p[i++];
		char esc[4] = { '\\', 'x', hex[ch >> 4], hex[ch & 15] };
		put(l, esc, 4);
		n += 4;
	}
}

/* Re-renders the date text once per second; snprintf and gmtime_r are fine
 * at that rate. Out-of-range years print as %04d printed them. */
static void clock_set(struct kg_access_clock *clk, int64_t sec)
{
	struct tm tm;
	time_t t = (time_t)sec;
	int n = -1;
	if (gmtime_r(&t, &tm))
		n = snprintf(clk->date, sizeof(clk->date), "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
		             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (n < 0 || (size_t)n >= sizeof(clk->date))
		n = snprintf(clk->date, sizeof(clk->date), "0000-00-00T00:00:00.");
	clk->date_n = (size_t)n;
	clk->sec = sec;
	clk->is_set = true;
}

size_t kg_access_line(struct kg_access_clock *clk, const struct kg_access_fields *f, char out[KG_ACCESS_LINE_ROOM])
{
	/* floor division: the milliseconds of an instant before 1970 are still 0..999 */
	int64_t sec = f->time_ms / 1000, ms = f->time_ms % 1000;
	if (ms < 0) {
		ms += 1000;
		sec--;
	}
	if (!clk->is_set || clk->sec != sec)
		clock_set(clk, sec);

	struct line l = { out, 0, KG_ACCESS_LINE_ROOM };
	char msz[5] = { (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', ' ' };
	put(&l, clk->date, clk->date_n);
	put(&l, msz, sizeof(msz));
	put_clean(&l, f->client, KG_ACCESS_ROOM_CLIENT);
	put(&l, " \"", 2);
	put_clean(&l, f->method, KG_ACCESS_ROOM_METHOD);
	put(&l, " ", 1);
	put_clean(&l, f->path, KG_ACCESS_ROOM_PATH);
	put(&l, "\" ", 2);
	put_int(&l, f->status);
	put(&l, " ", 1);
	put_u64(&l, f->bytes_out);
	put(&l, " ", 1);
	put_u64(&l, f->duration_us);
	put(&l, "us scheme=", 10);
	if (f->is_authenticated)
		put(&l, f->scheme ? f->scheme : "(null)", f->scheme ? strlen(f->scheme) : 6); /* as %s printed NULL */
	else
		put(&l, "-", 1);
	put(&l, " principal=", 11);
	size_t before = l.n;
	if (f->is_authenticated)
		put_clean(&l, f->principal, KG_ACCESS_ROOM_PRINCIPAL);
	if (l.n == before)
		put(&l, "-", 1);
	put(&l, "\n", 1);

	/* a line that filled the room is cut to room - 1 bytes, as snprintf's
	 * size - 1 was, and still ends the line */
	if (l.n < KG_ACCESS_LINE_ROOM)
		return l.n;
	out[KG_ACCESS_LINE_ROOM - 2] = '\n';
	return KG_ACCESS_LINE_ROOM - 1;
}
