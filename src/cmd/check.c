/* outboxd check: validate a config, print every error or a summary. */
#include <getopt.h>
#include <stdio.h>

#include "cmd/cmd.h"

int cmd_check(int argc, char **argv)
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
            fprintf(stderr, "usage: outboxd check -c FILE\n");
            return EX_USAGE;
        }
        path = optarg;
    }
    if (optind != argc) {
        fprintf(stderr, "outboxd check: unexpected argument '%s'\nusage: outboxd check -c FILE\n", argv[optind]);
        return EX_USAGE;
    }
    struct ob_config *cfg;
    int rc = cmd_load_config(path, &cfg);
    if (rc)
        return rc;
    ob_config_print_summary(cfg, stdout);
    ob_config_free(cfg);
    return EX_OK;
}
