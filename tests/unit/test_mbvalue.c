/* SPDX-License-Identifier: Apache-2.0 */
/* Modbus value decoding and the request planner, including a randomized check of the planner
 * against an independent dynamic-programming optimum. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "edgetrust/edgetrust.h"
#include "mbvalue.h"

static double dec(enum et_mb_type t, enum et_mb_word_order o, uint16_t a, uint16_t b,
		  double scale, double offset)
{
	uint16_t regs[2] = {a, b};
	double v = -12345.0;

	assert_int_equal(et_mb_decode_regs(t, o, regs, 2, scale, offset, &v), ET_Q_OK);
	return v;
}

static void expect_decode_fail(enum et_mb_type t, enum et_mb_word_order o, uint16_t a,
			       uint16_t b, double scale, double offset)
{
	uint16_t regs[2] = {a, b};
	double v = 42.0;

	assert_int_equal(et_mb_decode_regs(t, o, regs, 2, scale, offset, &v), ET_Q_DECODE);
	assert_true(v == 42.0); /* untouched */
}

static void test_decode_ints(void **state)
{
	const enum et_mb_word_order B = ET_MB_WORDS_BIG, L = ET_MB_WORDS_LITTLE;

	(void)state;
	assert_true(dec(ET_MB_U16, B, 0, 9, 1, 0) == 0.0);
	assert_true(dec(ET_MB_U16, B, 0xffff, 9, 1, 0) == 65535.0);
	assert_true(dec(ET_MB_U16, L, 0x1234, 9, 1, 0) == 0x1234); /* order irrelevant */
	assert_true(dec(ET_MB_I16, B, 0x8000, 0, 1, 0) == -32768.0);
	assert_true(dec(ET_MB_I16, B, 0x7fff, 0, 1, 0) == 32767.0);
	assert_true(dec(ET_MB_I16, B, 0xffff, 0, 1, 0) == -1.0);
	assert_true(dec(ET_MB_U32, B, 0x1234, 0x5678, 1, 0) == 0x12345678);
	assert_true(dec(ET_MB_U32, L, 0x5678, 0x1234, 1, 0) == 0x12345678);
	assert_true(dec(ET_MB_U32, B, 0xffff, 0xffff, 1, 0) == 4294967295.0);
	assert_true(dec(ET_MB_U32, B, 0, 0, 1, 0) == 0.0);
	assert_true(dec(ET_MB_I32, B, 0x8000, 0x0000, 1, 0) == -2147483648.0);
	assert_true(dec(ET_MB_I32, L, 0x0000, 0x8000, 1, 0) == -2147483648.0);
	assert_true(dec(ET_MB_I32, B, 0x7fff, 0xffff, 1, 0) == 2147483647.0);
	assert_true(dec(ET_MB_I32, B, 0xffff, 0xfffe, 1, 0) == -2.0);
	assert_true(dec(ET_MB_I32, L, 0xfffe, 0xffff, 1, 0) == -2.0);
	/* scale and offset: value = raw * scale + offset */
	assert_true(dec(ET_MB_U16, B, 250, 0, 0.1, 0) == 250 * 0.1);
	assert_true(dec(ET_MB_I16, B, 0xfff6, 0, 0.5, 100) == 95.0);
	assert_true(dec(ET_MB_U16, B, 7, 0, 0, -3) == -3.0);
	assert_true(dec(ET_MB_U32, B, 1, 0, -1, 0) == -65536.0);
}

