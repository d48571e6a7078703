/* kafka sink: one idempotent librdkafka producer (acks=all) per sink,
 * shared by every thread that publishes. A publish produces its batch,
 * each record with an opaque pointing at its slot of the batch, and waits
 * until every delivery report (the acknowledgement, SPEC §4) came or the
 * sink's timeout passed; librdkafka fails a record itself at that timeout
 * (message.timeout.ms), so the wait rarely ends on the clock. A thread of
 * the producer serves the reports (its main queue). The batch outlives a
 * publish that gave up waiting until its last report came, so no report
 * ever lands in freed memory.
 *
 * A fatal error of the idempotent producer (rd_kafka_fatal_error) ends
 * that producer: its records fail (RETRY), the next publish makes a new
 * one from the same settings, and the old one is destroyed when the last
 * publish using it lets go.
 *
 * aws_msk_iam: SASL/OAUTHBEARER whose token (aws/msk_iam.h) librdkafka
 * asks for on the poll thread at 80% of the last one's life; credentials
 * are resolved again for each, so rotated ones are picked up.
 *
 * Records: key = pk, placed by the Java client's partitioner (murmur2), so
 * other producers of a key reach the same partition; value = the payload;
 * CloudEvents Kafka binding, binary mode (kafka.h). */
#include "sinks/kafka.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aws/msk_iam.h"
#include "core/buf.h"
#include "ops/log.h"
#include "sinks/aws_sink.h"
#include "sinks/common.h"

/* How long a publish waits past the timeout librdkafka enforces itself
 * (it scans for timed-out records about once a second). */
#define REPORT_GRACE_MS 3000
/* The poll thread's wait; destroy wakes it at once (rd_kafka_queue_yield). */
#define POLL_MS 500
/* What destroy gives purged records to report before the producer goes. */
#define DESTROY_FLUSH_MS 5000

struct kafka_sink;

struct kafka_producer {
    struct kafka_sink *sink;
    rd_kafka_t *rk;
    rd_kafka_queue_t *reports;   /* its main queue: delivery reports, errors, logs */
    pthread_t poller;
    atomic_bool stop;
    atomic_bool fatal;           /* rd_kafka_fatal_error: make a new one */
    int refs;                    /* the sink's and each publish's; guarded by sink->mu */
};

struct kafka_sink {
    char *name;
    char *topic;                 /* the sink's own; a route's topic overrides it */
    rd_kafka_conf_t *conf;       /* every setting; each producer gets a copy */
    int64_t timeout_ms;
    char max_bytes[24];          /* message.max.bytes, for errors */
    atomic_bool all_down;        /* ALL_BROKERS_DOWN since the last acknowledgement */
    pthread_mutex_t mu;          /* guards cur and the producers' refs */
    struct kafka_producer *cur;
    /* aws_msk_iam: the cluster's region and the process's credentials
     * (borrowed), else both NULL. */
    char *region;
    struct ob_cred_provider *credentials;
};

struct kafka_batch;

/* One record of a batch: the opaque of its delivery report. */
struct kafka_slot {
    struct kafka_batch *batch;
    rd_kafka_resp_err_t err;
    bool produced, reported;
};

struct kafka_batch {
    pthread_mutex_t mu;          /* guards the slots' results, pending and refs */
    pthread_cond_t cond;
    size_t pending;              /* produced, not reported */
    size_t refs;                 /* the publish's and each pending report's */
    struct kafka_slot slots[];
};

/* ---- the binding (kafka.h) ---------------------------------------------------- */

static void add_ce_header(const char *name, const char *value, void *ctx)
{
    char key[64];
    snprintf(key, sizeof key, "ce_%s", name);
    rd_kafka_header_add(ctx, key, -1, value, -1);
}

/* Names the binding sets itself. */
static bool header_reserved(const char *name)
{
    return strcasecmp(name, "content-type") == 0 || strncasecmp(name, "ce_", 3) == 0;
}

