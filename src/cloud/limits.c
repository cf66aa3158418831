/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Token buckets per device in an open-addressed table of fixed size (see limits.h). A serial
 * is looked for in LIM_PROBE slots from its hash; when it is not there and none is free, the
 * least recently used of those slots is taken over. An evicted device starts again with a full
 * bucket, so the table size must exceed the number of devices sending at once (default 16384,
 * documented): otherwise eviction makes the limit looser, never tighter, and memory stays fixed.
 */
#include <stdlib.h>
#include <string.h>

#include "limits.h"

struct lim_slot {
	char serial[65];
	double tokens;
	int64_t last_ms;
	bool used;
};

struct lim_table {
	struct lim_slot *slot;
	size_t n;
	double rate, burst;
};

struct lim_table *lim_new(size_t slots, double rate, double burst)
{
	struct lim_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->n = slots < LIM_PROBE ? LIM_PROBE : slots;
	t->slot = calloc(t->n, sizeof(*t->slot));
	if (!t->slot) {
		free(t);
		return NULL;
	}
	t->rate = rate;
	t->burst = burst;
	return t;
}

void lim_free(struct lim_table *t)
{
	if (t)
		free(t->slot);
	free(t);
}

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct lim_slot *find(struct lim_table *t, const char *serial, int64_t now_ms)
{
	size_t h = (size_t)(hash(serial) % t->n);
	struct lim_slot *victim = NULL;

	for (size_t i = 0; i < LIM_PROBE; i++) {
		struct lim_slot *s = &t->slot[(h + i) % t->n];
		if (s->used && !strcmp(s->serial, serial))
			return s;
		if (!s->used) {
			if (!victim || victim->used)
				victim = s; /* the first free slot */
		} else if (!victim || (victim->used && s->last_ms < victim->last_ms)) {
			victim = s; /* else the least recently used */
		}
	}
	memset(victim, 0, sizeof(*victim));
	victim->used = true;
	strncpy(victim->serial, serial, sizeof(victim->serial) - 1);
	victim->tokens = t->burst;
	victim->last_ms = now_ms;
	return victim;
}

bool lim_take(struct lim_table *t, const char *serial, double n, int64_t now_ms)
{
	if (!t || t->rate <= 0)
		return true;
	struct lim_slot *s = find(t, serial, now_ms);
	if (now_ms > s->last_ms) {
		s->tokens += (double)(now_ms - s->last_ms) * t->rate / 1000.0;
		if (s->tokens > t->burst)
			s->tokens = t->burst;
	}
	s->last_ms = now_ms;
	if (s->tokens < n)
		return false;
	s->tokens -= n;
	return true;
}

size_t lim_count(const struct lim_table *t)
{
	size_t k = 0;
	for (size_t i = 0; t && i < t->n; i++)
		k += t->slot[i].used;
	return k;
}
