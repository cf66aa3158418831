/* SPDX-License-Identifier: Apache-2.0 */
/*
 * First-boot registration and credential envelopes. Registration logs in with the shared
 * bootstrap login, publishes the device's public key on et/v1/<serial>/register and waits,
 * re-sending with exponential backoff and jitter, for a retained reply that says "accepted"
 * and carries an envelope that opens in this device's TPM. The envelope's plaintext
 * (docs/protocol.md "Credentials") is parsed here; the password stays in an et_secret.
 */
#ifndef EDGETRUST_AGENT_REGISTER_H
#define EDGETRUST_AGENT_REGISTER_H

#include <stddef.h>
#include <stdint.h>

#include "edgetrust/edgetrust.h"
#include "mqtt.h"

/* Device credentials from an opened envelope. */
struct et_creds {
	char *username;
	char *client_id;
	char *ca_pem;      /* may be NULL */
	char *host;        /* informational: the agent connects to its configured broker */
	int port;
	et_secret *password; /* NUL-terminated inside the secret */
	uint32_t cred_version;
};
void et_creds_clear(struct et_creds *c);

/* Opens blob in the TPM (at tcti, in a helper process: tpmjob.h) and parses the credentials.
 * Returns 0 or a negative ET_E_*; errbuf. */
int et_creds_open(const char *tcti, uint32_t key_handle, const char *serial, const uint8_t *blob,
		  size_t len, struct et_creds *ret, char *errbuf, size_t errlen);

/* Base64 (standard alphabet, padding) to bytes; malloc'd. 0 or -1. */
int et_b64_decode(const char *in, uint8_t **ret, size_t *ret_len);

struct et_reg_params {
	const char *tcti;           /* copied */
	uint32_t key_handle;
	const char *serial;
	const char *pubkey_pem;
	const char *fingerprint;
	struct et_mqtt_opts mqtt;   /* host/port/tls/ca/keepalive/reconnect; rest set here */
	const char *bootstrap_password; /* copied by libmosquitto; see docs */
	uint32_t min_cred_version;  /* refuse envelopes older than this (replay) */
	int backoff_max_s;
	void (*log)(et_log_level lvl, const char *msg, void *ud);
	void *ud;
};

struct et_reg;
int et_reg_new(const struct et_reg_params *p, struct et_reg **ret, char *errbuf, size_t errlen);
void et_reg_free(struct et_reg *r);
int et_reg_fd(struct et_reg *r);
/* When et_reg_step wants to run again (monotonic ms). */
int64_t et_reg_next_ms(struct et_reg *r);
/*
 * Handles queued MQTT events and timers. Returns 1 when an accepted envelope opened: *ret_blob
 * (malloc'd), *ret_len and *ret_creds are set; 0 while waiting.
 */
int et_reg_step(struct et_reg *r, int64_t now_ms, uint8_t **ret_blob, size_t *ret_len,
		struct et_creds *ret_creds);

#endif
