/* outboxd add: write one outbox item through the producer API. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/buf.h"
#include "outboxd/outbox.h"

static const char add_usage[] =
    "usage: outboxd add -c FILE --type T (--payload DATA | --payload-file F | -)\n"
    "         [--partition-key K] [--aggregate-id ID] [--aggregate-type T]\n"
    "         [--correlation-id ID] [--causation-id ID] [--header K=V]... [--id ID]\n";

static int read_all(const char *path, struct ob_buf *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "outboxd add: cannot read %s: %s\n", path, strerror(errno));
        return EX_NOINPUT;
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ob_buf_append(out, chunk, n);
    int failed = ferror(f);
    if (f != stdin)
        fclose(f);
    if (failed) {
        fprintf(stderr, "outboxd add: cannot read %s\n", path);
        return EX_IOERR;
    }
    return EX_OK;
}

int cmd_add(int argc, char **argv)
{
    enum { OPT_TYPE = 256, OPT_PAYLOAD, OPT_PAYLOAD_FILE, OPT_PK, OPT_AGG_ID, OPT_AGG_TYPE, OPT_CORR, OPT_CAUS,
           OPT_HEADER, OPT_ID };
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "type", required_argument, NULL, OPT_TYPE },
        { "payload", required_argument, NULL, OPT_PAYLOAD },
        { "payload-file", required_argument, NULL, OPT_PAYLOAD_FILE },
        { "partition-key", required_argument, NULL, OPT_PK },
        { "aggregate-id", required_argument, NULL, OPT_AGG_ID },
        { "aggregate-type", required_argument, NULL, OPT_AGG_TYPE },
        { "correlation-id", required_argument, NULL, OPT_CORR },
        { "causation-id", required_argument, NULL, OPT_CAUS },
        { "header", required_argument, NULL, OPT_HEADER },
        { "id", required_argument, NULL, OPT_ID },
        { 0 },
    };
    const char *path = NULL, *payload = NULL, *payload_file = NULL;
    struct ob_outbox_message msg = { 0 };
    struct ob_outbox_header *headers = ob_xcalloc((size_t)argc, sizeof *headers);
    struct ob_buf body = { 0 };
    struct ob_config *cfg = NULL;
    struct ob_outbox *ob = NULL;
    int rc = EX_OK, ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': path = optarg; break;
        case OPT_TYPE: msg.message_type = optarg; break;
        case OPT_PAYLOAD: payload = optarg; break;
        case OPT_PAYLOAD_FILE: payload_file = optarg; break;
        case OPT_PK: msg.partition_key = optarg; break;
        case OPT_AGG_ID: msg.aggregate_id = optarg; break;
        case OPT_AGG_TYPE: msg.aggregate_type = optarg; break;
        case OPT_CORR: msg.correlation_id = optarg; break;
        case OPT_CAUS: msg.causation_id = optarg; break;
        case OPT_ID: msg.message_id = optarg; break;
        case OPT_HEADER: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr, "outboxd add: --header wants NAME=VALUE, got '%s'\n", optarg);
                rc = EX_USAGE;
                goto out;
            }
            *eq = '\0';
            headers[msg.n_headers].name = optarg;
            headers[msg.n_headers].value = eq + 1;
            msg.n_headers++;
            break;
        }
        default:
            fputs(add_usage, stderr);
            rc = EX_USAGE;
            goto out;
        }
    }
    /* A lone "-" means the payload comes from standard input. */
    if (optind < argc && strcmp(argv[optind], "-") == 0 && !payload_file) {
        payload_file = "-";
        optind++;
    }
    if (optind != argc) {
        fprintf(stderr, "outboxd add: unexpected argument '%s'\n%s", argv[optind], add_usage);
        rc = EX_USAGE;
        goto out;
    }
    if (!msg.message_type) {
        fprintf(stderr, "outboxd add: --type is required\n%s", add_usage);
        rc = EX_USAGE;
        goto out;
    }
    if (!!payload + !!payload_file != 1) {
        fprintf(stderr, "outboxd add: give exactly one of --payload, --payload-file or -\n%s", add_usage);
        rc = EX_USAGE;
        goto out;
    }
    if (payload) {
        ob_buf_puts(&body, payload);
    } else {
        rc = read_all(payload_file, &body);
        if (rc)
            goto out;
    }
    msg.payload = body.data;
    msg.payload_len = body.len;
    msg.headers = headers;

    rc = cmd_load_config(path, &cfg);
    if (rc)
        goto out;
    cmd_setup_log(cfg);
    struct ob_outbox_options opt = {
        .table = cfg->table.name,
        .region = cfg->aws.region,
        .endpoint = cfg->aws.endpoint,
        .access_key_id = cfg->aws.access_key_id,
        .secret_access_key = cfg->aws.secret_access_key,
        .session_token = cfg->aws.session_token,
        .profile = cfg->aws.profile,
        .max_attempts = cfg->aws.max_attempts,
        .request_timeout_ms = cfg->aws.request_timeout_ms,
    };
    struct ob_error err = { 0 };
    char id[OB_OUTBOX_ID_MAX];
    if (ob_outbox_open(&opt, &ob, &err) || ob_outbox_add(ob, &msg, id, &err)) {
        fprintf(stderr, "outboxd add: %s\n", err.msg);
        rc = cmd_exit_code(err.code);
        goto out;
    }
    printf("%s\n", id);
out:
    ob_outbox_close(ob);
    ob_config_free(cfg);
    ob_buf_free(&body);
    free(headers);
    return rc;
}
