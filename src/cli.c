/*
 * The command line of the configuration; see include/sluice/cli.h.
 *
 * Nothing here knows a key by name: an option is a row of config_keys[] with a long name,
 * its value goes through config_set() (the file's parser and bounds), and its usage line
 * is the row's help with the row's default.  Only the argument's name in the usage comes
 * from the row's type.
 */
#include "sluice/cli.h"

#include <stdbool.h>
#include <string.h>

#define CLI_HELP_COLUMN 30 /* where the help starts, after "  -l, --listen ADDR:PORT" */
#define CLI_LINE_WIDTH  79

/* Adds one row to c's getopt tables; returns -1 when they are full. */
static int cli_add(struct cli *c, const char *name, int has_arg, int val)
{
    size_t len = strlen(c->shortopts);

    if (c->nlong == CLI_MAX_OPTIONS)
        return -1;
    c->longopts[c->nlong].name = name;
    c->longopts[c->nlong].has_arg = has_arg;
    c->longopts[c->nlong].flag = NULL;
    c->longopts[c->nlong].val = val;
    c->nlong++;
    if (val > 0 && val < 256) {
        c->shortopts[len++] = (char)val;
        if (has_arg != no_argument)
            c->shortopts[len++] = ':';
        c->shortopts[len] = '\0';
    }
    return 0;
}

/* Builds the getopt tables; see the header. */
int cli_init(struct cli *c, const struct cli_option *program, size_t nprogram)
{
    memset(c, 0, sizeof(*c));
    c->program = program;
    c->nprogram = nprogram;
    for (size_t i = 0; i < config_nkeys; i++) {
        const struct config_key *k = &config_keys[i];
        int val = k->letter != 0 ? k->letter : CLI_KEY_BASE + (int)i;

        if (k->option != NULL && cli_add(c, k->option, required_argument, val) < 0)
            return -1;
    }
    for (size_t i = 0; i < nprogram; i++)
        if (cli_add(c, program[i].name, program[i].arg != NULL ? required_argument : no_argument,
                    program[i].val) < 0)
            return -1;
    return 0;
}

/* The row of config_keys[] that getopt_long() answered ch for, or NULL for any other. */
static const struct config_key *cli_key(int ch)
{
    if (ch >= CLI_KEY_BASE && (size_t)(ch - CLI_KEY_BASE) < config_nkeys)
        return &config_keys[ch - CLI_KEY_BASE];
    for (size_t i = 0; i < config_nkeys; i++)
        if (ch != 0 && config_keys[i].letter == ch && config_keys[i].option != NULL)
            return &config_keys[i];
    return NULL;
}

/* Applies the configuration options of argv; see the header. */
int cli_apply_args(const struct cli *c, int argc, char **argv, struct sluice_config *cfg,
                   struct yamldoc_errors *errs)
{
    size_t before = errs->count;
    bool listen_given = false;
    int ch, saved_opterr = opterr;

    opterr = 0; /* the program's own pass has said what is wrong with argv already */
    optind = 0; /* glibc: start the scan afresh */
    while ((ch = getopt_long(argc, argv, c->shortopts, c->longopts, NULL)) != -1) {
        const struct config_key *k = cli_key(ch);

        if (k == NULL)
            continue;
        if (k->type == CFG_LISTENERS && !listen_given) {
            cfg->nlisteners = 0; /* the command line's listeners replace the file's */
            listen_given = true;
        }
        config_set(cfg, k, optarg, errs);
    }
    opterr = saved_opterr;
    return errs->count > before ? -1 : 0;
}

/* The name of a key's argument in the usage, from its type. */
static const char *cli_arg_name(const struct config_key *k)
{
    switch (k->type) {
    case CFG_MODE:
        return "MODE";
    case CFG_UINT:
        return "N";
    case CFG_DURATION:
        return "DUR";
    case CFG_PORTS:
        return "LIST";
    case CFG_PATH:
        return (k->flags & (CFG_F_DIRECTORY | CFG_F_MAKES_DIR)) != 0 ? "DIR" : "FILE";
    case CFG_LISTENERS:
    case CFG_ADDRESS:
        return "ADDR:PORT";
    case CFG_USER:
        return "NAME";
    case CFG_SWITCH:
        return "on|off";
    case CFG_NAMES:
        return "LIST";
    case CFG_SYSLOG:
        return "TARGET";
    case CFG_FACILITY:
        return "NAME";
    }
    return "VALUE";
}

/*
 * Writes word[0..len) at column *col, first moving to a new line under the help column
 * when it would run past the line width.
 */
