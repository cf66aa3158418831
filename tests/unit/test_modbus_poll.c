/* SPDX-License-Identifier: Apache-2.0 */
/* Poller API without a peer: scheduling, live poll interval, reconfiguration and the backoff of
 * a device whose serial port does not exist (no network, no simulator). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent_config.h"
#include "modbus_poll.h"

#define RTU_DEV(name, poll)                                                                     \
	"[modbus." name "]\ntransport = rtu\ndevice = /nonexistent/ttyET0\nunit_id = 3\n"      \
	"poll_ms = " poll "\n"

struct seen {
	int n, io;
	char last_point[64];
};

static void on_reading(const struct et_reading *r, void *ud)
{
	struct seen *s = ud;

	s->n++;
	if (r->quality == ET_Q_IO)
		s->io++;
	assert_true(r->value == 0.0);
	assert_int_equal(r->exception_code, 0);
	assert_true(r->ts_ms > 0);
	snprintf(s->last_point, sizeof(s->last_point), "%s.%s", r->device, r->point);
}

static struct et_agent_config *cfg(const char *text)
{
	struct et_agent_config *c = NULL;
	char err[512];

	if (et_agent_config_parse(text, strlen(text), "t.conf", &c, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	return c;
}

static void test_api_edges(void **state)
{
	struct et_agent_config *c = cfg("");
	struct et_poller *p = NULL;
	struct et_poller_stats st;

	(void)state;
	assert_int_equal(et_poller_new(NULL, &p), ET_E_INVALID);
	assert_int_equal(et_poller_new(c, NULL), ET_E_INVALID);
	assert_null(p);
	et_poller_free(NULL);
	assert_int_equal(et_poller_run_due(NULL, 0, on_reading, NULL), ET_E_INVALID);
	assert_int_equal(et_poller_new(c, &p), 0);
	/* nothing configured: nothing due for a day */
	assert_true(et_poller_next_due_ms(p, 5000) == 5000 + 86400000);
	assert_int_equal(et_poller_run_due(p, 5000, on_reading, NULL), 0);
	assert_int_equal(et_poller_set_poll_ms(p, "x", 100), ET_E_INVALID);
	et_poller_get_stats(p, &st);
	assert_true(st.requests == 0 && st.connects == 0);
	et_poller_free(p);
	et_agent_config_free(c);
}

static void test_schedule_and_backoff(void **state)
{
	struct et_agent_config *c =
		cfg(RTU_DEV("a", "100") "[point.a.x]\ntable = holding\naddress = 1\n"
					"[point.a.y]\ntable = coil\naddress = 9\n"
					"[modbus.empty]\ntransport = tcp\nhost = 127.0.0.1\n");
	struct et_agent_config *c2 =
		cfg(RTU_DEV("a", "100") "[point.a.z]\ntable = input\naddress = 4\ntype = f32\n"
			RTU_DEV("b", "1000") "[point.b.w]\ntable = discrete\naddress = 0\n");
	struct et_poller *p = NULL;
	struct et_poller_stats st;
	struct seen s = {0};

	(void)state;
	assert_int_equal(et_poller_new(c, &p), 0);
	et_agent_config_free(c); /* the poller keeps its own copy */
	/* a device with no points is never due; a new group is due at once */
	assert_true(et_poller_next_due_ms(p, 1000) == 1000);
	assert_int_equal(et_poller_run_due(p, 1000, on_reading, &s), 1);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.io, 2); /* the port does not exist */
	et_poller_get_stats(p, &st);
	assert_true(st.connect_failures == 1 && st.requests == 0);
	assert_true(et_poller_next_due_ms(p, 1001) == 1100);
	assert_int_equal(et_poller_run_due(p, 1099, on_reading, &s), 0);
	/* during the backoff (250 ms) no new attempt, points still reported */
	assert_int_equal(et_poller_run_due(p, 1100, on_reading, &s), 1);
	assert_int_equal(s.io, 4);
	et_poller_get_stats(p, &st);
	assert_true(st.connect_failures == 1);
	/* after it, one more attempt; the next backoff doubles (500 ms) */
	assert_int_equal(et_poller_run_due(p, 1300, on_reading, &s), 1);
	et_poller_get_stats(p, &st);
	assert_true(st.connect_failures == 2);
	assert_int_equal(et_poller_run_due(p, 1400, on_reading, &s), 1);
	assert_int_equal(et_poller_run_due(p, 1700, on_reading, &s), 1);
	et_poller_get_stats(p, &st);
	assert_true(st.connect_failures == 2);
	assert_int_equal(et_poller_run_due(p, 1800, on_reading, &s), 1);
	et_poller_get_stats(p, &st);
	assert_true(st.connect_failures == 3);
	/* overrun: missed cycles are skipped, not burst */
	assert_int_equal(et_poller_run_due(p, 5000, on_reading, &s), 1);
	assert_true(et_poller_next_due_ms(p, 5000) == 5100);

	/* live poll interval */
	assert_int_equal(et_poller_set_poll_ms(p, "a", 9), ET_E_INVALID);
	assert_int_equal(et_poller_set_poll_ms(p, "a", 86400001), ET_E_INVALID);
	assert_int_equal(et_poller_set_poll_ms(p, "nope", 100), ET_E_INVALID);
	assert_int_equal(et_poller_set_poll_ms(p, "a", 20), 0);
	assert_true(et_poller_next_due_ms(p, 5000) == 5020);

	/* new register map: a keeps its schedule (with c2's poll_ms), b is new and due now */
	assert_int_equal(et_poller_reconfigure(p, c2), 0);
	et_agent_config_free(c2);
	assert_true(et_poller_next_due_ms(p, 5001) == 5001);
	s.n = 0;
	assert_int_equal(et_poller_run_due(p, 5001, on_reading, &s), 1);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.last_point, "b.w");
	assert_true(et_poller_next_due_ms(p, 5002) == 5100);
	s.n = 0;
	assert_int_equal(et_poller_run_due(p, 5100, on_reading, &s), 1);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.last_point, "a.z");
	/* a NULL callback is allowed */
	assert_int_equal(et_poller_run_due(p, 9999, NULL, NULL), 2);
	et_poller_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api_edges),
		cmocka_unit_test(test_schedule_and_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
