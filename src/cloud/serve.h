/* SPDX-License-Identifier: Apache-2.0 */
/* `edgetrust-cloud serve`: the registration, credential and data service. */
#ifndef ET_CLOUD_SERVE_H
#define ET_CLOUD_SERVE_H

#include <stdbool.h>

/* Where device broker logins live (docs/edgetrust-cloud.md, --accounts). */
enum serve_accounts {
	ACCOUNTS_REGISTRY, /* table broker_accounts, checked by the edgetrust mosquitto plugin */
	ACCOUNTS_DYNSEC,   /* mosquitto's dynamic-security plugin (one command per login) */
};

/* The plugin's control topic: {"v":1,"kick":["SERIAL",...]} disconnects those device logins. */
#define SERVE_CONTROL_TOPIC "$CONTROL/edgetrust/v1"

struct serve_opts {
	const char *db_url;
	const char *instance;
	const char *broker_host;
	int broker_port;
	const char *broker_user;
	const char *broker_password_file;
	bool broker_tls;
	const char *broker_cafile, *broker_capath;
	/* What devices are told to connect to (default: the broker address above). */
	const char *public_host;
	int public_port;
	int public_tls; /* -1 = same as broker_tls */
	const char *device_ca_file; /* CA PEM sealed into the credentials */
	bool auto_accept;
	int max_key_candidates;     /* candidate keys per serial (candidates.h) */
	int key_candidate_interval; /* s between two new candidate keys of a serial; 0 = any */
	int batch_max;
	int poll_ms;
	enum serve_accounts accounts;
	/* Per-device telemetry limits (src/cloud/limits.h, docs/edgetrust-cloud.md). */
	int tel_rate;      /* records/s; 0 = unlimited */
	int tel_burst;     /* records */
	int tel_max_bytes; /* per data message */
	int tel_devices;   /* devices tracked by the rate limiter */
};

int cloud_serve(const struct serve_opts *o);

#endif
