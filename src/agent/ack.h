/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cloud's telemetry acknowledgement, et/v1/<serial>/telemetry/ack (docs/protocol.md,
 * "Delivery end to end"): {"v":1,"serial":"SN1","epoch":E,"ranges":[[lo,hi],...]} names
 * sequence numbers of spool epoch E (0 when absent) the cloud has committed to its store; the
 * agent deletes exactly those from its spool when E is its spool's epoch. The
 * parser takes untrusted bytes (it is a fuzz target, fuzz/fuzz_ack.c) and accepts a document
 * only when all of it is valid, so a garbled ack never deletes anything.
 */
#ifndef EDGETRUST_AGENT_ACK_H
#define EDGETRUST_AGENT_ACK_H

#include <stddef.h>
#include <stdint.h>

#define ET_ACK_MAX_PAYLOAD (64 * 1024)
#define ET_ACK_MAX_RANGES 1000
/* Sequence numbers travel as JSON numbers (doubles): larger ones are not exact. */
#define ET_ACK_MAX_SEQ 9007199254740992LL
/* Epochs too (an agent's are below 10^15, spool.h; the parser takes up to 2^53). */
#define ET_ACK_MAX_EPOCH 9007199254740992LL

struct et_ack_range {
	int64_t lo, hi; /* 1 <= lo <= hi <= ET_ACK_MAX_SEQ */
};

/*
 * Parses payload[0..len) for the device `serial` into *ret_epoch (0 when the ack has none) and
 * ranges[0..max) (max should be ET_ACK_MAX_RANGES). Returns the number of ranges (>= 1), or -1
 * with the reason in err and *ret_epoch and ranges unspecified.
 */
int et_ack_parse(const char *serial, const void *payload, size_t len, int64_t *ret_epoch,
		 struct et_ack_range *ranges, size_t max, char *err, size_t errlen);

#endif
