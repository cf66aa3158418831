/* SPDX-License-Identifier: Apache-2.0 */
/* UTF-8 checking and escaping of device-supplied text (see text.h). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), 0 when there is none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool text_utf8_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t k = p[i] ? utf8_seq(p + i, n - i) : 0;
		if (!k)
			return false;
		i += k;
	}
	return true;
}

char *text_escape(const char *s, enum text_mode mode)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, o = 0;
	char *out;

	if (!s)
		return NULL;
	n = strlen(s);
	out = malloc(n * 4 + 1); /* worst case: every byte as \xHH */
	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(p + i, n - i);
		uint32_t c2 = k == 2 ? ((uint32_t)(p[i] & 0x1f) << 6 | (p[i + 1] & 0x3f)) : 0;
		if (mode == TEXT_UTF8) {
			if (!k) {
				memcpy(out + o, "\xef\xbf\xbd", 3); /* U+FFFD */
				o += 3;
				i++;
			} else {
				memcpy(out + o, p + i, k);
				o += k;
				i += k;
			}
			continue;
		}
		if (!k || p[i] < 0x20 || p[i] == 0x7f || (c2 >= 0x80 && c2 <= 0x9f)) {
			size_t m = k ? k : 1; /* a C1 control is two bytes: both shown */
			for (size_t j = 0; j < m; j++)
				o += (size_t)sprintf(out + o, "\\x%02x", p[i + j]);
			i += m;
		} else if (p[i] == '\\') {
			memcpy(out + o, "\\\\", 2);
			o += 2;
			i++;
		} else {
			memcpy(out + o, p + i, k);
			o += k;
			i += k;
		}
	}
	out[o] = '\0';
	return out;
}

const char *text_tty(const char *s)
{
	enum { NBUF = 16, MAX = 1000 };
	static char bufs[NBUF][MAX + 8];
	static unsigned next;
	char *b = bufs[next++ % NBUF], *e;

	if (!s)
		return "-";
	e = text_escape(s, TEXT_TERMINAL);
	if (!e)
		return "?";
	if (strlen(e) > MAX) {
		size_t cut = MAX;
		/* never cut inside a UTF-8 sequence or an \xHH escape */
		while (cut > 0 && ((unsigned char)e[cut] & 0xc0) == 0x80)
			cut--;
		for (size_t k = 1; k <= 3 && cut >= k; k++)
			if (e[cut - k] == '\\') {
				cut -= k;
				break;
			}
		snprintf(b, MAX + 8, "%.*s...", (int)cut, e);
	} else {
		snprintf(b, MAX + 8, "%s", e);
	}
	free(e);
	return b;
}

static void fix_str(char **s)
{
	if (!*s || text_utf8_ok(*s, strlen(*s)))
		return;
	char *f = text_escape(*s, TEXT_UTF8);
	if (!f)
		return;
	/* cJSON allocates with the default allocator (main.c sets no hooks) */
	free(*s);
	*s = f;
}

void text_json_fix(cJSON *j)
{
	for (; j; j = j->next) {
		if (j->string && !(j->type & cJSON_StringIsConst))
			fix_str(&j->string);
		if (cJSON_IsString(j) && !(j->type & cJSON_IsReference))
			fix_str(&j->valuestring);
		if (j->child)
			text_json_fix(j->child);
	}
}

char *text_json_print(cJSON *j)
{
	char *t, *out;
	size_t o = 0;

	text_json_fix(j);
	t = cJSON_Print(j);
	if (!t)
		return NULL;
	out = malloc(strlen(t) * 3 + 1); /* 2 bytes become 6 at most */
	if (!out) {
		free(t);
		return NULL;
	}
	/* Outside strings JSON text is ASCII without DEL, so these bytes are inside strings. */
	for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
		if (*p == 0x7f) {
			o += (size_t)sprintf(out + o, "\\u007f");
		} else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			o += (size_t)sprintf(out + o, "\\u%04x", p[1]);
			p++;
		} else {
			out[o++] = (char)*p;
		}
	}
	out[o] = '\0';
	free(t);
	return out;
}
