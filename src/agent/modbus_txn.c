/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One Modbus read transaction with our own framing and one whole-answer deadline (see
 * modbus_txn.h for why libmodbus' own read functions are not used for this).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "modbus_txn.h"

static const uint8_t fcodes[] = {
	[ET_MB_HOLDING] = 3,
	[ET_MB_INPUT] = 4,
	[ET_MB_COIL] = 1,
	[ET_MB_DISCRETE] = 2,
};

const char *et_mb_verdict_name(enum et_mb_verdict v)
{
	static const char *const names[] = {
		[ET_MB_OK] = "ok",
		[ET_MB_EXCEPTION] = "exception",
		[ET_MB_TIMEOUT] = "no complete answer within timeout_ms",
		[ET_MB_BAD_CRC] = "bad CRC",
		[ET_MB_BAD_TID] = "wrong transaction id",
		[ET_MB_BAD_PROTOCOL] = "wrong protocol id",
		[ET_MB_BAD_LENGTH] = "length does not match the request",
		[ET_MB_BAD_UNIT] = "wrong unit id",
		[ET_MB_BAD_FUNCTION] = "wrong function code",
		[ET_MB_IO] = "connection error",
	};

	return (unsigned)v < sizeof(names) / sizeof(names[0]) && names[v] ? names[v] : "?";
}

uint16_t et_mb_crc16(const uint8_t *buf, size_t len)
{
	uint16_t crc = 0xffff;

	for (size_t i = 0; i < len; i++) {
		crc ^= buf[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xa001) : (uint16_t)(crc >> 1);
	}
	return crc;
}

/* Data bytes of a good answer to t. */
static size_t data_bytes(const struct et_mb_txn *t)
{
	return et_mb_table_is_bits(t->r.table) ? ((size_t)t->r.count + 7) / 8 : (size_t)t->r.count * 2;
}

size_t et_mb_txn_build(const struct et_mb_txn *t, uint8_t *buf)
{
	uint8_t *pdu = buf;
	size_t n = 0;

	if (t->transport == ET_MB_TCP) {
		buf[0] = (uint8_t)(t->tid >> 8);
		buf[1] = (uint8_t)t->tid;
		buf[2] = 0;
		buf[3] = 0;
		buf[4] = 0;
		buf[5] = 6; /* unit + the 5-byte PDU */
		pdu = buf + 6;
		n = 6;
	}
	pdu[0] = t->unit;
	pdu[1] = fcodes[t->r.table];
	pdu[2] = (uint8_t)(t->r.address >> 8);
	pdu[3] = (uint8_t)t->r.address;
	pdu[4] = (uint8_t)(t->r.count >> 8);
	pdu[5] = (uint8_t)t->r.count;
	n += 6;
	if (t->transport == ET_MB_RTU) {
		uint16_t crc = et_mb_crc16(buf, n);

		buf[n++] = (uint8_t)crc;
		buf[n++] = (uint8_t)(crc >> 8);
	}
	return n;
}

int et_mb_txn_need(const struct et_mb_txn *t, const uint8_t *buf, size_t have)
{
	uint8_t fc = fcodes[t->r.table];

	if (t->transport == ET_MB_TCP) {
		unsigned len;

		if (have < 6)
			return 0;
		len = (unsigned)buf[4] << 8 | buf[5];
		/* unit + FC at least; unit + FC + byte count + 250 bytes at most (254 per the spec's
		 * 260-byte ADU). 0 and 65535 are the classic desync values. */
		if (len < 2 || len > 254)
			return -1;
		return (int)(6 + len);
	}
	if (have < 2)
		return 0;
	if (buf[1] == (fc | 0x80))
		return 5; /* unit, FC, exception code, CRC */
	if (buf[1] != fc)
		return -1;
	if (have < 3)
		return 0;
	return 3 + buf[2] + 2;
}

enum et_mb_verdict et_mb_txn_check(const struct et_mb_txn *t, const uint8_t *buf, size_t len,
				   uint16_t *regs, uint8_t *bits, int *ret_exc)
{
	uint8_t fc = fcodes[t->r.table];
	size_t want = data_bytes(t);
	const uint8_t *pdu;
	size_t pdu_len;

	*ret_exc = 0;
	if (t->transport == ET_MB_TCP) {
		if (len < 8)
			return ET_MB_BAD_LENGTH;
		if ((buf[0] << 8 | buf[1]) != t->tid)
			return ET_MB_BAD_TID;
		if (buf[2] || buf[3])
			return ET_MB_BAD_PROTOCOL;
		if ((size_t)(buf[4] << 8 | buf[5]) != len - 6)
			return ET_MB_BAD_LENGTH;
		pdu = buf + 6;
		pdu_len = len - 6;
	} else {
		if (len < 5)
			return ET_MB_BAD_LENGTH;
		if (et_mb_crc16(buf, len - 2) != (uint16_t)(buf[len - 2] | buf[len - 1] << 8))
			return ET_MB_BAD_CRC;
		pdu = buf;
		pdu_len = len - 2;
	}
	/* pdu: unit, FC, ... (pdu_len counts the unit byte) */
	if (pdu[0] != t->unit)
		return ET_MB_BAD_UNIT;
	if (pdu[1] == (fc | 0x80)) {
		if (pdu_len != 3)
			return ET_MB_BAD_LENGTH;
		*ret_exc = pdu[2];
		return ET_MB_EXCEPTION;
	}
	if (pdu[1] != fc)
		return ET_MB_BAD_FUNCTION;
	if (pdu_len < 3 || pdu[2] != want || pdu_len != 3 + want)
		return ET_MB_BAD_LENGTH;
	if (et_mb_table_is_bits(t->r.table)) {
		for (size_t i = 0; i < t->r.count; i++)
			bits[i] = (pdu[3 + i / 8] >> (i % 8)) & 1;
	} else {
		for (size_t i = 0; i < t->r.count; i++)
			regs[i] = (uint16_t)(pdu[3 + 2 * i] << 8 | pdu[4 + 2 * i]);
	}
	return ET_MB_OK;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline_ms: 1 ready, 0 deadline passed, -1 error/hang-up. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		int64_t left = deadline_ms - mono_ms();
		struct pollfd p = {.fd = fd, .events = events};
		int rc;

		if (left <= 0)
			return 0;
		rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -1;
		if (rc == 0)
			continue; /* the loop re-checks the deadline */
		if (p.revents & events)
			return 1;
		return -1; /* POLLERR / POLLHUP / POLLNVAL without data */
	}
}

