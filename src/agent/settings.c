/* SPDX-License-Identifier: Apache-2.0 */
/* Live settings: validation, persistence, report (see settings.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credstore.h"
#include "settings.h"

#define SETTINGS_FILE "settings.json"

struct et_settings {
	char *data_dir;
	cJSON *defaults;  /* every valid key */
	cJSON *overrides; /* subset of keys changed from the defaults */
	cJSON *rejected;  /* from the last update */
	int64_t version;  /* last cloud version applied */
	char source[8];   /* "cloud" or "local": who made the last change */
	et_settings_check_fn checker;
	void *checker_ud;
};

void et_settings_set_checker(struct et_settings *s, et_settings_check_fn fn, void *userdata)
{
	s->checker = fn;
	s->checker_ud = userdata;
}

struct range {
	const char *prefix, *suffix;
	int64_t lo, hi;
};

/* Integer keys by pattern: prefix and suffix must match (modbus.<device>.poll_ms). */
static const struct range ranges[] = {
	{ "spool.max_records", "", 100, 100000000 },
	{ "spool.batch", "", 1, 1000 },
	{ "status_interval_s", "", 5, 86400 },
	{ "modbus.", ".poll_ms", 10, 86400000 },
};

static bool matches(const char *key, const struct range *r)
{
	size_t kl = strlen(key), pl = strlen(r->prefix), sl = strlen(r->suffix);

	if (!sl)
		return strcmp(key, r->prefix) == 0;
	return kl > pl + sl && strncmp(key, r->prefix, pl) == 0 &&
	       strcmp(key + kl - sl, r->suffix) == 0;
}

const char *et_settings_check(const struct et_settings *s, const char *key, const cJSON *v)
{
	size_t i;

	if (!cJSON_GetObjectItemCaseSensitive(s->defaults, key))
		return "unknown key";
	if (cJSON_IsNull(v))
		return NULL; /* back to the configured value */
	if (strcmp(key, "log_level") == 0) {
		static const char *const lv[] = { "err", "warning", "info", "debug" };
		if (!cJSON_IsString(v))
			return "must be one of err, warning, info, debug";
		for (i = 0; i < 4; i++)
			if (strcmp(v->valuestring, lv[i]) == 0)
				return NULL;
		return "must be one of err, warning, info, debug";
	}
	{
		static const struct range points = { "modbus.", ".points", 0, 0 };

		if (matches(key, &points)) {
			if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 ||
			    cJSON_GetArraySize(v) > 1024)
				return "must be an array of 1..1024 point objects";
			return s->checker ? s->checker(key, v, s->checker_ud) : NULL;
		}
	}
	for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		if (!matches(key, &ranges[i]))
			continue;
		if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
			return "must be an integer";
		if (v->valuedouble < (double)ranges[i].lo || v->valuedouble > (double)ranges[i].hi) {
			static char buf[96];
			snprintf(buf, sizeof(buf), "out of range %lld..%lld", (long long)ranges[i].lo,
				 (long long)ranges[i].hi);
			return buf;
		}
		return NULL;
	}
	return "not changeable at run time";
}

static int persist(struct et_settings *s, char *errbuf, size_t errlen)
{
	cJSON *doc = cJSON_CreateObject();
	char *text;
	int rc;

	cJSON_AddNumberToObject(doc, "version", (double)s->version);
	cJSON_AddStringToObject(doc, "source", s->source);
	cJSON_AddItemToObject(doc, "settings", cJSON_Duplicate(s->overrides, 1));
	text = cJSON_Print(doc);
	cJSON_Delete(doc);
	if (!text) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	rc = et_atomic_write(s->data_dir, SETTINGS_FILE, text, strlen(text), errbuf, errlen);
	free(text);
	return rc;
}

int et_settings_open(const char *data_dir, cJSON *defaults, struct et_settings **ret,
		     char *errbuf, size_t errlen)
{
	struct et_settings *s = calloc(1, sizeof(*s));
	uint8_t *buf = NULL;
	size_t len;
	cJSON *doc = NULL, *it;
	int rc, result = 0;

	if (!s || !(s->data_dir = strdup(data_dir))) {
		free(s);
		cJSON_Delete(defaults);
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	s->defaults = defaults;
	s->overrides = cJSON_CreateObject();
	s->rejected = cJSON_CreateObject();
	strcpy(s->source, "local");
	rc = et_safe_read(data_dir, SETTINGS_FILE, 1 << 20, &buf, &len, errbuf, errlen);
	if (rc < 0) {
		et_settings_free(s);
		return -1;
	}
	if (rc == 0) {
		doc = cJSON_ParseWithLength((const char *)buf, len);
		if (!doc || !cJSON_IsObject(doc)) {
			snprintf(errbuf, errlen, "%s/%s is not valid JSON; ignoring it", data_dir,
				 SETTINGS_FILE);
			result = 1;
			goto done;
		}
		it = cJSON_GetObjectItemCaseSensitive(doc, "version");
		if (cJSON_IsNumber(it) && it->valuedouble >= 0 && it->valuedouble <= 9007199254740992.0)
			s->version = (int64_t)it->valuedouble;
		it = cJSON_GetObjectItemCaseSensitive(doc, "source");
		if (cJSON_IsString(it) && strcmp(it->valuestring, "cloud") == 0)
			strcpy(s->source, "cloud");
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(doc, "settings"))
		{
			if (!it->string || et_settings_check(s, it->string, it) || cJSON_IsNull(it)) {
				snprintf(errbuf, errlen, "%s/%s: dropping '%s' (no longer valid)", data_dir,
					 SETTINGS_FILE, it->string ? it->string : "?");
				result = 1;
				continue;
			}
			cJSON_AddItemToObject(s->overrides, it->string, cJSON_Duplicate(it, 1));
		}
	}
done:
	cJSON_Delete(doc);
	free(buf);
	*ret = s;
	return result;
}

