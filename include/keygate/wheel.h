/* wheel.h - coarse deadlines: many per event loop, one periodic tick.
 *
 * Every client and upstream connection has a deadline (header, idle, body,
 * send, linger; connect, upstream, pool idle) that moves several times per
 * request. A libuv timer per connection made each move a heap removal and
 * insertion (uv_timer_start/stop, about 2.5% of a proxied request's CPU).
 * Here a deadline is a kg_deadline embedded in its owner, and moving it later
 * - what nearly every move is - is a store to d->at: the deadline stays in the
 * slot it is in, and when the tick walks that slot and finds it not yet due it
 * is moved on to the slot of its new time. Only a move earlier than the slot
 * it sits in (idle -> header timeout) or arming an unlinked one links it.
 *
 * The wheel has KG_WHEEL_SLOTS slots of tick_ms each, on the caller's clock
 * (milliseconds, never 0: libuv's uv_now). A deadline fires on the first
 * kg_wheel_run at or after its time whose tick boundary has passed it: never
 * early, and late by at most one tick when the caller runs the wheel at each
 * tick boundary (kg_wheel_next_ms). A deadline further away than the wheel's
 * span (slots x tick) is visited once per span and moved on.
 *
 * Not thread-safe: one wheel per event loop. Every kg_deadline must be
 * removed (kg_wheel_remove) before the memory holding it is freed.
 */
#ifndef KEYGATE_WHEEL_H
#define KEYGATE_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KG_WHEEL_SLOTS 256

typedef struct kg_deadline kg_deadline;
/* Called once when d's time has come; d is unlinked and cleared by then, so
 * the callback may set it again, remove other deadlines or free d's owner. */
typedef void (*kg_deadline_fn)(kg_deadline *d);

struct kg_deadline {
	kg_deadline *prev, *next; /* in a slot's ring; NULL: not linked */
	uint64_t at;              /* fires at or after this time; 0: cleared */
	uint64_t visit;           /* tick number of the next walk of its slot */
	kg_deadline_fn fire;
};

typedef struct kg_wheel {
	kg_deadline slot[KG_WHEEL_SLOTS]; /* ring heads (only prev/next used) */
	uint64_t tick_ms;
	uint64_t done;                    /* the last tick number walked */
	size_t nlinked;
} kg_wheel;

/* Makes an empty wheel of ticks of tick_ms (> 0) starting at now. */
void kg_wheel_init(kg_wheel *wh, uint64_t tick_ms, uint64_t now);

/* Internal: links d (unlinked or due earlier than its slot) at its time. */
bool kg__wheel_link(kg_wheel *wh, kg_deadline *d);

/* Sets d to fire fire(d) once, ms after now (a later call replaces it).
 * Returns true when the wheel was empty before: the caller then starts
 * running it (kg_wheel_next_ms). d: borrowed, must stay valid until removed. */
static inline bool kg_wheel_set(kg_wheel *wh, kg_deadline *d, uint64_t now, uint64_t ms, kg_deadline_fn fire)
{
	uint64_t at = now + ms;
	d->at = at ? at : 1;
	d->fire = fire;
	/* the common case: no earlier than the walk of the slot it is in */
	if (d->next && (d->at + wh->tick_ms - 1) / wh->tick_ms >= d->visit)
		return false;
	return kg__wheel_link(wh, d);
}

/* Clears d: it will not fire (it leaves its slot at the slot's next walk). */
static inline void kg_wheel_clear(kg_deadline *d)
{
	d->at = 0;
}

static inline bool kg_wheel_is_set(const kg_deadline *d)
{
	return d->at != 0;
}

/* Unlinks d at once (before its owner is freed). Unlinked d: no-op. */
void kg_wheel_remove(kg_wheel *wh, kg_deadline *d);

/* Walks every slot whose tick boundary is at or before now, firing the
 * deadlines that are due and moving the others on. Returns how many
 * deadlines remain linked (0: the caller may stop ticking). */
size_t kg_wheel_run(kg_wheel *wh, uint64_t now);

/* Milliseconds from now to the next tick boundary (1..tick_ms). */
uint64_t kg_wheel_next_ms(const kg_wheel *wh, uint64_t now);

#endif
