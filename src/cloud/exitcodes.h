/* SPDX-License-Identifier: Apache-2.0 */
/* edgetrust-cloud exit codes: the one place they are defined (documented in
 * docs/exit-codes.md, section "edgetrust-cloud"). */
#ifndef ET_CLOUD_EXITCODES_H
#define ET_CLOUD_EXITCODES_H

enum cloud_exit {
	EC_OK = 0,
	EC_FAILURE = 1,   /* unexpected failure (a bug, out of memory) */
	EC_USAGE = 2,     /* bad command line */
	EC_NOT_FOUND = 3, /* the serial is not in the registry */
	EC_STATE = 4,     /* the command does not apply to the device's current state */
	EC_DB = 5,        /* the database could not be opened, migrated or written */
	EC_BROKER = 6,    /* the broker could not be reached or refused the cloud's login */
	EC_FILE = 7,      /* a file could not be read or written, has unsafe permissions, or exists */
	EC_INPUT = 8,     /* bad value (serial, duration, KEY=VALUE, PEM) */
	EC_KEY_CHOICE = 9,     /* accept: several candidate keys and no --key, or --key names none */
};

#endif
