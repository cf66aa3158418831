/* SPDX-License-Identifier: Apache-2.0 */
/* The bus model (src/agent/modbus_bus.c) without a peer: a serial device that does not exist
 * yields io readings every poll, which fill the bounded queue when nobody drains it; buses
 * come and go with reconfiguration; workers are joined on free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "agent_config.h"
#include "modbus_bus.h"

#define DEV(name, tty)                                                                          \
	"[modbus." name "]\ntransport = rtu\ndevice = /nonexistent/" tty "\nunit_id = 3\n"     \
	"poll_ms = 10\n[point." name ".a]\ntable = holding\naddress = 1\n"                     \
	"[point." name ".b]\ntable = coil\naddress = 2\n[point." name ".c]\ntable = input\n"   \
	"address = 3\n"

static struct et_agent_config *cfg(const char *text)
{
	struct et_agent_config *c = NULL;
	char err[512];

	if (et_agent_config_parse(text, strlen(text), "t.conf", &c, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	return c;
}

struct seen {
	size_t n, io;
};

static void on_reading(const struct et_reading *r, void *ud)
{
	struct seen *s = ud;

	s->n++;
	if (r->quality == ET_Q_IO)
		s->io++;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Waits (up to 20 s) until the queue has dropped readings. */
static void wait_dropped(struct et_buses *b)
{
	struct et_buses_stats st;

	for (int i = 0; i < 2000; i++) {
		et_buses_get_stats(b, &st);
		if (st.queue_dropped > 0)
			return;
		sleep_ms(10);
	}
	fail_msg("the queue never filled");
}

static void test_queue_bound(void **state)
{
	struct et_agent_config *c = cfg(DEV("a", "ttyET0"));
	struct et_buses *b = NULL;
	struct et_buses_stats st;
	struct seen s = {0};

	(void)state;
	assert_int_equal(et_buses_new(c, 0, NULL, NULL, &b), ET_E_INVALID);
	assert_int_equal(et_buses_new(c, 5, NULL, NULL, &b), 0);
	assert_true(et_buses_fd(b) >= 0);
	wait_dropped(b);
	/* Nobody drained: the queue holds its bound, the rest was counted. */
	assert_int_equal(et_buses_drain(b, on_reading, &s), 5);
	assert_int_equal(s.io, 5);
	assert_true(et_buses_take_dropped(b) > 0);
	et_buses_get_stats(b, &st);
	assert_int_equal(st.queue_max, 5);
	assert_int_equal(st.buses, 1);
	assert_true(st.poll.requests == 0); /* the port never opened: no request sent */
	assert_true(st.poll.connect_failures > 0);
	et_buses_free(b);
	et_agent_config_free(c);
}

static void test_reconfigure_and_poll_ms(void **state)
{
	struct et_agent_config *c1 = cfg(DEV("a", "ttyET0"));
	struct et_agent_config *c2 = cfg(DEV("a", "ttyET0") DEV("b", "ttyET1"));
	struct et_agent_config *c0 = cfg("");
	struct et_buses *b = NULL;
	struct et_buses_stats st;
	struct seen s = {0};

	(void)state;
	assert_int_equal(et_buses_new(c1, 1000, NULL, NULL, &b), 0);
	assert_int_equal(et_buses_set_poll_ms(b, "a", 9), ET_E_INVALID);
	assert_int_equal(et_buses_set_poll_ms(b, "nope", 100), ET_E_INVALID);
	assert_int_equal(et_buses_set_poll_ms(b, "a", 20), 0);
	assert_int_equal(et_buses_reconfigure(b, c2), 0);
	et_buses_get_stats(b, &st);
	assert_int_equal(st.buses, 2);
	assert_int_equal(et_buses_set_poll_ms(b, "b", 20), 0);
	sleep_ms(200);
	et_buses_drain(b, on_reading, &s);
	assert_true(s.n > 0);
	assert_int_equal(et_buses_reconfigure(b, c0), 0);
	et_buses_get_stats(b, &st);
	assert_int_equal(st.buses, 0);
	assert_int_equal(et_buses_set_poll_ms(b, "a", 20), ET_E_INVALID);
	sleep_ms(100);
	et_buses_drain(b, on_reading, &s); /* reaps the retired workers */
	et_buses_free(b);
	et_buses_free(NULL);
	et_agent_config_free(c0);
	et_agent_config_free(c1);
	et_agent_config_free(c2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_bound),
		cmocka_unit_test(test_reconfigure_and_poll_ms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
