/* A message and its delivery as the relay hands them to a sink, for the
 * sinks' unit tests: type "Order.Created", aggregate type "Order", the
 * CloudEvent of table "outbox". Strings are borrowed, never freed; the
 * CloudEvent is freed with ob_ce_free(&f->ce). */
#ifndef OB_TESTS_DELIVERY_FIXTURE_H
#define OB_TESTS_DELIVERY_FIXTURE_H

#include <string.h>

#include "core/cloudevents.h"
#include "sinks/sink.h"

struct delivery_fixture {
    struct ob_message m;
    struct ob_ce ce;
    struct ob_delivery d;
    struct ob_header headers[16];
};

static inline void delivery_fixture_init(struct delivery_fixture *f, const char *pk, const char *sk,
                                         const char *payload)
{
    memset(f, 0, sizeof *f);
    f->m.pk = (char *)pk;
    f->m.sk = (char *)sk;
    f->m.message_type = (char *)"Order.Created";
    f->m.aggregate_type = (char *)"Order";
    f->m.payload = (unsigned char *)payload;
    f->m.payload_len = strlen(payload);
    f->m.headers = f->headers;
    ob_ce_from_message(&f->ce, &f->m, NULL, "outbox");
    f->d.msg = &f->m;
    f->d.ce = &f->ce;
}

static inline void delivery_fixture_header(struct delivery_fixture *f, const char *name, const char *value)
{
    f->headers[f->m.n_headers++] = (struct ob_header){(char *)name, (char *)value};
}

#endif