void ob_kafka_headers_add(rd_kafka_headers_t *h, const struct ob_delivery *d)
{
    ob_ce_each_attribute(d->ce, add_ce_header, h);
    rd_kafka_header_add(h, "content-type", -1, d->ce->datacontenttype, -1);
    if (d->error_info)
        add_ce_header(OB_CE_DEAD_LETTER_REASON, d->error_info, h);
    const struct ob_message *m = d->msg;
    for (size_t i = 0; i < m->n_headers; i++)
        if (!header_reserved(m->headers[i].name))
            rd_kafka_header_add(h, m->headers[i].name, -1, m->headers[i].value, -1);
}

enum ob_delivery_result ob_kafka_result(rd_kafka_resp_err_t err, bool *too_large)
{
    *too_large = false;
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return OB_DELIVERY_ACK;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        *too_large = true;
        return OB_DELIVERY_REJECT;
    /* The connection, the clock, the cluster's state, the client's own
     * state: none of it is this record's fault. Authentication is the
     * sink's (an expiring token, a rotated password), never a reason to
     * dead-letter a message. */
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__RETRY:
    case RD_KAFKA_RESP_ERR__DESTROY:
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__STATE:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR__FAIL:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
    case RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
    case RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
        return OB_DELIVERY_RETRY;
    /* What the broker will answer this record again: unknown topic or
     * partition, authorization, an invalid record or topic, a batch too
     * big, a policy. */
    default:
        return OB_DELIVERY_REJECT;
    }
}

/* Properties a key of the section sets: one place for each setting. */
static const struct {
    const char *property, *key;
} owned[] = {
    {"bootstrap.servers", "brokers"},
    {"metadata.broker.list", "brokers"},
    {"security.protocol", "tls and sasl_mechanism"},
    {"sasl.mechanism", "sasl_mechanism"},
    {"sasl.mechanisms", "sasl_mechanism"},
    {"sasl.username", "sasl_username"},
    {"sasl.password", "sasl_password"},
    {"enable.ssl.certificate.verification", "tls_verify"},
    {"ssl.endpoint.identification.algorithm", "tls_verify"},
    {"message.timeout.ms", "timeout"},
    {"delivery.timeout.ms", "timeout"},
};

/* Whether conf's name reads a or b (a NULL: whether it is unset). */
static bool conf_is(rd_kafka_conf_t *conf, const char *name, const char *a, const char *b)
{
    char v[64];
    size_t n = sizeof v;
    if (rd_kafka_conf_get(conf, name, v, &n) != RD_KAFKA_CONF_OK)
        return !a;
    return a && (strcmp(v, a) == 0 || (b && strcmp(v, b) == 0));
}

/* The guarantees a property could break, read back from conf (which
 * resolves librdkafka's aliases): why not, or NULL. */
static const char *guarantee_broken(rd_kafka_conf_t *conf)
{
    if (!conf_is(conf, "enable.idempotence", "true", NULL))
        return "the sink's producer is idempotent: enable.idempotence must stay true";
    if (!conf_is(conf, "acks", "-1", "all"))
        return "a record counts as delivered once all in-sync replicas have it: acks must stay all";
    if (!conf_is(conf, "partitioner", "murmur2_random", "murmur2"))
        return "records are placed by the Java client's partitioner (murmur2_random or murmur2), so that other "
               "producers of a key reach the same partition";
    if (!conf_is(conf, "transactional.id", NULL, NULL))
        return "the sink's producer is not transactional: transactional.id cannot be set";
    if (!conf_is(conf, "delivery.report.only.error", "false", NULL))
        return "a record counts as delivered on its delivery report: delivery.report.only.error must stay false";
    return NULL;
}

rd_kafka_conf_t *ob_kafka_conf_new(void)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    static const char *const fixed[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"partitioner", "murmur2_random"},
    };
    char errstr[256];
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
            abort(); /* librdkafka without these properties: not a build outboxd supports */
    return conf;
}

bool ob_kafka_property_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *why, size_t why_size)
{
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
        if (strcmp(name, owned[i].property) == 0) {
            snprintf(why, why_size, "'%s' is set by the sink's %s, not in properties", name, owned[i].key);
            return false;
        }
    }
    char errstr[512];
    /* librdkafka quotes a refused value only for properties with a set of
     * values (compression.type), none of them a secret. */
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        snprintf(why, why_size, "librdkafka refuses '%s': %s", name, errstr);
        return false;
    }
    const char *broken = guarantee_broken(conf);
    if (broken) {
        snprintf(why, why_size, "'%s' cannot be set: %s", name, broken);
        return false;
    }
    return true;
}