static void cli_put_word(FILE *out, const char *word, size_t len, int *col)
{
    if (*col > CLI_HELP_COLUMN && *col + 1 + (int)len > CLI_LINE_WIDTH) {
        fprintf(out, "\n%*s", CLI_HELP_COLUMN, "");
        *col = CLI_HELP_COLUMN;
    }
    if (*col > CLI_HELP_COLUMN) {
        fputc(' ', out);
        (*col)++;
    }
    fprintf(out, "%.*s", (int)len, word);
    *col += (int)len;
}

/*
 * Prints one usage row: the option (letter 0 for none), its argument (or NULL), and the
 * help wrapped under the help column, ending with the default (or NULL), kept whole.
 */
static void cli_print_row(FILE *out, int letter, const char *name, const char *arg,
                          const char *help, const char *def)
{
    char deftext[128];
    int col;

    if (letter != 0)
        col = fprintf(out, "  -%c, --%s%s%s", letter, name, arg != NULL ? " " : "",
                      arg != NULL ? arg : "");
    else
        col = fprintf(out, "      --%s%s%s", name, arg != NULL ? " " : "", arg != NULL ? arg : "");
    if (col >= CLI_HELP_COLUMN) {
        fputc('\n', out);
        col = 0;
    }
    fprintf(out, "%*s", CLI_HELP_COLUMN - col, "");
    col = CLI_HELP_COLUMN;
    if (help == NULL)
        help = "";
    for (const char *p = help + strspn(help, " "); *p != '\0'; p += strspn(p, " ")) {
        size_t len = strcspn(p, " ");

        cli_put_word(out, p, len, &col);
        p += len;
    }
    if (def != NULL) {
        snprintf(deftext, sizeof(deftext), "(default %s)", def);
        cli_put_word(out, deftext, strlen(deftext), &col);
    }
    fputc('\n', out);
}

/*
 * The edit distance of a and b (insertions, deletions, substitutions and swaps of two
 * neighbours, the usual typos), 99 for names longer than CLI_NAME_MAX.
 */
static size_t cli_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t rows[3][CLI_NAME_MAX + 1], *before = rows[0], *prev = rows[1], *cur = rows[2];

    if (la > CLI_NAME_MAX || lb > CLI_NAME_MAX)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t *spare = before;

        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);

            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                before[j - 2] + 1 < best)
                best = before[j - 2] + 1;
            cur[j] = best;
        }
        before = prev;
        prev = cur;
        cur = spare;
    }
    return prev[lb];
}

/* The nearest of names to word; see the header. */
const char *cli_nearest(const char *word, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t best_d = 99, len = strlen(word);
    size_t limit = len <= 4 ? 1 : len <= 10 ? 2 : 3;

    for (size_t i = 0; i < n; i++) {
        size_t d = cli_distance(word, names[i]);

        /* A word that starts a name is most likely that name cut short. */
        if (len >= 3 && strncmp(names[i], word, len) == 0)
            d = 1;
        if (d < best_d) {
            best_d = d;
            best = names[i];
        }
    }
    return best_d <= limit ? best : NULL;
}

/* The long option nearest to a mistyped one; see the header. */
const char *cli_suggest(const struct cli *c, const char *given)
{
    const char *names[CLI_MAX_OPTIONS];
    char word[CLI_NAME_MAX + 1];
    size_t len;

    given += strspn(given, "-");
    len = strcspn(given, "=");
    if (len > CLI_NAME_MAX)
        return NULL;
    memcpy(word, given, len);
    word[len] = '\0';
    for (size_t i = 0; i < c->nlong; i++)
        names[i] = c->longopts[i].name;
    return cli_nearest(word, names, c->nlong);
}

/* Prints the usage rows; see the header. */
void cli_usage(const struct cli *c, FILE *out)
{
    for (int with_letter = 1; with_letter >= 0; with_letter--) {
        for (size_t i = 0; i < config_nkeys; i++) {
            const struct config_key *k = &config_keys[i];

            if (k->option != NULL && (k->letter != 0) == (with_letter != 0))
                cli_print_row(out, k->letter, k->option, cli_arg_name(k), k->help, k->def);
        }
        for (size_t i = 0; i < c->nprogram; i++) {
            const struct cli_option *o = &c->program[i];
            bool has_letter = o->val > 0 && o->val < 256;

            if (has_letter == (with_letter != 0))
                cli_print_row(out, has_letter ? o->val : 0, o->name, o->arg, o->help, NULL);
        }
    }
    fputs("\nDUR is a number with an optional unit: 500ms, 2s, 1m (seconds by default).\n", out);
}