static ssize_t io_send(int fd, enum et_mb_transport tr, const uint8_t *buf, size_t len)
{
	if (tr == ET_MB_TCP)
		return send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	return write(fd, buf, len);
}

static ssize_t io_recv(int fd, enum et_mb_transport tr, uint8_t *buf, size_t len)
{
	if (tr == ET_MB_TCP)
		return recv(fd, buf, len, MSG_DONTWAIT);
	return read(fd, buf, len); /* libmodbus opens the tty with O_NONBLOCK */
}

enum et_mb_verdict et_mb_txn_run(int fd, struct et_mb_txn *t, unsigned timeout_ms,
				 uint16_t *regs, uint8_t *bits, int *ret_exc)
{
	int64_t deadline_ms = mono_ms() + timeout_ms;
	uint8_t req[16], ans[ET_MB_TXN_MAX_ADU];
	size_t n = et_mb_txn_build(t, req), off = 0, have = 0, need = 0;

	*ret_exc = 0;
	if (fd < 0)
		return ET_MB_IO;
	while (off < n) {
		ssize_t w = io_send(fd, t->transport, req + off, n - off);
		int rc;

		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return ET_MB_IO;
		rc = wait_fd(fd, POLLOUT, deadline_ms);
		if (rc <= 0)
			return rc == 0 ? ET_MB_TIMEOUT : ET_MB_IO;
	}
	t->got = 0;
	for (;;) {
		int total = et_mb_txn_need(t, ans, have);
		ssize_t r;
		int rc;

		if (total < 0 && t->transport == ET_MB_TCP)
			return ET_MB_BAD_LENGTH;
		if (total < 0) {
			/* RTU: no answer starts like this; it is the tail of an earlier answer (a
			 * slave still trickling) or line noise. Slide on to the next byte: only a
			 * whole answer to this request, before the deadline, counts. */
			memmove(ans, ans + 1, --have);
			t->got = have;
			continue;
		}
		if (total > 0 && (size_t)total <= have) {
			uint16_t tid = (uint16_t)(ans[0] << 8 | ans[1]);

			if (t->transport == ET_MB_TCP && (uint16_t)(t->tid - tid) >= 1 &&
			    (uint16_t)(t->tid - tid) <= ET_MB_TXN_STALE) {
				have = 0; /* a late answer to an earlier request: read on */
				t->got = 0;
				continue;
			}
			break;
		}
		/* Read no further than this answer: what follows belongs to no request. */
		need = total > 0 ? (size_t)total : (t->transport == ET_MB_TCP ? 6 : 3);
		if (need > sizeof(ans))
			return ET_MB_BAD_LENGTH;
		rc = wait_fd(fd, POLLIN, deadline_ms);
		if (rc == 0)
			return ET_MB_TIMEOUT;
		if (rc < 0)
			return ET_MB_IO;
		r = io_recv(fd, t->transport, ans + have, need - have);
		if (r > 0) {
			have += (size_t)r;
			t->got = have;
			continue;
		}
		if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		return ET_MB_IO; /* 0: the peer closed the connection */
	}
	return et_mb_txn_check(t, ans, have, regs, bits, ret_exc);
}
