/* outboxd sweep: deliver the unpublished items the stream no longer has. */
#include <stdio.h>

#include "cmd/cmd.h"
#include "core/codec.h"
#include "relay/relay.h"

static const char usage[] = "outboxd sweep -c FILE [--older-than DURATION] [--include-undated] [--dry-run]";

int cmd_sweep(int argc, char **argv)
{
    const char *older = NULL;
    bool dry_run = false, include_undated = false;
    const struct cmd_option options[] = {
        { .name = "older-than", .value = &older },
        { .name = "include-undated", .flag = &include_undated },
        { .name = "dry-run", .flag = &dry_run },
        { 0 },
    };
    struct ob_config *cfg;
    int rc = cmd_parse_args(argc, argv, "sweep", usage, options, &cfg);
    if (rc)
        return rc;
    struct ob_sweep_request req = { .older_than_ms = cfg->sweep.older_than_ms, .include_undated = include_undated,
                                    .dry_run = dry_run, .list = dry_run ? stdout : NULL };
    if (older) {
        bool ok;
        req.older_than_ms = ob_parse_duration_ms(older, &ok);
        if (!ok) {
            fprintf(stderr, "outboxd sweep: --older-than '%s' is not a duration (250ms, 5s, 10m, 2h, 7d)\n", older);
            ob_config_free(cfg);
            return EX_USAGE;
        }
    }
    struct ob_sweep_result res = { 0 };
    struct ob_error err = { 0 };
    struct ob_cred_context aws = { 0 };
    /* A sweep of a big table may outlast temporary credentials. */
    enum ob_err e = ob_cred_context_open_config(&cfg->aws, true, &aws, &err);
    if (!e)
        e = ob_relay_sweep(cfg, &aws, &req, &res, &err);
    if (!e && res.behind[0]) {
        char at[OB_ISO8601_LEN];
        ob_iso8601_ms(res.cutoff_ms, at);
        if (res.cutoff_ms)
            printf("only items created before %s: the reader of shard %s has not handled later records yet\n", at,
                   res.behind);
        else
            printf("nothing swept: the reader of shard %s has not said how far it has read (is outboxd running?)\n",
                   res.behind);
    }
    if (!e && res.rechecked)
        printf("%zu items were published or dead-lettered by the stream meanwhile and were not sent\n", res.rechecked);
    if (!e && res.blocked)
        printf("%zu items of keys blocked by relay.on_failure: block were left for the next sweep\n", res.blocked);
    if (e) {
        fprintf(stderr, "outboxd sweep: %s\n", err.msg);
        rc = cmd_exit_code(e);
    } else if (dry_run) {
        printf("%zu unpublished items older than %s would be delivered (%zu poison, to be dead-lettered); "
               "%.1f read units\n", res.found, older ? older : "sweep.older_than", res.poison, res.read_units);
    } else {
        printf("%zu unpublished items found and delivered (%zu poison, dead-lettered)%s; %.1f read units\n",
               res.found - res.undelivered, res.poison, res.undelivered ? ", some left for the next sweep" : "",
               res.read_units);
        if (res.undelivered)
            rc = EX_UNAVAILABLE;
    }
    ob_cred_context_close(&aws);
    ob_config_free(cfg);
    return rc;
}
