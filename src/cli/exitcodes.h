/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exit codes of the edgetrust command line: the one place they are defined. Every ET_E_* has
 * its own code so scripts on the factory line can react without parsing messages.
 * docs/exit-codes.md (section "edgetrust") documents this table; tests/tpm/test_cli_errors.py
 * checks the two agree.
 */
#ifndef EDGETRUST_CLI_EXITCODES_H
#define EDGETRUST_CLI_EXITCODES_H

#include "edgetrust/edgetrust.h"

enum cli_exit {
	CLI_EXIT_OK = 0,               /* success */
	CLI_EXIT_INTERNAL = 1,         /* ET_E_INTERNAL, ET_E_NOMEM, unknown error: a bug or no memory */
	CLI_EXIT_USAGE = 2,            /* bad command line (unknown command or option, missing argument) */
	CLI_EXIT_INVALID = 3,          /* ET_E_INVALID: bad input value (serial, handle, file content) */
	CLI_EXIT_IO = 4,               /* ET_E_IO: a file could not be read or written */
	CLI_EXIT_PERMISSION = 5,       /* ET_E_PERMISSION: the OS refused access, or unsafe file modes */
	CLI_EXIT_OUT_REFUSED = 6,      /* --out names what is never replaced: a directory, a symlink to a file or to nothing, a block device */
	CLI_EXIT_TPM_UNREACHABLE = 10, /* ET_E_TPM_UNREACHABLE: no TPM at the TCTI */
	CLI_EXIT_TPM_TIMEOUT = 11,     /* ET_E_TIMEOUT: the TPM did not answer in time */
	CLI_EXIT_TPM_RETRY = 12,       /* ET_E_TPM_RETRY: TPM busy; retry later */
	CLI_EXIT_TPM_OBJECT_MEMORY = 13, /* ET_E_TPM_OBJECT_MEMORY: leftover objects/sessions (0x902) */
	CLI_EXIT_TPM_LOCKOUT = 14,     /* ET_E_TPM_LOCKOUT: dictionary-attack lockout (0x921) */
	CLI_EXIT_AUTH = 15,            /* ET_E_AUTH: wrong password or policy refused */
	CLI_EXIT_TPM = 16,             /* ET_E_TPM: other TPM refusal */
	CLI_EXIT_NV_UNDEFINED = 20,    /* ET_E_NV_UNDEFINED: no serial index */
	CLI_EXIT_NV_UNWRITTEN = 21,    /* ET_E_NV_UNWRITTEN: serial index defined, never written (0x14A) */
	CLI_EXIT_NV_MISMATCH = 22,     /* ET_E_NV_MISMATCH: index holds a different serial */
	CLI_EXIT_NV_ATTRIBUTES = 23,   /* ET_E_NV_ATTRIBUTES: index is not a write-once serial index */
	CLI_EXIT_TOO_LARGE = 24,       /* ET_E_TOO_LARGE: value does not fit */
	CLI_EXIT_KEY_ABSENT = 30,      /* ET_E_KEY_ABSENT: no key at the handle */
	CLI_EXIT_KEY_TYPE = 31,        /* ET_E_KEY_TYPE: the handle holds something else */
	CLI_EXIT_PEM = 32,             /* ET_E_PEM: public key PEM invalid */
	CLI_EXIT_ENVELOPE_FORMAT = 40, /* ET_E_ENVELOPE_FORMAT: envelope malformed/truncated/unknown */
	CLI_EXIT_ENVELOPE_FOREIGN = 41,/* ET_E_ENVELOPE_FOREIGN: envelope for another device/key */
	CLI_EXIT_ENVELOPE_AUTH = 42,   /* ET_E_ENVELOPE_AUTH: envelope altered */
	CLI_EXIT_CRYPTO = 43,          /* ET_E_CRYPTO: OpenSSL or TPM decryption failed */
};

/* The exit code for a library error. The switch has no default so the compiler (-Wswitch)
 * flags an ET_E_* added to the enum without a code here. */
static inline int cli_exit_code(int err)
{
	switch ((et_err)err) {
	case ET_OK: return CLI_EXIT_OK;
	case ET_E_INVALID: return CLI_EXIT_INVALID;
	case ET_E_NOMEM: return CLI_EXIT_INTERNAL;
	case ET_E_IO: return CLI_EXIT_IO;
	case ET_E_TPM_UNREACHABLE: return CLI_EXIT_TPM_UNREACHABLE;
	case ET_E_TPM: return CLI_EXIT_TPM;
	case ET_E_TPM_LOCKOUT: return CLI_EXIT_TPM_LOCKOUT;
	case ET_E_TPM_OBJECT_MEMORY: return CLI_EXIT_TPM_OBJECT_MEMORY;
	case ET_E_TPM_RETRY: return CLI_EXIT_TPM_RETRY;
	case ET_E_AUTH: return CLI_EXIT_AUTH;
	case ET_E_NV_UNDEFINED: return CLI_EXIT_NV_UNDEFINED;
	case ET_E_NV_UNWRITTEN: return CLI_EXIT_NV_UNWRITTEN;
	case ET_E_NV_MISMATCH: return CLI_EXIT_NV_MISMATCH;
	case ET_E_NV_ATTRIBUTES: return CLI_EXIT_NV_ATTRIBUTES;
	case ET_E_TOO_LARGE: return CLI_EXIT_TOO_LARGE;
	case ET_E_KEY_ABSENT: return CLI_EXIT_KEY_ABSENT;
	case ET_E_KEY_TYPE: return CLI_EXIT_KEY_TYPE;
	case ET_E_ENVELOPE_FORMAT: return CLI_EXIT_ENVELOPE_FORMAT;
	case ET_E_ENVELOPE_FOREIGN: return CLI_EXIT_ENVELOPE_FOREIGN;
	case ET_E_ENVELOPE_AUTH: return CLI_EXIT_ENVELOPE_AUTH;
	case ET_E_CRYPTO: return CLI_EXIT_CRYPTO;
	case ET_E_PERMISSION: return CLI_EXIT_PERMISSION;
	case ET_E_PEM: return CLI_EXIT_PEM;
	case ET_E_TIMEOUT: return CLI_EXIT_TPM_TIMEOUT;
	case ET_E_INTERNAL: return CLI_EXIT_INTERNAL;
	}
	return CLI_EXIT_INTERNAL;
}

#endif
