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
    /* One region and one credential provider for the process: DynamoDB
     * and every sink sign with it, and a reload keeps it. */
    struct ob_cred_context aws;
    enum ob_err e = ob_cred_context_open_config(&cfg->aws, true, &aws, &err);
    if (!e) {
        cmd_log_aws(&aws);
        e = ob_relay_run(cfg, &aws, &err);
        ob_cred_context_close(&aws);
    }
    if (e) {
        ob_log_error("%s", err.msg);
        rc = cmd_exit_code(e);
    }
    ob_config_free(cfg);
    return rc;
}