static void test_decode_f32(void **state)
{
	const enum et_mb_word_order B = ET_MB_WORDS_BIG, L = ET_MB_WORDS_LITTLE;

	(void)state;
	/* 1.5f = 0x3fc00000; -2.25f = 0xc0100000; 123.456f = 0x42f6e979 */
	assert_true(dec(ET_MB_F32, B, 0x3fc0, 0x0000, 1, 0) == 1.5);
	assert_true(dec(ET_MB_F32, L, 0x0000, 0x3fc0, 1, 0) == 1.5);
	assert_true(dec(ET_MB_F32, B, 0xc010, 0x0000, 1, 0) == -2.25);
	assert_true(dec(ET_MB_F32, B, 0x42f6, 0xe979, 1, 0) == (double)123.456f);
	assert_true(dec(ET_MB_F32, L, 0xe979, 0x42f6, 1, 0) == (double)123.456f);
	assert_true(dec(ET_MB_F32, B, 0x3fc0, 0x0000, 2, 1) == 4.0);
	/* zeros, denormals, the largest finite value */
	assert_true(dec(ET_MB_F32, B, 0x8000, 0x0000, 1, 0) == 0.0);
	assert_true(dec(ET_MB_F32, B, 0x0000, 0x0001, 1, 0) > 0.0);
	assert_true(dec(ET_MB_F32, B, 0x7f7f, 0xffff, 1, 0) == (double)3.40282346638528859812e+38F);
	/* NaN and Inf in either order are ET_Q_DECODE */
	expect_decode_fail(ET_MB_F32, B, 0x7fc0, 0x0000, 1, 0);
	expect_decode_fail(ET_MB_F32, B, 0xffc0, 0x0001, 1, 0);
	expect_decode_fail(ET_MB_F32, B, 0x7f80, 0x0000, 1, 0);
	expect_decode_fail(ET_MB_F32, B, 0xff80, 0x0000, 1, 0);
	expect_decode_fail(ET_MB_F32, L, 0x0000, 0x7f80, 1, 0);
	expect_decode_fail(ET_MB_F32, B, 0x7f80, 0x0001, 1, 0); /* signalling NaN */
	/* ...but the same registers in the other order are a finite value */
	assert_true(isfinite(dec(ET_MB_F32, L, 0x7f80, 0x0001, 1, 0)));
	/* scaling that overflows a double */
	expect_decode_fail(ET_MB_F32, B, 0x7f7f, 0xffff, 1e300, 0);
	expect_decode_fail(ET_MB_U32, B, 0xffff, 0xffff, 1e300, 0);
}

static void test_decode_misc(void **state)
{
	uint16_t r[2] = {1, 2};
	double v = 7;

	(void)state;
	assert_int_equal(et_mb_decode_regs(ET_MB_U32, 0, r, 1, 1, 0, &v), ET_Q_DECODE);
	assert_int_equal(et_mb_decode_regs(ET_MB_U16, 0, r, 0, 1, 0, &v), ET_Q_DECODE);
	assert_int_equal(et_mb_decode_regs(ET_MB_U16, 0, NULL, 2, 1, 0, &v), ET_Q_DECODE);
	assert_int_equal(et_mb_decode_regs(ET_MB_BOOL, 0, r, 2, 1, 0, &v), ET_Q_DECODE);
	assert_int_equal(et_mb_decode_regs((enum et_mb_type)99, 0, r, 2, 1, 0, &v), ET_Q_DECODE);
	assert_true(v == 7);
	assert_int_equal(et_mb_decode_bit(0, 1, 0, &v), ET_Q_OK);
	assert_true(v == 0.0);
	assert_int_equal(et_mb_decode_bit(1, 1, 0, &v), ET_Q_OK);
	assert_true(v == 1.0);
	assert_int_equal(et_mb_decode_bit(0xff, 10, 5, &v), ET_Q_OK);
	assert_true(v == 15.0);
	assert_int_equal(et_mb_type_width(ET_MB_U16), 1);
	assert_int_equal(et_mb_type_width(ET_MB_BOOL), 1);
	assert_int_equal(et_mb_type_width(ET_MB_F32), 2);
	assert_string_equal(et_quality_name(ET_Q_CRC), "crc");
	assert_string_equal(et_quality_name((enum et_quality)77), "unknown");
}

struct plan {
	struct et_mb_request *reqs;
	size_t n;
	size_t map[4096];
};

static void plan(const struct et_mb_item *items, size_t n, unsigned gr, unsigned gb,
		 struct plan *p)
{
	p->reqs = NULL;
	p->n = 0;
	assert_int_equal(et_mb_plan(items, n, gr, gb, &p->reqs, &p->n, p->map), 0);
}

