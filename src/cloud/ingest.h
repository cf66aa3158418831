/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The telemetry ingestion boundary of `serve`: device data messages (telemetry, status,
 * reported settings) checked (proto_data.c), limited per device (limits.c) and stored, each
 * message in its own savepoint of the batch's transaction, so that nothing one device sends can
 * cost another device a reading (docs/protocol.md "Telemetry validation").
 */
#ifndef ET_CLOUD_INGEST_H
#define ET_CLOUD_INGEST_H

#include <stddef.h>

#include "proto.h"
#include "registry.h"
#include "serve.h"

struct ingest;
struct ingest *ingest_new(reg *r, const struct serve_opts *o);
void ingest_free(struct ingest *g);
/* One message of kind "telemetry", "status" or "settings/reported", inside the caller's open
 * transaction. Records stored (new or duplicates) are added to acks, to be sent after the
 * commit; refused ones are counted (refusal.h) and neither stored nor acknowledged. */
void ingest_message(struct ingest *g, const char *serial, const char *kind, const void *payload,
		    size_t len, struct proto_acks *acks);

#endif
