/* SPDX-License-Identifier: Apache-2.0 */
/* stderr logger for edgetrust-cloud; also receives libedgetrust's messages. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "edgetrust/edgetrust.h"
#include "log.h"

static char log_instance[64] = "";
static enum cl_level log_max = CL_INFO;

static void lib_log(et_log_level level, const char *msg, void *userdata)
{
	(void)userdata;
	/* Failures come back to us as error codes with et_errmsg(), which we log with context;
	 * the library's own lines are detail for --log-level debug. */
	cl_log(CL_DEBUG, "libedgetrust (%d): %s", (int)level, msg);
}

void cl_log_setup(const char *instance, enum cl_level max)
{
	snprintf(log_instance, sizeof(log_instance), "%s", instance ? instance : "");
	log_max = max;
	et_log_set(lib_log, NULL);
}

int cl_log_parse_level(const char *s, enum cl_level *ret)
{
	static const struct {
		const char *name;
		enum cl_level l;
	} t[] = { { "err", CL_ERR }, { "error", CL_ERR }, { "warning", CL_WARNING },
		  { "info", CL_INFO }, { "debug", CL_DEBUG } };
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(s, t[i].name)) {
			*ret = t[i].l;
			return 0;
		}
	return -1;
}

void cl_log(enum cl_level level, const char *fmt, ...)
{
	static const char *names[] = { [CL_ERR] = "error", [CL_WARNING] = "warning",
				       [CL_INFO] = "info", [CL_DEBUG] = "debug" };
	char buf[2048];
	va_list ap;

	if (level > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One write per line, so lines of concurrent instances sharing a terminal do not mix. */
	if (log_instance[0]) {
		/* serve: a timestamp, for logs written to a file (the journal adds its own too). */
		struct timespec ts;
		struct tm tm;
		char tbuf[32];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(tbuf, sizeof(tbuf), "%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld edgetrust-cloud[%s] %s: %s\n", tbuf, ts.tv_nsec / 1000000L,
			log_instance, names[level] ? names[level] : "log", buf);
	}
	else
		fprintf(stderr, "edgetrust-cloud: %s: %s\n", names[level] ? names[level] : "log", buf);
}
