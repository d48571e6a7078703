/* outboxd check: validate a config, print every error or a summary. */
#include <stdio.h>

#include "cmd/cmd.h"

int cmd_check(int argc, char **argv)
{
    const char *path;
    int usage = cmd_config_only_args(argc, argv, "check", "outboxd check -c FILE", &path);
    if (usage)
        return usage;
    struct ob_config *cfg;
    int rc = cmd_load_config(path, &cfg);
    if (rc)
        return rc;
    ob_config_print_summary(cfg, stdout);
    ob_config_free(cfg);
    return EX_OK;
}
