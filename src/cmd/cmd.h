/* Subcommands of the outboxd binary and what they share. */
#ifndef OB_CMD_H
#define OB_CMD_H

#include <stdbool.h>
#include <sysexits.h>

#include "core/config.h"
#include "dynamo/ddb.h"

int cmd_run(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_add(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_status(int argc, char **argv);

/* A long option of a subcommand beside -c/--config: a switch (--name
 * sets *flag) or, with value set, --name VALUE (sets *value to VALUE). */
struct cmd_option {
    const char *name;
    bool *flag;
    const char **value;
};

/* For a subcommand that takes -c/--config FILE and the options of extra
 * (ended by an entry without a name; NULL for none), usage its usage
 * line: parses the arguments, loads the config and sets up the logger.
 * Returns EX_OK with *cfg (the caller frees it), or the exit status after
 * printing why. */
int cmd_parse_args(int argc, char **argv, const char *name, const char *usage, const struct cmd_option *extra,
                   struct ob_config **cfg);

/* cmd_parse_args for a subcommand that takes only -c/--config FILE. */
int cmd_config_only(int argc, char **argv, const char *name, const char *usage, struct ob_config **cfg);

/* -c FILE, else $OUTBOXD_CONFIG, else /etc/outboxd/outboxd.yaml. */
const char *cmd_config_path(const char *given);

/* Loads the config; on errors prints every diagnostic to stderr and
 * returns EX_CONFIG. On success the caller owns *out. */
int cmd_load_config(const char *given, struct ob_config **out);

/* Sets the process logger from the config. */
void cmd_setup_log(const struct ob_config *cfg);


/* Logs at info the region and where the credentials come from (never
 * the keys). */
void cmd_log_aws(const struct ob_cred_context *aws);

/* The exit status for an error code (sysexits). */
int cmd_exit_code(enum ob_err code);

#endif
