/* outboxd sweep: deliver the unpublished items the stream no longer has. */
#include <getopt.h>
#include <stdio.h>

#include "cmd/cmd.h"
#include "relay/relay.h"

static const char usage[] = "usage: outboxd sweep -c FILE [--older-than DURATION] [--dry-run]";

int cmd_sweep(int argc, char **argv)
{
    const char *path = NULL, *older = NULL;
    bool dry_run = false;
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "older-than", required_argument, NULL, 'o' },
        { "dry-run", no_argument, NULL, 'n' },
        { 0 },
    };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': path = optarg; break;
        case 'o': older = optarg; break;
        case 'n': dry_run = true; break;
        default: fprintf(stderr, "%s\n", usage); return EX_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "outboxd sweep: unexpected argument '%s'\n%s\n", argv[optind], usage);
        return EX_USAGE;
    }
    struct ob_config *cfg;
    int rc = cmd_load_config(path, &cfg);
    if (rc)
        return rc;
    cmd_setup_log(cfg);
    struct ob_sweep_request req = { .older_than_ms = cfg->sweep.older_than_ms, .dry_run = dry_run,
                                    .list = dry_run ? stdout : NULL };
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
    enum ob_err e = ob_relay_sweep(cfg, &req, &res, &err);
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
    ob_config_free(cfg);
    return rc;
}
