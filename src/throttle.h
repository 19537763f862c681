/* throttle.h - the per-address password throttle (throttle.c): checks in
 * flight and recent failures, shared by every worker (thread-safe). */
#ifndef KG_THROTTLE_H
#define KG_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

/* begin admits a password attempt from addr and counts it in flight, unless
 * addr already has max attempts in flight or failed within the window
 * (false: *retry_after gets the seconds to wait). Every admitted attempt
 * ends once with end(): ok clears addr, a failure counts for the rest of
 * the window. */
bool kg__throttle_begin(const char *addr, int64_t max, int64_t window_ms, int64_t *retry_after);
void kg__throttle_end(const char *addr, bool ok, int64_t window_ms);
/* Takes back an admitted attempt that never reached a password (not
 * counted either way). */
void kg__throttle_release(const char *addr);

#endif
