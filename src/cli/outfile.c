/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE /* mkostemp */
/*
 * --out: the one output function of every command that writes a file (issue 19). What the
 * path names decides what happens, and nothing that is not a regular file is ever replaced:
 *  - nothing yet, or a regular file: written atomically (temporary file 0600 next to it,
 *    fsync, rename, fsync of the directory);
 *  - a character device, FIFO or socket, itself or at the end of symbolic links (/dev/null,
 *    /dev/stdout, a pipe from <(...)): written into. A FIFO is opened without blocking, so
 *    one with no reader fails at once instead of hanging. A link that ends at our own
 *    standard output or error (/dev/stdout redirected to a file) writes to that descriptor;
 *  - a symbolic link to a regular file or to nothing, a directory, a block device: refused
 *    (CLI_EXIT_OUT_REFUSED), the target untouched. Replacing the link would cut it; writing
 *    through it would let a link planted in a shared directory aim our 0600 secrets at a
 *    file of the link's choosing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes with SIGPIPE ignored, so a reader that went away is an error we report (EPIPE). */
static int write_stream(int fd, const void *data, size_t len)
{
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	int r, e;

	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &old);
	r = write_all(fd, data, len);
	e = errno;
	sigaction(SIGPIPE, &old, NULL);
	errno = e;
	return r;
}

static int refuse(const char *path, const char *what)
{
	fprintf(stderr,
		"edgetrust: --out %s is %s; refusing to write there. Give a regular file or a new "
		"path (written atomically, mode 0600), or a device, FIFO or socket to write into\n",
		path, what);
	return CLI_EXIT_OUT_REFUSED;
}

/* Our standard output or error when st is the file it is open on (/dev/stdout, /dev/fd/2),
 * else -1: written through our own descriptor, whatever it is (a file the shell redirected
 * to, a pipe, a socket under systemd), as the caller's shell set it up. */
static int own_fd(const struct stat *st)
{
	struct stat fst;

	for (int i = STDOUT_FILENO; i <= STDERR_FILENO; i++)
		if (fstat(i, &fst) == 0 && fst.st_dev == st->st_dev && fst.st_ino == st->st_ino)
			return i;
	return -1;
}

/* A Unix socket is connected to, not opened. */
static int open_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Into a character device, FIFO or socket that st (from stat, links followed) describes. */
static int write_into(const char *path, const struct stat *st, const void *data, size_t len)
{
	struct stat fst;
	int fd, fl;

	if (S_ISSOCK(st->st_mode)) {
		fd = open_socket(path);
	} else {
		/* No O_CREAT, no O_TRUNC: this never makes or cuts a file. */
		fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0 && errno == ENXIO && S_ISFIFO(st->st_mode)) {
			fprintf(stderr,
				"edgetrust: --out %s is a FIFO that no program reads; start the "
				"reader first (nothing was written)\n",
				path);
			return CLI_EXIT_IO;
		}
	}
	if (fd < 0) {
		fprintf(stderr, "edgetrust: cannot open --out %s: %s\n", path, strerror(errno));
		return errno == EACCES ? CLI_EXIT_PERMISSION : CLI_EXIT_IO;
	}
	/* The path may have changed since stat(): write only into what we checked for (a
	 * connected socket is a new inode; connect() reaches only a listening socket). */
	if (fstat(fd, &fst) < 0 || (fst.st_mode & S_IFMT) != (st->st_mode & S_IFMT) ||
	    (!S_ISSOCK(st->st_mode) && (fst.st_ino != st->st_ino || fst.st_dev != st->st_dev))) {
		close(fd);
		return refuse(path, "no longer what it was when checked");
	}
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK); /* a slow reader gets everything */
	if (write_stream(fd, data, len) < 0) {
		fprintf(stderr, "edgetrust: cannot write --out %s: %s\n", path, strerror(errno));
		close(fd);
		return CLI_EXIT_IO;
	}
	if (close(fd) < 0 && errno != EINTR) {
		fprintf(stderr, "edgetrust: cannot write --out %s: %s\n", path, strerror(errno));
		return CLI_EXIT_IO;
	}
	return 0;
}

/* A regular file or a new name: temp 0600 in the same directory, fsync, rename, fsync dir. */
static int write_atomic(const char *path, const void *data, size_t len)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const char *slash;
	int fd, dfd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp)) {
		fprintf(stderr, "edgetrust: path too long: %s\n", path);
		return CLI_EXIT_INVALID;
	}
	fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
	if (fd < 0) {
		fprintf(stderr, "edgetrust: cannot create a file next to %s: %s\n", path,
			strerror(errno));
		return errno == EACCES ? CLI_EXIT_PERMISSION : CLI_EXIT_IO;
	}
	if (fchmod(fd, 0600) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		fprintf(stderr, "edgetrust: cannot write %s: %s\n", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return CLI_EXIT_IO;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		fprintf(stderr, "edgetrust: cannot write %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return CLI_EXIT_IO;
	}
	/* The rename is durable only once the directory is. */
	slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		fprintf(stderr, "edgetrust: wrote %s but cannot sync its directory %s: %s\n", path,
			dir, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return CLI_EXIT_IO;
	}
	close(dfd);
	return 0;
}

int cli_write_out(const char *path, const void *data, size_t len)
{
	struct stat lst, st;

	if (!path || strcmp(path, "-") == 0) {
		if (write_stream(STDOUT_FILENO, data, len) < 0) {
			fprintf(stderr, "edgetrust: cannot write to standard output: %s\n",
				strerror(errno));
			return CLI_EXIT_IO;
		}
		return 0;
	}
	if (!*path)
		return refuse("''", "empty");
	if (lstat(path, &lst) < 0) {
		if (errno == ENOENT)
			return write_atomic(path, data, len);
		fprintf(stderr, "edgetrust: cannot use --out %s: %s\n", path, strerror(errno));
		return errno == EACCES ? CLI_EXIT_PERMISSION : CLI_EXIT_IO;
	}
	if (S_ISREG(lst.st_mode))
		return write_atomic(path, data, len);
	if (S_ISLNK(lst.st_mode)) {
		int fd;

		if (stat(path, &st) < 0)
			return refuse(path, "a symbolic link to nothing");
		fd = own_fd(&st);
		if (fd >= 0) {
			if (write_stream(fd, data, len) < 0) {
				fprintf(stderr, "edgetrust: cannot write --out %s: %s\n", path,
					strerror(errno));
				return CLI_EXIT_IO;
			}
			return 0;
		}
		if (S_ISREG(st.st_mode))
			return refuse(path, "a symbolic link to a regular file");
	} else {
		st = lst;
	}
	if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
		return write_into(path, &st, data, len);
	if (S_ISDIR(st.st_mode))
		return refuse(path, S_ISLNK(lst.st_mode) ? "a symbolic link to a directory"
						       : "a directory");
	return refuse(path, S_ISBLK(st.st_mode) ? "a block device" : "not a file we write");
}
