/*
 * The command line of the configuration: getopt's option tables, the values and the usage
 * text are generated from config_keys[], so an option's name, bounds, default and help are
 * written once, in the table, and mean on the command line what they mean in the file.
 * The program adds its own options (config file, verbosity, help) as cli_option rows.
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

#include "sluice/config.h"
#include "sluice/yamldoc.h"

/* getopt_long() returns CLI_KEY_BASE + i for a long-only option of row i of config_keys[]. */
#define CLI_KEY_BASE    0x10000
#define CLI_MAX_OPTIONS 96
/* The longest option or command name cli_nearest() compares. */
#define CLI_NAME_MAX 40

/* One option of the program's own, which no configuration key holds. */
struct cli_option {
    const char *name; /* long name, without "--" */
    int val;          /* what getopt_long() returns: the short letter, or 256 up for none */
    const char *arg;  /* the argument's name in the usage ("FILE"), or NULL for none */
    const char *help; /* one line for the usage text */
};

/* The options of one program: the table's and its own, as getopt_long() takes them. */
struct cli {
    struct option longopts[CLI_MAX_OPTIONS + 1]; /* ends with a zeroed row */
    char shortopts[3 * CLI_MAX_OPTIONS + 1];     /* "l:w:c:v..." */
    size_t nlong;
    const struct cli_option *program; /* not owned; lives as long as c */
    size_t nprogram;
};

/*
 * Builds c from the rows of config_keys[] that have an option, then the program's own
 * rows.  Returns 0, or -1 when they do not fit (a table too long for CLI_MAX_OPTIONS).
 */
int cli_init(struct cli *c, const struct cli_option *program, size_t nprogram);

/*
 * Applies every configuration option of argv to cfg, in order, over what it holds (the
 * file, or the defaults); the program's own options are skipped and unknown ones left to
 * the program's pass, which has reported them.  The first --listen replaces the listeners
 * cfg holds, the next ones add to them.  Returns 0, or -1 with every error in errs.
 */
int cli_apply_args(const struct cli *c, int argc, char **argv, struct sluice_config *cfg,
                   struct yamldoc_errors *errs);

/*
 * Prints the options, aligned and wrapped, with each key's default: the ones with a
 * letter first, then the long-only ones, the table's before the program's in each group.
 */
void cli_usage(const struct cli *c, FILE *out);

/*
 * The one of names[0..n) nearest to word, a mistyped name: within one edit for a short
 * word, two or three for longer ones, or the name it begins; NULL when none is near.
 */
const char *cli_nearest(const char *word, const char *const *names, size_t n);

/*
 * The long option (without "--") nearest to given, as the user typed it ("--lisen",
 * "--lisen=X"), or NULL.
 */
const char *cli_suggest(const struct cli *c, const char *given);

#endif /* SLUICE_CLI_H */
