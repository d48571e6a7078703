/* Test tool: sends DynamoDB calls through outboxd's client and reports each
 * outcome as one JSON line (with the response under --print-response),
 * then {"quota": retry tokens left, "consumed": {"table/op/kind": units}}:
 *   ddb_call ENDPOINT OPERATION REQUEST_JSON [REPEAT [MAX_ATTEMPTS [BASE_DELAY_MS]]] [--print-response]
 * Credentials come from the default chain, refreshed as the daemon's are;
 * region us-east-1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynamo/ddb.h"

int main(int argc, char **argv)
{
    int print_response = argc > 4 && strcmp(argv[argc - 1], "--print-response") == 0;
    if (print_response)
        argc--;
    if (argc < 4) {
        fprintf(stderr, "usage: ddb_call ENDPOINT OPERATION REQUEST_JSON [REPEAT [MAX_ATTEMPTS [BASE_DELAY_MS]]]\n");
        return 64;
    }
    int repeat = argc > 4 ? atoi(argv[4]) : 1;
    struct ob_error err = { 0 };
    struct ob_cred_context aws;
    const struct ob_credentials_options chain = { 0 };
    if (ob_cred_context_open("us-east-1", &chain, true, &aws, &err)) {
        fprintf(stderr, "ddb_call: %s\n", err.msg);
        return 78;
    }
    struct ob_ddb_options opt = {
        .region = aws.region,
        .credentials = aws.credentials,
        .endpoint = argv[1],
        .max_attempts = argc > 5 ? atoi(argv[5]) : 0,
        .retry_base_delay_ms = argc > 6 ? atoll(argv[6]) : 0,
        .request_timeout_ms = 5000,
    };
    struct ob_ddb *d;
    if (ob_ddb_open(&opt, &d, &err)) {
        fprintf(stderr, "ddb_call: %s\n", err.msg);
        return 78;
    }
    json_error_t jerr;
    json_t *req = json_loads(argv[3], 0, &jerr);
    if (!req) {
        fprintf(stderr, "ddb_call: bad request JSON: %s\n", jerr.text);
        return 65;
    }
    struct ob_ddb_session *s = ob_ddb_session_create(d);
    int failures = 0;
    for (int i = 0; i < repeat; i++) {
        struct ob_aws_call call;
        char *body;
        ob_ddb_prepare_call(d, &call, argv[2], req, &body);
        struct ob_aws_call *one = &call;
        ob_aws_run(s->aws, &one, 1);
        if (call.response)
            ob_ddb_account_capacity(argv[2], call.response);
        json_t *line = json_pack("{s:s,s:i,s:i,s:s,s:b}", "result", ob_err_name(call.result), "attempts",
                                 call.attempts, "http_status", (int)call.http_status, "msg",
                                 call.result ? call.err.msg : "", "retriable", call.err.retriable);
        if (print_response && call.response)
            json_object_set(line, "response", call.response);
        char *text = json_dumps(line, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
        json_decref(line);
        failures += call.result != OB_OK;
        ob_aws_call_release(&call);
        free(body);
    }
    json_t *consumed = json_object();
    const char *table = json_string_value(json_object_get(req, "TableName"));
    static const char *const kinds[] = { "read", "write" };
    for (int k = 0; table && k < 2; k++) {
        double units = ob_ddb_consumed_units(table, argv[2], kinds[k]);
        if (units > 0) {
            char key[512];
            snprintf(key, sizeof key, "%s/%s/%s", table, argv[2], kinds[k]);
            json_object_set_new(consumed, key, json_real(units));
        }
    }
    json_t *summary = json_pack("{s:i,s:o}", "quota", ob_aws_client_retry_quota(d->aws), "consumed", consumed);
    char *text = json_dumps(summary, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(summary);
    json_decref(req);
    ob_ddb_session_destroy(s);
    ob_ddb_close(d);
    ob_cred_context_close(&aws);
    return failures ? 1 : 0;
}
