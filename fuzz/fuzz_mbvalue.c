/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: Modbus value decoding and request planning (src/agent/mbvalue.c), fed with
 * register contents from any device on the bus and point maps from the configuration.
 * Checks: a decoded value is finite; every planned request stays within the Modbus limits and
 * covers the items mapped to it.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mbvalue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static double take_double(const uint8_t **p, size_t *n)
{
	double d = 0;

	if (*n >= sizeof(d)) {
		memcpy(&d, *p, sizeof(d));
		*p += sizeof(d);
		*n -= sizeof(d);
	}
	return d;
}

static void decode(const uint8_t *p, size_t n)
{
	enum et_mb_type type;
	enum et_mb_word_order order;
	uint16_t regs[2] = { 0, 0 };
	double scale, offset, v = 0;
	size_t nregs;

	if (n < 3)
		return;
	type = (enum et_mb_type)(p[0] % 6);
	order = (enum et_mb_word_order)(p[1] % 2);
	nregs = p[2] % 3;
	p += 3;
	n -= 3;
	for (size_t i = 0; i < 2 && n >= 2; i++, p += 2, n -= 2)
		regs[i] = (uint16_t)(p[0] << 8 | p[1]);
	scale = take_double(&p, &n);
	offset = take_double(&p, &n);
	if (et_mb_decode_regs(type, order, regs, nregs, scale, offset, &v) == ET_Q_OK && !isfinite(v))
		abort();
	if (n && et_mb_decode_bit(p[0], scale, offset, &v) == ET_Q_OK && !isfinite(v))
		abort();
}

static void plan(const uint8_t *p, size_t n)
{
	struct et_mb_item items[64];
	size_t item_req[64];
	struct et_mb_request *reqs = NULL;
	size_t nitems = 0, nreqs = 0;
	unsigned gap_regs, gap_bits;

	if (n < 2)
		return;
	gap_regs = p[0] % 20;
	gap_bits = p[1] % 200;
	p += 2;
	n -= 2;
	for (; n >= 4 && nitems < 64; p += 4, n -= 4, nitems++) {
		items[nitems].table = (enum et_mb_table)(p[0] % 4);
		items[nitems].address = (uint16_t)(p[1] << 8 | p[2]);
		items[nitems].width = (uint8_t)(p[3] % 4);
	}
	if (et_mb_plan(items, nitems, gap_regs, gap_bits, &reqs, &nreqs, item_req) == 0) {
		for (size_t i = 0; i < nreqs; i++) {
			unsigned max = et_mb_table_is_bits(reqs[i].table) ? ET_MB_MAX_BITS : ET_MB_MAX_REGS;
			if (reqs[i].count < 1 || reqs[i].count > max)
				abort();
		}
		for (size_t i = 0; i < nitems; i++) {
			const struct et_mb_request *r = &reqs[item_req[i]];
			if (item_req[i] >= nreqs || r->table != items[i].table ||
			    items[i].address < r->address ||
			    (unsigned)items[i].address + items[i].width > (unsigned)r->address + r->count)
				abort();
		}
	}
	free(reqs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		plan(data + 1, size - 1);
	else
		decode(data + 1, size - 1);
	return 0;
}
