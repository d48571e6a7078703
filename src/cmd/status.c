/* outboxd status: every shard of the stream with its lease owner,
 * checkpoint and lag (the age of the oldest record not read yet). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "dynamo/leases.h"
#include "dynamo/streams.h"
#include "ops/clock.h"

static const char usage[] = "outboxd status -c FILE [--json]";

static const struct ob_lease *lease_of(const struct ob_lease_list *l, const char *shard)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].key, shard) == 0)
            return &l->v[i];
    return NULL;
}

/* Seconds since the oldest record after the checkpoint was written; 0
 * when everything is read, -1 when unknown. */
static double shard_lag(struct ob_ddb_session *s, const char *arn, const char *shard,
                        const char *checkpoint)
{
    const char *type = "AFTER_SEQUENCE_NUMBER", *seq = checkpoint;
    int64_t since = 0;
    if (!checkpoint || strncmp(checkpoint, OB_CHECKPOINT_TRIM_HORIZON, strlen(OB_CHECKPOINT_TRIM_HORIZON)) == 0) {
        type = "TRIM_HORIZON";
        seq = NULL;
    } else if (strcmp(checkpoint, OB_CHECKPOINT_LATEST) == 0 || ob_checkpoint_is_latest_since(checkpoint, &since)) {
        /* Nothing read since the first start from LATEST: where that left
         * off is not a position a lag can be measured from. */
        return since ? -1 : 0;
    }
    char *it = NULL;
    struct ob_records_page page = { 0 };
    struct ob_error err;
    double lag = -1;
    if (ob_stream_iterator(s, arn, shard, type, seq, &it, &err) || !it)
        goto out;
    if (ob_stream_get_records(s, it, 1, &page, &err))
        goto out;
    lag = page.n ? (double)(ob_wall_ms() - page.records[0].msg.approximate_creation_ms) / 1000.0 : 0;
    if (lag < 0)
        lag = 0;
out:
    free(it);
    ob_records_page_free(&page);
    return lag;
}

static const char *state_of(const struct ob_shard *sh, const struct ob_lease *l)
{
    if (l && l->checkpoint && strcmp(l->checkpoint, OB_CHECKPOINT_SHARD_END) == 0)
        return "ended";
    return sh->end_seq ? "closed" : "open";
}

int cmd_status(int argc, char **argv)
{
    bool as_json = false;
    const struct cmd_option options[] = {
        { .name = "json", .flag = &as_json },
        { 0 },
    };
    struct ob_config *cfg;
    int rc = cmd_parse_args(argc, argv, "status", usage, options, &cfg);
    if (rc)
        return rc;

    struct ob_cred_context aws = { 0 };
    struct ob_ddb *ddb = NULL;
    struct ob_ddb_session *s = NULL;
    struct ob_error err = { 0 };
    char *arn = NULL;
    struct ob_shard_list shards = { 0 };
    struct ob_lease_list leases = { 0 };
    json_t *out = NULL;
    enum ob_err e = ob_cred_context_open_config(&cfg->aws, false, &aws, &err);
    if (!e)
        e = ob_ddb_open_config(cfg, &aws, &ddb, &err);
    if (!e) {
        s = ob_ddb_session_create(ddb);
        e = ob_stream_arn(s, cfg->table.name, false, &arn, &err);
    }
    if (!e)
        e = ob_stream_describe(s, arn, &shards, &err);
    if (!e) {
        e = ob_leases_list(s, cfg->leases.table, arn, &leases, &err);
        if (e == OB_ERR_NOT_FOUND)
            e = OB_OK; /* no lease table yet: nothing was read */
    }
    if (e) {
        fprintf(stderr, "outboxd status: %s\n", err.msg);
        rc = cmd_exit_code(e);
        goto done;
    }
    out = json_array();
    for (size_t i = 0; i < shards.n; i++) {
        const struct ob_shard *sh = &shards.v[i];
        const struct ob_lease *l = lease_of(&leases, sh->id);
        const char *state = state_of(sh, l);
        double lag = strcmp(state, "ended") == 0 ? 0 : shard_lag(s, arn, sh->id, l ? l->checkpoint : NULL);
        json_t *row = json_pack("{s:s,s:s?,s:s,s:s?,s:s?}", "shard", sh->id, "parent", sh->parent_id, "state",
                                state, "owner", l ? l->owner : NULL, "checkpoint", l ? l->checkpoint : NULL);
        json_object_set_new(row, "lag_seconds", lag < 0 ? json_null() : json_real(lag));
        json_array_append_new(out, row);
    }
    if (as_json) {
        json_t *doc = json_pack("{s:s,s:s,s:s,s:O}", "table", cfg->table.name, "stream", arn, "lease_table",
                                cfg->leases.table, "shards", out);
        json_dumpf(doc, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(doc);
    } else {
        printf("table %s, stream %s, leases in %s\n", cfg->table.name, arn, cfg->leases.table);
        printf("%-40s %-10s %-16s %-24s %8s\n", "SHARD", "STATE", "OWNER", "CHECKPOINT", "LAG");
        size_t i;
        json_t *row;
        json_array_foreach(out, i, row) {
            const char *owner = json_string_value(json_object_get(row, "owner"));
            const char *cp = json_string_value(json_object_get(row, "checkpoint"));
            const json_t *lag = json_object_get(row, "lag_seconds");
            char lagbuf[32] = "?";
            if (json_is_number(lag))
                snprintf(lagbuf, sizeof lagbuf, "%.1fs", json_number_value(lag));
            printf("%-40s %-10s %-16s %-24s %8s\n", json_string_value(json_object_get(row, "shard")),
                   json_string_value(json_object_get(row, "state")), owner ? owner : "-", cp ? cp : "-", lagbuf);
        }
    }
done:
    json_decref(out);
    ob_lease_list_free(&leases);
    ob_shard_list_free(&shards);
    free(arn);
    ob_ddb_session_destroy(s);
    ob_ddb_close(ddb);
    ob_cred_context_close(&aws);
    ob_config_free(cfg);
    return rc;
}