/* Every item inside its request, every request within the limits, sorted, no empty ones. */
static void check_plan(const struct et_mb_item *items, size_t n, const struct plan *p)
{
	for (size_t i = 0; i < n; i++) {
		const struct et_mb_request *r = &p->reqs[p->map[i]];

		assert_true(p->map[i] < p->n);
		assert_int_equal(r->table, items[i].table);
		assert_true(items[i].address >= r->address);
		assert_true((uint32_t)items[i].address + items[i].width <=
			    (uint32_t)r->address + r->count);
	}
	for (size_t k = 0; k < p->n; k++) {
		unsigned limit = et_mb_table_is_bits(p->reqs[k].table) ? ET_MB_MAX_BITS
								       : ET_MB_MAX_REGS;
		assert_true(p->reqs[k].count >= 1 && p->reqs[k].count <= limit);
		assert_true((uint32_t)p->reqs[k].address + p->reqs[k].count - 1 <= 0xffff);
		if (k)
			assert_true(p->reqs[k - 1].table < p->reqs[k].table ||
				    (p->reqs[k - 1].table == p->reqs[k].table &&
				     (uint32_t)p->reqs[k - 1].address + p->reqs[k - 1].count <=
					     p->reqs[k].address));
	}
}

static void test_plan_basic(void **state)
{
	struct et_mb_item it[8];
	struct plan p;

	(void)state;
	plan(NULL, 0, 8, 128, &p);
	assert_int_equal(p.n, 0);
	assert_null(p.reqs);

	/* contiguous u16 + f32 + u16 = one request of 4 */
	it[0] = (struct et_mb_item){ET_MB_HOLDING, 10, 1};
	it[1] = (struct et_mb_item){ET_MB_HOLDING, 11, 2};
	it[2] = (struct et_mb_item){ET_MB_HOLDING, 13, 1};
	plan(it, 3, 8, 128, &p);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.reqs[0].address, 10);
	assert_int_equal(p.reqs[0].count, 4);
	check_plan(it, 3, &p);
	free(p.reqs);

	/* gap of exactly 8 is bridged, 9 is not; 0 = no bridging */
	it[0] = (struct et_mb_item){ET_MB_INPUT, 0, 1};
	it[1] = (struct et_mb_item){ET_MB_INPUT, 9, 1};
	plan(it, 2, 8, 128, &p);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.reqs[0].count, 10);
	free(p.reqs);
	it[1].address = 10;
	plan(it, 2, 8, 128, &p);
	assert_int_equal(p.n, 2);
	free(p.reqs);
	it[1].address = 1;
	plan(it, 2, 0, 0, &p);
	assert_int_equal(p.n, 1);
	free(p.reqs);
	it[1].address = 2;
	plan(it, 2, 0, 0, &p);
	assert_int_equal(p.n, 2);
	free(p.reqs);

	/* tables never mix; output sorted by table then address, map follows input order */
	it[0] = (struct et_mb_item){ET_MB_DISCRETE, 5, 1};
	it[1] = (struct et_mb_item){ET_MB_HOLDING, 5, 1};
	it[2] = (struct et_mb_item){ET_MB_COIL, 5, 1};
	it[3] = (struct et_mb_item){ET_MB_INPUT, 5, 1};
	it[4] = (struct et_mb_item){ET_MB_HOLDING, 0, 1};
	plan(it, 5, 8, 128, &p);
	assert_int_equal(p.n, 4);
	assert_int_equal(p.reqs[0].table, ET_MB_HOLDING);
	assert_int_equal(p.reqs[0].address, 0);
	assert_int_equal(p.reqs[0].count, 6);
	assert_int_equal(p.map[1], 0);
	assert_int_equal(p.map[4], 0);
	assert_int_equal(p.map[3], 1);
	assert_int_equal(p.map[2], 2);
	assert_int_equal(p.map[0], 3);
	check_plan(it, 5, &p);
	free(p.reqs);

	/* overlapping and duplicate points */
	it[0] = (struct et_mb_item){ET_MB_HOLDING, 100, 2};
	it[1] = (struct et_mb_item){ET_MB_HOLDING, 100, 1};
	it[2] = (struct et_mb_item){ET_MB_HOLDING, 101, 1};
	it[3] = (struct et_mb_item){ET_MB_HOLDING, 100, 2};
	plan(it, 4, 0, 0, &p);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.reqs[0].count, 2);
	free(p.reqs);

	/* top of the address space */
	it[0] = (struct et_mb_item){ET_MB_HOLDING, 65534, 2};
	it[1] = (struct et_mb_item){ET_MB_HOLDING, 65535, 1};
	plan(it, 2, 8, 128, &p);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.reqs[0].address, 65534);
	assert_int_equal(p.reqs[0].count, 2);
	free(p.reqs);

	/* invalid items */
	it[0] = (struct et_mb_item){ET_MB_HOLDING, 65535, 2};
	assert_int_equal(et_mb_plan(it, 1, 8, 128, &p.reqs, &p.n, p.map), ET_E_INVALID);
	it[0] = (struct et_mb_item){ET_MB_HOLDING, 0, 0};
	assert_int_equal(et_mb_plan(it, 1, 8, 128, &p.reqs, &p.n, p.map), ET_E_INVALID);
	it[0] = (struct et_mb_item){ET_MB_HOLDING, 0, 3};
	assert_int_equal(et_mb_plan(it, 1, 8, 128, &p.reqs, &p.n, p.map), ET_E_INVALID);
	it[0] = (struct et_mb_item){(enum et_mb_table)9, 0, 1};
	assert_int_equal(et_mb_plan(it, 1, 8, 128, &p.reqs, &p.n, p.map), ET_E_INVALID);
	assert_int_equal(et_mb_plan(it, 1, 8, 128, NULL, &p.n, p.map), ET_E_INVALID);
	assert_int_equal(et_mb_plan(it, 1, 8, 128, &p.reqs, &p.n, NULL), ET_E_INVALID);
}

