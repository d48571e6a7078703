/* kinesis sink: PutRecords (AWS JSON 1.1) of structured CloudEvents, the
 * message's pk as PartitionKey (SPEC §4). A batch goes as calls of one
 * stream's records, at most 500 records and 5 MiB (ob_aws_sink_send). A
 * record with a SequenceNumber is acknowledged; a failed one is that
 * message's failure alone.
 *
 * Per-key order: Kinesis keeps a shard's records in the order it stored
 * them, and the same partition key always lands on the same shard. The
 * relay sends a key's next message only after the previous one was
 * acknowledged (relay.ordering: key), so a retried record can never be
 * overtaken by a later one of its key, whichever call carries either.
 *
 * A stream given by ARN is sent as StreamARN and StreamName: PutRecords
 * takes either or both, StreamARN is the one AWS recommends, and
 * endpoints that predate it (kinesalite) find the stream by name. */
#include "sinks/kinesis.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "core/json_scan.h"
#include "sinks/common.h"

/* Kinesis's own error names (botocore's model of PutRecords), for a call
 * and for a record of an answer. */
static const struct ob_aws_error_name kinesis_errors[] = {
    { "ProvisionedThroughputExceededException", OB_ERR_THROTTLED, true },
    { "KMSThrottlingException", OB_ERR_THROTTLED, true },
    { "LimitExceededException", OB_ERR_THROTTLED, true },
    { "InternalFailure", OB_ERR_SERVICE, true },
    { "ResourceNotFoundException", OB_ERR_NOT_FOUND, false },
    { "InvalidArgumentException", OB_ERR_VALIDATION, false },
    { "KMSNotFoundException", OB_ERR_NOT_FOUND, false },
    { "KMSDisabledException", OB_ERR_VALIDATION, false },
    { "KMSInvalidStateException", OB_ERR_VALIDATION, false },
    { "KMSAccessDeniedException", OB_ERR_ACCESS_DENIED, false },
    { "KMSOptInRequired", OB_ERR_ACCESS_DENIED, false },
};

static const struct ob_aws_service kinesis_service = {
    .signing_name = "kinesis",
    .target_prefix = "Kinesis_20131202",
    .content_type = "application/x-amz-json-1.1",
    .errors = kinesis_errors,
    .n_errors = sizeof kinesis_errors / sizeof kinesis_errors[0],
};

/* ---- pure parts (kinesis.h) ---------------------------------------------- */

static bool stream_name_valid(const char *s, size_t len)
{
    if (len < 1 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return false;
    }
    return true;
}

static bool all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool region_valid(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

enum ob_err ob_kinesis_stream_parse(const char *text, struct ob_kinesis_stream *out, struct ob_error *err)
{
    memset(out, 0, sizeof *out);
    if (strncmp(text, "arn:", 4) != 0) {
        if (!stream_name_valid(text, strlen(text)))
            goto bad;
        out->name = ob_xstrdup(text);
        return OB_OK;
    }
    /* arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME */
    const char *field[6];
    size_t len[6];
    const char *p = text;
    for (int i = 0; i < 6; i++) {
        const char *colon = i < 5 ? strchr(p, ':') : NULL;
        if (i < 5 && !colon)
            goto bad;
        field[i] = p;
        len[i] = colon ? (size_t)(colon - p) : strlen(p);
        p = colon ? colon + 1 : p;
    }
    bool partition = len[1] >= 3 && strncmp(field[1], "aws", 3) == 0 && (len[1] == 3 || field[1][3] == '-');
    bool service = len[2] == 7 && strncmp(field[2], "kinesis", 7) == 0;
    bool account = len[4] == 12 && all_digits(field[4], 12);
    bool resource = len[5] > 7 && strncmp(field[5], "stream/", 7) == 0 && stream_name_valid(field[5] + 7, len[5] - 7);
    if (!partition || !service || !region_valid(field[3], len[3]) || !account || !resource)
        goto bad;
    out->name = ob_xstrdup(field[5] + 7);
    out->arn = ob_xstrdup(text);
    out->region = ob_xstrndup(field[3], len[3]);
    return OB_OK;
bad:
    return ob_error_set(err, OB_ERR_INVALID,
                        "'%s' is neither a stream name ([a-zA-Z0-9_.-], 1 to 128 characters) nor a stream ARN "
                        "(arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME)",
                        text);
}

void ob_kinesis_stream_free(struct ob_kinesis_stream *st)
{
    free(st->name);
    free(st->arn);
    free(st->region);
    memset(st, 0, sizeof *st);
}

/* UTF-16 code units of valid UTF-8 text: one per character, two for one
 * outside the Basic Multilingual Plane (a four-byte sequence). */
static size_t utf16_units(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80)
            n += *p >= 0xF0 ? 2 : 1;
    return n;
}

