/* outboxd init: create or verify the outbox table and the lease table. */
#include <stdio.h>

#include "cmd/cmd.h"
#include "dynamo/table.h"

static int ensure_one(struct ob_ddb_session *s, const struct ob_table_spec *spec,
                      const char *what, bool outbox)
{
    struct ob_error err = { 0 };
    enum ob_table_outcome outcome;
    enum ob_err rc = outbox ? ob_table_ensure_outbox(s, spec, &outcome, &err)
                            : ob_table_ensure_leases(s, spec, &outcome, &err);
    if (rc) {
        fprintf(stderr, "outboxd init: %s table %s: %s\n", what, spec->name, err.msg);
        return cmd_exit_code(rc);
    }
    printf("%s table %s: %s\n", what, spec->name,
           outcome == OB_TABLE_CREATED ? "created" : "exists and matches");
    return EX_OK;
}

int cmd_init(int argc, char **argv)
{
    struct ob_config *cfg;
    int rc = cmd_config_only(argc, argv, "init", "outboxd init -c FILE", &cfg);
    if (rc)
        return rc;

    struct ob_cred_context aws = { 0 };
    struct ob_ddb *ddb = NULL;
    struct ob_ddb_session *s = NULL;
    struct ob_error err = { 0 };
    if (ob_cred_context_open_config(&cfg->aws, false, &aws, &err) || ob_ddb_open_config(cfg, &aws, &ddb, &err)) {
        fprintf(stderr, "outboxd init: %s\n", err.msg);
        rc = cmd_exit_code(err.code);
        goto out;
    }
    s = ob_ddb_session_create(ddb);
    struct ob_table_spec outbox = {
        .name = cfg->table.name,
        .provisioned = cfg->table.billing_mode == OB_BILLING_PROVISIONED,
        .read_capacity = cfg->table.read_capacity,
        .write_capacity = cfg->table.write_capacity,
    };
    rc = ensure_one(s, &outbox, "outbox", true);
    if (rc)
        goto out;
    /* A few small items read every few seconds: on-demand fits whatever
     * the outbox table uses. */
    struct ob_table_spec leases = { .name = cfg->leases.table };
    rc = ensure_one(s, &leases, "lease", false);
out:
    ob_ddb_session_destroy(s);
    ob_ddb_close(ddb);
    ob_cred_context_close(&aws);
    ob_config_free(cfg);
    return rc;
}
