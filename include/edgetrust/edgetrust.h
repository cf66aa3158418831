/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libedgetrust: the only code in edgetrust that talks to the TPM (through tpm2-tss ESAPI) and
 * the credential-envelope cryptography (OpenSSL 3).
 *
 * Conventions
 *  - Every function that can fail returns 0 or a negative ET_E_* code. et_strerror() names the
 *    class; et_errmsg() gives the detailed message of the last failure in this thread (cause and
 *    what to do, with tpm2-tss' decoded text where the TPM answered).
 *  - Output arguments are named ret_* and are left untouched on failure.
 *  - Objects are opaque, made by et_*_new / et_*_open and released by et_*_free, which accept NULL.
 *  - The library never prints. It reports through the callback set with et_log_set().
 *  - Secrets come back in et_secret buffers: locked, excluded from core dumps where the kernel
 *    allows it, and wiped by et_secret_free().
 */
#ifndef EDGETRUST_EDGETRUST_H
#define EDGETRUST_EDGETRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ET_EXPORT __attribute__((visibility("default")))

/* Defaults taken from the reference design (docs/design.md). */
#define ET_NV_SERIAL_INDEX_DEFAULT 0x01000000u
#define ET_SRK_HANDLE_DEFAULT 0x81000001u
#define ET_DEVICE_KEY_HANDLE_DEFAULT 0x81000002u
/* The article's write-once policy: PolicyCommandCode(NV_Write) then PolicyNvWritten(NO). */
#define ET_NV_WRITE_ONCE_POLICY_HEX "B7AFECEE9BF7BCBD5078F264DE85F7E361DC84F745DA7EFA34E91FDAF200EE9B"
/* Longest serial we accept: one NV_Write on the SLB9670 carries at most 768 bytes, but a serial
 * number is an identifier that also appears in MQTT topics, so we keep it short and printable. */
#define ET_SERIAL_MAX 64

/* Error codes. Stable: the CLI maps them to documented exit codes (docs/exit-codes.md). */
typedef enum et_err {
	ET_OK = 0,
	ET_E_INVALID = -1,          /* bad argument or bad input from the caller */
	ET_E_NOMEM = -2,            /* out of memory */
	ET_E_IO = -3,               /* a file or stream could not be read or written */
	ET_E_TPM_UNREACHABLE = -4,  /* the TCTI could not be opened or the TPM does not answer */
	ET_E_TPM = -5,              /* the TPM refused a command for a reason not listed below */
	ET_E_TPM_LOCKOUT = -6,      /* dictionary-attack lockout (0x921) */
	ET_E_TPM_OBJECT_MEMORY = -7,/* no free transient slot (0x902): leftover objects */
	ET_E_TPM_RETRY = -8,        /* TPM busy (RETRY/TESTING/YIELDED/NV_RATE) beyond our retries */
	ET_E_AUTH = -9,             /* wrong authorisation value (e.g. owner password) */
	ET_E_NV_UNDEFINED = -10,    /* the NV index does not exist */
	ET_E_NV_UNWRITTEN = -11,    /* the NV index exists but was never written (0x14A) */
	ET_E_NV_MISMATCH = -12,     /* the NV index already holds a different serial */
	ET_E_NV_ATTRIBUTES = -13,   /* the NV index exists with attributes/policy other than ours */
	ET_E_TOO_LARGE = -14,       /* value does not fit (NV size, one NV_Write, RSA block) */
	ET_E_KEY_ABSENT = -15,      /* nothing persisted at the handle */
	ET_E_KEY_TYPE = -16,        /* the handle holds a key of the wrong kind (not RSA decrypt) */
	ET_E_ENVELOPE_FORMAT = -17, /* envelope truncated, malformed or of an unknown version */
	ET_E_ENVELOPE_FOREIGN = -18,/* envelope made for another serial or another key */
	ET_E_ENVELOPE_AUTH = -19,   /* envelope altered: authentication failed, no plaintext */
	ET_E_CRYPTO = -20,          /* OpenSSL failed or the TPM could not decrypt */
	ET_E_PERMISSION = -21,      /* file permissions/ownership unsafe, or OS refused access */
	ET_E_PEM = -22,             /* public key PEM invalid, not RSA, or too small */
	ET_E_TIMEOUT = -23,         /* the TPM did not answer in time */
	ET_E_INTERNAL = -24,        /* a bug: please report */
} et_err;

/* Short name of an error class, e.g. "NV index never written". Never NULL. */
ET_EXPORT const char *et_strerror(int err);
/* Detailed message of the last failure in the calling thread: cause and remedy. Never NULL. */
ET_EXPORT const char *et_errmsg(void);

/* Logging. Levels follow syslog. The library calls fn from the calling thread. */
typedef enum et_log_level {
	ET_LOG_ERR = 3,
	ET_LOG_WARNING = 4,
	ET_LOG_INFO = 6,
	ET_LOG_DEBUG = 7,
} et_log_level;
typedef void (*et_log_fn)(et_log_level level, const char *msg, void *userdata);
/* Process-wide; NULL silences the library (the default). */
ET_EXPORT void et_log_set(et_log_fn fn, void *userdata);

/* ---- Secrets ------------------------------------------------------------------------------- */
typedef struct et_secret et_secret;
ET_EXPORT int et_secret_new(size_t len, et_secret **ret);
ET_EXPORT uint8_t *et_secret_data(et_secret *s);
ET_EXPORT size_t et_secret_len(const et_secret *s);
/* Shrinks the visible length (never grows); used after decrypting into an oversized buffer. */
ET_EXPORT void et_secret_truncate(et_secret *s, size_t len);
/* Wipes, unlocks and frees. Accepts NULL. */
ET_EXPORT void et_secret_free(et_secret *s);
/* Reads a whole file (or stdin for "-") into a secret, refusing more than max bytes. The file
 * is opened as et_file_open_read(path, ET_FILE_STREAM): a regular file, pipe or character
 * device, never blocking in open(). */
ET_EXPORT int et_secret_read_file(const char *path, size_t max, et_secret **ret);

/* ---- Files (0.4) --------------------------------------------------------------------------- */
/*
 * The one way edgetrust opens a file it is given to read. open() never blocks (O_NONBLOCK;
 * a FIFO would otherwise wait for a writer forever) nor takes a controlling terminal, and
 * the opened file must be a regular file: anything else is ET_E_IO with a message naming what
 * it is. ET_FILE_STREAM also accepts a pipe or FIFO (its first read fails with ET_E_IO when no
 * program writes into it, instead of reading as an empty input) and a character device, for
 * inputs such as /dev/stdin or <(...). ET_FILE_NOFOLLOW refuses a symbolic link as the last
 * component. what names the file in messages ("configuration"). *ret_fd reads blocking.
 * When open() itself failed, errno still holds its reason (ENOENT: no such file).
 */
#define ET_FILE_STREAM 0x1u
#define ET_FILE_NOFOLLOW 0x2u
ET_EXPORT int et_file_open_read(const char *path, unsigned flags, const char *what, int *ret_fd);
/* Opens as et_file_open_read and reads the whole file, refusing more than max bytes
 * (ET_E_TOO_LARGE). *ret is malloc'd and NUL-terminated one past *ret_len. */
ET_EXPORT int et_file_read(const char *path, unsigned flags, const char *what, size_t max,
			   uint8_t **ret, size_t *ret_len);

/* ---- TPM context --------------------------------------------------------------------------- */
typedef struct et_ctx et_ctx;

/*
 * Opens the TPM. tcti may be NULL: then EDGETRUST_TCTI, else TPM2TOOLS_TCTI, else
 * "device:/dev/tpmrm0". The TCTI loader's silent fallback to a simulator is never used: the
 * string always names one TCTI explicitly ("device:PATH", "swtpm:host=H,port=P", "mssim:...",
 * "tabrmd:..."), and a missing device is reported as ET_E_TPM_UNREACHABLE.
 */
ET_EXPORT int et_ctx_new(const char *tcti, et_ctx **ret);
/*
 * TCTI modules (0.4). et_ctx_new loads only the system's TCTIs by name (device, swtpm, mssim,
 * tabrmd), by their absolute path in the directory of libtss2-tctildr: never through the
 * library search path (LD_LIBRARY_PATH), never a path given as the name; any other name is
 * ET_E_INVALID. et_ctx_new_module loads the module at module instead (NULL or "": as
 * et_ctx_new): an absolute path to a regular file owned by root or the caller, not writable by
 * group or others, in a directory nobody else may write to (ET_E_INVALID for a relative path,
 * ET_E_TPM_UNREACHABLE for a missing file, ET_E_PERMISSION otherwise). tcti (or the environment, as for et_ctx_new) still gives the
 * configuration after the first ':', and its name part names the TCTI in messages.
 */
ET_EXPORT int et_ctx_new_module(const char *tcti, const char *module, et_ctx **ret);
ET_EXPORT void et_ctx_free(et_ctx *ctx);
/* The TCTI configuration string actually used. */
ET_EXPORT const char *et_ctx_tcti(const et_ctx *ctx);

/*
 * Deadlines of TPM commands. Every command the library sends must be answered within its
 * deadline, ESAPI's resends after TPM_RC_RETRY/TESTING/YIELDED included; otherwise the call
 * fails with ET_E_TIMEOUT. The TPM may still be working on that command, so the et_ctx never
 * sends another one: every later call on it fails with ET_E_TIMEOUT too (the same holds after
 * the connection broke mid-command: ET_E_TPM_UNREACHABLE). What the failed call had loaded in
 * a TPM without resource manager is flushed over a second connection, when that answers.
 * Close the et_ctx and open a new one. The wait relies on the TCTI honouring tpm2-tss' receive
 * timeout: device, mssim and tabrmd do; tpm2-tss 3.2.1's swtpm TCTI does not.
 *
 * Key generation (CreatePrimary, Create): 120 s by default. RSA-2048 generation searches for
 * primes, so its time has a long tail; the reference article measured ~35 s for an RSA primary
 * on an SLB9670 (docs/design.md). Every other command: 10 s by default, five times the Linux
 * TPM driver's 2 s "long" command duration, so that a boot with a hung TPM fails in seconds.
 */
#define ET_TPM_TIMEOUT_DEFAULT_MS 10000u
#define ET_TPM_KEYGEN_TIMEOUT_DEFAULT_MS 120000u
#define ET_TPM_TIMEOUT_MIN_MS 10u
#define ET_TPM_TIMEOUT_MAX_MS 3600000u
/*
 * Sets both deadlines in milliseconds (ET_TPM_TIMEOUT_MIN_MS..ET_TPM_TIMEOUT_MAX_MS; 0 = the
 * default). They apply to the commands sent after the call. ET_E_INVALID out of range.
 */
ET_EXPORT int et_ctx_set_timeouts(et_ctx *ctx, uint32_t cmd_ms, uint32_t keygen_ms);
/*
 * Closes the connection to the TPM and opens a new one with the same TCTI and deadlines, for a
 * long-running program after ET_E_TIMEOUT or ET_E_TPM_UNREACHABLE, when the et_ctx refuses
 * further commands. The handle stays valid. On a device, closing waits until the kernel driver
 * has finished (or given up on) the command in flight. 0, or ET_E_TPM_UNREACHABLE (the et_ctx
 * then keeps refusing; try again later).
 */
ET_EXPORT int et_ctx_reopen(et_ctx *ctx);

/* ---- Serial number in NV (write-once policy of the reference article) ---------------------- */
/*
 * Defines the index if absent (size = max(len, 20), ownerread|authread|policywrite, the
 * write-once policy), writes the serial in one NV_Write through a policy session, or, when the
 * index is already written, compares: same serial -> 0 with *ret_changed = false; different ->
 * ET_E_NV_MISMATCH. Safe to rerun after a power cut at any step. ret_changed may be NULL.
 */
ET_EXPORT int et_serial_provision(et_ctx *ctx, uint32_t nv_index, const char *serial,
				  bool *ret_changed);
/*
 * ET_SERIAL_NO_DA: define the index with TPMA_NV_NO_DA in addition (0x2060008). Why: the
 * article's index is dictionary-attack protected, and when the owner hierarchy has a password
 * et_serial_read must use the index's own (authread) authorisation; every such read followed
 * by an unclean power-off counts one DA failure at the next startup, so a fleet that loses
 * power often ends in lockout (docs/reliability.md). With NO_DA those reads never count.
 * The write-once policy digest is unchanged (B7AFECEE...), but the attributes, and so the
 * index's name, differ from the index the article's tpm2-tools commands make: opt in only
 * where byte-identical interop with those commands is not needed (tpm2_nvread still reads it).
 */
#define ET_SERIAL_NO_DA 0x1u
/*
 * et_serial_provision with flags (0 or ET_SERIAL_NO_DA; other bits: ET_E_INVALID). The flag
 * only affects a define: an index that already exists with the serial index's attributes, with
 * or without NO_DA, is accepted as it is whatever the flag (a written serial is never
 * redefined), and the same idempotence rules apply; a mismatch of the NO_DA bit is logged as
 * ET_LOG_WARNING, not an error. et_serial_provision(...) is et_serial_provision_flags(..., 0, ...).
 */
ET_EXPORT int et_serial_provision_flags(et_ctx *ctx, uint32_t nv_index, const char *serial,
					unsigned flags, bool *ret_changed);
/*
 * Reads the serial through the owner hierarchy (DA-exempt; the index's own empty auth only when
 * the owner has a password). Trailing 0xFF and NUL padding (an index written by the article's
 * commands with a shorter value) and a trailing newline (CR/LF, e.g. an index written from the
 * article's `echo hello > file`) are stripped. *ret is malloc'd.
 */
ET_EXPORT int et_serial_read(et_ctx *ctx, uint32_t nv_index, char **ret);
/* Undefines the index with owner authorisation (refurbishing). owner_auth may be NULL/0. */
ET_EXPORT int et_serial_clear(et_ctx *ctx, uint32_t nv_index, const uint8_t *owner_auth,
			      size_t owner_auth_len);
/* Broker logins of the cloud itself; never a device's serial. */
#define ET_LOGIN_BOOTSTRAP "bootstrap"
#define ET_LOGIN_CLOUD "edgetrust-cloud"
/* Client-id namespaces of those logins (docs/protocol.md, "Client ids"); a device's client id
 * is its serial, so no serial may begin with one of these (compared without case). */
#define ET_CLIENT_ID_PREFIX_BOOTSTRAP "etboot-"
#define ET_CLIENT_ID_PREFIX_CLOUD "etcloud-"
/*
 * Validates a serial, the one rule for the CLI, the agent and the cloud: 1..ET_SERIAL_MAX
 * bytes of [A-Za-z0-9._-], the first a letter or digit (so it never reads as an option or a
 * "." / ".." path), not ET_LOGIN_BOOTSTRAP nor ET_LOGIN_CLOUD, and not beginning with an
 * ET_CLIENT_ID_PREFIX_* (any case). 0 or ET_E_INVALID with one
 * message stating the rule and what broke it.
 */
ET_EXPORT int et_serial_validate(const char *serial);

/* ---- Keys ---------------------------------------------------------------------------------- */
/* Creates the ECC P-256 SRK (TCG template, noDA) at srk_handle unless present. */
ET_EXPORT int et_srk_ensure(et_ctx *ctx, uint32_t srk_handle, bool *ret_created);
/*
 * Creates the device key (RSA-2048, decrypt-only, noDA, scheme null, child of the SRK) at
 * key_handle unless a suitable key is already there (idempotent: never a second key). Ensures
 * the SRK at ET_SRK_HANDLE_DEFAULT first. ET_E_KEY_TYPE if the handle holds something else.
 */
ET_EXPORT int et_key_create(et_ctx *ctx, uint32_t key_handle, bool *ret_created);
/*
 * Exports the public key at key_handle as PEM SubjectPublicKeyInfo, byte-identical to
 * `tpm2_readpublic -f pem`. ret_fpr (may be NULL) receives the SHA-256 fingerprint of the DER
 * encoding as 64 lowercase hex digits plus NUL. *ret_pem is malloc'd.
 */
ET_EXPORT int et_key_public_pem(et_ctx *ctx, uint32_t key_handle, char **ret_pem,
				char ret_fpr[65]);

/* Pure OpenSSL helpers, no TPM. */
/* Fingerprint of a PEM public key (SHA-256 of its DER SubjectPublicKeyInfo), hex. */
ET_EXPORT int et_pem_fingerprint(const char *pem, char ret_fpr[65]);
/* Checks a PEM public key: exactly one "-----BEGIN PUBLIC KEY-----" (SubjectPublicKeyInfo)
 * block with only whitespace around it; RSA; a modulus of exactly 2048, 3072 or 4096 bits
 * (min_bits, 0 = 2048, may allow 1024), odd, without a prime factor below 752; an odd
 * exponent 65537 <= e < 2^256; and OpenSSL's full SP 800-56B public-key check
 * (EVP_PKEY_public_check: also n is no prime or prime power; about 5 ms for RSA-2048). */
ET_EXPORT int et_pem_check_rsa(const char *pem, unsigned min_bits);

/*
 * A device's RSA public key parsed once (0.3): a cloud checks, fingerprints and seals to the
 * same key per request without decoding its PEM again each time. et_pubkey_from_pem accepts
 * what et_pem_check_rsa(pem, 0) accepts (RSA, 2048..4096 bits, see above) but for its
 * composite test (a prime or prime-power modulus passes; run et_pem_check_rsa before trusting
 * a key), and fails with the same ET_E_PEM / ET_E_INVALID errors. et_pubkey_free accepts NULL.
 */
typedef struct et_pubkey et_pubkey;
ET_EXPORT int et_pubkey_from_pem(const char *pem, et_pubkey **ret);
ET_EXPORT void et_pubkey_free(et_pubkey *key);
/* Same value as et_pem_fingerprint of the PEM: 64 lowercase hex digits, owned by key. */
ET_EXPORT const char *et_pubkey_fingerprint(const et_pubkey *key);
/* Modulus size in bits. */
ET_EXPORT unsigned et_pubkey_bits(const et_pubkey *key);

/* ---- Credential envelope (docs/envelope.md) ------------------------------------------------ */
typedef struct et_envelope_info {
	uint8_t format_version;    /* 1 */
	char serial[ET_SERIAL_MAX + 1];
	char key_fpr[65];          /* hex SHA-256 of the device key's DER SPKI */
	uint32_t cred_version;     /* increases on each rotation; refuse older ones */
	uint64_t issued_at;        /* Unix seconds, set by the sealer */
} et_envelope_info;

/* Cloud side: seals plaintext to a device's RSA public key (PEM). No TPM involved. */
ET_EXPORT int et_envelope_seal(const char *pubkey_pem, const char *serial, uint32_t cred_version,
			       const uint8_t *plaintext, size_t plaintext_len, uint8_t **ret_blob,
			       size_t *ret_blob_len);
/* Same as et_envelope_seal, to a key parsed by et_pubkey_from_pem (0.3). */
ET_EXPORT int et_envelope_seal_pubkey(const et_pubkey *key, const char *serial,
				      uint32_t cred_version, const uint8_t *plaintext,
				      size_t plaintext_len, uint8_t **ret_blob, size_t *ret_blob_len);
/* Parses and checks the header only (no decryption); for logging and replay checks. */
ET_EXPORT int et_envelope_inspect(const uint8_t *blob, size_t blob_len, et_envelope_info *ret);
/*
 * Device side: checks the header names expected_serial and the key at key_handle, unwraps the
 * AES key with RSA-OAEP-SHA256 inside the TPM (salted session, response encryption) and
 * decrypts. ET_E_ENVELOPE_FOREIGN / ET_E_ENVELOPE_AUTH / ET_E_ENVELOPE_FORMAT on bad blobs; no
 * plaintext is ever returned then. ret_info may be NULL.
 */
ET_EXPORT int et_envelope_open(et_ctx *ctx, uint32_t key_handle, const char *expected_serial,
			       const uint8_t *blob, size_t blob_len, et_secret **ret_plaintext,
			       et_envelope_info *ret_info);
/* Same, with a software private key (PEM); for tests, benchmarks and simulated devices. */
ET_EXPORT int et_envelope_open_soft(const char *privkey_pem, const char *expected_serial,
				    const uint8_t *blob, size_t blob_len,
				    et_secret **ret_plaintext, et_envelope_info *ret_info);

/* The article's format: a bare RSA ciphertext as made by `openssl pkeyutl -encrypt`. */
typedef enum et_raw_mode {
	ET_RAW_PKCS1 = 1, /* RSAES-PKCS1-v1_5: compatibility only, it is a padding oracle */
	ET_RAW_OAEP = 2,  /* RSAES-OAEP with SHA-256 and MGF1-SHA-256 */
} et_raw_mode;
ET_EXPORT int et_raw_decrypt(et_ctx *ctx, uint32_t key_handle, et_raw_mode mode,
			     const uint8_t *ct, size_t ct_len, et_secret **ret_plaintext);

/* ---- Status -------------------------------------------------------------------------------- */
typedef struct et_status {
	char manufacturer[5];      /* e.g. "IFX", "IBM" */
	char vendor_string[17];
	uint32_t firmware_major, firmware_minor;
	uint32_t spec_level, spec_revision;
	bool serial_present;       /* index defined and written */
	bool serial_defined;       /* index defined (maybe unwritten) */
	char serial[ET_SERIAL_MAX + 1];
	bool srk_present;
	bool key_present;
	bool key_ok;               /* present and an RSA decrypt key */
	char key_fpr[65];
	uint32_t lockout_counter;
	uint32_t max_auth_fail;
	uint32_t lockout_interval;
	bool in_lockout;
	bool owner_auth_set;
	uint32_t transient_handles; /* currently loaded transient objects (leftovers on raw TPMs) */
	uint32_t loaded_sessions;
	/* The serial index has no_da (`--no-da`, ET_SERIAL_NO_DA): reads with its own
	 * authorisation never count toward lockout. Only meaningful when serial_defined. */
	bool serial_no_da;
} et_status;
ET_EXPORT int et_status_get(et_ctx *ctx, uint32_t nv_index, uint32_t srk_handle,
			    uint32_t key_handle, et_status *ret);

/* Library version string, e.g. "0.1.0". */
ET_EXPORT const char *et_version(void);

#ifdef __cplusplus
}
#endif
#endif
