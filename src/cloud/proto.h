/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parsing and building of the MQTT payloads of docs/protocol.md on the cloud side. Pure
 * functions over untrusted bytes (no I/O), so they can be fuzzed.
 */
#ifndef ET_CLOUD_PROTO_H
#define ET_CLOUD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgetrust/edgetrust.h"
#include "wire.h" /* PROTO_MAX_PAYLOAD, PROTO_MAX_REGISTER */

#define PROTO_MAX_RECORDS 500

bool proto_serial_ok(const char *s);

/* Splits "et/v1/<serial>/<rest>"; returns false for any other shape or an invalid serial. */
bool proto_topic_split(const char *topic, char serial[65], const char **ret_rest);

struct reg_req {
	char serial[65];
	char *pem;       /* malloc'd */
	char fpr[65];    /* computed from the PEM */
	et_pubkey *key;  /* the PEM parsed once, sealed to without decoding it again */
	char nonce[65];  /* echoed, may be empty */
};

/* Validates a registration request; on failure writes a reason and returns -1. */
int proto_parse_register(const char *topic_serial, const void *payload, size_t len,
			 struct reg_req *ret, char *reason, size_t reason_len);
void reg_req_clear(struct reg_req *r);

/* {"v":1,"serial":..,"status":..,"reason":..,"nonce":..,"cred_version":..,"envelope":..} */
char *proto_reply(const char *serial, const char *status, const char *reason, const char *nonce,
		  int64_t cred_version, const char *envelope_b64);

/* Credentials JSON sealed into the envelope. Caller wipes and frees. */
char *proto_credentials(const char *host, int port, bool tls, const char *username,
			const char *password, const char *client_id, const char *ca_pem,
			int64_t cred_version);

char *proto_b64(const uint8_t *data, size_t len);
/* Random password of 32 base64url characters (192 bits); writes 33 bytes incl. NUL. */
int proto_password(char out[33]);

/*
 * The spool epoch of a telemetry message (docs/protocol.md, "Spool epoch"): its "epoch" member
 * j, NULL when absent (0: an agent from before epochs). An integral JSON number in
 * 0..PROTO_MAX_EPOCH (2^53, exact as a double) is taken; anything else returns false.
 */
#define PROTO_MAX_EPOCH 9007199254740992LL
struct cJSON;
bool proto_epoch(const struct cJSON *j, int64_t *ret);

/*
 * Device data (src/cloud/proto_data.c, docs/protocol.md "Telemetry validation"): the payloads
 * of et/v1/<serial>/telemetry, /status and /settings/reported, checked completely before
 * anything is stored, so that nothing a device sends can make a database statement fail.
 *
 * Message rules (all or nothing): at most PROTO_MAX_PAYLOAD bytes, well-formed UTF-8 without
 * NUL, a JSON object, "v" exactly 1, "serial" absent or the topic's serial; telemetry also a
 * valid "epoch" and 1..PROTO_MAX_RECORDS records. Record rules (a bad record is refused alone):
 * "seq" an integer in 1..PROTO_MAX_SEQ, "ts" an integer of magnitude <= PROTO_MAX_SEQ, "device"
 * and "point" strings of 1..PROTO_MAX_NAME bytes, "unit" absent, null or a string of at most
 * PROTO_MAX_UNIT bytes, "q" one of the qualities, "value" a finite number when "q" is "ok" and
 * null or absent otherwise.
 */
#define PROTO_MAX_SEQ 9007199254740991LL /* 2^53 - 1: every integer up to it is exact */
#define PROTO_MAX_NAME 64
#define PROTO_MAX_UNIT 32
struct proto_rec {
	int64_t seq, ts;
	const char *device, *point, *unit, *q; /* point into the message's tree; unit may be NULL */
	bool has_value;
	double value;
};
struct proto_tel {
	int64_t epoch;
	struct proto_rec *rec; /* the valid records */
	size_t n;
	size_t nbad;           /* records refused (not stored, not acknowledged) */
	char bad_reason[128];  /* why the first of them was refused */
	struct cJSON *root;
};
/* 0: *ret holds the valid records (maybe none); -1: the whole message is refused (reason).
 * *ret_nrecords (may be NULL) gets the number of records the message claims, when known. */
int proto_parse_telemetry(const char *topic_serial, const void *payload, size_t len,
			  struct proto_tel *ret, size_t *ret_nrecords, char *reason, size_t reason_len);
void proto_tel_clear(struct proto_tel *t);

/* status and settings/reported: the message rules above; *ret_json is the payload re-printed
 * (malloc'd) to store. Status also yields "online" (-1 unknown) and "cred_version" (0 = none). */
struct proto_status {
	int online;
	int64_t cred_version;
};
int proto_parse_status(const char *topic_serial, const void *payload, size_t len, char **ret_json,
		       struct proto_status *ret, char *reason, size_t reason_len);
int proto_parse_reported(const char *topic_serial, const void *payload, size_t len,
			 char **ret_json, char *reason, size_t reason_len);

/*
 * Telemetry acknowledgements (et/v1/<serial>/telemetry/ack, docs/protocol.md): the sequence
 * numbers of one committed batch, per device and spool epoch, sent as sorted, merged ranges
 * {"v":1,"serial":"S","epoch":E,"ranges":[[lo,hi],...]} of at most PROTO_ACK_MAX_RANGES ranges
 * each.
 */
#define PROTO_ACK_MAX_RANGES 1000
struct proto_acks;
struct proto_acks *proto_acks_new(void);
void proto_acks_free(struct proto_acks *a);
/* Records that (epoch, seq) of serial is stored (new or a duplicate). -1 when out of memory. */
int proto_acks_add(struct proto_acks *a, const char *serial, int64_t epoch, int64_t seq);
/* Calls fn once per ack message (serial and JSON text, valid during the call). */
typedef void (*proto_ack_fn)(const char *serial, const char *json, size_t len, void *ud);
void proto_acks_emit(struct proto_acks *a, proto_ack_fn fn, void *ud);

#endif
