/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One Modbus read transaction (FC 1-4), framed by us over the connection libmodbus opened:
 * the request, and the answer read under ONE deadline for the whole answer and checked field
 * by field. libmodbus 3.1 waits its byte timeout again for every byte that arrives, so a slave
 * that trickles bytes holds a read for (bytes x byte timeout); and it accepts a Modbus TCP
 * answer with another unit id, an MBAP length that disagrees with the PDU, or (through an &&
 * where || was meant) some wrong protocol ids. Here none of that passes.
 * The builders and the checker are pure functions (unit-tested, fuzzable); et_mb_txn_run does
 * the I/O with poll().
 */
#ifndef EDGETRUST_AGENT_MODBUS_TXN_H
#define EDGETRUST_AGENT_MODBUS_TXN_H

#include <stddef.h>
#include <stdint.h>

#include "agent_config.h" /* enum et_mb_transport */
#include "mbvalue.h"

/* Longest answer: MBAP 7 + FC + byte count + 250 data bytes (RTU: 1 + 1 + 1 + 250 + CRC 2). */
#define ET_MB_TXN_MAX_ADU 260

struct et_mb_txn {
	enum et_mb_transport transport;
	uint8_t unit;
	uint16_t tid; /* TCP transaction id; ignored for RTU */
	struct et_mb_request r;
	size_t got; /* out (et_mb_txn_run): answer bytes received, also when it timed out */
};
/* TCP: a whole answer with one of the last ET_MB_TXN_STALE transaction ids before this one is
 * a late answer to a request that timed out; it is skipped, not refused. */
#define ET_MB_TXN_STALE 3

/* Why an answer was refused (stats and the log); ET_MB_OK when it was taken. */
enum et_mb_verdict {
	ET_MB_OK = 0,
	ET_MB_EXCEPTION, /* a well-formed exception answer: *ret_exc holds its code */
	ET_MB_TIMEOUT,   /* no complete answer before the deadline */
	ET_MB_BAD_CRC,
	ET_MB_BAD_TID,
	ET_MB_BAD_PROTOCOL,
	ET_MB_BAD_LENGTH, /* MBAP length, or byte count, not what this request's answer has */
	ET_MB_BAD_UNIT,
	ET_MB_BAD_FUNCTION,
	ET_MB_IO, /* send/receive failed or the peer closed: the connection is gone */
};
const char *et_mb_verdict_name(enum et_mb_verdict v);

/* The request ADU into buf (>= 12 bytes); returns its length (TCP 12, RTU 8). */
size_t et_mb_txn_build(const struct et_mb_txn *t, uint8_t *buf);
/*
 * How many bytes the answer has in total, judged from its first `have` bytes: 0 when more
 * bytes are needed to tell, else the total (> have when more must be read), or -1 when the
 * prefix is already impossible (RTU: a function code that is neither the request's nor its
 * exception; TCP: an MBAP length outside 2..254). TCP trusts a plausible MBAP length here so
 * that a wrong one is read in full and refused, leaving the stream in step.
 */
int et_mb_txn_need(const struct et_mb_txn *t, const uint8_t *buf, size_t have);
/*
 * Checks a complete answer (len = what et_mb_txn_need said) against the request and, when
 * good, stores the values: registers into regs[count] (host order), bits into bits[count]
 * (0/1). Order of checks: CRC, transaction id, protocol id, unit id, function, lengths.
 */
enum et_mb_verdict et_mb_txn_check(const struct et_mb_txn *t, const uint8_t *buf, size_t len,
				   uint16_t *regs, uint8_t *bits, int *ret_exc);
/*
 * Sends the request on fd (a connected socket, or a tty in non-blocking mode) and reads the
 * answer until it is complete or timeout_ms have passed since the call (one deadline for
 * sending and the whole answer, on CLOCK_MONOTONIC). TCP: an
 * impossible MBAP length ends the read (the caller drops the connection: the stream is out of
 * step). RTU: bytes no answer can start with are skipped (the tail of a late answer, noise),
 * so they end as ET_MB_TIMEOUT unless a whole answer follows in time.
 */
enum et_mb_verdict et_mb_txn_run(int fd, struct et_mb_txn *t, unsigned timeout_ms,
				 uint16_t *regs, uint8_t *bits, int *ret_exc);

/* CRC-16/MODBUS of buf (sent low byte first). */
uint16_t et_mb_crc16(const uint8_t *buf, size_t len);

#endif
