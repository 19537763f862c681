#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

#include "keygate/arena.h"

struct kg_arena_block {
	struct kg_arena_block *next;
	size_t size;
	size_t used;
	alignas(max_align_t) unsigned char data[];
};

void kg_arena_init(kg_arena *a, size_t block_size)
{
	a->head = NULL;
	a->block_size = block_size ? block_size : 4096;
}

void *kg_arena_alloc(kg_arena *a, size_t size)
{
	const size_t align = alignof(max_align_t);
	struct kg_arena_block *b = a->head;

	if (size > SIZE_MAX / 2)
		return NULL;
	size = (size + align - 1) & ~(align - 1);
	if (!b || b->size - b->used < size) {
		size_t bsize = size > a->block_size ? size : a->block_size;
		b = malloc(sizeof(*b) + bsize);
		if (!b)
			return NULL;
		b->size = bsize;
		b->used = 0;
		b->next = a->head;
		a->head = b;
	}
	void *p = b->data + b->used;
	b->used += size;
	return p;
}

kg_str kg_arena_strdup(kg_arena *a, kg_str s)
{
	char *p = kg_arena_alloc(a, s.n + 1);
	if (!p)
		return KG_STR_NULL;
	if (s.n)
		memcpy(p, s.p, s.n);
	p[s.n] = '\0';
	return (kg_str){ p, s.n };
}

void kg_arena_reset(kg_arena *a)
{
	struct kg_arena_block *b = a->head;
	if (!b)
		return;
	/* keep the oldest (first) block: it is the one sized for the common case */
	while (b->next) {
		struct kg_arena_block *next = b->next;
		free(b);
		b = next;
	}
	b->used = 0;
	a->head = b;
}

void kg_arena_destroy(kg_arena *a)
{
	struct kg_arena_block *b = a->head;
	while (b) {
		struct kg_arena_block *next = b->next;
		free(b);
		b = next;
	}
	a->head = NULL;
}
