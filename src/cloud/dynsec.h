/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mosquitto dynamic-security plugin (2.0): the commands the cloud sends for device logins, and
 * the initial configuration file written by `init-broker` (password hashes in the plugin's own
 * format: PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt, base64).
 */
#ifndef ET_CLOUD_DYNSEC_H
#define ET_CLOUD_DYNSEC_H

#include <cjson/cJSON.h>

#include "edgetrust/edgetrust.h"

#define DYNSEC_CLOUD_USER ET_LOGIN_CLOUD /* never a serial: et_serial_validate */
#define DYNSEC_BOOTSTRAP_USER ET_LOGIN_BOOTSTRAP
#define DYNSEC_CLOUD_ROLE "edgetrust-cloud"
#define DYNSEC_BOOTSTRAP_ROLE "edgetrust-bootstrap"
#define DYNSEC_DEVICE_ROLE_PREFIX "et-device-"

/* Each adds one command object to the array. */
int dynsec_add_create_device_role(cJSON *cmds, const char *serial);
int dynsec_add_create_device_client(cJSON *cmds, const char *serial, const char *password);
int dynsec_add_set_password(cJSON *cmds, const char *serial, const char *password);
int dynsec_add_client_role(cJSON *cmds, const char *serial);
int dynsec_add_enable(cJSON *cmds, const char *serial, int enable);

/* The whole dynamic-security.json tree for a fresh broker. */
cJSON *dynsec_initial_config(const char *cloud_password, const char *bootstrap_password);

#endif