void et_settings_free(struct et_settings *s)
{
	if (!s)
		return;
	cJSON_Delete(s->defaults);
	cJSON_Delete(s->overrides);
	cJSON_Delete(s->rejected);
	free(s->data_dir);
	free(s);
}

/* Applies a patch; returns the number of rejected keys. */
static int apply(struct et_settings *s, const cJSON *patch)
{
	const cJSON *it;
	int bad = 0;

	cJSON_Delete(s->rejected);
	s->rejected = cJSON_CreateObject();
	cJSON_ArrayForEach(it, patch)
	{
		const char *why = it->string ? et_settings_check(s, it->string, it) : "no key";

		if (why) {
			cJSON_AddStringToObject(s->rejected, it->string ? it->string : "", why);
			bad++;
			continue;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(s->overrides, it->string);
		if (!cJSON_IsNull(it))
			cJSON_AddItemToObject(s->overrides, it->string, cJSON_Duplicate(it, 1));
	}
	return bad;
}

int et_settings_desired(struct et_settings *s, const char *json, size_t len, char *errbuf,
			size_t errlen)
{
	cJSON *doc = cJSON_ParseWithLength(json, len), *v, *set;
	int rc = -1;

	if (!doc || !cJSON_IsObject(doc)) {
		snprintf(errbuf, errlen, "settings/desired is not a JSON object");
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(doc, "version");
	set = cJSON_GetObjectItemCaseSensitive(doc, "settings");
	/* The bound keeps the conversion to int64_t defined (a larger double is undefined
	 * behaviour; on ARM it saturates and would freeze the settings for good). 2^53: every
	 * integer up to it is exact in a double. */
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
	    v->valuedouble != floor(v->valuedouble) || !cJSON_IsObject(set)) {
		snprintf(errbuf, errlen, "settings/desired needs an integer \"version\" (0..2^53) and a \"settings\" object");
		goto out;
	}
	if ((int64_t)v->valuedouble <= s->version) {
		rc = 0;
		goto out;
	}
	apply(s, set);
	s->version = (int64_t)v->valuedouble;
	strcpy(s->source, "cloud");
	rc = persist(s, errbuf, errlen) < 0 ? -1 : 1;
out:
	cJSON_Delete(doc);
	return rc;
}

int et_settings_local(struct et_settings *s, const cJSON *patch, char *errbuf, size_t errlen)
{
	int bad = apply(s, patch);

	strcpy(s->source, "local");
	if (persist(s, errbuf, errlen) < 0)
		return -1;
	return bad ? 0 : 1;
}

const cJSON *et_settings_get(const struct et_settings *s, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(s->overrides, key);

	return v ? v : cJSON_GetObjectItemCaseSensitive(s->defaults, key);
}

int64_t et_settings_int(const struct et_settings *s, const char *key, int64_t dflt)
{
	const cJSON *v = et_settings_get(s, key);

	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : dflt;
}

const char *et_settings_str(const struct et_settings *s, const char *key, const char *dflt)
{
	const cJSON *v = et_settings_get(s, key);

	return cJSON_IsString(v) ? v->valuestring : dflt;
}

char *et_settings_report(const struct et_settings *s)
{
	cJSON *doc = cJSON_CreateObject(), *eff = cJSON_CreateObject();
	const cJSON *it;
	char *text;

	cJSON_ArrayForEach(it, s->defaults)
		cJSON_AddItemToObject(eff, it->string, cJSON_Duplicate(et_settings_get(s, it->string), 1));
	cJSON_AddNumberToObject(doc, "v", 1);
	cJSON_AddNumberToObject(doc, "version", (double)s->version);
	cJSON_AddItemToObject(doc, "settings", eff);
	cJSON_AddItemToObject(doc, "rejected", cJSON_Duplicate(s->rejected, 1));
	cJSON_AddStringToObject(doc, "source", s->source);
	text = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	return text;
}