static void test_plan_limits(void **state)
{
	static struct et_mb_item it[4096];
	static struct plan p;

	(void)state;
	/* 125 registers in one request, 126 in two */
	for (int i = 0; i < 126; i++)
		it[i] = (struct et_mb_item){ET_MB_HOLDING, (uint16_t)i, 1};
	plan(it, 125, 8, 128, &p);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.reqs[0].count, 125);
	free(p.reqs);
	plan(it, 126, 8, 128, &p);
	assert_int_equal(p.n, 2);
	assert_int_equal(p.reqs[1].address, 125);
	assert_int_equal(p.reqs[1].count, 1);
	free(p.reqs);
	/* a 32-bit value never straddles two requests */
	for (int i = 0; i < 63; i++)
		it[i] = (struct et_mb_item){ET_MB_INPUT, (uint16_t)(2 * i), 2};
	plan(it, 63, 8, 128, &p); /* 126 registers */
	assert_int_equal(p.n, 2);
	assert_int_equal(p.reqs[0].count, 124);
	assert_int_equal(p.reqs[1].address, 124);
	check_plan(it, 63, &p);
	free(p.reqs);
	/* 2000 coils in one request, 2001 in two; 4000 discrete inputs in two */
	for (int i = 0; i < 4000; i++)
		it[i] = (struct et_mb_item){ET_MB_COIL, (uint16_t)i, 1};
	plan(it, 2000, 8, 128, &p);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.reqs[0].count, 2000);
	free(p.reqs);
	plan(it, 2001, 8, 128, &p);
	assert_int_equal(p.n, 2);
	free(p.reqs);
	for (int i = 0; i < 4000; i++)
		it[i].table = ET_MB_DISCRETE;
	plan(it, 4000, 8, 128, &p);
	assert_int_equal(p.n, 2);
	check_plan(it, 4000, &p);
	free(p.reqs);
	/* bit gaps: 128 bridged, 129 not */
	it[0] = (struct et_mb_item){ET_MB_COIL, 0, 1};
	it[1] = (struct et_mb_item){ET_MB_COIL, 129, 1};
	plan(it, 2, 8, 128, &p);
	assert_int_equal(p.n, 1);
	free(p.reqs);
	it[1].address = 130;
	plan(it, 2, 8, 128, &p);
	assert_int_equal(p.n, 2);
	free(p.reqs);
}

