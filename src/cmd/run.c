/* outboxd run: the relay in the foreground (systemd Type=notify). */
#include <getopt.h>
#include <stdio.h>

#include "cmd/cmd.h"
#include "ops/log.h"
#include "relay/relay.h"

int cmd_run(int argc, char **argv)
{
    const char *path = NULL;
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { 0 },
    };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
        if (ch != 'c') {
            fprintf(stderr, "usage: outboxd [run] -c FILE\n");
            return EX_USAGE;
        }
        path = optarg;
    }
    if (optind != argc) {
        fprintf(stderr, "outboxd run: unexpected argument '%s'\nusage: outboxd [run] -c FILE\n", argv[optind]);
        return EX_USAGE;
    }
    struct ob_config *cfg;
    int rc = cmd_load_config(path, &cfg);
    if (rc)
        return rc;
    cmd_setup_log(cfg);
    ob_log_info("outboxd %s starting: table %s, %zu sinks", OUTBOXD_VERSION, cfg->table.name, cfg->n_sinks);
    struct ob_error err = { 0 };
    enum ob_err e = ob_relay_run(cfg, &err);
    if (e) {
        ob_log_error("%s", err.msg);
        rc = cmd_exit_code(e);
    }
    ob_config_free(cfg);
    return rc;
}
