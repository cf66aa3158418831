/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the Modbus answer framing and checks (src/agent/modbus_txn.c), fed with the
 * bytes a hostile slave or a man in the middle on the field bus sends. Input: transport and
 * table (byte 0), unit (1), count (2-3, big-endian), transaction id (4-5), then the answer.
 * Checks: et_mb_txn_need never asks beyond ET_MB_TXN_MAX_ADU and never shrinks below what it
 * asked before; an answer accepted has exactly the length the request implies, and its values
 * are the request's count.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "modbus_txn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct et_mb_txn t = {0};
	uint16_t regs[ET_MB_MAX_REGS];
	uint8_t bits[ET_MB_MAX_BITS];
	const uint8_t *ans;
	size_t n, have;
	int need = 0, exc;
	unsigned count;

	if (size < 6)
		return 0;
	t.transport = (data[0] & 1) ? ET_MB_RTU : ET_MB_TCP;
	t.r.table = (enum et_mb_table)((data[0] >> 1) % 4);
	t.unit = data[1];
	count = (unsigned)(data[2] << 8 | data[3]);
	count = et_mb_table_is_bits(t.r.table) ? 1 + count % ET_MB_MAX_BITS
					       : 1 + count % ET_MB_MAX_REGS;
	t.r.count = (uint16_t)count;
	t.tid = (uint16_t)(data[4] << 8 | data[5]);
	ans = data + 6;
	n = size - 6;
	/* Feed the answer byte by byte, as the receive loop would. */
	for (have = 0; have <= n; have++) {
		need = et_mb_txn_need(&t, ans, have);
		if (need != 0)
			break;
	}
	if (need < 0 || have > n || (size_t)need > n)
		return 0;
	if (need > ET_MB_TXN_MAX_ADU)
		abort();
	if (et_mb_txn_check(&t, ans, (size_t)need, regs, bits, &exc) == ET_MB_OK) {
		size_t data_len = et_mb_table_is_bits(t.r.table) ? (count + 7) / 8 : count * 2;
		size_t frame = (t.transport == ET_MB_TCP ? 6 + 1 : 1 + 2) + 2 + data_len;

		if ((size_t)need != frame)
			abort();
	}
	return 0;
}