/* ---- the producer -------------------------------------------------------------- */

static void batch_release(struct kafka_batch *b)
{
    pthread_mutex_lock(&b->mu);
    bool last = --b->refs == 0;
    pthread_mutex_unlock(&b->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cond);
    free(b);
}

/* Delivery report, on the producer's poll thread. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kafka_producer *p = opaque;
    (void)rk;
    if (!m->err)
        atomic_store(&p->sink->all_down, false);
    struct kafka_slot *slot = m->_private;
    struct kafka_batch *b = slot->batch;
    pthread_mutex_lock(&b->mu);
    slot->err = m->err;
    slot->reported = true;
    if (--b->pending == 0)
        pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->mu);
    batch_release(b);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_producer *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(rk, why, sizeof why);
        ob_log_error("kafka sink '%s': the producer failed (%s: %s); its records are retried on a new producer",
                     p->sink->name, rd_kafka_err2name(fatal), why);
        atomic_store(&p->fatal, true);
    } else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        ob_log_warn("kafka sink '%s': no broker can be reached (%s)", p->sink->name, reason);
        atomic_store(&p->sink->all_down, true);
    } else {
        /* librdkafka logged it already (on_log); this is its error event. */
        ob_log_debug("kafka sink '%s': %s: %s", p->sink->name, rd_kafka_err2name(err), reason);
    }
}

/* librdkafka wants an MSK IAM token (at start, then at 80% of the last
 * one's life), on the poll thread. */
static void on_token_refresh(rd_kafka_t *rk, const char *config, void *opaque)
{
    struct kafka_producer *p = opaque;
    struct kafka_sink *s = p->sink;
    struct ob_cred_snapshot *creds = ob_cred_acquire(s->credentials);
    struct ob_buf token = {0};
    struct ob_error err = {0};
    int64_t expires_ms = 0;
    char errstr[512];
    (void)config;
    if (ob_msk_iam_token(&creds->creds, s->region, time(NULL), &token, &expires_ms, &err) == OB_OK) {
        /* The token is no good past the credentials it was signed with:
         * librdkafka asks for the next one before either runs out. */
        if (creds->creds.expires_at && creds->creds.expires_at * 1000 < expires_ms)
            expires_ms = creds->creds.expires_at * 1000;
        if (rd_kafka_oauthbearer_set_token(rk, ob_buf_cstr(&token), expires_ms, creds->creds.access_key_id, NULL, 0,
                                           errstr, sizeof errstr) == RD_KAFKA_RESP_ERR_NO_ERROR)
            ob_log_debug("kafka sink '%s': MSK IAM token for %s from %s", s->name, s->region, creds->creds.source);
        else
            ob_error_set(&err, OB_ERR_CREDENTIALS, "librdkafka refuses the MSK IAM token: %s", errstr);
    }
    if (err.code) {
        ob_log_warn("kafka sink '%s': no MSK IAM token: %s", s->name, err.msg);
        rd_kafka_oauthbearer_set_token_failure(rk, err.msg);
    }
    ob_buf_free(&token);
    ob_cred_release(creds);
}

/* librdkafka's own log lines, at the matching level (syslog levels). */
static void on_log(const rd_kafka_t *rk, int level, const char *facility, const char *line)
{
    struct kafka_producer *p = rd_kafka_opaque(rk);
    enum ob_log_severity sev = level <= 3 ? OB_SEV_ERROR : level == 4 ? OB_SEV_WARN : level <= 6 ? OB_SEV_INFO
                                                                                                 : OB_SEV_DEBUG;
    ob_log_at(sev, NULL, NULL, "kafka sink '%s': %s: %s", p ? p->sink->name : "?", facility, line);
}

static void *poll_loop(void *arg)
{
    struct kafka_producer *p = arg;
    while (!atomic_load(&p->stop))
        rd_kafka_queue_poll_callback(p->reports, POLL_MS);
    return NULL;
}

/* Ends p: its queued records are purged (their reports let waiting
 * batches go), then librdkafka's threads. */
