/* outboxd run: the relay in the foreground (systemd Type=notify). */
#include <stdio.h>

#include "aws/http_client.h"
#include "cmd/cmd.h"
#include "core/proxy.h"
#include "ops/log.h"
#include "relay/relay.h"

/* The proxies every HTTP client will read from the environment, said
 * once (passwords hidden); one that cannot be used stops the start. */
static enum ob_err log_proxies(struct ob_error *err)
{
    struct ob_proxy_env proxies;
    enum ob_err e = ob_http_proxy_env_load(&proxies, err);
    if (e)
        return e;
    struct ob_buf via = { 0 };
    ob_proxy_env_describe(&via, &proxies);
    if (via.len)
        ob_log_info("proxies from the environment: %s (never for the instance metadata and container endpoints)",
                    via.data);
    ob_buf_free(&via);
    ob_proxy_env_free(&proxies);
    return OB_OK;
}

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
    enum ob_err e = log_proxies(&err);
    if (!e)
        e = ob_cred_context_open_config(&cfg->aws, true, &aws, &err);
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
