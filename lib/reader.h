/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bounds-checked reader over untrusted bytes. Every field of an external format is taken
 * through it, so one set of length checks guards every parser (and is what the fuzzers hit).
 * Each getter either consumes exactly what it returns or consumes nothing and returns false.
 */
#ifndef EDGETRUST_READER_H
#define EDGETRUST_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct et_reader {
	const uint8_t *buf;
	size_t len;
	size_t off;
} et_reader;

static inline void et_reader_init(et_reader *r, const uint8_t *buf, size_t len)
{
	r->buf = buf;
	r->len = buf ? len : 0;
	r->off = 0;
}

static inline size_t et_reader_left(const et_reader *r)
{
	return r->len - r->off;
}

/* Points *ret at the next n bytes (no copy). */
static inline bool et_reader_bytes(et_reader *r, size_t n, const uint8_t **ret)
{
	if (n > et_reader_left(r))
		return false;
	*ret = r->buf + r->off;
	r->off += n;
	return true;
}

/* Big-endian unsigned integer of n (1..8) bytes. */
static inline bool et_reader_be(et_reader *r, size_t n, uint64_t *ret)
{
	const uint8_t *p;
	uint64_t v = 0;

	if (n == 0 || n > 8 || !et_reader_bytes(r, n, &p))
		return false;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	*ret = v;
	return true;
}

static inline bool et_reader_u8(et_reader *r, uint8_t *ret)
{
	uint64_t v;

	if (!et_reader_be(r, 1, &v))
		return false;
	*ret = (uint8_t)v;
	return true;
}

static inline bool et_reader_u16(et_reader *r, uint16_t *ret)
{
	uint64_t v;

	if (!et_reader_be(r, 2, &v))
		return false;
	*ret = (uint16_t)v;
	return true;
}

static inline bool et_reader_u32(et_reader *r, uint32_t *ret)
{
	uint64_t v;

	if (!et_reader_be(r, 4, &v))
		return false;
	*ret = (uint32_t)v;
	return true;
}

static inline bool et_reader_u64(et_reader *r, uint64_t *ret)
{
	return et_reader_be(r, 8, ret);
}

#endif