static void producer_destroy(struct kafka_producer *p)
{
    atomic_store(&p->stop, true);
    rd_kafka_queue_yield(p->reports);
    pthread_join(p->poller, NULL);
    rd_kafka_queue_destroy(p->reports);
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    if (rd_kafka_flush(p->rk, DESTROY_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        ob_log_warn("kafka sink '%s': %d records still unreported at shutdown", p->sink->name,
                    rd_kafka_outq_len(p->rk));
    rd_kafka_destroy(p->rk);
    free(p);
}

/* A new producer from s's settings; NULL (and why in err) when librdkafka
 * refuses them as a whole. */
static struct kafka_producer *producer_new(struct kafka_sink *s, struct ob_error *err)
{
    struct kafka_producer *p = ob_xcalloc(1, sizeof *p);
    p->sink = s;
    p->refs = 1;
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(s->conf);
    rd_kafka_conf_set_opaque(conf, p);
    char errstr[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        free(p);
        ob_error_set(err, OB_ERR_CONFIG, "librdkafka refuses the producer's settings: %s", errstr);
        return NULL;
    }
    p->reports = rd_kafka_queue_get_main(p->rk);
    int rc = pthread_create(&p->poller, NULL, poll_loop, p);
    if (rc) {
        rd_kafka_queue_destroy(p->reports);
        rd_kafka_destroy(p->rk);
        free(p);
        ob_error_set(err, OB_ERR_INTERNAL, "cannot start the delivery report thread: %s", strerror(rc));
        return NULL;
    }
    return p;
}

/* The producer to publish with, held until producer_release; a failed
 * one is replaced first. */
static struct kafka_producer *producer_acquire(struct kafka_sink *s)
{
    struct kafka_producer *old = NULL;
    pthread_mutex_lock(&s->mu);
    if (atomic_load(&s->cur->fatal)) {
        struct ob_error err = {0};
        struct kafka_producer *fresh = producer_new(s, &err);
        if (fresh) {
            old = s->cur;
            s->cur = fresh;
            ob_log_info("kafka sink '%s': a new producer replaces the failed one", s->name);
        } else {
            ob_log_error("kafka sink '%s': %s", s->name, err.msg);
        }
    }
    struct kafka_producer *p = s->cur;
    p->refs++;
    bool last = old && --old->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        producer_destroy(old);
    return p;
}

static void producer_release(struct kafka_sink *s, struct kafka_producer *p)
{
    pthread_mutex_lock(&s->mu);
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        producer_destroy(p);
}

/* ---- the sink -------------------------------------------------------------------- */

static const char *const mechanisms[] = {"plain", "scram-sha-256", "scram-sha-512", "aws_msk_iam", NULL};
/* librdkafka's names of the mechanisms, in the same order. */
static const char *const rdkafka_mechanisms[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"};
enum { MECH_PLAIN, MECH_SCRAM_256, MECH_SCRAM_512, MECH_AWS_MSK_IAM };

/* The section's mechanism, -1 when none. */
static int mechanism_of(const struct ob_config_sink *cfg)
{
    const char *m = ob_sink_opt_str(cfg, "sasl_mechanism");
    for (int i = 0; m && mechanisms[i]; i++)
        if (strcmp(m, mechanisms[i]) == 0)
            return i;
    return -1;
}

static struct ob_config_pos pair_pos(const struct ob_config_pair *p)
{
    return (struct ob_config_pos){p->line, p->column};
}

static enum ob_err conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, struct ob_error *err)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) == RD_KAFKA_CONF_OK)
        return OB_OK;
    return ob_error_set(err, OB_ERR_CONFIG, "librdkafka refuses %s: %s", name, errstr);
}

/* *out (the caller's, also after an error): the settings of cfg's keys,
 * not its properties nor the callbacks; brokers NULL: none. A key left
 * unset (a sasl_username check reported) is left out. */
