/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Modbus value decoding and request planning: pure functions, no I/O, no allocation except
 * the plan, so they are unit-tested exhaustively and fuzzed.
 */
#ifndef EDGETRUST_AGENT_MBVALUE_H
#define EDGETRUST_AGENT_MBVALUE_H

#include <stddef.h>
#include <stdint.h>

/* The four Modbus data tables. */
enum et_mb_table {
	ET_MB_HOLDING = 0, /* holding registers, FC 3 */
	ET_MB_INPUT,       /* input registers, FC 4 */
	ET_MB_COIL,        /* coils, FC 1 */
	ET_MB_DISCRETE,    /* discrete inputs, FC 2 */
};

enum et_mb_type {
	ET_MB_U16 = 0,
	ET_MB_I16,
	ET_MB_U32,
	ET_MB_I32,
	ET_MB_F32,  /* IEEE 754 binary32 */
	ET_MB_BOOL, /* a coil or discrete input */
};

/* Order of the two registers of a 32-bit value. Bytes inside a register are always big-endian
 * (the Modbus rule); big = high word at the lower address ("ABCD"), little = "CDAB". */
enum et_mb_word_order {
	ET_MB_WORDS_BIG = 0,
	ET_MB_WORDS_LITTLE,
};

/* Quality of one reading. */
enum et_quality {
	ET_Q_OK = 0,
	ET_Q_EXCEPTION, /* the device answered with a Modbus exception */
	ET_Q_TIMEOUT,   /* no (complete) answer within timeout_ms */
	ET_Q_CRC,       /* RTU frame with a bad CRC */
	ET_Q_IO,        /* connection down, refused, reset, or a garbled/unexpected frame */
	ET_Q_DECODE,    /* the raw value has no number (f32 NaN/Inf) or scaling overflowed */
};

/* Short lowercase name: "ok", "exception", "timeout", "crc", "io", "decode". */
const char *et_quality_name(enum et_quality q);

/* Largest request the Modbus spec allows: 125 registers (FC 3/4), 2000 bits (FC 1/2). */
#define ET_MB_MAX_REGS 125
#define ET_MB_MAX_BITS 2000
/*
 * Largest hole the planner bridges inside one request: reading 8 unused registers costs 16
 * bytes on the wire, less than the framing and turnaround of a second request (TCP: 12+9 bytes
 * plus a round trip; RTU: 13 bytes plus 2 x 3.5 character silences). 128 bits = 16 bytes.
 */
#define ET_MB_GAP_REGS 8
#define ET_MB_GAP_BITS 128

/* True for tables holding bits (coils, discrete inputs). */
int et_mb_table_is_bits(enum et_mb_table t);
/* Number of registers (or bits) a value of this type spans: 1 or 2. */
unsigned et_mb_type_width(enum et_mb_type t);

/*
 * Decodes one register value: regs holds et_mb_type_width(type) registers as received (host
 * order uint16_t, as libmodbus returns them). value = raw * scale + offset. Returns ET_Q_OK and
 * sets *ret_value, or ET_Q_DECODE (NaN/Inf float, non-finite result, bool type, nregs too small)
 * and leaves *ret_value untouched.
 */
enum et_quality et_mb_decode_regs(enum et_mb_type type, enum et_mb_word_order order,
				  const uint16_t *regs, size_t nregs, double scale, double offset,
				  double *ret_value);
/* Decodes a bit (0 or non-zero) the same way: value = (bit ? 1 : 0) * scale + offset. */
enum et_quality et_mb_decode_bit(uint8_t bit, double scale, double offset, double *ret_value);

/* One value to read: what the planner needs from a point. */
struct et_mb_item {
	enum et_mb_table table;
	uint16_t address;
	uint8_t width; /* 1 or 2; address + width - 1 <= 65535 */
};

/* One read request. */
struct et_mb_request {
	enum et_mb_table table;
	uint16_t address;
	uint16_t count; /* 1..125 registers or 1..2000 bits */
};

/*
 * Groups items into the fewest requests: items of one table whose addresses are at most
 * max_gap registers/bits apart (0 = only adjacent or overlapping) share a request as long as
 * the request stays within ET_MB_MAX_REGS / ET_MB_MAX_BITS. Greedy from the lowest address,
 * which is optimal for this rule. Requests come sorted by (table, address).
 * *ret_reqs is malloc'd (NULL when n == 0); ret_item_req[i] (caller-provided, n entries)
 * receives the index of the request that covers item i.
 * Returns 0, ET_E_INVALID (bad item) or ET_E_NOMEM.
 */
int et_mb_plan(const struct et_mb_item *items, size_t n, unsigned max_gap_regs,
	       unsigned max_gap_bits, struct et_mb_request **ret_reqs, size_t *ret_nreqs,
	       size_t *ret_item_req);

#endif
