/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Live settings: overrides of a few configuration values that the cloud (settings/desired)
 * or the local operator (`edgetrust config set`, over the control socket) may change while
 * the agent runs. The set of valid keys is given by the defaults object (built from the
 * configuration file); each key has a type and a range. Invalid entries are rejected with a
 * reason and reported; valid ones are persisted atomically in data_dir/settings.json and
 * applied by the caller. Arrival order wins; a cloud update is applied only when its version
 * is newer than the last cloud version applied (so the retained desired message, redelivered
 * at every connect, does not undo a later local change).
 */
#ifndef EDGETRUST_AGENT_SETTINGS_H
#define EDGETRUST_AGENT_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct et_settings;

/*
 * defaults: object of every valid key with its value from the configuration (taken over).
 * Loads data_dir/settings.json if present (entries no longer valid are dropped with a note in
 * errbuf, return 1). 0 ok, 1 ok with a note, -1 error (errbuf).
 */
int et_settings_open(const char *data_dir, cJSON *defaults, struct et_settings **ret,
		     char *errbuf, size_t errlen);
void et_settings_free(struct et_settings *s);

/*
 * A cloud desired document {"v":1,"version":N,"settings":{...}}. Returns 1 when applied (the
 * caller re-applies settings and publishes the report), 0 when stale (version not newer), -1
 * when malformed (errbuf).
 */
int et_settings_desired(struct et_settings *s, const char *json, size_t len, char *errbuf,
			size_t errlen);
/* A local change (object of key: value; null resets to the configured value). 1 if every key
 * was accepted, 0 if some were rejected (see the report), -1 on a persistence error. */
int et_settings_local(struct et_settings *s, const cJSON *patch, char *errbuf, size_t errlen);

/* Effective value (override or default), or NULL for an unknown key. */
const cJSON *et_settings_get(const struct et_settings *s, const char *key);
int64_t et_settings_int(const struct et_settings *s, const char *key, int64_t dflt);
const char *et_settings_str(const struct et_settings *s, const char *key, const char *dflt);

/* {"v":1,"version":N,"settings":{effective},"rejected":{...},"source":"cloud|local"}; malloc'd. */
char *et_settings_report(const struct et_settings *s);
/*
 * Extra validation for keys the settings module cannot judge alone (register maps,
 * `modbus.<device>.points`): returns NULL if valid, else a reason valid until the next call.
 */
typedef const char *(*et_settings_check_fn)(const char *key, const cJSON *v, void *userdata);
void et_settings_set_checker(struct et_settings *s, et_settings_check_fn fn, void *userdata);

/* Checks one key/value: NULL if valid, else a reason (static text). */
const char *et_settings_check(const struct et_settings *s, const char *key, const cJSON *v);

#endif
