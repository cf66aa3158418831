/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Device-supplied text: the UTF-8 check every text a device sends must pass before it is stored
 * (src/cloud/proto_data.c), and the one function that makes stored text safe to show the
 * operator (src/cloud/main.c): a device must not write onto the operator's terminal, and the
 * CLI's JSON must be valid UTF-8 whatever an older registry holds.
 */
#ifndef ET_CLOUD_TEXT_H
#define ET_CLOUD_TEXT_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF)
 * without NUL. */
bool text_utf8_ok(const char *s, size_t n);

enum text_mode {
	TEXT_TERMINAL, /* control characters (C0, DEL, C1) and invalid bytes as \xHH, '\' as \\ */
	TEXT_UTF8,     /* invalid bytes as U+FFFD; everything else as it is (for JSON strings) */
};
/* A malloc'd safe copy of s (NULL when s is NULL or out of memory). */
char *text_escape(const char *s, enum text_mode mode);
/* The CLI's text output: s made safe for a terminal, in one of a few rotating static buffers
 * (valid for the next 15 calls), truncated with "..." beyond 1000 bytes; "-" for NULL. */
const char *text_tty(const char *s);
/* Every string and member name in the tree made valid UTF-8 (TEXT_UTF8), before printing. */
void text_json_fix(struct cJSON *j);
/* The CLI's JSON output: the tree fixed as above and printed (formatted), with DEL and the C1
 * controls (which cJSON leaves raw, and terminals obey) written as \u escapes. malloc'd. */
char *text_json_print(struct cJSON *j);

#endif
