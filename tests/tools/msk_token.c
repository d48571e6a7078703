/* msk_token: ob_msk_iam_token as a filter, for the differential test
 * against botocore (tests/integration/test_msk_iam_botocore.py).
 *
 * stdin: one JSON object per line,
 *   {"access_key", "secret_key", "token" (optional), "region", "now"
 *    (epoch seconds)}
 * stdout: one line per object, "TOKEN EXPIRES_AT_MS", or "ERROR: message".
 * The exit status is 1 when any line failed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/msk_iam.h"
#include "core/buf.h"

static enum ob_err token_line(const json_t *in, struct ob_buf *out, struct ob_error *err)
{
    /* A borrowed view: the casts only drop const, the signer reads. */
    struct ob_aws_credentials creds = {
        .access_key_id = (char *)json_string_value(json_object_get(in, "access_key")),
        .secret_access_key = (char *)json_string_value(json_object_get(in, "secret_key")),
        .session_token = (char *)json_string_value(json_object_get(in, "token")),
    };
    const json_t *now = json_object_get(in, "now");
    if (!json_is_integer(now))
        return ob_error_set(err, OB_ERR_INVALID, "\"now\" is not an integer");
    int64_t expires_at_ms = 0;
    enum ob_err rc = ob_msk_iam_token(&creds, json_string_value(json_object_get(in, "region")),
                                      (time_t)json_integer_value(now), out, &expires_at_ms, err);
    if (rc == OB_OK)
        ob_buf_printf(out, " %lld", (long long)expires_at_ms);
    return rc;
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: msk_token < requests.jsonl\n");
        return 64;
    }
    char *line = NULL;
    size_t cap = 0;
    int status = 0;
    struct ob_buf out = { 0 };

    while (getline(&line, &cap, stdin) >= 0) {
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        struct ob_error err = { 0 };
        json_error_t jerr;
        json_t *in = json_loads(line, 0, &jerr);
        ob_buf_reset(&out);
        enum ob_err rc =
            in ? token_line(in, &out, &err) : ob_error_set(&err, OB_ERR_INVALID, "bad JSON: %s", jerr.text);
        if (rc) {
            printf("ERROR: %s\n", err.msg);
            status = 1;
        } else {
            printf("%s\n", out.data);
        }
        json_decref(in);
    }
    fflush(stdout);
    free(line);
    ob_buf_free(&out);
    return status;
}
