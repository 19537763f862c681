/* path.c - the request path, normalised once (include/keygate/path.h).
 *
 * Two passes over the caller's out buffer, no allocation, O(n):
 *   1. escapes: copy path into out, refusing what the contract refuses,
 *      decoding escaped unreserved characters and upper-casing the hex
 *      digits of every other escape. Decoding never yields '/', '%' or ';',
 *      so the segments found by pass 2 are the ones the client sent, and a
 *      second normalisation has nothing left to decode ("%252e" stays).
 *   2. segments, in place (the write cursor never passes the read cursor):
 *      merge runs of '/', then RFC 3986 5.2.4 remove_dot_segments. The
 *      output is kept as a sequence of "/segment" units, so ".." pops back
 *      to the previous '/' and a trailing "." or ".." leaves a trailing '/'.
 */
#include <stdint.h>
#include <string.h>

#include "keygate/path.h"

/* RFC 3986 2.3: ALPHA DIGIT - . _ ~ */
static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '.' || c == '_' || c == '~';
}

/* Pass 1. Writes at most path.n bytes to out. */
static kg_err decode_escapes(kg_str path, unsigned flags, char *out, size_t *out_len, const char **why)
{
	const unsigned char *p = (const unsigned char *)path.p;
	size_t w = 0;
	for (size_t i = 0; i < path.n; i++) {
		unsigned char c = p[i];
		if (c < 0x20 || c == 0x7f) {
			*why = "control character in the request path";
			return KG_EINVAL;
		}
		if (c == '#') {
			*why = "'#' in the request target";
			return KG_EINVAL;
		}
		if (c == '?') {
			*why = "'?' in the request path";
			return KG_EINVAL;
		}
		if (c == '\\') {
			*why = "backslash in the request path";
			return KG_EINVAL;
		}
		if (c != '%') {
			out[w++] = (char)c;
			continue;
		}
		int hi = i + 2 < path.n ? kg_hex_value(p[i + 1]) : -1;
		int lo = hi >= 0 ? kg_hex_value(p[i + 2]) : -1;
		if (lo < 0) {
			*why = "malformed percent-escape in the request path";
			return KG_EINVAL;
		}
		unsigned char v = (unsigned char)(hi << 4 | lo);
		i += 2;
		if (v == 0) {
			*why = "encoded NUL in the request path";
			return KG_EINVAL;
		}
		if ((v == '/' || v == '\\') && !(flags & KG_PATH_KEEP_ESCAPED_SLASHES)) {
			*why = "encoded '/' or '\\' in the request path (proxy.escaped_slashes is reject)";
			return KG_EINVAL;
		}
		if (is_unreserved(v)) {
			out[w++] = (char)v;
		} else {
			out[w++] = '%';
			w += kg_hex_encode(&v, 1, out + w, true);
		}
	}
	*out_len = w;
	return KG_OK;
}

/* 0 for an ordinary segment, 1 for ".", 2 for "..", and -1 for a "." or
 * ".." followed by ';' raw or escaped: Tomcat and Jetty strip path
 * parameters and then read the segment as a dot segment, and a proxy that
 * decodes %3B before handing the path to one of them turns "..%3B" into
 * "..;" (pass 1 already decoded "%2e"). */
static int dot_segment(const char *s, size_t n)
{
	size_t dots = 0;
	while (dots < n && dots < 3 && s[dots] == '.')
		dots++;
	if (dots == 0 || dots > 2)
		return 0;
	if (dots == n)
		return (int)dots;
	if (s[dots] == ';')
		return -1;
	if (n - dots >= 3 && s[dots] == '%' && s[dots + 1] == '3' && s[dots + 2] == 'B')
		return -1;
	return 0;
}

/* Pass 2, in place on buf[0..n), which starts with '/'. */
static kg_err remove_dot_segments(char *buf, size_t n, size_t *out_len, bool *is_restructured, const char **why)
{
	size_t r = 0, w = 0;
	bool changed = false;
	while (r < n) {
		/* buf[r] is '/': merge the run */
		size_t run = r;
		while (r < n && buf[r] == '/')
			r++;
		if (r - run > 1)
			changed = true;
		size_t s = r;
		const char *slash = memchr(buf + s, '/', n - s);
		size_t e = slash ? (size_t)(slash - buf) : n;
		bool is_last = e == n;
		int dots = dot_segment(buf + s, e - s);
		if (dots < 0) {
			*why = "dot segment with parameters ('..;') in the request path";
			return KG_EINVAL;
		}
		if (dots > 0) {
			changed = true;
			if (dots == 2) /* drop the last "/segment" unit; at the root there is none */
				while (w > 0 && buf[--w] != '/')
					;
			if (is_last)
				buf[w++] = '/';
		} else {
			/* "/segment", or the lone '/' of a path ending in '/' (w <= s - 1) */
			buf[w++] = '/';
			memmove(buf + w, buf + s, e - s);
			w += e - s;
		}
		r = e;
	}
	*out_len = w;
	if (is_restructured)
		*is_restructured = changed;
	return KG_OK;
}

/* Bytes that may need work: '/' (only when a '/' or '.' follows it), and
 * every byte pass 1 refuses or rewrites. */
static const unsigned char needs_look[256] = {
	[0x00 ... 0x1f] = 1, [0x7f] = 1, ['/'] = 1, ['%'] = 1, ['\\'] = 1, ['#'] = 1, ['?'] = 1,
};

/* The common case, a path already in normal form ("/v1/bytes/abc"): one
 * table lookup per byte instead of the two passes. */
static bool is_plain(kg_str path)
{
	const unsigned char *p = (const unsigned char *)path.p;
	for (size_t i = 0; i < path.n; i++) {
		if (!needs_look[p[i]])
			continue;
		if (p[i] != '/' || (i + 1 < path.n && (p[i + 1] == '/' || p[i + 1] == '.')))
			return false;
	}
	return true;
}

kg_err kg_path_normalize(kg_str path, unsigned flags, char *out, size_t *out_len, bool *is_restructured,
                         const char **why)
{
	const char *unused;
	if (!why)
		why = &unused;
	if (path.n == 0 || path.p[0] != '/') {
		*why = "request path must start with '/'";
		return KG_EINVAL;
	}
	if (is_plain(path)) {
		memcpy(out, path.p, path.n);
		*out_len = path.n;
		if (is_restructured)
			*is_restructured = false;
		return KG_OK;
	}
	size_t n;
	kg_err err = decode_escapes(path, flags, out, &n, why);
	if (err)
		return err;
	return remove_dot_segments(out, n, out_len, is_restructured, why);
}
