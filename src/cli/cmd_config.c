/* SPDX-License-Identifier: Apache-2.0 */
/*
 * edgetrust config get|set|list: the local side of the agent's live settings. Talks to the
 * running edgetrustd over its control socket <data_dir>/agent.sock (mode 0600, in the 0700
 * data directory, so only the agent's user and root get in). The agent validates, persists,
 * applies and reports the change to the cloud with "source": "local" (docs/edgetrustd.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"

enum {
	OPT_DATA_DIR = CLI_OPT_FIRST_OWN,
};

#define DEFAULT_DATA_DIR "/data/edgetrust"

static int on_opt(int val, const char *arg, void *userdata)
{
	if (val != OPT_DATA_DIR)
		return CLI_EXIT_INTERNAL;
	*(const char **)userdata = arg;
	return 0;
}

static const char *str_or(const char *s, const char *dflt)
{
	return s ? s : dflt;
}

/* One request, one JSON reply. 0 and *ret, or an exit code (message printed). */
static int call(const char *data_dir, cJSON *req, cJSON **ret)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 10};
	char *text = cJSON_PrintUnformatted(req), *buf = NULL;
	size_t len = 0, cap = 0;
	int fd = -1, rc = CLI_EXIT_IO;

	if (!text)
		return CLI_EXIT_INTERNAL;
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/agent.sock", data_dir) >=
	    sizeof(sa.sun_path)) {
		fprintf(stderr, "edgetrust: --data-dir path too long\n");
		rc = CLI_EXIT_USAGE;
		goto out;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "edgetrust: cannot reach edgetrustd at %s: %s; is it running, and is "
				"--data-dir its data_dir? (run as the agent's user or root)\n",
			sa.sun_path, strerror(errno));
		rc = errno == EACCES ? CLI_EXIT_PERMISSION : CLI_EXIT_IO;
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (send(fd, text, strlen(text), MSG_NOSIGNAL) < 0 || send(fd, "\n", 1, MSG_NOSIGNAL) < 0) {
		fprintf(stderr, "edgetrust: sending to edgetrustd: %s\n", strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (len + 4096 > cap) {
			char *nb;

			/* Checked before realloc: a refused answer must leave buf the one block
			 * `out` frees (the old code could free the moved block twice). */
			if (cap > (4u << 20)) {
				fprintf(stderr, "edgetrust: edgetrustd's answer is larger than 4 MiB; "
						"refused\n");
				rc = CLI_EXIT_INTERNAL;
				goto out;
			}
			nb = realloc(buf, cap + 65536);
			if (!nb) {
				fprintf(stderr, "edgetrust: out of memory reading edgetrustd's answer\n");
				rc = CLI_EXIT_INTERNAL;
				goto out;
			}
			buf = nb;
			cap += 65536;
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0) {
			fprintf(stderr, "edgetrust: reading from edgetrustd: %s\n", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret = cJSON_ParseWithLength(buf ? buf : "", len);
	if (!*ret) {
		fprintf(stderr, "edgetrust: edgetrustd sent an answer that is not JSON\n");
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(text);
	return rc;
}

static void print_value(const cJSON *v)
{
	char *s;

	if (cJSON_IsString(v)) {
		printf("%s", v->valuestring);
		return;
	}
	s = cJSON_PrintUnformatted(v);
	printf("%s", s ? s : "?");
	free(s);
}

/* KEY=VALUE: VALUE as a JSON number, null or string (integers stay integers). */
static cJSON *parse_value(const char *s)
{
	char *end;
	double d;

	if (strcmp(s, "null") == 0 || strcmp(s, "default") == 0)
		return cJSON_CreateNull();
	if (*s) {
		d = strtod(s, &end);
		if (!*end)
			return cJSON_CreateNumber(d);
	}
	return cJSON_CreateString(s);
}

static int print_report(struct cli *cli, const cJSON *rep)
{
	const cJSON *it;

	if (cli->json) {
		char *s = cJSON_Print(rep);
		printf("%s\n", s ? s : "{}");
		free(s);
		return 0;
	}
	printf("# version %g, last change from %s\n",
	       cJSON_GetNumberValue(cJSON_GetObjectItem(rep, "version")),
	       str_or(cJSON_GetStringValue(cJSON_GetObjectItem(rep, "source")), "?"));
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(rep, "settings"))
	{
		printf("%s = ", it->string);
		print_value(it);
		printf("\n");
	}
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(rep, "rejected"))
		printf("# rejected %s: %s\n", it->string, str_or(cJSON_GetStringValue(it), "?"));
	return 0;
}

static int run(struct cli *cli, int argc, char **argv, const char *op, int min, int max)
{
	static const struct option opts[] = {
		{"data-dir", required_argument, NULL, OPT_DATA_DIR},
		{0},
	};
	const char *data_dir = DEFAULT_DATA_DIR;
	cJSON *req = NULL, *res = NULL, *set;
	const cJSON *ok, *err;
	int rc, first, i;

	const struct cli_args args = {argv[0], opts, NULL, on_opt, min, max};
	rc = cli_begin(cli, &args, &data_dir, argc, argv, &first);
	if (rc)
		return rc;
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "op", op);
	if (strcmp(op, "get") == 0)
		cJSON_AddStringToObject(req, "key", argv[first]);
	if (strcmp(op, "set") == 0) {
		set = cJSON_AddObjectToObject(req, "settings");
		for (i = first; i < argc; i++) {
			const char *eq = strchr(argv[i], '=');
			char key[256];

			if (!eq || eq == argv[i] || (size_t)(eq - argv[i]) >= sizeof(key)) {
				cJSON_Delete(req);
				return cli_usage_error(argv[0], "expected KEY=VALUE, got '%s'", argv[i]);
			}
			memcpy(key, argv[i], (size_t)(eq - argv[i]));
			key[eq - argv[i]] = 0;
			cJSON_AddItemToObject(set, key, parse_value(eq + 1));
		}
	}
	rc = call(data_dir, req, &res);
	if (rc)
		goto out;
	ok = cJSON_GetObjectItem(res, "ok");
	err = cJSON_GetObjectItem(res, "error");
	if (strcmp(op, "get") == 0) {
		if (!cJSON_IsTrue(ok)) {
			fprintf(stderr, "edgetrust: %s: %s\n", argv[first],
				str_or(cJSON_GetStringValue(err), "unknown key"));
			rc = CLI_EXIT_INVALID;
			goto out;
		}
		print_value(cJSON_GetObjectItem(res, "value"));
		printf("\n");
		goto out;
	}
	if (cJSON_GetObjectItem(res, "report"))
		print_report(cli, cJSON_GetObjectItem(res, "report"));
	if (!cJSON_IsTrue(ok)) {
		const cJSON *it;

		if (err)
			fprintf(stderr, "edgetrust: %s\n", str_or(cJSON_GetStringValue(err), "refused"));
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(cJSON_GetObjectItem(res, "report"), "rejected"))
			fprintf(stderr, "edgetrust: %s refused: %s\n", it->string,
				str_or(cJSON_GetStringValue(it), "?"));
		rc = CLI_EXIT_INVALID;
	}
out:
	cJSON_Delete(req);
	cJSON_Delete(res);
	return rc;
}

int cmd_config_get(struct cli *cli, int argc, char **argv)
{
	return run(cli, argc, argv, "get", 1, 1);
}

int cmd_config_set(struct cli *cli, int argc, char **argv)
{
	return run(cli, argc, argv, "set", 1, 64);
}

int cmd_config_list(struct cli *cli, int argc, char **argv)
{
	return run(cli, argc, argv, "list", 0, 0);
}
