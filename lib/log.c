/* SPDX-License-Identifier: Apache-2.0 */
/* The library never prints: messages go to the callback the program installed, or nowhere. */
#include <stdio.h>

#include "internal.h"

static et_log_fn log_fn;
static void *log_userdata;

void et_log_set(et_log_fn fn, void *userdata)
{
	log_fn = fn;
	log_userdata = userdata;
}

void et_log(et_log_level level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (!log_fn)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_fn(level, buf, log_userdata);
}
