/* Prints a document generated from the configuration schema:
 *   config_reference markdown > docs/CONFIGURATION.md
 *   config_reference example  > config/outboxd.yaml.example
 *   config_reference man DATE > packaging/man/outboxd.yaml.5 */
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "sinks/sink.h"

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "markdown") == 0) {
        ob_config_write_reference(stdout, &ob_sinks);
    } else if (argc == 3 && strcmp(argv[1], "man") == 0) {
        ob_config_write_man(stdout, &ob_sinks, argv[2]);
    } else if (argc == 2 && strcmp(argv[1], "example") == 0) {
        ob_config_write_example(stdout, &ob_sinks);
    } else {
        fprintf(stderr, "usage: config_reference markdown|man DATE|example\n");
        return 64;
    }
    return fflush(stdout) == 0 ? 0 : 74;
}
