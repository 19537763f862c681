/* throttle.c - password guessing is throttled per client address. A check
 * counts against its address from the moment it is admitted (in flight)
 * until it ends: a failure stays counted for the rest of the window, a
 * success clears the address. At most `max` checks per address may be in
 * flight or failed within `window`; the rest are refused at once (429 with
 * Retry-After), before any bcrypt is queued, so parallel guesses gain
 * nothing over sequential ones. Shared by every scheme that checks a
 * password (slow.c's kg__password_check). */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include <openssl/rand.h>

#include "keygate/cache.h"
#include "throttle.h"

#define KG_THROTTLE_SLOTS 4096
#define KG_THROTTLE_PROBE 8

struct throttle_slot {
	char addr[64];
	int64_t window_start_ms;
	int64_t failures;
	int64_t in_flight; /* admitted checks not yet ended */
};

static struct throttle_slot slots[KG_THROTTLE_SLOTS];
static pthread_mutex_t throttle_lock = PTHREAD_MUTEX_INITIALIZER;
/* keyed, so that nobody can pick addresses that share a victim's probe
 * window (see slot_for: slots with checks in flight are never taken over) */
static unsigned char hash_key[16];
static bool has_key;

static size_t addr_hash(const char *a)
{
	if (!has_key) {
		/* should it fail, the key stays zero: the table still works */
		(void)RAND_bytes(hash_key, sizeof(hash_key));
		has_key = true;
	}
	return (size_t)kg__siphash24(hash_key, a, strlen(a));
}

static bool is_stale(const struct throttle_slot *s, int64_t now, int64_t window)
{
	return !s->addr[0] || (s->in_flight == 0 && now - s->window_start_ms >= window);
}

/* The slot of addr, or a free/stale one to take over; NULL when addr has
 * none and !create, or when every slot in its probe window has checks in
 * flight. Those slots are never taken over: their end must find its count
 * again (no underflow, no lost failure), and a flood from many addresses
 * must not push an attacker's own counters out to start afresh. Otherwise
 * the oldest window goes first (at worst a flood resets someone's count; an
 * address never shares a counter, so nobody is locked out by another). */
static struct throttle_slot *slot_for(const char *addr, int64_t now, int64_t window, bool create)
{
	size_t h = addr_hash(addr);
	struct throttle_slot *victim = NULL;
	for (size_t i = 0; i < KG_THROTTLE_PROBE; i++) {
		struct throttle_slot *s = &slots[(h + i) % KG_THROTTLE_SLOTS];
		if (strcmp(s->addr, addr) == 0)
			return s;
		if (s->in_flight > 0)
			continue;
		if (!victim || (is_stale(s, now, window) && !is_stale(victim, now, window)) ||
		    (!is_stale(victim, now, window) && s->window_start_ms < victim->window_start_ms))
			victim = s;
	}
	if (!create || !victim)
		return NULL;
	snprintf(victim->addr, sizeof(victim->addr), "%s", addr);
	victim->window_start_ms = now;
	victim->failures = 0;
	victim->in_flight = 0;
	return victim;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Failures older than the window no longer count. */
static void expire(struct throttle_slot *s, int64_t now, int64_t window)
{
	if (now - s->window_start_ms >= window) {
		s->window_start_ms = now;
		s->failures = 0;
	}
}

bool kg__throttle_begin(const char *addr, int64_t max, int64_t window_ms, int64_t *retry_after)
{
	int64_t now = now_ms();
	bool is_admitted = false;
	*retry_after = 1;
	pthread_mutex_lock(&throttle_lock);
	/* no slot (every one near addr's has checks in flight): refused, as
	 * admitting it uncounted would be a way around the limit */
	struct throttle_slot *s = slot_for(addr, now, window_ms, true);
	if (s) {
		expire(s, now, window_ms);
		if (s->in_flight + s->failures < max) {
			s->in_flight++;
			is_admitted = true;
		} else {
			/* checks in flight count as failures until they end: the
			 * window they may fill is the one to wait out */
			int64_t wait = (s->window_start_ms + window_ms - now + 999) / 1000;
			*retry_after = wait > 0 ? wait : 1;
		}
	}
	pthread_mutex_unlock(&throttle_lock);
	return is_admitted;
}

void kg__throttle_end(const char *addr, bool ok, int64_t window_ms)
{
	int64_t now = now_ms();
	pthread_mutex_lock(&throttle_lock);
	/* a slot with checks in flight is never taken over, so this finds the
	 * one begin counted in; if it is gone anyway, a failure still counts */
	struct throttle_slot *s = slot_for(addr, now, window_ms, !ok);
	if (s) {
		if (s->in_flight > 0)
			s->in_flight--;
		if (ok) {
			s->failures = 0;
			if (s->in_flight == 0)
				s->addr[0] = '\0';
		} else {
			expire(s, now, window_ms);
			s->failures++;
		}
	}
	pthread_mutex_unlock(&throttle_lock);
}

void kg__throttle_release(const char *addr)
{
	pthread_mutex_lock(&throttle_lock);
	struct throttle_slot *s = slot_for(addr, now_ms(), 0, false);
	if (s && s->in_flight > 0) {
		s->in_flight--;
		if (s->in_flight == 0 && s->failures == 0)
			s->addr[0] = '\0';
	}
	pthread_mutex_unlock(&throttle_lock);
}
