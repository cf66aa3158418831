/* SPDX-License-Identifier: Apache-2.0 */
/* Dynamic-security commands and initial configuration (see dynsec.h). */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "dynsec.h"
#include "proto.h"

static cJSON *acl(const char *type, const char *topic, int allow)
{
	cJSON *a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, "acltype", type);
	cJSON_AddStringToObject(a, "topic", topic);
	cJSON_AddBoolToObject(a, "allow", allow);
	cJSON_AddNumberToObject(a, "priority", 0);
	return a;
}

/* The device's ACL: publish only its own data topics, subscribe/receive only under its own
 * prefix. Nothing else (default deny), so device A can never touch device B's topics. */
static cJSON *device_acls(const char *serial)
{
	static const char *const pub[] = { "telemetry", "status", "settings/reported" };
	cJSON *acls = cJSON_CreateArray();
	char t[128];

	for (size_t i = 0; i < sizeof(pub) / sizeof(pub[0]); i++) {
		snprintf(t, sizeof(t), "et/v1/%s/%s", serial, pub[i]);
		cJSON_AddItemToArray(acls, acl("publishClientSend", t, 1));
	}
	snprintf(t, sizeof(t), "et/v1/%s/#", serial);
	cJSON_AddItemToArray(acls, acl("subscribePattern", t, 1));
	cJSON_AddItemToArray(acls, acl("publishClientReceive", t, 1));
	return acls;
}

static cJSON *cmd(cJSON *cmds, const char *name)
{
	cJSON *c = cJSON_CreateObject();
	if (!c)
		return NULL;
	cJSON_AddStringToObject(c, "command", name);
	cJSON_AddItemToArray(cmds, c);
	return c;
}

int dynsec_add_create_device_role(cJSON *cmds, const char *serial)
{
	char role[128];
	cJSON *c = cmd(cmds, "createRole");
	if (!c)
		return -1;
	snprintf(role, sizeof(role), DYNSEC_DEVICE_ROLE_PREFIX "%s", serial);
	cJSON_AddStringToObject(c, "rolename", role);
	cJSON_AddItemToObject(c, "acls", device_acls(serial));
	return 0;
}

int dynsec_add_create_device_client(cJSON *cmds, const char *serial, const char *password)
{
	char role[128];
	cJSON *c = cmd(cmds, "createClient"), *roles, *r;
	if (!c)
		return -1;
	snprintf(role, sizeof(role), DYNSEC_DEVICE_ROLE_PREFIX "%s", serial);
	cJSON_AddStringToObject(c, "username", serial);
	cJSON_AddStringToObject(c, "password", password);
	cJSON_AddStringToObject(c, "clientid", serial);
	cJSON_AddStringToObject(c, "textname", "edgetrust device");
	roles = cJSON_AddArrayToObject(c, "roles");
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "rolename", role);
	cJSON_AddItemToArray(roles, r);
	return 0;
}

int dynsec_add_set_password(cJSON *cmds, const char *serial, const char *password)
{
	cJSON *c = cmd(cmds, "setClientPassword");
	if (!c)
		return -1;
	cJSON_AddStringToObject(c, "username", serial);
	cJSON_AddStringToObject(c, "password", password);
	return 0;
}

int dynsec_add_client_role(cJSON *cmds, const char *serial)
{
	char role[128];
	cJSON *c = cmd(cmds, "addClientRole");
	if (!c)
		return -1;
	snprintf(role, sizeof(role), DYNSEC_DEVICE_ROLE_PREFIX "%s", serial);
	cJSON_AddStringToObject(c, "username", serial);
	cJSON_AddStringToObject(c, "rolename", role);
	return 0;
}

int dynsec_add_enable(cJSON *cmds, const char *serial, int enable)
{
	cJSON *c = cmd(cmds, enable ? "enableClient" : "disableClient");
	if (!c)
		return -1;
	cJSON_AddStringToObject(c, "username", serial);
	return 0;
}

