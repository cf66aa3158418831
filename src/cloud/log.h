/* SPDX-License-Identifier: Apache-2.0 */
/* edgetrust-cloud logging: one line per event on stderr, with level and instance name. */
#ifndef ET_CLOUD_LOG_H
#define ET_CLOUD_LOG_H

enum cl_level { CL_ERR = 3, CL_WARNING = 4, CL_INFO = 6, CL_DEBUG = 7 };

void cl_log_setup(const char *instance, enum cl_level max);
int cl_log_parse_level(const char *s, enum cl_level *ret);
void cl_log(enum cl_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
