/* test_wheel.c - coarse deadlines: never early, at most one tick late, and
 * moving one later is a store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kgtest.h"

#include "keygate/wheel.h"

#define TICK 100

struct owner {
	kg_deadline d;
	int fired;
	uint64_t fired_at;
	uint64_t want; /* the time it was set for */
	kg_wheel *wh;
	struct owner *victim; /* removed by this one's callback */
	bool is_rearming;
};

static uint64_t clock_now;

static void on_fire(kg_deadline *d)
{
	struct owner *o = (struct owner *)d;
	o->fired++;
	o->fired_at = clock_now;
	if (o->victim)
		kg_wheel_remove(o->wh, &o->victim->d);
	if (o->is_rearming) {
		o->is_rearming = false;
		o->want = clock_now + 250;
		kg_wheel_set(o->wh, d, clock_now, 250, on_fire);
	}
}

/* Runs the wheel at every tick boundary up to `until`, as the daemon's
 * tick does (kg_wheel_next_ms). */
static void run_until(kg_wheel *wh, uint64_t until)
{
	while (clock_now + kg_wheel_next_ms(wh, clock_now) <= until) {
		clock_now += kg_wheel_next_ms(wh, clock_now);
		kg_wheel_run(wh, clock_now);
	}
	clock_now = until;
	kg_wheel_run(wh, clock_now);
}

KG_TEST(test_a_deadline_fires_once_never_early_and_at_most_one_tick_late)
{
	static kg_wheel wh;
	clock_now = 1234;
	kg_wheel_init(&wh, TICK, clock_now);
	struct owner o = { .wh = &wh };
	KG_CHECK(kg_wheel_set(&wh, &o.d, clock_now, 500, on_fire), "the first set reports an empty wheel");
	run_until(&wh, 1733);
	KG_CHECK(o.fired == 0, "fired at %llu, before its time 1734", (unsigned long long)o.fired_at);
	run_until(&wh, 1734 + TICK);
	KG_CHECK(o.fired == 1, "fired %d times by one tick after its time", o.fired);
	KG_CHECK(o.fired_at >= 1734 && o.fired_at <= 1734 + TICK, "fired at %llu", (unsigned long long)o.fired_at);
	KG_CHECK(!kg_wheel_is_set(&o.d) && wh.nlinked == 0, "cleared and unlinked after firing");
	run_until(&wh, 5000);
	KG_CHECK(o.fired == 1, "fired again: %d", o.fired);
}

KG_TEST(test_moving_a_deadline_later_is_a_store_and_it_fires_at_the_new_time)
{
	static kg_wheel wh;
	clock_now = 10000;
	kg_wheel_init(&wh, TICK, clock_now);
	struct owner o = { .wh = &wh };
	kg_wheel_set(&wh, &o.d, clock_now, 1000, on_fire);
	kg_deadline *prev = o.d.prev, *next = o.d.next;
	uint64_t visit = o.d.visit;
	for (int i = 1; i <= 50; i++)
		KG_CHECK(!kg_wheel_set(&wh, &o.d, clock_now + (uint64_t)i, 1000 + (uint64_t)i * 100, on_fire), "set %d", i);
	KG_CHECK(o.d.prev == prev && o.d.next == next && o.d.visit == visit, "a later deadline did not move its link");
	uint64_t want = clock_now + 50 + 1000 + 5000;
	run_until(&wh, want - 1);
	KG_CHECK(o.fired == 0, "fired at %llu, before the later time %llu", (unsigned long long)o.fired_at,
	         (unsigned long long)want);
	run_until(&wh, want + TICK);
	KG_CHECK(o.fired == 1 && o.fired_at <= want + TICK, "fired %d times, at %llu for %llu", o.fired,
	         (unsigned long long)o.fired_at, (unsigned long long)want);
}

KG_TEST(test_moving_a_deadline_earlier_relinks_it_and_it_fires_at_the_earlier_time)
{
	static kg_wheel wh;
	clock_now = 777;
	kg_wheel_init(&wh, TICK, clock_now);
	struct owner o = { .wh = &wh };
	kg_wheel_set(&wh, &o.d, clock_now, 60000, on_fire); /* idle, then a request's header timeout */
	kg_wheel_set(&wh, &o.d, clock_now, 300, on_fire);
	run_until(&wh, 777 + 299);
	KG_CHECK(o.fired == 0, "fired early at %llu", (unsigned long long)o.fired_at);
	run_until(&wh, 777 + 300 + TICK);
	KG_CHECK(o.fired == 1, "the earlier time was kept: fired %d", o.fired);
	KG_CHECK(wh.nlinked == 0, "%zu linked", wh.nlinked);
}

