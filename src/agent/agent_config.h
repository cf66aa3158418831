/* SPDX-License-Identifier: Apache-2.0 */
/*
 * edgetrustd.conf: the daemon's configuration file (INI). The parser validates everything
 * (keys, ranges, cross-references) and reports the first problem as
 * "FILE:LINE: problem; valid choices". The result is immutable; see docs/edgetrustd.conf.md.
 */
#ifndef EDGETRUST_AGENT_AGENT_CONFIG_H
#define EDGETRUST_AGENT_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgetrust/edgetrust.h"
#include "mbvalue.h"

#define ET_CFG_DEFAULT_PATH "/etc/edgetrust/edgetrustd.conf"

/* Limits (documented in docs/edgetrustd.conf.md). */
#define ET_CFG_MAX_FILE (1024 * 1024) /* bytes */
#define ET_CFG_MAX_LINE 1024          /* bytes per line */
#define ET_CFG_MAX_DEVICES 64
#define ET_CFG_MAX_POINTS 1024
#define ET_CFG_NAME_MAX 32  /* device and point names: [A-Za-z0-9_-], used in MQTT topics */
#define ET_CFG_STR_MAX 255  /* host names, paths, TCTI strings */
#define ET_CFG_UNIT_MAX 31  /* point unit text */
#define ET_CFG_USER_MAX 127 /* MQTT user names */

/* [agent] limits of what local input can grow (docs/edgetrustd.conf.md): readings waiting
 * between the Modbus bus workers and the main loop (about 110 bytes each), control-socket
 * clients at once, and the time a control client has for its request and for its answer. */
#define ET_CFG_MODBUS_QUEUE_DEFAULT 4096
#define ET_CFG_CONTROL_CLIENTS_DEFAULT 8
#define ET_CFG_CONTROL_TIMEOUT_DEFAULT_MS 5000

struct et_cfg_agent {
	char tcti[ET_CFG_STR_MAX + 1]; /* always explicit: device:..., swtpm:..., mssim:..., tabrmd */
	/* "" or the absolute path of the TCTI module to load instead of the system's TCTI named
	 * by tcti, which then gives its configuration (et_ctx_new_module) */
	char tcti_module[ET_CFG_STR_MAX + 1];
	uint32_t serial_index;         /* NV index, 0x01000000..0x01ffffff */
	uint32_t key_handle;           /* persistent handle, 0x81000000..0x81ffffff */
	char data_dir[ET_CFG_STR_MAX + 1];
	et_log_level log_level;
	uint32_t register_backoff_max_s;
	uint32_t tpm_timeout_ms;        /* deadline of one TPM command (et_ctx_set_timeouts) */
	uint32_t tpm_keygen_timeout_ms; /* the same for key generation */
	uint32_t modbus_queue_max;      /* readings from the bus workers not yet taken (modbus_bus.h) */
	uint32_t control_clients_max;   /* control-socket clients at once (ctl.h) */
	uint32_t control_timeout_ms;    /* a control client's request, and its answer, complete by then */
};

struct et_cfg_broker {
	char host[ET_CFG_STR_MAX + 1]; /* "" when not set: edgetrustd refuses to start */
	uint32_t port;                 /* 8883 with TLS, 1883 without, unless set */
	bool tls;
	char ca_file[ET_CFG_STR_MAX + 1]; /* "" = the system trust store */
	char bootstrap_username[ET_CFG_USER_MAX + 1];
	char bootstrap_password_file[ET_CFG_STR_MAX + 1]; /* "" when not set */
	uint32_t keepalive_s;
	uint32_t reconnect_min_s;
	uint32_t reconnect_max_s; /* >= reconnect_min_s */
};

/* When a record leaves the spool (docs/edgetrustd.conf.md, [spool] delivery). */
enum et_delivery {
	ET_DELIVERY_CLOUD_ACK = 0, /* on the cloud's et/v1/<serial>/telemetry/ack */
	ET_DELIVERY_PUBACK,        /* on the broker's PUBACK (a cloud that sends no acks) */
};

struct et_cfg_spool {
	uint32_t max_records;
	uint32_t batch;
	int delivery;           /* enum et_delivery */
	uint32_t ack_timeout_s; /* resend what the cloud did not acknowledge after this */
};

enum et_mb_transport {
	ET_MB_TCP = 0,
	ET_MB_RTU,
};

/* [modbus.<name>]: one device, polled as one group. */
struct et_cfg_device {
	char name[ET_CFG_NAME_MAX + 1];
	enum et_mb_transport transport;
	char host[ET_CFG_STR_MAX + 1]; /* tcp */
	uint32_t port;                 /* tcp */
	char device[ET_CFG_STR_MAX + 1]; /* rtu: serial device path */
	uint32_t baud;                   /* rtu */
	char parity;                     /* rtu: 'N', 'E' or 'O' */
	uint32_t data_bits;              /* rtu: 7 or 8 */
	uint32_t stop_bits;              /* rtu: 1 or 2 */
	uint32_t unit_id;                /* tcp: 0..247 or 255; rtu: 1..247 */
	uint32_t timeout_ms;
	uint32_t poll_ms;
	/* This device's points are cfg->points[first_point .. first_point + n_points - 1]. */
	size_t first_point;
	size_t n_points;
};

/* [point.<device>.<name>] */
struct et_cfg_point {
	char device[ET_CFG_NAME_MAX + 1];
	char name[ET_CFG_NAME_MAX + 1];
	size_t device_index; /* into cfg->devices */
	enum et_mb_table table;
	uint16_t address;
	enum et_mb_type type;
	enum et_mb_word_order word_order;
	double scale;
	double offset;
	char unit[ET_CFG_UNIT_MAX + 1]; /* "" when not set */
};

struct et_agent_config {
	struct et_cfg_agent agent;
	struct et_cfg_broker broker;
	struct et_cfg_spool spool;
	size_t n_devices;
	struct et_cfg_device *devices; /* in file order */
	size_t n_points;
	struct et_cfg_point *points; /* grouped by device (in device order), file order inside */
};

/*
 * Parses text[0..len) (need not be NUL-terminated; a NUL byte is an error). name is used in
 * messages ("edgetrustd.conf:12: ..."). On failure returns ET_E_INVALID (content) or
 * ET_E_NOMEM and writes one line to errbuf (if errlen > 0); *ret is untouched.
 */
int et_agent_config_parse(const char *text, size_t len, const char *name,
			  struct et_agent_config **ret, char *errbuf, size_t errlen);
/* Reads path (at most ET_CFG_MAX_FILE bytes) and parses it; ET_E_IO if it cannot be read. */
int et_agent_config_load(const char *path, struct et_agent_config **ret, char *errbuf,
			 size_t errlen);
/* Accepts NULL. */
void et_agent_config_free(struct et_agent_config *c);

/* Device by name, or NULL. */
const struct et_cfg_device *et_agent_config_device(const struct et_agent_config *c,
						   const char *name);

#endif