/* Independent optimum: DP over items sorted by (table, first, last), each request a run of
 * consecutive sorted items that fits the limit and has no gap above max_gap. */
static int cmp_item(const void *a, const void *b)
{
	const struct et_mb_item *x = a, *y = b;

	if (x->table != y->table)
		return (int)x->table - (int)y->table;
	if (x->address != y->address)
		return (int)x->address - (int)y->address;
	return (int)x->width - (int)y->width;
}

static size_t optimum(const struct et_mb_item *in, size_t n, unsigned gr, unsigned gb)
{
	struct et_mb_item s[256];
	size_t dp[257];

	memcpy(s, in, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_item);
	dp[0] = 0;
	for (size_t i = 1; i <= n; i++) {
		dp[i] = SIZE_MAX;
		/* the run s[j..i-1] */
		for (size_t j = i; j-- > 0;) {
			uint32_t first = s[j].address, last = 0;
			int ok = 1;
			unsigned limit = et_mb_table_is_bits(s[j].table) ? ET_MB_MAX_BITS
									 : ET_MB_MAX_REGS;
			unsigned gap = et_mb_table_is_bits(s[j].table) ? gb : gr;

			for (size_t k = j; k < i && ok; k++) {
				uint32_t l = (uint32_t)s[k].address + s[k].width - 1;
				if (s[k].table != s[j].table)
					ok = 0;
				else if (k > j && s[k].address > last + 1 + gap)
					ok = 0;
				if (l > last)
					last = l;
			}
			if (!ok || last - first + 1 > limit)
				continue;
			if (dp[j] != SIZE_MAX && dp[j] + 1 < dp[i])
				dp[i] = dp[j] + 1;
		}
	}
	return dp[n];
}

static void test_plan_random(void **state)
{
	struct et_mb_item it[256];
	struct plan *p = malloc(sizeof(*p));
	unsigned seed = 12345;

	(void)state;
	assert_non_null(p);
	for (int round = 0; round < 3000; round++) {
		size_t n = 1 + (size_t)(rand_r(&seed) % 60);
		unsigned spread = 1u + (unsigned)(rand_r(&seed) % 600);
		unsigned gr = (unsigned)(rand_r(&seed) % 10), gb = (unsigned)(rand_r(&seed) % 200);

		for (size_t i = 0; i < n; i++) {
			enum et_mb_table t = (enum et_mb_table)(rand_r(&seed) % 4);
			uint8_t w = et_mb_table_is_bits(t) ? 1 : (uint8_t)(1 + rand_r(&seed) % 2);
			uint32_t a = (uint32_t)(rand_r(&seed) % spread);

			if (round % 7 == 0)
				a += 65000; /* near the top */
			if (a + w - 1 > 0xffff)
				a = 0xffff - (w - 1);
			if (et_mb_table_is_bits(t) && round % 5 == 0)
				a = (uint32_t)(rand_r(&seed) % 5000);
			it[i] = (struct et_mb_item){t, (uint16_t)a, w};
		}
		plan(it, n, gr, gb, p);
		check_plan(it, n, p);
		if (p->n != optimum(it, n, gr, gb))
			fail_msg("round %d: %zu requests, optimum %zu", round, p->n,
				 optimum(it, n, gr, gb));
		free(p->reqs);
	}
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_ints),  cmocka_unit_test(test_decode_f32),
		cmocka_unit_test(test_decode_misc),  cmocka_unit_test(test_plan_basic),
		cmocka_unit_test(test_plan_limits), cmocka_unit_test(test_plan_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
