/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Secret buffers: page-locked so they never reach swap, excluded from core dumps, and wiped
 * before they are freed. Every plaintext credential in edgetrust lives in one of these.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct et_secret {
	size_t len;  /* visible length */
	size_t cap;  /* mapped length */
	uint8_t *data;
};

void et_freezero(void *p, size_t len)
{
	if (!p)
		return;
	explicit_bzero(p, len);
	free(p);
}

int et_secret_new(size_t len, et_secret **ret)
{
	et_secret *s;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t cap = ((len ? len : 1) + page - 1) / page * page;

	if (!ret || len > (64u << 20))
		return et_fail(ET_E_INVALID, "secret of %zu bytes refused: at most 64 MiB", len);
	s = calloc(1, sizeof(*s));
	if (!s)
		return et_fail(ET_E_NOMEM, "out of memory allocating a secret buffer");
	s->data = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->data == MAP_FAILED) {
		free(s);
		return et_fail(ET_E_NOMEM, "out of memory mapping a secret buffer");
	}
	/* Best effort: an unprivileged process may exceed RLIMIT_MEMLOCK; the wipe still holds. */
	(void)mlock(s->data, cap);
	(void)madvise(s->data, cap, MADV_DONTDUMP);
	s->len = len;
	s->cap = cap;
	*ret = s;
	return 0;
}

uint8_t *et_secret_data(et_secret *s)
{
	return s ? s->data : NULL;
}

size_t et_secret_len(const et_secret *s)
{
	return s ? s->len : 0;
}

void et_secret_truncate(et_secret *s, size_t len)
{
	if (s && len < s->len) {
		explicit_bzero(s->data + len, s->len - len);
		s->len = len;
	}
}

void et_secret_free(et_secret *s)
{
	if (!s)
		return;
	explicit_bzero(s->data, s->cap);
	(void)munlock(s->data, s->cap);
	munmap(s->data, s->cap);
	free(s);
}

int et_secret_read_file(const char *path, size_t max, et_secret **ret)
{
	et_secret *s = NULL;
	size_t used = 0;
	int fd, r;

	if (!path || !ret)
		return et_fail(ET_E_INVALID, "no file given to read a secret from");
	if (strcmp(path, "-") == 0) {
		fd = STDIN_FILENO;
	} else {
		r = et_file_open_read(path, ET_FILE_STREAM, "file", &fd);
		if (r < 0)
			return r;
	}
	r = et_secret_new(max + 1, &s);
	if (r < 0)
		goto out;
	for (;;) {
		ssize_t n = et_file_read_some(fd, et_secret_data(s) + used, max + 1 - used,
					      fd == STDIN_FILENO ? "standard input" : path);
		if (n < 0) {
			r = (int)n;
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > max) {
			r = et_fail(ET_E_TOO_LARGE, "%s holds more than %zu bytes; give a smaller input",
				    path, max);
			goto out;
		}
	}
	et_secret_truncate(s, used);
	*ret = s;
	s = NULL;
	r = 0;
out:
	et_secret_free(s);
	if (fd != STDIN_FILENO)
		close(fd);
	return r;
}
