/* outboxd check: validate a config, print every error or a summary. */
#include <stdio.h>

#include "cmd/cmd.h"

int cmd_check(int argc, char **argv)
{
    struct ob_config *cfg;
    int rc = cmd_config_only(argc, argv, "check", "outboxd check -c FILE", &cfg);
    if (rc)
        return rc;
    ob_config_print_summary(cfg, stdout);
    ob_config_free(cfg);
    return EX_OK;
}
