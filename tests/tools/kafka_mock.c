/* kafka_mock: librdkafka's mock Kafka cluster as a process, for the kafka
 * sink's tests and `make bench` (tests/integration/harness/kafka_mock.py).
 *
 *   kafka_mock [BROKERS]      (default 3 brokers, on loopback ports)
 *
 * Prints "bootstraps HOST:PORT,..." once the cluster listens, then reads
 * one command a line on stdin and answers each with "ok" or "error WHY":
 *
 *   topic NAME PARTITIONS      create a topic (replication factor: every broker)
 *   down ID | up ID            take broker ID (1..BROKERS) down or up again
 *   all down | all up          every broker
 *   produce_errors N ERROR...  the next Produce requests fail with these
 *                              errors in turn, N times over (names as
 *                              rd_kafka_err2name: NOT_LEADER_FOR_PARTITION)
 *   quit                       (or end of input)
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRORS 16
#define PRODUCE_API_KEY 0 /* Kafka protocol ApiKey of Produce */

static int broker_count = 3;

/* The code of an error named as rd_kafka_err2name does, -1 when none is. */
static int error_code(const char *name)
{
    const struct rd_kafka_err_desc *descs;
    size_t n;
    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; i < n; i++)
        if (descs[i].name && strcmp(descs[i].name, name) == 0)
            return descs[i].code;
    return -1;
}

static int set_all(rd_kafka_mock_cluster_t *mc, int up)
{
    for (int id = 1; id <= broker_count; id++) {
        rd_kafka_resp_err_t e = up ? rd_kafka_mock_broker_set_up(mc, id) : rd_kafka_mock_broker_set_down(mc, id);
        if (e)
            return printf("error broker %d: %s\n", id, rd_kafka_err2str(e)), 0;
    }
    return 1;
}

static void produce_errors(rd_kafka_mock_cluster_t *mc, char *args)
{
    char *save = NULL, *word = strtok_r(args, " \t", &save);
    long times = word ? strtol(word, NULL, 10) : 0;
    rd_kafka_resp_err_t errs[MAX_ERRORS];
    size_t n = 0;
    while ((word = strtok_r(NULL, " \t", &save)) && n < MAX_ERRORS) {
        int code = error_code(word);
        if (code < 0) {
            printf("error unknown error name %s\n", word);
            return;
        }
        errs[n++] = (rd_kafka_resp_err_t)code;
    }
    if (times <= 0 || n == 0) {
        printf("error usage: produce_errors N ERROR...\n");
        return;
    }
    for (long t = 0; t < times; t++)
        rd_kafka_mock_push_request_errors_array(mc, PRODUCE_API_KEY, n, errs);
    printf("ok\n");
}

static void command(rd_kafka_mock_cluster_t *mc, char *line)
{
    char name[256];
    int a;
    rd_kafka_resp_err_t e;
    if (sscanf(line, "topic %255s %d", name, &a) == 2) {
        e = rd_kafka_mock_topic_create(mc, name, a, broker_count);
        printf(e ? "error %s\n" : "ok\n", rd_kafka_err2str(e));
    } else if (strcmp(line, "all down") == 0 || strcmp(line, "all up") == 0) {
        if (set_all(mc, line[4] == 'u'))
            printf("ok\n");
    } else if (sscanf(line, "down %d", &a) == 1) {
        e = rd_kafka_mock_broker_set_down(mc, a);
        printf(e ? "error %s\n" : "ok\n", rd_kafka_err2str(e));
    } else if (sscanf(line, "up %d", &a) == 1) {
        e = rd_kafka_mock_broker_set_up(mc, a);
        printf(e ? "error %s\n" : "ok\n", rd_kafka_err2str(e));
    } else if (strncmp(line, "produce_errors ", 15) == 0) {
        produce_errors(mc, line + 15);
    } else {
        printf("error unknown command: %s\n", line);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1)
        broker_count = atoi(argv[1]);
    if (broker_count < 1) {
        fprintf(stderr, "usage: kafka_mock [BROKERS]\n");
        return 64;
    }
    char errstr[512];
    /* The cluster lives in a client instance's threads; this one sends nothing. */
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_mock: %s\n", errstr);
        return 70;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, broker_count);
    if (!mc) {
        fprintf(stderr, "kafka_mock: cannot create the mock cluster\n");
        return 70;
    }
    printf("bootstraps %s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    char line[1024];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strcmp(line, "quit") == 0)
            break;
        if (*line)
            command(mc, line);
        fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
