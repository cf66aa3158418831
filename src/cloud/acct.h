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

#define ACCT_HASH_LEN 103 /* "s256$" 5 + 32 + "$" 1 + 64 = 102, + NUL */

/* Hashes password with a fresh random salt into out. 0 or -1 (no randomness). */
int acct_hash(const char *password, char out[ACCT_HASH_LEN]);
/* True when password matches stored (constant time in the hash comparison). */
bool acct_verify(const char *stored, const char *password);

/* Topic rules for a device login (username = client id = serial), docs/protocol.md. */
enum acct_access { ACCT_SUBSCRIBE, ACCT_UNSUBSCRIBE, ACCT_PUBLISH, ACCT_RECEIVE };
bool acct_device_allowed(const char *serial, const char *topic, enum acct_access access);

#endif