const char *ob_kinesis_partition_key(const char *pk, char digest[OB_KINESIS_DIGEST_KEY_SIZE])
{
    size_t len = strlen(pk);
    /* A UTF-8 byte is at most one UTF-16 unit, and a unit at most three bytes. */
    if (len > 0 && len <= 3 * OB_KINESIS_MAX_KEY_UNITS && ob_utf8_valid(pk, len) &&
        (len <= OB_KINESIS_MAX_KEY_UNITS || utf16_units(pk) <= OB_KINESIS_MAX_KEY_UNITS))
        return pk;
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)pk, len, md);
    memcpy(digest, OB_KINESIS_DIGEST_PREFIX, sizeof OB_KINESIS_DIGEST_PREFIX - 1);
    ob_hex_encode(md, sizeof md, digest + sizeof OB_KINESIS_DIGEST_PREFIX - 1);
    return digest;
}

size_t ob_kinesis_record_size(const struct ob_kinesis_record *r)
{
    return r->data_len + strlen(r->key);
}

void ob_kinesis_request(struct ob_buf *body, const struct ob_kinesis_stream *st, const struct ob_kinesis_record *recs,
                        size_t n)
{
    size_t need = 64 + (st->arn ? strlen(st->arn) : 0);
    for (size_t i = 0; i < n; i++)
        need += (recs[i].data_len + 2) / 3 * 4 + strlen(recs[i].key) + 40;
    ob_buf_reserve_exact(body, need);
    ob_buf_puts(body, "{\"StreamName\":");
    ob_json_put_string(body, st->name);
    if (st->arn) {
        ob_buf_puts(body, ",\"StreamARN\":");
        ob_json_put_string(body, st->arn);
    }
    ob_buf_puts(body, ",\"Records\":[");
    for (size_t i = 0; i < n; i++) {
        ob_buf_puts(body, i ? ",{\"Data\":\"" : "{\"Data\":\"");
        ob_base64_encode(body, recs[i].data, recs[i].data_len);
        ob_buf_puts(body, "\",\"PartitionKey\":");
        ob_json_put_string(body, recs[i].key);
        ob_buf_putc(body, '}');
    }
    ob_buf_puts(body, "]}");
}

