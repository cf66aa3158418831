/* SPDX-License-Identifier: Apache-2.0 */
/*
 * et-mbprobe: test and benchmark driver for the Modbus poller (built only for tests). Loads an
 * edgetrustd.conf, polls, and prints every reading as one JSON line, then a summary line.
 *
 *   et-mbprobe --config F [--cycles N] [--duration-ms D] [--fast] [--quiet]
 *              [--set-poll-after K DEVICE MS] [--reconfigure-after K F2]
 *
 * A cycle is one et_poller_run_due() call that polled at least one group. --fast does not
 * sleep: the clock jumps to the next due time, so groups are polled back to back.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent_config.h"
#include "modbus_poll.h"

struct probe {
	unsigned long cycle;
	unsigned long readings, ok;
	int quiet;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void print_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

static void on_reading(const struct et_reading *r, void *ud)
{
	struct probe *pr = ud;

	pr->readings++;
	if (r->quality == ET_Q_OK)
		pr->ok++;
	if (pr->quiet)
		return;
	printf("{\"cycle\":%lu,\"device\":", pr->cycle);
	print_json_str(r->device);
	printf(",\"point\":");
	print_json_str(r->point);
	printf(",\"unit\":");
	print_json_str(r->unit);
	printf(",\"quality\":\"%s\",\"exception\":%d,\"ts\":%" PRId64 ",\"value\":",
	       et_quality_name(r->quality), r->exception_code, r->ts_ms);
	if (r->quality == ET_Q_OK)
		printf("%.17g}\n", r->value);
	else
		printf("null}\n");
}

static void on_log(et_log_level level, const char *msg, void *ud)
{
	(void)ud;
	fprintf(stderr, "et-mbprobe: <%d> %s\n", (int)level, msg);
}

static int load(const char *path, struct et_agent_config **ret)
{
	char err[1024];
	int r = et_agent_config_load(path, ret, err, sizeof(err));

	if (r < 0)
		fprintf(stderr, "et-mbprobe: %s\n", err);
	return r;
}

int main(int argc, char **argv)
{
	const char *config = NULL, *reconf = NULL, *set_dev = NULL;
	unsigned long cycles = 1, set_after = 0, reconf_after = 0, set_ms = 0;
	long duration = -1;
	int fast = 0, rc = 1;
	struct probe pr = {0};
	struct et_agent_config *cfg = NULL, *cfg2 = NULL;
	struct et_poller *p = NULL;
	struct et_poller_stats st;
	int64_t start, now;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			config = argv[++i];
		else if (!strcmp(argv[i], "--cycles") && i + 1 < argc)
			cycles = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--duration-ms") && i + 1 < argc)
			duration = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--fast"))
			fast = 1;
		else if (!strcmp(argv[i], "--quiet"))
			pr.quiet = 1;
		else if (!strcmp(argv[i], "--set-poll-after") && i + 3 < argc) {
			set_after = strtoul(argv[++i], NULL, 10);
			set_dev = argv[++i];
			set_ms = strtoul(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--reconfigure-after") && i + 2 < argc) {
			reconf_after = strtoul(argv[++i], NULL, 10);
			reconf = argv[++i];
		} else {
			fprintf(stderr, "usage: et-mbprobe --config F [--cycles N] [--duration-ms D] "
					"[--fast] [--quiet] [--set-poll-after K DEV MS] "
					"[--reconfigure-after K F2]\n");
			return 2;
		}
	}
	if (!config) {
		fprintf(stderr, "et-mbprobe: --config is required\n");
		return 2;
	}
	if (load(config, &cfg) < 0 || (reconf && load(reconf, &cfg2) < 0))
		goto out;
	if (et_poller_new(cfg, &p) < 0) {
		fprintf(stderr, "et-mbprobe: cannot create the poller\n");
		goto out;
	}
	et_poller_set_log(p, on_log, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	start = now = mono_ms();
	/* --duration-ms is real time, also with --fast (whose clock is virtual). */
	while (duration >= 0 ? mono_ms() - start < duration : pr.cycle < cycles) {
		int64_t due = et_poller_next_due_ms(p, now);
		int n;

		if (due > now) {
			if (fast) {
				now = due;
			} else {
				struct timespec ts = {(due - now) / 1000, ((due - now) % 1000) * 1000000};
				while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
					;
				now = mono_ms();
				continue;
			}
		}
		pr.cycle++;
		n = et_poller_run_due(p, now, on_reading, &pr);
		if (n <= 0)
			pr.cycle--;
		if (set_dev && pr.cycle == set_after && n > 0) {
			if (et_poller_set_poll_ms(p, set_dev, (unsigned)set_ms) < 0) {
				fprintf(stderr, "et-mbprobe: set_poll_ms failed\n");
				goto out;
			}
			printf("{\"event\":\"set_poll_ms\",\"cycle\":%lu}\n", pr.cycle);
		}
		if (cfg2 && pr.cycle == reconf_after && n > 0) {
			if (et_poller_reconfigure(p, cfg2) < 0) {
				fprintf(stderr, "et-mbprobe: reconfigure failed\n");
				goto out;
			}
			printf("{\"event\":\"reconfigure\",\"cycle\":%lu}\n", pr.cycle);
		}
		if (!fast)
			now = mono_ms();
	}
	et_poller_get_stats(p, &st);
	printf("{\"summary\":true,\"cycles\":%lu,\"readings\":%lu,\"ok\":%lu,\"requests\":%" PRIu64
	       ",\"failures\":%" PRIu64 ",\"timeouts\":%" PRIu64 ",\"bad_answers\":%" PRIu64
	       ",\"connects\":%" PRIu64 ",\"connect_failures\":%" PRIu64
	       ",\"elapsed_ms\":%" PRId64 "}\n",
	       pr.cycle, pr.readings, pr.ok, st.requests, st.failures, st.timeouts, st.bad_answers,
	       st.connects, st.connect_failures, mono_ms() - start);
	rc = 0;
out:
	et_poller_free(p);
	et_agent_config_free(cfg);
	et_agent_config_free(cfg2);
	return rc;
}
