/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading the files a program is given (configuration, inputs, password files) without ever
 * blocking in open(): the one opener and reader of edgetrust's CLI, agent and library. A FIFO
 * named as a configuration file would otherwise hold open() until a writer appears, with
 * SIGTERM blocked in edgetrustd's start-up (finding 13 of issue 10). Failures are recorded
 * for et_errmsg() but not logged: every caller reports them, once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static const char *type_name(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a named pipe (FIFO)";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISLNK(m))
		return "a symbolic link";
	return "not a regular file";
}

int et_file_open_read(const char *path, unsigned flags, const char *what, int *ret_fd)
{
	struct stat st;
	int fd, fl, r;

	et_clear_error();
	if (!path || !*path || !ret_fd || (flags & ~(ET_FILE_STREAM | ET_FILE_NOFOLLOW)))
		return et_fail_quiet(ET_E_INVALID, "et_file_open_read: no path, or unknown flags");
	if (!what)
		what = "file";
	/* O_NONBLOCK: open() of a FIFO returns at once instead of waiting for a writer. */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
				(flags & ET_FILE_NOFOLLOW ? O_NOFOLLOW : 0));
	if (fd < 0) {
		int e = errno;

		if (e == ELOOP && (flags & ET_FILE_NOFOLLOW))
			r = et_fail_quiet(ET_E_IO, "%s %s is a symlink; refusing it (give the file itself)",
				    what, path);
		else
			r = et_fail_quiet(e == EACCES ? ET_E_PERMISSION : ET_E_IO,
				    "cannot open %s %s: %s; check the path and its permissions",
				    what, path, strerror(e));
		errno = e; /* callers may tell a missing file (ENOENT) apart */
		return r;
	}
	if (fstat(fd, &st) < 0) {
		int e = errno;

		close(fd);
		return et_fail_quiet(ET_E_IO, "cannot read %s %s: %s", what, path, strerror(e));
	}
	if (!S_ISREG(st.st_mode) &&
	    !((flags & ET_FILE_STREAM) && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)))) {
		close(fd);
		return et_fail_quiet(ET_E_IO, "%s %s is %s; it must be a regular file%s", what, path,
			       type_name(st.st_mode),
			       flags & ET_FILE_STREAM ? ", a pipe or a character device" : "");
	}
	/* A FIFO stays non-blocking until its first read (et_file_read_some); everything else
	 * reads blocking from here. */
	if (!S_ISFIFO(st.st_mode)) {
		fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
			int e = errno;

			close(fd);
			return et_fail_quiet(ET_E_IO, "cannot read %s %s: %s", what, path, strerror(e));
		}
	}
	*ret_fd = fd;
	return 0;
}

ssize_t et_file_read_some(int fd, void *buf, size_t len, const char *path)
{
	int fl = fcntl(fd, F_GETFL);
	ssize_t n;

	if (fl >= 0 && (fl & O_NONBLOCK)) {
		/* The first read of a FIFO: data, a writer that has not written yet (EAGAIN), or
		 * no writer at all (0), which would read as an empty input. */
		do
			n = read(fd, buf, len);
		while (n < 0 && errno == EINTR);
		if (n == 0 && len)
			return et_fail_quiet(ET_E_IO, "%s is a named pipe (FIFO) that no program writes "
				       "into; start the writer first", path);
		if (fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
			return et_fail_quiet(ET_E_IO, "cannot read %s: %s", path, strerror(errno));
		if (n >= 0)
			return n;
		if (errno != EAGAIN)
			return et_fail_quiet(ET_E_IO, "cannot read %s: %s", path, strerror(errno));
	}
	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return et_fail_quiet(ET_E_IO, "cannot read %s: %s", path, strerror(errno));
	return n;
}

int et_file_read(const char *path, unsigned flags, const char *what, size_t max,
		 uint8_t **ret, size_t *ret_len)
{
	uint8_t *buf = NULL, *nbuf;
	size_t len = 0, cap;
	struct stat st;
	int fd = -1, r;

	if (!ret || !ret_len)
		return et_fail_quiet(ET_E_INVALID, "et_file_read: NULL result");
	r = et_file_open_read(path, flags, what, &fd);
	if (r < 0)
		return r;
	if (!what)
		what = "file";
	/* Sized to the file, not to the limit: edgetrustd fills every allocation (M_PERTURB),
	 * so a buffer of max bytes would be max bytes of its resident memory. One byte more
	 * to see growth. */
	cap = 4096;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		cap = (uint64_t)st.st_size > max ? max + 1 : (size_t)st.st_size + 1;
	for (;;) {
		ssize_t n;

		if (len == cap || !buf) {
			if (buf)
				cap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
			nbuf = realloc(buf, cap + 1);
			if (!nbuf) {
				r = et_fail_quiet(ET_E_NOMEM, "out of memory reading %s %s", what, path);
				goto out;
			}
			buf = nbuf;
		}
		n = et_file_read_some(fd, buf + len, cap - len, path);
		if (n < 0) {
			r = (int)n;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			r = et_fail_quiet(ET_E_TOO_LARGE, "%s %s holds more than %zu bytes; give a smaller "
				    "one", what, path, max);
			goto out;
		}
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	buf = NULL;
	r = 0;
out:
	close(fd);
	free(buf);
	return r;
}