static cJSON *client_entry(const char *user, const char *password, const char *role)
{
	unsigned char salt[12], hash[64];
	char salt64[24], hash64[96];
	cJSON *c, *roles, *r;

	if (RAND_bytes(salt, sizeof(salt)) != 1 ||
	    PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, sizeof(salt), 101, EVP_sha512(),
			      sizeof(hash), hash) != 1)
		return NULL;
	EVP_EncodeBlock((unsigned char *)salt64, salt, sizeof(salt));
	EVP_EncodeBlock((unsigned char *)hash64, hash, sizeof(hash));
	c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "username", user);
	cJSON_AddStringToObject(c, "password", hash64);
	cJSON_AddStringToObject(c, "salt", salt64);
	cJSON_AddNumberToObject(c, "iterations", 101);
	roles = cJSON_AddArrayToObject(c, "roles");
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "rolename", role);
	cJSON_AddItemToArray(roles, r);
	return c;
}

static cJSON *role_entry(const char *name, const char *const acls[][2])
{
	cJSON *r = cJSON_CreateObject(), *a;
	cJSON_AddStringToObject(r, "rolename", name);
	a = cJSON_AddArrayToObject(r, "acls");
	for (size_t i = 0; acls[i][0]; i++)
		cJSON_AddItemToArray(a, acl(acls[i][0], acls[i][1], 1));
	return r;
}

cJSON *dynsec_initial_config(const char *cloud_password, const char *bootstrap_password)
{
	static const char *const cloud_acls[][2] = {
		{ "publishClientSend", "$CONTROL/dynamic-security/#" },
		{ "publishClientReceive", "$CONTROL/dynamic-security/#" },
		{ "subscribePattern", "$CONTROL/dynamic-security/#" },
		/* the edgetrust plugin's control topic: disconnect revoked device logins */
		{ "publishClientSend", "$CONTROL/edgetrust/v1" },
		{ "publishClientSend", "et/v1/#" },
		{ "publishClientReceive", "et/v1/#" },
		{ "subscribePattern", "et/v1/#" },
		{ "subscribePattern", "$share/etcloud/et/v1/#" },
		{ NULL, NULL },
	};
	/* Unregistered devices: ask to register, read the (sealed) answers. Nothing else. */
	static const char *const bootstrap_acls[][2] = {
		{ "publishClientSend", "et/v1/+/register" },
		{ "subscribePattern", "et/v1/+/register/reply" },
		{ "publishClientReceive", "et/v1/+/register/reply" },
		{ NULL, NULL },
	};
	cJSON *root = cJSON_CreateObject(), *clients, *roles, *def, *c1, *c2;

	clients = cJSON_AddArrayToObject(root, "clients");
	c1 = client_entry(DYNSEC_CLOUD_USER, cloud_password, DYNSEC_CLOUD_ROLE);
	c2 = client_entry(DYNSEC_BOOTSTRAP_USER, bootstrap_password, DYNSEC_BOOTSTRAP_ROLE);
	if (!c1 || !c2) {
		cJSON_Delete(c1);
		cJSON_Delete(c2);
		cJSON_Delete(root);
		return NULL;
	}
	cJSON_AddItemToArray(clients, c1);
	cJSON_AddItemToArray(clients, c2);
	cJSON_AddArrayToObject(root, "groups");
	roles = cJSON_AddArrayToObject(root, "roles");
	cJSON_AddItemToArray(roles, role_entry(DYNSEC_CLOUD_ROLE, cloud_acls));
	cJSON_AddItemToArray(roles, role_entry(DYNSEC_BOOTSTRAP_ROLE, bootstrap_acls));
	/* Deny everything not granted by a role, in both directions. */
	def = cJSON_AddObjectToObject(root, "defaultACLAccess");
	cJSON_AddBoolToObject(def, "publishClientSend", 0);
	cJSON_AddBoolToObject(def, "publishClientReceive", 0);
	cJSON_AddBoolToObject(def, "subscribe", 0);
	cJSON_AddBoolToObject(def, "unsubscribe", 1);
	return root;
}
