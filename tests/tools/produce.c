/* Test tool: writes outbox messages with the producer API, as services do.
 *   produce ENDPOINT TABLE COUNT KEYS [THREADS] [PAYLOAD_BYTES] [RATE_PER_S]
 * Message i of key k has pk "key-<k>", type "Test.Event<k % 3>", aggregate
 * type "Test", headers content-type: application/json and x-n: <i>, and
 * the JSON payload {"key":"key-<k>","n":<i>,"pad":"..."}. A key's
 * messages are written in order by one thread. Prints one line per message
 * "<id> <pk> <n> <written epoch ms>" (with PRODUCE_IDS=1) and a summary
 * line {"written":N,"failed":F,"seconds":S} on stderr. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "outboxd/outbox.h"

static struct ob_outbox *outbox;
static long count, keys, threads, payload_bytes;
static double rate;
static atomic_long written, failed, next_slot;
static int print_ids;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static struct timespec t0;

static double since_start(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)(ts.tv_sec - t0.tv_sec) + (double)(ts.tv_nsec - t0.tv_nsec) / 1e9;
}

/* Paces the whole run at `rate` messages per second, across threads. */
static void pace(void)
{
    if (rate <= 0)
        return;
    long slot = atomic_fetch_add(&next_slot, 1);
    double due = (double)slot / rate, now = since_start();
    if (due > now)
        usleep((useconds_t)((due - now) * 1e6));
}

static void *producer(void *arg)
{
    long t = (long)arg;
    long per_key = count / keys;
    char *pad = malloc((size_t)payload_bytes + 1);
    memset(pad, 'x', (size_t)payload_bytes);
    pad[payload_bytes] = 0;
    size_t cap = (size_t)payload_bytes + 128;
    char *payload = malloc(cap);
    for (long i = 0; i < per_key; i++) {
        for (long k = t; k < keys; k += threads) {
            char pk[32], type[32], n[24];
            snprintf(pk, sizeof pk, "key-%ld", k);
            snprintf(type, sizeof type, "Test.Event%ld", k % 3);
            snprintf(n, sizeof n, "%ld", i);
            int len = snprintf(payload, cap, "{\"key\":\"%s\",\"n\":%ld,\"pad\":\"%s\"}", pk, i, pad);
            struct ob_outbox_header h[] = { { "content-type", "application/json" }, { "x-n", n } };
            struct ob_outbox_message m = { .partition_key = pk, .message_type = type, .aggregate_id = pk,
                                           .aggregate_type = "Test", .payload = payload,
                                           .payload_len = (size_t)len, .headers = h, .n_headers = 2 };
            char id[OB_OUTBOX_ID_MAX];
            struct ob_error err;
            pace();
            if (ob_outbox_add(outbox, &m, id, &err)) {
                fprintf(stderr, "produce: %s: %s\n", pk, err.msg);
                atomic_fetch_add(&failed, 1);
                continue;
            }
            atomic_fetch_add(&written, 1);
            if (print_ids) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                pthread_mutex_lock(&out_lock);
                printf("%s %s %ld %lld\n", id, pk, i, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
                pthread_mutex_unlock(&out_lock);
            }
        }
    }
    free(pad);
    free(payload);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: produce ENDPOINT TABLE COUNT KEYS [THREADS] [PAYLOAD_BYTES] [RATE_PER_S]\n");
        return 64;
    }
    count = atol(argv[3]);
    keys = atol(argv[4]);
    threads = argc > 5 ? atol(argv[5]) : 8;
    payload_bytes = argc > 6 ? atol(argv[6]) : 16;
    rate = argc > 7 ? atof(argv[7]) : 0;
    print_ids = getenv("PRODUCE_IDS") != NULL;
    if (keys < 1 || threads < 1 || count < keys) {
        fprintf(stderr, "produce: need COUNT >= KEYS >= 1 and THREADS >= 1\n");
        return 64;
    }
    if (threads > keys)
        threads = keys;
    struct ob_outbox_options o = { .table = argv[2], .endpoint = argv[1], .region = "us-east-1" };
    struct ob_error err;
    if (ob_outbox_open(&o, &outbox, &err)) {
        fprintf(stderr, "produce: %s\n", err.msg);
        return 69;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    for (long t = 0; t < threads; t++)
        pthread_create(&tid[t], NULL, producer, (void *)t);
    for (long t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    fflush(stdout);
    fprintf(stderr, "{\"written\":%ld,\"failed\":%ld,\"seconds\":%.3f}\n", atomic_load(&written),
            atomic_load(&failed), since_start());
    free(tid);
    ob_outbox_close(outbox);
    return atomic_load(&failed) ? 1 : 0;
}
