/* path.h - the request path, normalised once: the path keygate judges is
 * the path it forwards (docs/security.md).
 *
 * RFC 3986 section 6.2.2 syntax-based normalisation, as Envoy's
 * normalize_path + merge_slashes and Istio's BASE/MERGE_SLASHES do it:
 *   1. percent-escapes of unreserved characters (ALPHA DIGIT - . _ ~) are
 *      decoded (%2e is '.', %41 is 'A'); every other escape is kept with its
 *      hex digits upper-cased (%2f -> %2F);
 *   2. runs of '/' are merged into one (nginx's merge_slashes, Go's
 *      path.Clean: an upstream that merges them must not see a different
 *      path from the one judged: "/a//../b" is "/b" to nginx, not "/a/b");
 *   3. dot segments are removed (RFC 3986 section 5.2.4); ".." at the root
 *      stays at the root ("/../a" is "/a"), and a trailing "." or ".."
 *      segment leaves a trailing '/' ("/a/b/.." is "/a/").
 * Refused (KG_EINVAL, *why names the problem, the caller answers 400):
 *   - a path that does not start with '/';
 *   - a '%' not followed by two hex digits;
 *   - %00 and any raw byte below 0x20 or 0x7f (NUL, TAB, CR, LF, ...);
 *   - a raw '#' or '?' (the caller splits the query off first; a fragment
 *     never belongs in a request target);
 *   - a raw '\' (Windows and some frameworks read it as '/');
 *   - %2F and %5C (escaped '/' and '\'), unless KG_PATH_KEEP_ESCAPED_SLASHES:
 *     then they are kept, upper-cased, as ordinary segment bytes;
 *   - a "." or ".." segment followed by ';' ("..;/", Tomcat and Jetty read
 *     it as ".."), the dots raw or escaped ("%2e%2e;"), the ';' raw or
 *     escaped ("..%3B": a proxy that decodes it hands Tomcat "..;").
 * Raw bytes 0x80..0xff are kept as they are. The function is pure and
 * idempotent: normalising its output gives the same output. */
#ifndef KEYGATE_PATH_H
#define KEYGATE_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "keygate/err.h"
#include "keygate/str.h"

#define KG_PATH_KEEP_ESCAPED_SLASHES 0x1u

/* Normalises path (borrowed; the path part of a request target, without
 * query) into out, which must have room for path.n bytes (the result is
 * never longer). On KG_OK, *out_len is the result's length and
 * *is_restructured (may be NULL) says whether slashes were merged or dot
 * segments removed, i.e. whether the segments differ from the ones sent
 * (escape case and decoding alone do not count). On KG_EINVAL, *why (may be
 * NULL) is a static message naming the problem, and out holds garbage. */
__attribute__((warn_unused_result)) kg_err kg_path_normalize(kg_str path, unsigned flags, char *out,
                                                             size_t *out_len, bool *is_restructured,
                                                             const char **why);

#endif
