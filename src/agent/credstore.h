/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Safe files in the agent's data directory: the directory must be ours, 0700 and not a
 * symlink; files are read only when they are regular, ours, not symlinks and not readable by
 * group or others; files are written atomically (temp file in the same directory, fsync,
 * rename, fsync of the directory, mode 0600). The sealed credential envelope
 * (credentials.env) and settings.json live here. Nothing here ever holds plaintext secrets.
 */
#ifndef EDGETRUST_AGENT_CREDSTORE_H
#define EDGETRUST_AGENT_CREDSTORE_H

#include <stddef.h>
#include <stdint.h>

#define ET_CRED_FILE "credentials.env"

/* Creates dir (0700) if missing; refuses a symlink, a foreign owner or group/other access. */
int et_datadir_check(const char *dir, char *errbuf, size_t errlen);

/*
 * Reads dir/name (at most max bytes). Returns 0, 1 when the file does not exist, or -1 with
 * the reason in errbuf (unsafe permissions, symlink, too large, I/O). *ret is malloc'd and
 * NUL-terminated (not counted in *ret_len).
 */
int et_safe_read(const char *dir, const char *name, size_t max, uint8_t **ret, size_t *ret_len,
		 char *errbuf, size_t errlen);

/* Checks a secret file given by path (e.g. bootstrap_password_file): regular, not a symlink,
 * no group/other access. 0 or -1 with errbuf. */
int et_secret_file_check(const char *path, char *errbuf, size_t errlen);

/* Atomically replaces dir/name with data (mode 0600). 0 or -1 with errbuf. */
int et_atomic_write(const char *dir, const char *name, const void *data, size_t len,
		    char *errbuf, size_t errlen);

#endif