static enum ob_err keys_conf(const struct ob_config_sink *cfg, const char *brokers, rd_kafka_conf_t **out,
                             struct ob_error *err)
{
    rd_kafka_conf_t *conf = *out = ob_kafka_conf_new();
    int mech = mechanism_of(cfg);
    bool tls = ob_sink_opt_bool(cfg, "tls") || mech == MECH_AWS_MSK_IAM;
    bool verify = ob_sink_opt_bool(cfg, "tls_verify");
    bool password = mech >= 0 && mech != MECH_AWS_MSK_IAM;
    char timeout[24];
    snprintf(timeout, sizeof timeout, "%lld", (long long)ob_sink_opt_duration_ms(cfg, "timeout"));
    const char *protocol = mech < 0 ? (tls ? "ssl" : "plaintext") : (tls ? "sasl_ssl" : "sasl_plaintext");
    const char *settings[][2] = {
        {"bootstrap.servers", brokers},
        {"client.id", "outboxd"},
        /* The Java client's: a broker back from an outage is used within a
         * second (librdkafka's own default waits up to 10 s). */
        {"reconnect.backoff.max.ms", "1000"},
        /* A shard waits for each wave's acknowledgements before its next:
         * librdkafka's 5 ms linger would be on every wave (a drain ran at
         * a third of the rate); with none, each record is a request. */
        {"linger.ms", "1"},
        {"message.timeout.ms", timeout},
        {"security.protocol", protocol},
        {"enable.ssl.certificate.verification", verify ? "true" : "false"},
        {"ssl.endpoint.identification.algorithm", verify ? "https" : "none"},
        {"sasl.mechanisms", mech >= 0 ? rdkafka_mechanisms[mech] : NULL},
        {"sasl.username", password ? ob_sink_opt_str(cfg, "sasl_username") : NULL},
        {"sasl.password", password ? ob_sink_opt_str(cfg, "sasl_password") : NULL},
    };
    enum ob_err rc = OB_OK;
    for (size_t i = 0; i < sizeof settings / sizeof settings[0] && !rc; i++)
        if (settings[i][1])
            rc = conf_set(conf, settings[i][0], settings[i][1], err);
    return rc;
}

static void log_nowhere(const rd_kafka_t *rk, int level, const char *facility, const char *line)
{
    (void)rk;
    (void)level;
    (void)facility;
    (void)line;
}

static void token_nowhere(rd_kafka_t *rk, const char *config, void *opaque)
{
    (void)rk;
    (void)config;
    (void)opaque;
}

/* Whether librdkafka makes a producer of (a copy of) conf, which has no
 * brokers: it connects nowhere. Some settings it refuses only together
 * (max.in.flight over 5 with idempotence, linger.ms past
 * message.timeout.ms), there; why in its words when not. */
static bool producer_made(const rd_kafka_conf_t *conf, bool oauthbearer, char *why, size_t why_size)
{
    rd_kafka_conf_t *trial = rd_kafka_conf_dup(conf);
    rd_kafka_conf_set_log_cb(trial, log_nowhere);
    if (oauthbearer)
        rd_kafka_conf_set_oauthbearer_token_refresh_cb(trial, token_nowhere);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, trial, why, why_size);
    if (!rk) {
        rd_kafka_conf_destroy(trial);
        return false;
    }
    rd_kafka_destroy(rk);
    return true;
}