KG_TEST(test_a_cleared_or_removed_deadline_never_fires)
{
	static kg_wheel wh;
	clock_now = 1;
	kg_wheel_init(&wh, TICK, clock_now);
	struct owner a = { .wh = &wh }, b = { .wh = &wh };
	kg_wheel_set(&wh, &a.d, clock_now, 200, on_fire);
	kg_wheel_set(&wh, &b.d, clock_now, 200, on_fire);
	kg_wheel_clear(&a.d);
	kg_wheel_remove(&wh, &b.d);
	kg_wheel_remove(&wh, &b.d); /* twice: a no-op */
	KG_CHECK(wh.nlinked == 1, "the cleared one stays linked until its slot is walked: %zu", wh.nlinked);
	run_until(&wh, 10000);
	KG_CHECK(a.fired == 0 && b.fired == 0, "fired: %d %d", a.fired, b.fired);
	KG_CHECK(kg_wheel_run(&wh, clock_now) == 0, "nothing left linked");
}

KG_TEST(test_a_callback_may_remove_another_due_deadline_and_set_its_own_again)
{
	static kg_wheel wh;
	clock_now = 5;
	kg_wheel_init(&wh, TICK, clock_now);
	struct owner a = { .wh = &wh, .is_rearming = true }, b = { .wh = &wh }, c = { .wh = &wh };
	a.victim = &b; /* the same slot: a client closing its upstream connection */
	kg_wheel_set(&wh, &a.d, clock_now, 100, on_fire);
	kg_wheel_set(&wh, &b.d, clock_now, 100, on_fire);
	kg_wheel_set(&wh, &c.d, clock_now, 100, on_fire);
	run_until(&wh, 5 + 100 + TICK);
	KG_CHECK(a.fired == 1 && b.fired == 0 && c.fired == 1, "fired: a %d, b %d (removed), c %d", a.fired, b.fired,
	         c.fired);
	KG_CHECK(kg_wheel_is_set(&a.d), "a set itself again from its callback");
	uint64_t want = a.want;
	run_until(&wh, want + TICK);
	KG_CHECK(a.fired == 2 && a.fired_at >= want, "the re-set fired at %llu for %llu", (unsigned long long)a.fired_at,
	         (unsigned long long)want);
}

KG_TEST(test_a_stalled_loop_fires_everything_due_in_one_run)
{
	static kg_wheel wh;
	clock_now = 100;
	kg_wheel_init(&wh, TICK, clock_now);
	static struct owner o[64];
	for (int i = 0; i < 64; i++) {
		o[i] = (struct owner){ .wh = &wh };
		kg_wheel_set(&wh, &o[i].d, clock_now, (uint64_t)i * 997, on_fire);
	}
	struct owner far = { .wh = &wh };
	kg_wheel_set(&wh, &far.d, clock_now, 10ull * 3600 * 1000, on_fire);
	clock_now += 64 * 997; /* one run, long after all of them but far */
	kg_wheel_run(&wh, clock_now);
	for (int i = 0; i < 64; i++)
		KG_CHECK(o[i].fired == 1, "deadline %d fired %d times", i, o[i].fired);
	KG_CHECK(far.fired == 0 && wh.nlinked == 1, "the far one waits: fired %d, %zu linked", far.fired, wh.nlinked);
}

/* Many deadlines set, moved both ways, cleared and removed at random, checked
 * against the plain rule: each fires once, not before its last time and at
 * most one tick after it, unless cleared or removed. */
KG_TEST(test_random_deadlines_match_a_reference)
{
	static kg_wheel wh;
	enum { N = 500 };
	static struct owner o[N];
	static uint64_t want[N];
	srand(16);
	clock_now = 987654;
	kg_wheel_init(&wh, TICK, clock_now);
	memset(o, 0, sizeof(o));
	for (int i = 0; i < N; i++)
		o[i].wh = &wh;
	for (int step = 0; step < 20000; step++) {
		int i = rand() % N;
		int op = rand() % 10;
		if (op < 6) {
			uint64_t ms = 1 + (uint64_t)(rand() % 60000);
			o[i].fired = 0;
			kg_wheel_set(&wh, &o[i].d, clock_now, ms, on_fire);
			want[i] = clock_now + ms;
		} else if (op == 6) {
			kg_wheel_clear(&o[i].d);
			want[i] = 0;
		} else if (op == 7) {
			kg_wheel_remove(&wh, &o[i].d);
			want[i] = 0;
		} else {
			uint64_t until = clock_now + 1 + (uint64_t)(rand() % 300);
			run_until(&wh, until);
		}
		for (int k = 0; k < N; k++) {
			if (o[k].fired) {
				KG_CHECK(want[k] && o[k].fired == 1 && o[k].fired_at >= want[k] && o[k].fired_at <= want[k] + TICK,
				         "step %d: deadline %d for %llu fired %d times, at %llu", step, k,
				         (unsigned long long)want[k], o[k].fired, (unsigned long long)o[k].fired_at);
				o[k].fired = 0;
				want[k] = 0;
			} else if (want[k]) {
				KG_CHECK(clock_now < want[k] + TICK, "step %d: deadline %d for %llu not fired at %llu", step, k,
				         (unsigned long long)want[k], (unsigned long long)clock_now);
			}
		}
	}
}

int main(void)
{
	return kg_test_main();
}
