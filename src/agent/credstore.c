/* SPDX-License-Identifier: Apache-2.0 */
/* Safe, atomic files in the data directory (see credstore.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "credstore.h"
#include "edgetrust/edgetrust.h"

int et_datadir_check(const char *dir, char *errbuf, size_t errlen)
{
	struct stat st;

	if (lstat(dir, &st) < 0) {
		if (errno != ENOENT || mkdir(dir, 0700) < 0 || lstat(dir, &st) < 0) {
			snprintf(errbuf, errlen, "data_dir %s: %s (create it, owned by the agent's user, mode 0700)",
				 dir, strerror(errno));
			return -1;
		}
	}
	if (S_ISLNK(st.st_mode)) {
		snprintf(errbuf, errlen, "data_dir %s is a symlink; refusing it (use a real directory, mode 0700)", dir);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(errbuf, errlen, "data_dir %s is not a directory", dir);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(errbuf, errlen, "data_dir %s is owned by uid %u, not by us (uid %u); chown it",
			 dir, (unsigned)st.st_uid, (unsigned)geteuid());
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(errbuf, errlen, "data_dir %s has mode %03o; it must be 0700 (chmod 0700 %s)", dir,
			 (unsigned)(st.st_mode & 0777), dir);
		return -1;
	}
	return 0;
}

static int check_fd(int fd, const char *what, char *errbuf, size_t errlen, struct stat *st)
{
	if (fstat(fd, st) < 0) {
		snprintf(errbuf, errlen, "%s: %s", what, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(errbuf, errlen, "%s is not a regular file", what);
		return -1;
	}
	if (st->st_uid != geteuid()) {
		snprintf(errbuf, errlen, "%s is owned by uid %u, not by us (uid %u); refusing it", what,
			 (unsigned)st->st_uid, (unsigned)geteuid());
		return -1;
	}
	if (st->st_mode & 077) {
		snprintf(errbuf, errlen, "%s has mode %03o; it must not be readable by group or others (chmod 0600 %s)",
			 what, (unsigned)(st->st_mode & 0777), what);
		return -1;
	}
	return 0;
}

/* The one opener of files we read (lib/file.c): never blocks on a FIFO, refuses a symlink
 * and anything but a regular file. -1 with errno of open() (ENOENT: absent) and errbuf. */
static int open_nofollow(const char *path, char *errbuf, size_t errlen)
{
	int fd = -1;

	if (et_file_open_read(path, ET_FILE_NOFOLLOW, "file", &fd) < 0) {
		int e = errno;

		snprintf(errbuf, errlen, "%s", et_errmsg());
		errno = e;
		return -1;
	}
	return fd;
}

int et_secret_file_check(const char *path, char *errbuf, size_t errlen)
{
	struct stat st;
	int fd = open_nofollow(path, errbuf, errlen), rc;

	if (fd < 0)
		return -1;
	rc = check_fd(fd, path, errbuf, errlen, &st);
	close(fd);
	return rc;
}

int et_safe_read(const char *dir, const char *name, size_t max, uint8_t **ret, size_t *ret_len,
		 char *errbuf, size_t errlen)
{
	char path[4096];
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd, rc = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	/* Absent is a normal state (not yet registered), not a failure to report. */
	if (lstat(path, &st) < 0 && errno == ENOENT)
		return 1;
	fd = open_nofollow(path, errbuf, errlen);
	if (fd < 0)
		return errno == ENOENT ? 1 : -1;
	if (check_fd(fd, path, errbuf, errlen, &st) < 0)
		goto out;
	if ((size_t)st.st_size > max) {
		snprintf(errbuf, errlen, "%s is %lld bytes; at most %zu expected", path,
			 (long long)st.st_size, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		snprintf(errbuf, errlen, "out of memory reading %s", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(errbuf, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "shorter than expected");
			goto out;
		}
		got += (size_t)n;
	}
	buf[got] = 0;
	*ret = buf;
	*ret_len = got;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

int et_atomic_write(const char *dir, const char *name, const void *data, size_t len,
		    char *errbuf, size_t errlen)
{
	char tmp[4096], path[4096];
	const uint8_t *p = data;
	int fd = -1, dfd = -1, rc = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		snprintf(errbuf, errlen, "creating a temporary file in %s: %s", dir, strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0600) < 0)
		goto io;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto io;
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0)
		goto io;
	if (close(fd) < 0) {
		fd = -1;
		goto io;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto io;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		snprintf(errbuf, errlen, "syncing %s: %s", dir, strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
io:
	snprintf(errbuf, errlen, "writing %s: %s", path, strerror(errno));
	unlink(tmp);
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return rc;
}
