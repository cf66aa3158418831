/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: live settings documents (src/agent/settings.c), i.e. the retained
 * et/v1/<serial>/settings/desired message any cloud-side writer can publish, and local patches.
 * Checks: no crash or leak, and the report is always valid JSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char dir[] = "/tmp/et-fuzz-settings-XXXXXX";
static char file[sizeof(dir) + 32];

static void cleanup(void)
{
	unlink(file);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (!mkdtemp(dir))
		abort();
	snprintf(file, sizeof(file), "%s/settings.json", dir);
	atexit(cleanup);
	return 0;
}

static cJSON *defaults(void)
{
	cJSON *d = cJSON_CreateObject();

	cJSON_AddStringToObject(d, "log_level", "info");
	cJSON_AddNumberToObject(d, "spool.max_records", 100000);
	cJSON_AddNumberToObject(d, "spool.batch", 100);
	cJSON_AddNumberToObject(d, "status_interval_s", 60);
	cJSON_AddNumberToObject(d, "modbus.plc1.poll_ms", 1000);
	return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct et_settings *s = NULL;
	char err[512], *report;
	cJSON *patch, *check;

	unlink(file); /* every input starts from the configured values */
	if (et_settings_open(dir, defaults(), &s, err, sizeof(err)) < 0)
		abort();
	if (size && data[0] == 'L') {
		patch = cJSON_ParseWithLength((const char *)data + 1, size - 1);
		if (cJSON_IsObject(patch))
			et_settings_local(s, patch, err, sizeof(err));
		cJSON_Delete(patch);
	} else {
		et_settings_desired(s, (const char *)data, size, err, sizeof(err));
	}
	report = et_settings_report(s);
	if (report) {
		check = cJSON_Parse(report);
		if (!cJSON_IsObject(check))
			abort();
		cJSON_Delete(check);
		free(report);
	}
	(void)et_settings_int(s, "spool.batch", 0);
	(void)et_settings_str(s, "log_level", "");
	et_settings_free(s);
	return 0;
}