static void kafka_check(const struct ob_config_sink *sink, struct ob_sink_check *c)
{
    int mech = mechanism_of(sink);
    bool user = ob_sink_check_given(c, "sasl_username"), pass = ob_sink_check_given(c, "sasl_password");
    const char *owner = ob_sink_check_owner(c);
    if ((mech == MECH_PLAIN || mech == MECH_SCRAM_256 || mech == MECH_SCRAM_512) && (!user || !pass))
        ob_sink_check_error(c, ob_sink_check_value_at(c, "sasl_mechanism"),
                            "sasl_mechanism %s of %s needs sasl_username and sasl_password", mechanisms[mech], owner);
    if (mech == MECH_AWS_MSK_IAM && (user || pass))
        ob_sink_check_error(c, ob_sink_check_value_at(c, user ? "sasl_username" : "sasl_password"),
                            "%s of %s: aws_msk_iam signs with the relay's AWS credentials, it takes no %s", user
                            ? "sasl_username" : "sasl_password", owner, user ? "user name" : "password");
    if (mech < 0 && (user || pass))
        ob_sink_check_error(c, ob_sink_check_value_at(c, user ? "sasl_username" : "sasl_password"),
                            "%s of %s needs sasl_mechanism", user ? "sasl_username" : "sasl_password", owner);
    if (mech == MECH_AWS_MSK_IAM && ob_sink_opt_is_set(sink, "tls") && !ob_sink_opt_bool(sink, "tls"))
        ob_sink_check_error(c, ob_sink_check_value_at(c, "tls"), "aws_msk_iam of %s needs tls: MSK takes IAM "
                            "authentication over TLS only", owner);
    if (mech != MECH_AWS_MSK_IAM && ob_sink_check_given(c, "region"))
        ob_sink_check_error(c, ob_sink_check_value_at(c, "region"), "region of %s is for sasl_mechanism aws_msk_iam",
                            owner);

    /* The producer `run` would make, without its brokers: the keys, then
     * each property against them and the properties taken before it. */
    bool whole = !(mech == MECH_PLAIN || mech == MECH_SCRAM_256 || mech == MECH_SCRAM_512) || (user && pass);
    char refused[512];
    rd_kafka_conf_t *conf = NULL;
    struct ob_error err = {0};
    if (keys_conf(sink, NULL, &conf, &err)) {
        ob_sink_check_error(c, ob_sink_check_value_at(c, "timeout"), "timeout of %s: %s", owner, err.msg);
        whole = false;
    } else if (whole && !producer_made(conf, mech == MECH_AWS_MSK_IAM, refused, sizeof refused)) {
        ob_sink_check_error(c, ob_sink_check_value_at(c, "timeout"), "timeout of %s: librdkafka refuses the "
                            "producer: %s", owner, refused);
        whole = false;
    }
    const struct ob_config_map *props = ob_sink_opt_map(sink, "properties");
    for (size_t i = 0; i < props->n; i++) {
        const struct ob_config_pair *pair = &props->pairs[i];
        rd_kafka_conf_t *next = rd_kafka_conf_dup(conf);
        char why[768];
        bool taken = ob_kafka_property_set(next, pair->key, pair->value, why, sizeof why);
        if (taken && whole && !producer_made(next, mech == MECH_AWS_MSK_IAM, refused, sizeof refused)) {
            snprintf(why, sizeof why, "librdkafka refuses the producer with '%s': %s", pair->key, refused);
            taken = false;
        }
        if (!taken) {
            ob_sink_check_error(c, pair_pos(pair), "properties of %s: %s", owner, why);
            rd_kafka_conf_destroy(next);
            continue;
        }
        rd_kafka_conf_destroy(conf);
        conf = next;
    }
    rd_kafka_conf_destroy(conf);
}

static void sink_free(struct kafka_sink *s)
{
    if (s->cur)
        producer_release(s, s->cur);
    if (s->conf)
        rd_kafka_conf_destroy(s->conf);
    pthread_mutex_destroy(&s->mu);
    free(s->name);
    free(s->topic);
    free(s->region);
    free(s);
}

/* s->conf from the section: the sink's keys, then `properties`. */
static enum ob_err conf_build(struct kafka_sink *s, const struct ob_config_sink *cfg, struct ob_error *err)
{
    enum ob_err rc = keys_conf(cfg, ob_sink_opt_str(cfg, "brokers"), &s->conf, err);
    if (rc)
        return rc;
    rd_kafka_conf_t *conf = s->conf;
    const struct ob_config_map *props = ob_sink_opt_map(cfg, "properties");
    for (size_t i = 0; i < props->n; i++) {
        char why[768];
        if (!ob_kafka_property_set(conf, props->pairs[i].key, props->pairs[i].value, why, sizeof why))
            return ob_error_set(err, OB_ERR_CONFIG, "properties: %s", why);
    }
    size_t n = sizeof s->max_bytes;
    if (rd_kafka_conf_get(conf, "message.max.bytes", s->max_bytes, &n) != RD_KAFKA_CONF_OK)
        snprintf(s->max_bytes, sizeof s->max_bytes, "?");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    if (mechanism_of(cfg) == MECH_AWS_MSK_IAM)
        rd_kafka_conf_set_oauthbearer_token_refresh_cb(conf, on_token_refresh);
    return OB_OK;
}

/* aws_msk_iam: the region (the sink's, else the process's) and the
 * process's credentials, taken for every token. */
