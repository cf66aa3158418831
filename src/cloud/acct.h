/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Device broker accounts in the registry (table broker_accounts, written by `serve --accounts
 * registry`, read by the edgetrust mosquitto plugin): the password hash format, shared by the
 * writer and the checker, and the device ACL both sides agree on.
 *
 * Hash: "s256$<32 hex salt>$<64 hex SHA-256(salt || password)>". Device passwords are 192
 * random bits, so a fast salted hash is enough: stretching (PBKDF2, bcrypt) only slows the
 * guessing of low-entropy passwords, and 2^192 guesses stay out of reach at any hash speed.
 * The salt keeps equal passwords from having equal hashes. docs/protocol.md says more.
 */
#ifndef ET_CLOUD_ACCT_H
#define ET_CLOUD_ACCT_H

#include <stdbool.h>
#include <stddef.h>

#include "wire.h"

#define ACCT_HASH_LEN 103 /* "s256$" 5 + 32 + "$" 1 + 64 = 102, + NUL */

/* Hashes password with a fresh random salt into out. 0 or -1 (no randomness). */
int acct_hash(const char *password, char out[ACCT_HASH_LEN]);
/* True when password matches stored (constant time in the hash comparison). */
bool acct_verify(const char *stored, const char *password);

/* Topic rules for a device login (username = client id = serial), docs/protocol.md. */
enum acct_access { ACCT_SUBSCRIBE, ACCT_UNSUBSCRIBE, ACCT_PUBLISH, ACCT_RECEIVE };
bool acct_device_allowed(const char *serial, const char *topic, enum acct_access access);

/*
 * Client ids (docs/protocol.md, "Client ids"; prefixes in wire.h): the cloud login may use
 * WIRE_CLOUD_ID_PREFIX<name>, the bootstrap login WIRE_BOOTSTRAP_ID_PREFIX<random>, and every
 * other login (devices, admins) exactly its own username, which must not begin with a reserved
 * prefix. An empty or missing id is never allowed. The broker plugin checks this for every
 * login before mosquitto takes the id over from a connected client.
 */
bool acct_client_id_ok(const char *username, const char *client_id, const char *cloud_user,
		       const char *bootstrap_user);

/* Publishes by logins other than the cloud's: the largest payload on topic (wire.h), 0 for no
 * limit of ours ($CONTROL/..., which its plugin checks; max_packet_size still applies). */
size_t acct_payload_limit(const char *topic);
/* Retained publishes by logins other than the cloud's: only a device's own status and
 * settings/reported (one retained message per topic, the latest state). serial NULL (the
 * bootstrap login, or another login) retains nothing. */
bool acct_retain_allowed(const char *serial, const char *topic);

#endif
