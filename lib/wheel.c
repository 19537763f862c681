/* wheel.c - coarse deadlines: see keygate/wheel.h. */
#include "keygate/wheel.h"

static void ring_init(kg_deadline *head)
{
	head->prev = head->next = head;
}

static void ring_unlink(kg_deadline *d)
{
	d->prev->next = d->next;
	d->next->prev = d->prev;
	d->prev = d->next = NULL;
}

static void ring_push(kg_deadline *head, kg_deadline *d)
{
	d->prev = head->prev;
	d->next = head;
	head->prev->next = d;
	head->prev = d;
}

void kg_wheel_init(kg_wheel *wh, uint64_t tick_ms, uint64_t now)
{
	for (size_t i = 0; i < KG_WHEEL_SLOTS; i++)
		ring_init(&wh->slot[i]);
	wh->tick_ms = tick_ms ? tick_ms : 1;
	wh->done = now / wh->tick_ms;
	wh->nlinked = 0;
}

/* Puts d in the slot walked first at or after its time: the tick whose
 * boundary is the first at or after d->at, but no sooner than the next walk
 * and no further than one span ahead (then it is moved on from there). */
static void place(kg_wheel *wh, kg_deadline *d)
{
	uint64_t k = (d->at + wh->tick_ms - 1) / wh->tick_ms;
	if (k <= wh->done)
		k = wh->done + 1;
	if (k > wh->done + KG_WHEEL_SLOTS)
		k = wh->done + KG_WHEEL_SLOTS;
	d->visit = k;
	ring_push(&wh->slot[k % KG_WHEEL_SLOTS], d);
}

bool kg__wheel_link(kg_wheel *wh, kg_deadline *d)
{
	bool was_empty = wh->nlinked == 0;
	if (d->next)
		ring_unlink(d);
	else
		wh->nlinked++;
	place(wh, d);
	return was_empty;
}

void kg_wheel_remove(kg_wheel *wh, kg_deadline *d)
{
	if (!d->next)
		return;
	ring_unlink(d);
	wh->nlinked--;
	d->at = 0;
}

size_t kg_wheel_run(kg_wheel *wh, uint64_t now)
{
	uint64_t target = now / wh->tick_ms;
	/* after a long stall one turn over the slots visits everything */
	if (target > wh->done + KG_WHEEL_SLOTS)
		wh->done = target - KG_WHEEL_SLOTS;
	while (wh->done < target) {
		uint64_t j = ++wh->done;
		kg_deadline *head = &wh->slot[j % KG_WHEEL_SLOTS], walk;
		if (head->next == head)
			continue;
		/* take the slot's ring out first: what is moved on may land in this
		 * same slot (one span ahead), and a callback may set or remove any
		 * deadline, this ring's included (removal works on any ring) */
		walk.next = head->next;
		walk.prev = head->prev;
		walk.next->prev = walk.prev->next = &walk;
		ring_init(head);
		while (walk.next != &walk) {
			kg_deadline *d = walk.next;
			if (d->at == 0) {
				ring_unlink(d);
				wh->nlinked--;
			} else if (d->at <= now) {
				ring_unlink(d);
				wh->nlinked--;
				d->at = 0;
				d->fire(d);
			} else {
				ring_unlink(d);
				place(wh, d);
			}
		}
	}
	return wh->nlinked;
}

uint64_t kg_wheel_next_ms(const kg_wheel *wh, uint64_t now)
{
	uint64_t next = (now / wh->tick_ms + 1) * wh->tick_ms;
	return next - now;
}
