/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mbserver: a minimal Modbus server on libmodbus's server API, for benchmarks only (pymodbus
 * is too slow to measure a C master). Holding register a = a & 0xffff, input register
 * a = (1000 + a) & 0xffff, coil a = a odd, discrete input a = a % 3 == 0; unit 1.
 *
 *   mbserver --tcp PORT         serves one client at a time, forever
 *   mbserver --rtu TTY [--baud B]
 *
 * Prints "READY" when serving; on SIGTERM prints "requests N" and exits.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modbus/modbus.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	const char *tty = NULL;
	int port = -1, baud = 19200, listen_fd = -1, rc = 1;
	unsigned long requests = 0;
	modbus_mapping_t *map = NULL;
	modbus_t *ctx = NULL;
	uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH > MODBUS_RTU_MAX_ADU_LENGTH
			      ? MODBUS_TCP_MAX_ADU_LENGTH
			      : MODBUS_RTU_MAX_ADU_LENGTH];
	struct sigaction sa;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--tcp") && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rtu") && i + 1 < argc)
			tty = argv[++i];
		else if (!strcmp(argv[i], "--baud") && i + 1 < argc)
			baud = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: mbserver --tcp PORT | --rtu TTY [--baud B]\n");
			return 2;
		}
	}
	if ((port <= 0) == (tty == NULL)) {
		fprintf(stderr, "mbserver: give exactly one of --tcp PORT, --rtu TTY\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term; /* no SA_RESTART: a blocked receive returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	map = modbus_mapping_new(65535, 65535, 65535, 65535);
	if (!map) {
		fprintf(stderr, "mbserver: out of memory\n");
		goto out;
	}
	for (int a = 0; a < 65535; a++) {
		map->tab_registers[a] = (uint16_t)a;
		map->tab_input_registers[a] = (uint16_t)(1000 + a);
		map->tab_bits[a] = (uint8_t)(a & 1);
		map->tab_input_bits[a] = (uint8_t)(a % 3 == 0);
	}
	ctx = tty ? modbus_new_rtu(tty, baud, 'N', 8, 1) : modbus_new_tcp("127.0.0.1", port);
	if (!ctx) {
		fprintf(stderr, "mbserver: %s\n", modbus_strerror(errno));
		goto out;
	}
	modbus_set_slave(ctx, 1);
	if (tty) {
		if (modbus_connect(ctx) < 0) {
			fprintf(stderr, "mbserver: %s: %s\n", tty, modbus_strerror(errno));
			goto out;
		}
	} else {
		listen_fd = modbus_tcp_listen(ctx, 1);
		if (listen_fd < 0) {
			fprintf(stderr, "mbserver: listen on %d: %s\n", port, modbus_strerror(errno));
			goto out;
		}
	}
	printf("READY\n");
	fflush(stdout);
	while (!stop) {
		if (!tty && modbus_tcp_accept(ctx, &listen_fd) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "mbserver: accept: %s\n", modbus_strerror(errno));
			goto out;
		}
		while (!stop) {
			int n = modbus_receive(ctx, query);
			if (n == 0)
				continue; /* RTU: request for another unit */
			if (n < 0) {
				if (tty && !stop && errno != EINTR && errno != EBADF)
					continue; /* garbled frame on the line */
				break;
			}
			requests++;
			modbus_reply(ctx, query, n, map);
		}
		if (!tty)
			modbus_close(ctx);
		if (tty)
			break;
	}
	printf("requests %lu\n", requests);
	rc = 0;
out:
	if (listen_fd >= 0)
		close(listen_fd);
	if (ctx) {
		modbus_close(ctx);
		modbus_free(ctx);
	}
	modbus_mapping_free(map);
	return rc;
}
