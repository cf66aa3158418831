/* SPDX-License-Identifier: Apache-2.0 */
/* Private helpers shared by the library's files: error reporting, logging, wiping. */
#ifndef EDGETRUST_INTERNAL_H
#define EDGETRUST_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "edgetrust/edgetrust.h"

#define ET_HIDDEN __attribute__((visibility("hidden")))

/* Records a detailed message for et_errmsg(), logs it at ERR, and returns err. */
ET_HIDDEN int et_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same without the log record: for failures every caller reports itself (lib/file.c),
 * so that the program's boundary logs them once. */
ET_HIDDEN int et_fail_quiet(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ET_HIDDEN void et_clear_error(void);
ET_HIDDEN void et_log(et_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* read() of a descriptor from et_file_open_read: retries EINTR and does a FIFO's first read
 * (lib/file.c). Bytes read, 0 at the end, or a negative ET_E_* with the message set. */
#include <sys/types.h>
ET_HIDDEN ssize_t et_file_read_some(int fd, void *buf, size_t len, const char *path);

/* Wipe then free; accepts NULL. */
ET_HIDDEN void et_freezero(void *p, size_t len);

#endif