void ob_kinesis_results(const json_t *answer, struct ob_delivery *const *d, size_t n)
{
    const json_t *records = json_object_get(answer, "Records");
    if (!json_is_array(records) || json_array_size(records) != n) {
        for (size_t i = 0; i < n; i++)
            ob_delivery_set(d[i], OB_DELIVERY_RETRY, "PutRecords: the answer has %zu results for %zu records",
                            json_array_size(records), n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *r = json_array_get(records, i);
        if (json_is_string(json_object_get(r, "SequenceNumber")))
            continue;
        const char *code = json_string_value(json_object_get(r, "ErrorCode"));
        const char *message = json_string_value(json_object_get(r, "ErrorMessage"));
        if (!code) {
            ob_delivery_set(d[i], OB_DELIVERY_RETRY, "PutRecords entry: neither a SequenceNumber nor an ErrorCode");
            continue;
        }
        const struct ob_aws_error_name *known = ob_aws_sink_error_name(&kinesis_service, code);
        ob_aws_sink_entry_failed(d[i], "PutRecords", code, message, known && known->retriable);
    }
}

/* ---- the sink ----------------------------------------------------------- */

struct kinesis_sink {
    struct ob_aws_sink aws;
    struct ob_kinesis_stream stream; /* stream_name; name NULL when not set */
};

/* One delivery of a publish on its way to a call. Stays where it is: rec.key may point at digest. */
struct kinesis_entry {
    struct ob_delivery *d;
    const struct ob_kinesis_stream *stream;
    struct ob_kinesis_stream own;        /* the message's destination, when it has one */
    struct ob_buf data;
    char digest[OB_KINESIS_DIGEST_KEY_SIZE];
    struct ob_kinesis_record rec;
};

/* Why a stream of this ARN region cannot be reached with the sink's
 * region, into why (cap bytes); false when it can. */
static bool region_mismatch(const struct ob_kinesis_stream *st, const char *region, char *why, size_t cap)
{
    if (!st->region || !region || strcmp(st->region, region) == 0)
        return false;
    snprintf(why, cap, "is in %s, but the sink's region is %s (requests are signed for and sent to the sink's region)",
             st->region, region);
    return true;
}

static void kinesis_check(const struct ob_config_sink *sink, struct ob_sink_check *c)
{
    const char *name = ob_sink_opt_str(sink, "stream_name");
    if (!name)
        return;
    struct ob_kinesis_stream st;
    struct ob_error why = {0};
    struct ob_config_pos at = ob_sink_check_value_at(c, "stream_name");
    if (ob_kinesis_stream_parse(name, &st, &why) != OB_OK) {
        ob_sink_check_error(c, at, "'stream_name' of %s: %s", ob_sink_check_owner(c), why.msg);
        return;
    }
    char mismatch[256];
    const char *region = ob_sink_opt_str(sink, "region");
    if (region && *region && region_mismatch(&st, region, mismatch, sizeof mismatch))
        ob_sink_check_error(c, at, "'stream_name' of %s %s", ob_sink_check_owner(c), mismatch);
    ob_kinesis_stream_free(&st);
}

static void sink_free(struct kinesis_sink *s)
{
    ob_aws_sink_fini(&s->aws);
    ob_kinesis_stream_free(&s->stream);
    free(s);
}

static enum ob_err kinesis_create(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx, void **state,
                                  struct ob_error *err)
{
    struct kinesis_sink *s = ob_xcalloc(1, sizeof *s);
    enum ob_err rc = OB_OK;
    const char *name = ob_sink_opt_str(cfg, "stream_name");
    if (name) {
        if (ob_kinesis_stream_parse(name, &s->stream, err) != OB_OK) {
            ob_error_prefix(err, "stream_name");
            rc = err->code = OB_ERR_CONFIG;
            goto out;
        }
    }
    rc = ob_aws_sink_init(&s->aws, cfg, ctx, "kinesis", err);
    if (rc)
        goto out;
    char mismatch[256];
    if (region_mismatch(&s->stream, s->aws.region, mismatch, sizeof mismatch))
        rc = ob_error_set(err, OB_ERR_CONFIG, "stream_name %s", mismatch);
out:
    if (rc) {
        sink_free(s);
        s = NULL;
    }
    *state = s;
    return rc;
}

/* Makes e's record: its stream, data and key. False (and its result set)
 * when it cannot be sent. */
static bool entry_prepare(const struct kinesis_sink *s, struct kinesis_entry *e)
{
    struct ob_delivery *d = e->d;
    if (d->destination && *d->destination) {
        struct ob_error why = {0};
        if (ob_kinesis_stream_parse(d->destination, &e->own, &why) != OB_OK) {
            ob_delivery_set(d, OB_DELIVERY_REJECT, "destination: %s", why.msg);
            return false;
        }
        e->stream = &e->own;
    } else if (s->stream.name) {
        e->stream = &s->stream;
    } else {
        ob_delivery_set(d, OB_DELIVERY_REJECT, "no stream: the message's route has no topic and the sink no stream_name");
        return false;
    }
    char mismatch[256];
    if (region_mismatch(e->stream, s->aws.region, mismatch, sizeof mismatch)) {
        ob_delivery_set(d, OB_DELIVERY_REJECT, "stream %s %s", e->stream->arn, mismatch);
        return false;
    }
    ob_delivery_structured(&e->data, d);
    e->rec = (struct ob_kinesis_record){
        .data = e->data.data,
        .data_len = e->data.len,
        .key = ob_kinesis_partition_key(d->msg->pk ? d->msg->pk : "", e->digest),
    };
    size_t size = ob_kinesis_record_size(&e->rec);
    if (size > OB_KINESIS_MAX_RECORD_BYTES) {
        ob_delivery_set(d, OB_DELIVERY_REJECT,
                        "record of %zu bytes (structured CloudEvent and partition key) is over Kinesis's limit of "
                        "%u bytes",
                        size, OB_KINESIS_MAX_RECORD_BYTES);
        d->too_large = true;
        return false;
    }
    return true;
}

static void encode_call(const struct ob_aws_call_entries *c, struct ob_buf *body)
{
    const struct kinesis_entry *first = c->e[0]->own;
    struct ob_kinesis_record *recs = ob_xcalloc(c->n, sizeof *recs);
    for (size_t i = 0; i < c->n; i++)
        recs[i] = ((const struct kinesis_entry *)c->e[i]->own)->rec;
    ob_kinesis_request(body, first->stream, recs, c->n);
    free(recs);
}

static void read_answer(const struct ob_aws_call *call, const struct ob_aws_call_entries *c)
{
    ob_kinesis_results(call->response, c->d, c->n);
}

const struct ob_aws_batch_rules ob_kinesis_batch = {
    .service = &kinesis_service,
    .operation = "PutRecords",
    .max_entries = OB_KINESIS_MAX_RECORDS,
    .max_bytes = OB_KINESIS_MAX_CALL_BYTES,
    .encode = encode_call,
    .read_answer = read_answer,
};

static void kinesis_publish(void *state, struct ob_delivery *batch, size_t n)
{
    struct kinesis_sink *s = state;
    struct kinesis_entry *entries = ob_xcalloc(n, sizeof *entries);
    struct ob_aws_entry *e = ob_xcalloc(n, sizeof *e);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct kinesis_entry *x = &entries[i];
        x->d = &batch[i];
        if (!entry_prepare(s, x))
            continue;
        /* A stream given by ARN is another destination than one by name. */
        const char *stream = x->stream->arn ? x->stream->arn : x->stream->name;
        e[k++] = (struct ob_aws_entry){.d = x->d, .destination = stream, .size = ob_kinesis_record_size(&x->rec),
                                       .own = x};
    }
    ob_aws_sink_send(&s->aws, &ob_kinesis_batch, e, k);
    for (size_t i = 0; i < n; i++) {
        ob_buf_free(&entries[i].data);
        ob_kinesis_stream_free(&entries[i].own);
    }
    free(e);
    free(entries);
}

static void kinesis_destroy(void *state)
{
    sink_free(state);
}

static const struct ob_config_key kinesis_keys[] = {
    {.path = "stream_name", .type = OB_CT_STRING, .def_doc = "none: every route to the sink gives a `topic`",
     .example = "outbox-events",
     .doc = "Stream name, or stream ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`, in the sink's region); a "
            "route's `topic` overrides it."},
    OB_AWS_SINK_KEYS("Kinesis", "kinesis"),
};

const struct ob_sink_ops ob_kinesis_sink_ops = {
    .schema = {.type = "kinesis",
               .doc = "Amazon Kinesis Data Streams (PutRecords), structured CloudEvents, PartitionKey = pk.",
               .keys = kinesis_keys,
               .n_keys = sizeof kinesis_keys / sizeof kinesis_keys[0],
               .check = kinesis_check},
    .create = kinesis_create,
    .publish = kinesis_publish,
    .destroy = kinesis_destroy,
};