static enum ob_err msk_iam_init(struct kafka_sink *s, const struct ob_config_sink *cfg,
                                const struct ob_sink_context *ctx, struct ob_error *err)
{
    s->credentials = ctx->credentials;
    return ob_aws_sink_identity(cfg, ctx, &s->region, err);
}

static enum ob_err kafka_create(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx, void **state,
                                struct ob_error *err)
{
    struct kafka_sink *s = ob_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->name = ob_xstrdup(cfg->name);
    s->topic = ob_xstrdup(ob_sink_opt_str(cfg, "topic"));
    s->timeout_ms = ob_sink_opt_duration_ms(cfg, "timeout");
    enum ob_err rc = mechanism_of(cfg) == MECH_AWS_MSK_IAM ? msk_iam_init(s, cfg, ctx, err) : OB_OK;
    if (!rc)
        rc = conf_build(s, cfg, err);
    if (!rc) {
        s->cur = producer_new(s, err);
        rc = s->cur ? OB_OK : err->code;
    }
    if (rc) {
        sink_free(s);
        s = NULL;
    }
    *state = s;
    return rc;
}

/* d's result from its record's error: one librdkafka gave at once
 * (`local`, rd_kafka_producev) or a delivery report's. */
static void delivery_from(struct kafka_sink *s, struct ob_delivery *d, const char *topic, rd_kafka_resp_err_t e,
                          bool local)
{
    bool too_large;
    enum ob_delivery_result r = ob_kafka_result(e, &too_large);
    if (r == OB_DELIVERY_ACK)
        return;
    if (too_large && local)
        ob_delivery_set(d, r, "the record (key %zu, value %zu bytes, and headers) is over the producer's "
                        "message.max.bytes (%s) (topic %s)", strlen(d->msg->pk), d->msg->payload_len, s->max_bytes,
                        topic);
    else if (too_large)
        ob_delivery_set(d, r, "the broker refuses the record (key %zu, value %zu bytes, and headers) as too large: "
                        "over the topic's max.message.bytes (topic %s)", strlen(d->msg->pk), d->msg->payload_len,
                        topic);
    else
        ob_delivery_set(d, r, "kafka: %s (%s, topic %s)", rd_kafka_err2str(e), rd_kafka_err2name(e), topic);
    d->too_large = too_large;
    d->unreachable = r == OB_DELIVERY_RETRY && atomic_load(&s->all_down);
}

static const char *topic_of(const struct kafka_sink *s, const struct ob_delivery *d)
{
    return d->destination && *d->destination ? d->destination : s->topic;
}

/* Produces d as b's slot i; false (and d's result set) when librdkafka
 * refused it at once. */
static bool produce_one(struct kafka_sink *s, rd_kafka_t *rk, struct kafka_batch *b, size_t i, struct ob_delivery *d)
{
    const struct ob_message *m = d->msg;
    rd_kafka_headers_t *h = rd_kafka_headers_new(16 + m->n_headers);
    ob_kafka_headers_add(h, d);
    pthread_mutex_lock(&b->mu);
    b->pending++;
    b->refs++;
    pthread_mutex_unlock(&b->mu);
    const char *topic = topic_of(s, d);
    rd_kafka_resp_err_t e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(m->pk, strlen(m->pk)),
                                              RD_KAFKA_V_VALUE(m->payload, m->payload_len),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                                              RD_KAFKA_V_OPAQUE(&b->slots[i]), RD_KAFKA_V_END);
    if (!e) {
        b->slots[i].produced = true;
        return true;
    }
    rd_kafka_headers_destroy(h);
    pthread_mutex_lock(&b->mu);
    b->pending--;
    b->refs--;
    pthread_mutex_unlock(&b->mu);
    delivery_from(s, d, topic, e, true);
    return false;
}

static void deadline_after(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static struct kafka_batch *batch_new(size_t n)
{
    struct kafka_batch *b = ob_xcalloc(1, sizeof *b + n * sizeof b->slots[0]);
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &attr);
    pthread_condattr_destroy(&attr);
    b->refs = 1;
    for (size_t i = 0; i < n; i++)
        b->slots[i].batch = b;
    return b;
}

