/* access_line.h - the text of one access log line, formatted by hand.
 *
 *   2024-05-01T12:00:00.123Z 127.0.0.1 "GET /path" 200 512 87us scheme=bee principal=0123abcd
 *
 * The daemon writes one per request (src/access_log.c), so this is on the
 * hot path: the date text is kept per second in a kg_access_clock and only
 * the milliseconds are spliced in, integers are written by a small itoa, and
 * nothing here reads a clock or calls the C library's formatting. The bytes
 * are those of the snprintf("%04d-%02d-%02dT...") it replaced
 * (tests/unit/test_access_line.c keeps that formatter and compares). */
#ifndef KEYGATE_ACCESS_LINE_H
#define KEYGATE_ACCESS_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keygate/str.h"

/* Room per field, escapes included: a field is cut where its escaped text
 * would no longer fit (4 bytes short of the room, as before). */
#define KG_ACCESS_ROOM_CLIENT 256
#define KG_ACCESS_ROOM_METHOD 64
#define KG_ACCESS_ROOM_PATH 2048
#define KG_ACCESS_ROOM_PRINCIPAL 256
/* The longest line is KG_ACCESS_LINE_ROOM - 1 bytes: a longer one is cut
 * and still ends with '\n' (never reached with the rooms above and a scheme
 * name of a few bytes). */
#define KG_ACCESS_LINE_ROOM 4096

/* The date text of one second, reused by every line within it. Start it
 * zeroed; it belongs to one thread (each worker has its own). */
struct kg_access_clock {
	bool is_set;
	int64_t sec;   /* unix seconds the text below is for */
	char date[24]; /* "YYYY-MM-DDTHH:MM:SS." */
	size_t date_n;
};

/* What one line says. All borrowed. */
struct kg_access_fields {
	int64_t time_ms;        /* unix milliseconds */
	kg_str client, method, path;
	int status;
	uint64_t bytes_out;
	uint64_t duration_us;
	bool is_authenticated;  /* scheme and principal are shown only then */
	const char *scheme;     /* NUL-terminated */
	kg_str principal;       /* "-" when empty */
};

/* Writes the line for f into out (no NUL is written) and returns its length, '\n' included. clk is updated when
 * f->time_ms falls in another second than the one it holds (earlier ones
 * too: the wall clock may be set back). Bytes below 0x21, from 0x7f, '"' and
 * '\\' in client, method, path and principal are written as \xNN, so no
 * field can forge a line or a field. */
size_t kg_access_line(struct kg_access_clock *clk, const struct kg_access_fields *f, char out[KG_ACCESS_LINE_ROOM]);

#endif
