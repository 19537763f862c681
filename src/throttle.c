/* throttle.c - password guessing is throttled per client address: after
 * `max` failures within `window` a client waits out the rest of the window
 * (429 with Retry-After). Shared by every scheme that checks a password. */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "kg.h"

#define KG_THROTTLE_SLOTS 4096
#define KG_THROTTLE_PROBE 8

struct throttle_slot {
	char addr[64];
	int64_t window_start_ms;
	int64_t failures;
};

static struct throttle_slot slots[KG_THROTTLE_SLOTS];
static pthread_mutex_t throttle_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t addr_hash(const char *a)
{
	size_t h = 1469598103934665603u;
	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 1099511628211u;
	return h;
}

/* The slot of addr, or a free/expired one to take over (an address never
 * shares a counter with another: at worst a flood resets someone's count,
 * it never locks them out). */
static struct throttle_slot *slot_for(const char *addr, int64_t now, int64_t window, bool create)
{
	size_t h = addr_hash(addr);
	struct throttle_slot *victim = NULL;
	for (size_t i = 0; i < KG_THROTTLE_PROBE; i++) {
		struct throttle_slot *s = &slots[(h + i) % KG_THROTTLE_SLOTS];
		if (strcmp(s->addr, addr) == 0)
			return s;
		bool is_stale = !s->addr[0] || now - s->window_start_ms >= window;
		if (!victim || (is_stale && victim->addr[0]) || (!is_stale && s->window_start_ms < victim->window_start_ms))
			victim = s;
	}
	if (!create)
		return NULL;
	snprintf(victim->addr, sizeof(victim->addr), "%s", addr);
	victim->window_start_ms = now;
	victim->failures = 0;
	return victim;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kg__throttle_wait(const char *addr, int64_t max, int64_t window_ms)
{
	int64_t now = now_ms(), wait = 0;
	pthread_mutex_lock(&throttle_lock);
	struct throttle_slot *s = slot_for(addr, now, window_ms, false);
	if (s && now - s->window_start_ms < window_ms && s->failures >= max)
		wait = (s->window_start_ms + window_ms - now + 999) / 1000;
	pthread_mutex_unlock(&throttle_lock);
	return wait;
}

void kg__throttle_record(const char *addr, bool ok, int64_t window_ms)
{
	int64_t now = now_ms();
	pthread_mutex_lock(&throttle_lock);
	struct throttle_slot *s = slot_for(addr, now, window_ms, !ok);
	if (s) {
		if (ok) {
			s->addr[0] = '\0';
		} else {
			if (now - s->window_start_ms >= window_ms) {
				s->window_start_ms = now;
				s->failures = 0;
			}
			s->failures++;
		}
	}
	pthread_mutex_unlock(&throttle_lock);
}

