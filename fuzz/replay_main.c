/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays fuzz inputs (seed corpus, regressions) through a fuzz target without libFuzzer, so the
 * normal gcc and ASan builds run every past crash as an ordinary test. Arguments are files or
 * directories of files; each file is one input.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path, unsigned *count)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;
	int r = -1;

	if (!f) {
		fprintf(stderr, "replay: cannot open %s\n", path);
		return -1;
	}
	if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0)
		goto out;
	/* An exact-size heap copy, so ASan sees any read past the input's end. */
	buf = malloc(len ? (size_t)len : 1);
	if (!buf || (len && fread(buf, 1, (size_t)len, f) != (size_t)len))
		goto out;
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	(*count)++;
	r = 0;
out:
	if (r < 0)
		fprintf(stderr, "replay: cannot read %s\n", path);
	free(buf);
	fclose(f);
	return r;
}

static int replay_path(const char *path, unsigned *count)
{
	struct dirent **names = NULL;
	struct stat st;
	int n, r = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s does not exist\n", path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path, count);
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		char sub[4096];

		if (names[i]->d_name[0] != '.' &&
		    (size_t)snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name) < sizeof(sub) &&
		    replay_path(sub, count) < 0)
			r = -1;
		free(names[i]);
	}
	free(names);
	return r;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	int r = 0;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++)
		if (replay_path(argv[i], &count) < 0)
			r = 1;
	printf("replayed %u inputs\n", count);
	return r;
}
