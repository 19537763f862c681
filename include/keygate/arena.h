/* arena.h - per-request memory: many small allocations, freed in one go.
 *
 * A kg_arena keeps its first block across kg_arena_reset() so a keep-alive
 * connection serves request after request without touching malloc.
 */
#ifndef KEYGATE_ARENA_H
#define KEYGATE_ARENA_H

#include <stddef.h>

#include "keygate/str.h"

struct kg_arena_block;

typedef struct kg_arena {
	struct kg_arena_block *head; /* current block; owned */
	size_t block_size;
} kg_arena;

/* Prepares an empty arena whose blocks are at least block_size bytes. */
void kg_arena_init(kg_arena *a, size_t block_size);

/* Returns size bytes aligned for any type, owned by the arena, or NULL when
 * memory is exhausted. */
void *kg_arena_alloc(kg_arena *a, size_t size);

/* Copies s into the arena, NUL-terminated; returns the copy (owned by the
 * arena) or a NULL string on exhaustion. */
kg_str kg_arena_strdup(kg_arena *a, kg_str s);

/* Frees every allocation but keeps the first block for reuse. */
void kg_arena_reset(kg_arena *a);

/* Frees everything. */
void kg_arena_destroy(kg_arena *a);

#endif
