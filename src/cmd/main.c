/* outboxd: the transactional outbox relay for DynamoDB. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cmd/cmd.h"

static const char usage_text[] =
    "usage: outboxd COMMAND [-c FILE] [options]\n"
    "\n"
    "commands:\n"
    "  [run] -c FILE     run the relay (foreground; systemd Type=notify)\n"
    "  check -c FILE     validate the config, print every error\n"
    "  init  -c FILE     create or verify the outbox table and the lease table\n"
    "  add   -c FILE --type T (--payload DATA | --payload-file F | -)\n"
    "        [--partition-key K] [--aggregate-id ID] [--aggregate-type T]\n"
    "        [--correlation-id ID] [--causation-id ID] [--header K=V]... [--id ID]\n"
    "                    write one outbox item; prints its id\n"
    "  sweep -c FILE [--older-than DURATION] [--include-undated] [--dry-run]\n"
    "                    deliver unpublished items the stream no longer has\n"
    "  status -c FILE [--json]\n"
    "                    shards, lease owners, checkpoints and lag\n"
    "  --version | --help\n"
    "\n"
    "-c defaults to $OUTBOXD_CONFIG, then /etc/outboxd/outboxd.yaml.\n"
    "exit codes: 0 ok, 64 usage, 65 bad input data, 69 service unavailable,\n"
    "            70 internal error, 78 configuration error\n";

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} commands[] = {
    { "run", cmd_run },
    { "check", cmd_check },
    { "init", cmd_init },
    { "add", cmd_add },
    { "sweep", cmd_sweep },
    { "status", cmd_status },
};

int main(int argc, char **argv)
{
    /* Every command talks to the network: a peer that hangs up must be an
     * error on that connection (EPIPE), not the end of the process. OpenSSL
     * writes to its sockets without MSG_NOSIGNAL. */
    signal(SIGPIPE, SIG_IGN);
#ifdef __GLIBC__
    /* Fixed thresholds: glibc would raise them after the first GetRecords
     * answer is freed, and each shard thread's arena would then keep the
     * largest answers it has read (peak RSS in a backlog drain). */
    mallopt(M_MMAP_THRESHOLD, 512 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
#endif
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EX_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage_text, stdout);
        return EX_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("outboxd %s\n", OUTBOXD_VERSION);
        return EX_OK;
    }
    /* `outboxd -c FILE` runs the relay. */
    if (argv[1][0] == '-')
        return cmd_run(argc, argv);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "outboxd: unknown command '%s'\n\n%s", argv[1], usage_text);
    return EX_USAGE;
}
