/* outboxd run: the relay in the foreground (systemd Type=notify). */
#include <stdio.h>

#include "cmd/cmd.h"
#include "ops/log.h"
#include "relay/relay.h"

int cmd_run(int argc, char **argv)
{
    struct ob_config *cfg;
    int rc = cmd_config_only(argc, argv, "run", "outboxd [run] -c FILE", &cfg);
    if (rc)
        return rc;
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
