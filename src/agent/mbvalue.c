/* SPDX-License-Identifier: Apache-2.0 */
/* Modbus value decoding (u16/i16/u32/i32/f32/bool, word order, scale, offset) and the request
 * planner that reads a device's points with the fewest requests. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edgetrust/edgetrust.h"
#include "mbvalue.h"

const char *et_quality_name(enum et_quality q)
{
	switch (q) {
	case ET_Q_OK:
		return "ok";
	case ET_Q_EXCEPTION:
		return "exception";
	case ET_Q_TIMEOUT:
		return "timeout";
	case ET_Q_CRC:
		return "crc";
	case ET_Q_IO:
		return "io";
	case ET_Q_DECODE:
		return "decode";
	}
	return "unknown";
}

int et_mb_table_is_bits(enum et_mb_table t)
{
	return t == ET_MB_COIL || t == ET_MB_DISCRETE;
}

unsigned et_mb_type_width(enum et_mb_type t)
{
	switch (t) {
	case ET_MB_U32:
	case ET_MB_I32:
	case ET_MB_F32:
		return 2;
	default:
		return 1;
	}
}

static enum et_quality scaled(double raw, double scale, double offset, double *ret_value)
{
	double v = raw * scale + offset;

	if (!isfinite(v))
		return ET_Q_DECODE;
	*ret_value = v;
	return ET_Q_OK;
}

enum et_quality et_mb_decode_regs(enum et_mb_type type, enum et_mb_word_order order,
				  const uint16_t *regs, size_t nregs, double scale, double offset,
				  double *ret_value)
{
	uint32_t u32;
	float f;

	if (!regs || nregs < et_mb_type_width(type))
		return ET_Q_DECODE;
	switch (type) {
	case ET_MB_U16:
		return scaled((double)regs[0], scale, offset, ret_value);
	case ET_MB_I16:
		return scaled((double)(int16_t)regs[0], scale, offset, ret_value);
	case ET_MB_U32:
	case ET_MB_I32:
	case ET_MB_F32:
		if (order == ET_MB_WORDS_LITTLE)
			u32 = (uint32_t)regs[1] << 16 | regs[0];
		else
			u32 = (uint32_t)regs[0] << 16 | regs[1];
		if (type == ET_MB_U32)
			return scaled((double)u32, scale, offset, ret_value);
		if (type == ET_MB_I32)
			return scaled((double)(int32_t)u32, scale, offset, ret_value);
		/* Type-pun through memcpy: the only defined way in C. */
		memcpy(&f, &u32, sizeof(f));
		if (!isfinite(f))
			return ET_Q_DECODE;
		return scaled((double)f, scale, offset, ret_value);
	case ET_MB_BOOL:
		break;
	}
	return ET_Q_DECODE;
}

enum et_quality et_mb_decode_bit(uint8_t bit, double scale, double offset, double *ret_value)
{
	return scaled(bit ? 1.0 : 0.0, scale, offset, ret_value);
}

struct sorted_item {
	enum et_mb_table table;
	uint32_t first, last;
	size_t idx;
};

static int cmp_items(const void *a, const void *b)
{
	const struct sorted_item *x = a, *y = b;

	if (x->table != y->table)
		return x->table < y->table ? -1 : 1;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	if (x->last != y->last)
		return x->last < y->last ? -1 : 1;
	return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

int et_mb_plan(const struct et_mb_item *items, size_t n, unsigned max_gap_regs,
	       unsigned max_gap_bits, struct et_mb_request **ret_reqs, size_t *ret_nreqs,
	       size_t *ret_item_req)
{
	struct sorted_item *s = NULL;
	struct et_mb_request *reqs = NULL;
	size_t nreqs = 0;
	int r = ET_E_INVALID;

	if ((n && (!items || !ret_item_req)) || !ret_reqs || !ret_nreqs)
		return ET_E_INVALID;
	if (n == 0) {
		*ret_reqs = NULL;
		*ret_nreqs = 0;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (items[i].table > ET_MB_DISCRETE || items[i].width < 1 || items[i].width > 2 ||
		    (uint32_t)items[i].address + items[i].width - 1 > 0xffff)
			return ET_E_INVALID;
	}
	s = calloc(n, sizeof(*s));
	/* At most one request per item. */
	reqs = calloc(n, sizeof(*reqs));
	if (!s || !reqs) {
		r = ET_E_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		s[i].table = items[i].table;
		s[i].first = items[i].address;
		s[i].last = (uint32_t)items[i].address + items[i].width - 1;
		s[i].idx = i;
	}
	qsort(s, n, sizeof(*s), cmp_items);

	uint32_t start = 0, end = 0;
	for (size_t i = 0; i < n; i++) {
		int bits = et_mb_table_is_bits(s[i].table);
		uint32_t limit = bits ? ET_MB_MAX_BITS : ET_MB_MAX_REGS;
		uint32_t gap = bits ? max_gap_bits : max_gap_regs;
		uint32_t new_end = s[i].last > end ? s[i].last : end;

		if (nreqs > 0 && reqs[nreqs - 1].table == s[i].table &&
		    (uint64_t)s[i].first <= (uint64_t)end + 1 + gap && new_end - start + 1 <= limit) {
			end = new_end;
		} else {
			nreqs++;
			reqs[nreqs - 1].table = s[i].table;
			start = s[i].first;
			end = s[i].last;
		}
		reqs[nreqs - 1].address = (uint16_t)start;
		reqs[nreqs - 1].count = (uint16_t)(end - start + 1);
		ret_item_req[s[i].idx] = nreqs - 1;
	}
	*ret_reqs = reqs;
	*ret_nreqs = nreqs;
	reqs = NULL;
	r = 0;
out:
	free(s);
	free(reqs);
	return r;
}
