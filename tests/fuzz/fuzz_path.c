/* libFuzzer target: kg_path_normalize on arbitrary bytes. The first byte
 * picks the flags; the rest is the path. Every accepted output must hold
 * the invariants the policy check and the upstream rely on. */
#include <stdlib.h>
#include <string.h>

#include "keygate/path.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void require(int cond)
{
	if (!cond)
		abort();
}

/* A "." or ".." segment, also with its dots escaped (pass 1 decodes %2E,
 * so none should survive, but check the output as an upstream reads it). */
static int is_dot_segment(const char *s, size_t n)
{
	size_t dots = 0, i = 0;
	while (i < n) {
		if (s[i] == '.')
			i += 1;
		else if (n - i >= 3 && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] == 'e' || s[i + 2] == 'E'))
			i += 3;
		else
			return 0;
		dots++;
	}
	return dots == 1 || dots == 2;
}

static void check_output(const char *o, size_t n, unsigned flags)
{
	require(n >= 1 && o[0] == '/');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)o[i];
		require(c >= 0x20 && c != 0x7f && c != '#' && c != '?' && c != '\\');
		require(!(c == '/' && i + 1 < n && o[i + 1] == '/'));
		if (c == '%') {
			require(i + 2 < n);
			if (!(flags & KG_PATH_KEEP_ESCAPED_SLASHES) && o[i + 1] == '2')
				require(o[i + 2] != 'F' && o[i + 2] != 'f');
			if (!(flags & KG_PATH_KEEP_ESCAPED_SLASHES) && o[i + 1] == '5')
				require(o[i + 2] != 'C' && o[i + 2] != 'c');
		}
	}
	/* segments: never "." or ".." (raw or escaped) */
	size_t s = 1;
	for (size_t i = 1; i <= n; i++) {
		if (i == n || o[i] == '/') {
			require(!is_dot_segment(o + s, i - s));
			s = i + 1;
		}
	}
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned flags = data[0] & KG_PATH_KEEP_ESCAPED_SLASHES;
	size_t n = size - 1;
	/* copies of exactly the right size, so ASan catches a write past n */
	char *in = malloc(n ? n : 1);
	char *out = malloc(n ? n : 1);
	char *again = malloc(n ? n : 1);
	require(in && out && again);
	memcpy(in, data + 1, n);
	size_t len = 0, len2 = 0;
	bool re = false, re2 = true;
	const char *why = NULL;
	if (kg_path_normalize((kg_str){ in, n }, flags, out, &len, &re, &why) == KG_OK) {
		require(len <= n);
		check_output(out, len, flags);
		/* escapes never decode to '/', so only merging and dot-segment
		 * removal change the slashes: then is_restructured must say so */
		size_t slashes_in = 0, slashes_out = 0;
		int has_run = 0;
		for (size_t i = 0; i < n; i++) {
			slashes_in += in[i] == '/';
			has_run |= in[i] == '/' && i + 1 < n && in[i + 1] == '/';
		}
		for (size_t i = 0; i < len; i++)
			slashes_out += out[i] == '/';
		require(re || (!has_run && slashes_in == slashes_out));
		require(kg_path_normalize((kg_str){ out, len }, flags, again, &len2, &re2, &why) == KG_OK);
		require(len2 == len && memcmp(again, out, len) == 0 && !re2);
	} else {
		require(why != NULL && why[0] != '\0');
	}
	free(in);
	free(out);
	free(again);
	return 0;
}