static void kafka_publish(void *state, struct ob_delivery *batch, size_t n)
{
    struct kafka_sink *s = state;
    struct kafka_producer *p = producer_acquire(s);
    struct kafka_batch *b = batch_new(n);
    for (size_t i = 0; i < n; i++)
        produce_one(s, p->rk, b, i, &batch[i]);

    struct timespec deadline;
    deadline_after(&deadline, s->timeout_ms + REPORT_GRACE_MS);
    pthread_mutex_lock(&b->mu);
    while (b->pending > 0 && pthread_cond_timedwait(&b->cond, &b->mu, &deadline) != ETIMEDOUT)
        ;
    for (size_t i = 0; i < n; i++) {
        struct kafka_slot *slot = &b->slots[i];
        if (slot->reported)
            delivery_from(s, &batch[i], topic_of(s, &batch[i]), slot->err, false);
        else if (slot->produced)
            ob_delivery_set(&batch[i], OB_DELIVERY_RETRY, "kafka: no delivery report within %lld ms (topic %s)",
                            (long long)(s->timeout_ms + REPORT_GRACE_MS), topic_of(s, &batch[i]));
    }
    pthread_mutex_unlock(&b->mu);
    batch_release(b);
    producer_release(s, p);
}

static enum ob_err kafka_flush(void *state, struct ob_error *err)
{
    struct kafka_sink *s = state;
    struct kafka_producer *p = producer_acquire(s);
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, (int)s->timeout_ms);
    int left = rd_kafka_outq_len(p->rk);
    producer_release(s, p);
    if (e)
        return ob_error_set(err, OB_ERR_NETWORK, "%d records unacknowledged after %lld ms", left,
                            (long long)s->timeout_ms);
    return OB_OK;
}

static void kafka_destroy(void *state)
{
    sink_free(state);
}

static const struct ob_config_key kafka_keys[] = {
    {.path = "brokers", .type = OB_CT_STRING, .flags = OB_CK_REQUIRED,
     .example = "b-1.example.kafka.us-east-1.amazonaws.com:9098,b-2.example.kafka.us-east-1.amazonaws.com:9098",
     .doc = "Bootstrap brokers, `host:port` separated by commas."},
    {.path = "topic", .type = OB_CT_STRING, .flags = OB_CK_REQUIRED, .example = "outbox-events",
     .doc = "Topic of messages whose route names none (a route's `topic` overrides it); dead letters go here."},
    {.path = "tls", .type = OB_CT_BOOL, .def = "false", .def_doc = "false; always true with `aws_msk_iam`",
     .doc = "Connect with TLS (librdkafka's `ssl` or `sasl_ssl`)."},
    {.path = "sasl_mechanism", .type = OB_CT_ENUM, .values = mechanisms, .def_doc = "none",
     .doc = "SASL authentication: `plain` and `scram-*` with `sasl_username`/`sasl_password`, `aws_msk_iam` "
            "with the relay's AWS credentials."},
    {.path = "sasl_username", .type = OB_CT_STRING, .example = "outboxd", .doc = "SASL user name."},
    {.path = "sasl_password", .type = OB_CT_STRING, .flags = OB_CK_SECRET, .example = "${KAFKA_PASSWORD}",
     .doc = "SASL password."},
    {.path = "region", .type = OB_CT_STRING, .def_doc = "the relay's region (`aws.region`, `AWS_REGION`, ...)",
     .doc = "Region of the MSK cluster (`aws_msk_iam`)."},
    {.path = "properties", .type = OB_CT_MAP, .example = "{ linger.ms: \"5\", compression.type: zstd }",
     .doc = "librdkafka producer properties, passed through and checked by librdkafka; not those the keys above "
            "set, nor any that would turn off idempotence, `acks=all` or the Java-compatible partitioner."},
};

const struct ob_sink_ops ob_kafka_sink_ops = {
    .schema = {.type = "kafka", .doc = "Apache Kafka (librdkafka): idempotent producer, key = pk, CloudEvents Kafka "
               "binding.", .keys = kafka_keys, .n_keys = sizeof kafka_keys / sizeof kafka_keys[0],
               .check = kafka_check},
    .create = kafka_create,
    .publish = kafka_publish,
    .flush = kafka_flush,
    .destroy = kafka_destroy,
};
