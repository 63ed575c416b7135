/*
 * sluice: the program.  Reads the configuration (the table's defaults, then the file, then
 * the command line, whose options the configuration's key table defines: see src/cli.c),
 * raises the descriptor limit to fit the connection cap, opens the listening sockets,
 * starts the workers, turns SIGTERM and SIGINT into a graceful drain and SIGHUP into a
 * reload of the policies.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <getopt.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "sluice/admin.h"
#include "sluice/capture.h"
#include "sluice/cli.h"
#include "sluice/commands.h"
#include "sluice/clientcap.h"
#include "sluice/config.h"
#include "sluice/auditlog.h"
#include "sluice/credentials.h"
#include "sluice/exehash.h"
#include "sluice/listener.h"
#include "sluice/log.h"
#include "sluice/metrics.h"
#include "sluice/netguard.h"
#include "sluice/policy.h"
#include "sluice/privilege.h"
#include "sluice/redact.h"
#include "sluice/sdnotify.h"
#include "sluice/settings.h"
#include "sluice/squidlog.h"
#include "sluice/syslogsink.h"
#include "sluice/tls.h"
#include "sluice/version.h"
#include "sluice/worker.h"

_Static_assert(CONFIG_MAX_LISTENERS <= WORKER_MAX_LISTENERS,
               "each worker has a place for every configured listener");

/* getopt_long() values of the program's options without a letter. */
#define OPT_READY_FILE 256
#define OPT_LOG_FILE   257
#define OPT_PID_FILE   258
#define OPT_TOOL       259
#define OPT_ISOLATE    260
#define OPT_IF_ABSENT  261

/* The program's own options; the configuration's come from its key table. */
static const struct cli_option program_options[] = {
    {"config", 'c', "FILE", "configuration file (YAML); options given here override it"},
    {"verbose", 'v', NULL, "more logging (repeat for debug)"},
    {"quiet", 'q', NULL, "less logging"},
    {"help", 'h', NULL, "this text"},
    {"version", 'V', NULL, "the version"},
    {"ready-file", OPT_READY_FILE, "FILE", "write the listening addresses here when ready"},
    {"log-file", OPT_LOG_FILE, "FILE",
     "append the log here instead of stderr; SIGUSR1 reopens it (for logrotate)"},
    {"pid-file", OPT_PID_FILE, "FILE", "write the process id here while running"},
    {"tool", OPT_TOOL, "ID", "for env and run: the tool whose traffic it is"},
    {"isolate", OPT_ISOLATE, NULL,
     "for run: in a network namespace whose only way out is sluice's Unix listener"},
    {"if-absent", OPT_IF_ABSENT, NULL, "for ca init: do nothing when the CA is there already"},
};

/* What the command line tells the program itself, beyond the configuration. */
struct args {
    const char *config_path; /* -c FILE, or NULL: the built-in defaults */
    const char *ready_file;  /* or NULL */
    const char *log_file;    /* or NULL: stderr */
    const char *pid_file;    /* or NULL */
    int verbosity;
    bool check_only;         /* "sluice check": validate and exit */
    const char *passwd_user; /* "sluice passwd NAME": print a credentials line and exit */
    bool tools;              /* "sluice tools ...": report on the profiles and exit */
    const char *launch;      /* "env" or "run", or NULL */
    const char *tool;        /* --tool ID, for env and run */
    bool isolate;            /* --isolate, for run */
    char **run_argv;         /* run: the command after "--", NULL-terminated */
    char **tools_argv;       /* what follows "tools", tools_argc words */
    int tools_argc;
    char **ca_argv; /* what follows "ca", ca_argc words; NULL when not "ca" */
    int ca_argc;
    bool if_absent; /* --if-absent, for ca init */
};

/* A command other than running the proxy: its name, arguments, and what it does. */
struct command {
    const char *name;
    const char *args;
    const char *summary; /* one line, for the usage */
    const char *detail;  /* for "sluice help NAME" */
};

static const struct command commands[] = {
    {"check", "[options]", "check configuration and policies, then exit",
     "Reads the configuration and the policy directory as sluice would start with them (the\n"
     "same options, file and defaults), reports every error as file:line:column, and exits\n"
     "0 when all is valid, 1 when something is not (after \"N errors\"), 2 for a malformed\n"
     "command line.  On success it lists each tool profile with the proxy user names it\n"
     "answers to.\n"},
    {"help", "[COMMAND]", "this text, or what COMMAND does",
     "Prints the usage, or with a COMMAND what that command does.\n"},
    {"tools", "[show ID|which PID]", "list or show tool profiles; name a PID's tool",
     "Loads the policy directory as sluice would, then: without an argument, lists every\n"
     "tool profile and how many ways each source recognises it; \"show ID\" prints one\n"
     "profile (proxy users, executables and user agent patterns, groups); \"which PID\"\n"
     "says which tool the running process PID would be by its executable, command line\n"
     "and ancestors, the pattern and profile that say so, and the chain.  Exits 0, 1 when\n"
     "no such profile or no tool matched, 2 for a malformed command line.\n"},
    {"env", "--tool ID", "print the environment that routes a tool here",
     "Prints, as export lines for a shell, what `sluice run` sets: HTTP_PROXY, HTTPS_PROXY,\n"
     "ALL_PROXY and their lower-case forms pointing at sluice's first listener with the\n"
     "tool id as user name and a password part ($SLUICE_TOKEN, else \"x\"), NO_PROXY\n"
     "cleared, NODE_USE_ENV_PROXY=1, GIT_HTTP_PROXY_AUTHMETHOD=basic, and, when ca.cert is\n"
     "configured, a bundle of the system's CAs and sluice's named by SSL_CERT_FILE,\n"
     "NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, GIT_SSL_CAINFO, PIP_CERT,\n"
     "CARGO_HTTP_CAINFO, DENO_CERT and AWS_CA_BUNDLE.  Use: eval \"$(sluice env --tool ID)\".\n"},
    {"run", "--tool ID -- CMD...", "run CMD with its traffic going through sluice",
     "Runs CMD with the environment `sluice env` prints, in place of sluice (exec).  When\n"
     "no sluice answers on its first listener, it says so and exits 1 instead of starting\n"
     "the tool unprotected.\n"
     "\n"
     "With --isolate, CMD runs in a network namespace of its own (in a user namespace where\n"
     "the kernel allows one, else as root) whose only way out is sluice: its proxy address,\n"
     "127.0.0.1 and the port of sluice's first TCP listener (3128 when none), is relayed to\n"
     "sluice's first Unix listener (unix:PATH), and sluice names the tool from that socket,\n"
     "not from anything CMD sends.  A program that ignores the proxy settings reaches\n"
     "nothing: there is no route out and no name server.  sluice exits with CMD's status.\n"},
    {"audit", "verify FILE...", "check the chain of audit trail files",
     "Reads audit trail files (audit.path, --audit-log), in the order given, a later one\n"
     "continuing the one before, and checks that each record carries the SHA-256 of the\n"
     "line before it and a record_id one past its, and that record 1 follows no line.\n"
     "Prints how many records hold, from which record to which, and the last line's\n"
     "SHA-256, or the file and line where the chain breaks (a line changed, added,\n"
     "removed or moved).  Exits 0, 1 at a break, 2 when a file cannot be read or the\n"
     "command line is malformed, 3 when the chain holds but starts past record 1 (the\n"
     "records before it are in a file not given, or were removed).  Records removed from\n"
     "the end cannot be told from the files: compare the last one with a copy kept\n"
     "elsewhere.\n"},
    {"ca", "init|show", "make the local CA, or show it",
     "\"init\" makes the local certificate authority that TLS inspection signs with: an EC\n"
     "P-256 key at ca.key (--ca-key; mode 0600, never overwritten) and a self-signed CA\n"
     "certificate for it at ca.cert (--ca-cert), valid for ten years, making the\n"
     "directories on the way (0700) when missing.  With --if-absent it does nothing when\n"
     "both are there.  \"show\" prints the certificate's subject, SHA-256 fingerprint and\n"
     "validity, and the key's mode, owner and whether it is the certificate's.  Exits 0, 1\n"
     "when the CA cannot be made or is not usable (said, with what to do), 2 for a\n"
     "malformed command line.\n"},
    {"passwd", "NAME", "print a credentials line for proxy user NAME",
     "Prints, on standard output, the line of the credentials file (auth.credentials,\n"
     "--credentials) for proxy user NAME: the token's salted scrypt hash, never the token.\n"
     "The token is the first line of standard input; when standard input is a terminal or\n"
     "empty, a random one is made and printed on standard error, once.  Clients then send\n"
     "NAME and the token as their proxy credentials (http://NAME:TOKEN@host:port).\n"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Where a command's summary starts in the usage: after "       sluice " and 20 more. */
#define USAGE_SUMMARY_COLUMN 34

/* Prints the usage text. */
static void usage(const struct cli *c, FILE *out)
{
    fprintf(out, "usage: sluice %-20srun the proxy\n", "[options]");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct command *cmd = &commands[i];
        int width = 19 - (int)strlen(cmd->name);

        /* A synopsis that would run into its summary puts the summary on a line of its own. */
        if ((int)strlen(cmd->args) < width)
            fprintf(out, "       sluice %s %-*s%s\n", cmd->name, width, cmd->args, cmd->summary);
        else
            fprintf(out, "       sluice %s %s\n%*s%s\n", cmd->name, cmd->args, USAGE_SUMMARY_COLUMN,
                    "", cmd->summary);
    }
    fputs("\nAn egress-filtering HTTP/HTTPS forward proxy for developer tools.\n\noptions:\n", out);
    cli_usage(c, out);
}

/* The command called name, or NULL. */
static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Says that name is no command, with the nearest one; exits 2. */
static void unknown_command(const char *name)
{
    const char *names[NCOMMANDS];
    const char *near;

    for (size_t i = 0; i < NCOMMANDS; i++)
        names[i] = commands[i].name;
    near = cli_nearest(name, names, NCOMMANDS);
    fprintf(stderr, "sluice: unknown command '%s'%s%s%s (see sluice --help)\n", name,
            near != NULL ? "; did you mean '" : "", near != NULL ? near : "",
            near != NULL ? "'?" : "");
    exit(2);
}

/* "sluice help [COMMAND]": prints and exits. */
static void help_command(const struct cli *c, int argc, char **argv)
{
    const struct command *cmd;

    if (argc == 0) {
        usage(c, stdout);
        exit(0);
    }
    if (argc > 1) {
        fprintf(stderr, "sluice: help takes one command, not '%s' (see sluice --help)\n", argv[1]);
        exit(2);
    }
    if ((cmd = find_command(argv[0])) == NULL)
        unknown_command(argv[0]);
    printf("usage: sluice %s %s\n\n%s", cmd->name, cmd->args, cmd->detail);
    if (strcmp(cmd->args, "[options]") == 0)
        puts("\nIt takes the options sluice takes (see sluice --help).");
    exit(0);
}

/* Says what is wrong with the option getopt_long() just refused (ch '?' or ':'); exits 2. */
static void bad_option(const struct cli *c, int ch, char **argv)
{
    const char *given = argv[optind - 1], *near;

    if (ch == ':') {
        fprintf(stderr, "sluice: option '%s' needs a value (see sluice --help)\n", given);
        exit(2);
    }
    if (optopt != 0 && strncmp(given, "--", 2) == 0) {
        /* "--verbose=2": a long option that takes no value was given one. */
        for (size_t i = 0; i < c->nlong; i++)
            if (c->longopts[i].val == optopt &&
                strncmp(given + 2, c->longopts[i].name, strcspn(given + 2, "=")) == 0) {
                fprintf(stderr, "sluice: option '--%s' takes no value (see sluice --help)\n",
                        c->longopts[i].name);
                exit(2);
            }
    }
    if (optopt > 0 && optopt < 256) {
        /* An unknown letter, maybe inside a cluster ("-xv"): argv[optind - 1] may be the
         * word before it, so the letter alone says which. */
        fprintf(stderr, "sluice: unknown option '-%c' (see sluice --help)\n", optopt);
        exit(2);
    }
    near = cli_suggest(c, given);
    fprintf(stderr, "sluice: unknown option '%.*s'%s%s%s (see sluice --help)\n",
            (int)strcspn(given, "="), given, near != NULL ? "; did you mean '--" : "",
            near != NULL ? near : "", near != NULL ? "'?" : "");
    exit(2);
}

/*
 * Reads the program's own options and the command into *a; exits on --help, --version,
 * "help" or a malformed command line, with one line that says what is wrong.  The
 * configuration's options are left to read_config(), which applies them over the file.
 */
static void parse_args(const struct cli *c, int argc, char **argv, struct args *a)
{
    char shortopts[sizeof(c->shortopts) + 1];
    int ch;

    /* A leading ':' makes a missing value ':' rather than '?', and opterr = 0 keeps
     * getopt's own messages (named after argv[0], not "sluice") out. */
    snprintf(shortopts, sizeof(shortopts), ":%s", c->shortopts);
    opterr = 0;
    optind = 0; /* glibc: start the scan afresh */
    while ((ch = getopt_long(argc, argv, shortopts, c->longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            a->config_path = optarg;
            break;
        case 'v':
            a->verbosity++;
            break;
        case 'q':
            a->verbosity--;
            break;
        case 'h':
            usage(c, stdout);
            exit(0);
        case 'V':
            printf("sluice %s\n", SLUICE_VERSION);
            exit(0);
        case OPT_READY_FILE:
            a->ready_file = optarg;
            break;
        case OPT_LOG_FILE:
            a->log_file = optarg;
            break;
        case OPT_PID_FILE:
            a->pid_file = optarg;
            break;
        case OPT_TOOL:
            a->tool = optarg;
            break;
        case OPT_ISOLATE:
            a->isolate = true;
            break;
        case OPT_IF_ABSENT:
            a->if_absent = true;
            break;
        case '?':
        case ':':
            bad_option(c, ch, argv);
            break;
        default:
            break; /* a configuration key */
        }
    }
    /* getopt_long() moved the words that are not options to the end, in their order. */
    if (optind < argc) {
        const struct command *cmd = find_command(argv[optind]);

        if (cmd == NULL)
            unknown_command(argv[optind]);
        if (strcmp(cmd->name, "help") == 0)
            help_command(c, argc - optind - 1, argv + optind + 1);
        if (strcmp(cmd->name, "passwd") == 0)
            exit(command_passwd(argc - optind - 1, argv + optind + 1));
        if (strcmp(cmd->name, "audit") == 0)
            exit(command_audit(argc - optind - 1, argv + optind + 1));
        if (strcmp(cmd->name, "ca") == 0) {
            a->ca_argc = argc - optind - 1;
            a->ca_argv = argv + optind + 1;
            return;
        }
        if (strcmp(cmd->name, "tools") == 0) {
            a->tools = true;
            a->tools_argc = argc - optind - 1;
            a->tools_argv = argv + optind + 1;
            return;
        }
        if (strcmp(cmd->name, "env") == 0 || strcmp(cmd->name, "run") == 0) {
            a->launch = cmd->name;
            if (strcmp(cmd->name, "run") == 0) {
                /* getopt_long() moved "run" and the words after "--" (the command, which
                 * may have options of its own) to the end, in their order. */
                if (optind + 1 >= argc) {
                    fprintf(stderr, "sluice: run takes the command after --: sluice run --tool "
                                    "ID -- CMD [ARGS...] (see sluice help run)\n");
                    exit(2);
                }
                a->run_argv = argv + optind + 1;
                return;
            }
            if (optind + 1 < argc) {
                fprintf(stderr,
                        "sluice: unexpected argument '%s' after env (see sluice help "
                        "env)\n",
                        argv[optind + 1]);
                exit(2);
            }
            return;
        }
        a->check_only = true;
        if (optind + 1 < argc) {
            fprintf(stderr, "sluice: unexpected argument '%s' after %s (see sluice --help)\n",
                    argv[optind + 1], cmd->name);
            exit(2);
        }
    }
}

/*
 * The configuration: the table's defaults, then the file at path (when there is one), then
 * the command line over both, the same way at startup and on every reload.  Returns 0 with
 * *out owned by the caller, or the exit status for the errors in errs: 1 for the file, 2
 * for the command line.
 */
static int read_config(const struct cli *c, int argc, char **argv, const char *path,
                       struct sluice_config **out, struct yamldoc_errors *errs)
{
    struct sluice_config *cfg = path != NULL ? config_load(path, errs) : config_defaults(errs);

    *out = NULL;
    if (cfg == NULL)
        return 1;
    if (cli_apply_args(c, argc, argv, cfg, errs) < 0) {
        config_free(cfg);
        return 2;
    }
    if (config_check(cfg, errs) < 0) {
        config_free(cfg);
        return 1;
    }
    settings_apply_mode(&cfg->settings, cfg->mode == CONFIG_MODE_GATEWAY);
    *out = cfg;
    return 0;
}

/* Worker threads for the configured count: that many, or one per core for 0. */
static unsigned worker_count(uint32_t configured)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (configured != 0)
        return configured;
    if (cores < 1)
        return 1;
    return cores > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : (unsigned)cores;
}

/*
 * Raises RLIMIT_NOFILE to fit the connection cap (a client and an upstream socket each,
 * plus each worker's idle upstream pool, listeners and resolver, plus logs); lowers the
 * cap when the limit cannot grow.
 */
static void fit_descriptor_limit(struct sluice_settings *s, unsigned workers)
{
    struct rlimit rl;
    rlim_t reserve = 64 + (rlim_t)workers * (16 + s->upstream_idle_max + 2 * WORKER_MAX_PIPES);
    rlim_t need = (rlim_t)s->max_connections * 2 + reserve;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur >= need)
        return;
    if (rl.rlim_max < need) {
        struct rlimit raised = {.rlim_cur = need, .rlim_max = need};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            return;
    }
    rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
        uint32_t fit = rl.rlim_cur > reserve + 2 ? (uint32_t)((rl.rlim_cur - reserve) / 2) : 1;
        log_warn("open-file limit is %lu: connection cap lowered from %u to %u "
                 "(raise it with ulimit -n %lu)",
                 (unsigned long)rl.rlim_cur, s->max_connections, fit, (unsigned long)need);
        s->max_connections = fit;
    }
}

/* The set of the space-separated CIDRs in text, or NULL (out of memory, or one invalid). */
static struct netguard_cidrs *listener_proxy_from(const char *text)
{
    struct netguard_cidrs *set = netguard_cidrs_new();
    char item[CONFIG_PROXY_FROM_MAX];
    const char *p = text, *errstr = NULL;

    while (set != NULL && *p != '\0') {
        size_t len = strcspn(p, " ");

        memcpy(item, p, len);
        item[len] = '\0';
        if (len > 0 && netguard_cidrs_add(set, item, &errstr) < 0) {
            netguard_cidrs_free(set);
            return NULL;
        }
        p += len + (p[len] == ' ');
    }
    return set;
}

/* Writes text to path atomically, through a rename.  Returns 0, or -1 with errno. */
static int write_file_atomic(const char *path, const char *text)
{
    char tmp[4096];
    FILE *f;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

/* Writes one "ADDR:PORT" line per listener to path. */
static int write_ready_file(const char *path, const struct listener_addr *listen, size_t n)
{
    char text[CONFIG_MAX_LISTENERS * 96] = "";
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        listener_format(&listen[i], text + len, sizeof(text) - len - 1);
        len += strlen(text + len);
        text[len++] = '\n';
        text[len] = '\0';
    }
    return write_file_atomic(path, text);
}

/*
 * Points stderr, where every log line goes, at path (appended, created 0640).  Whoever
 * writes at that moment finishes in the old file: dup2() swaps the descriptor at once.
 * Returns 0, or -1 with errno.
 */
static int open_log_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0)
        return -1;
    if (dup2(fd, STDERR_FILENO) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    close(fd);
    return 0;
}

/*
 * A configured CA key must be the key of the user sluice runs (or, for check, would run)
 * as, and nobody else's.  Returns 0, or -1 with the sentence in err.
 */
static int check_ca_key(const struct sluice_config *config, char *err, size_t cap)
{
    char owner_name[64];
    uid_t owner;

    if (config->ca_key == NULL)
        return 0;
    if (privilege_runs_as(config->user, &owner, owner_name, sizeof(owner_name), err, cap) < 0)
        return -1;
    return privilege_check_private_file(config->ca_key, "the CA key", owner, owner_name, err, cap);
}

/*
 * Everything privileged is done (the listeners are bound, the files opened): started as
 * root, sluice becomes the configured user before any worker thread exists, handing it
 * the log file so SIGUSR1 can reopen it.  A secret file it will read (the CA key) must
 * then be the running user's alone.  Returns 0, or -1 after logging why it cannot go on.
 */
static int drop_root(const struct sluice_config *config, const struct args *a)
{
    struct privilege_user u;
    char err[512];

    if (geteuid() != 0) {
        if (config->user != NULL &&
            (privilege_lookup(config->user, &u, err, sizeof(err)) < 0 || u.uid != geteuid()))
            log_warn("started as uid %u, not root: user %s applies only when sluice starts as "
                     "root, so it runs on as uid %u",
                     (unsigned)geteuid(), config->user, (unsigned)geteuid());
    } else if (config->user == NULL) {
        log_notice("running as root: name an unprivileged user to become once the listeners "
                   "are bound (user: in the configuration, or --user)");
    } else {
        if (privilege_lookup(config->user, &u, err, sizeof(err)) < 0) {
            log_error("%s", err);
            return -1;
        }
        /* The log file was opened as root: its new owner may reopen it after a rotation. */
        if (a->log_file != NULL && chown(a->log_file, u.uid, u.gid) < 0)
            log_warn("cannot hand the log file %s to user %s: %s", a->log_file, u.name,
                     strerror(errno));
        if (privilege_drop(&u, err, sizeof(err)) < 0) {
            log_error("%s", err);
            return -1;
        }
        log_notice("running as user %s (uid %u, gid %u)", u.name, (unsigned)u.uid, (unsigned)u.gid);
    }
    if (check_ca_key(config, err, sizeof(err)) < 0) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

/*
 * Loads the TLS layer (the CA, the leaf key, both contexts) when the CA is configured, as
 * the user sluice runs as (the key is that user's alone).  A policy that inspects needs
 * it; without inspection, a CA that cannot be loaded is only warned about.  Returns 0 with
 * *out set (or NULL), or -1 after logging why sluice cannot start.
 */
static int open_tls(const struct sluice_config *config, const struct policy_snapshot *policy,
                    struct tls **out)
{
    struct tls_config tc = {.ca_cert = config->ca_cert,
                            .ca_key = config->ca_key,
                            .upstream_ca = config->tls_upstream_ca,
                            .cache_max = config->tls_cert_cache};
    bool needed = policy_wants_inspection(policy);
    char err[512];

    *out = NULL;
    if (config->ca_cert == NULL || config->ca_key == NULL) {
        if (!needed)
            return 0;
        log_error("the policy inspects TLS, and no CA is configured: set ca.cert and ca.key "
                  "(sluice ca init makes them)");
        return -1;
    }
    if ((*out = tls_new(&tc, err, sizeof(err))) != NULL) {
        log_notice("TLS inspection: CA %s, up to %u certificates cached%s%s", config->ca_cert,
                   config->tls_cert_cache,
                   config->tls_upstream_ca != NULL ? ", origins may also be signed by " : "",
                   config->tls_upstream_ca != NULL ? config->tls_upstream_ca : "");
        return 0;
    }
    if (needed) {
        log_error("%s", err);
        return -1;
    }
    log_warn("%s; nothing is inspected until it is fixed and sluice restarted", err);
    return 0;
}

/* The sentence for a policy that captures bodies with no store to keep them in. */
static const char capture_unconfigured[] =
    "the policy captures bodies (capture:), and no capture store is configured: set "
    "audit.capture_dir (--capture-dir) to a directory sluice may write";

/*
 * What stands in the way of keeping the bodies policy asks for, as a sentence in err: a
 * policy that captures with no store, a store with no audit trail to name its bodies, a
 * bound per body past half the store.  Returns 0 when nothing does, else -1.  Shared by
 * the start and sluice check.
 */
static int check_capture(const struct sluice_config *config, const struct policy_snapshot *policy,
                         char *err, size_t cap)
{
    if (config->capture_dir == NULL) {
        if (!policy_wants_capture(policy))
            return 0;
        snprintf(err, cap, "%s", capture_unconfigured);
        return -1;
    }
    if (config->audit_path == NULL) {
        snprintf(err, cap,
                 "audit.capture_dir is set and audit.path is not: the audit trail's records "
                 "are what name the captured bodies; set audit.path (--audit-log) too");
        return -1;
    }
    if ((uint64_t)config->settings.capture_message_kib << 10 >
        ((uint64_t)config->capture_mib << 20) / 2) {
        snprintf(err, cap,
                 "audit.capture_message_kib (%u KiB) is more than half of audit.capture_mib "
                 "(%u MiB): one body could push every other out of the store; raise "
                 "audit.capture_mib or lower audit.capture_message_kib",
                 config->settings.capture_message_kib, config->capture_mib);
        return -1;
    }
    return 0;
}

/*
 * Opens the capture store when audit.capture_dir is set, as the user sluice runs as (it
 * writes there for as long as it runs).  A policy that captures needs it.  Returns 0, or
 * -1 after logging why sluice cannot start.
 */
static int open_capture(const struct sluice_config *config, const struct policy_snapshot *policy)
{
    const struct capture_options opt = {.dir = config->capture_dir,
                                        .max_bytes = (uint64_t)config->capture_mib << 20};
    char err[PATH_MAX + 300];

    if (check_capture(config, policy, err, sizeof(err)) < 0) {
        log_error("%s", err);
        return -1;
    }
    if (config->capture_dir == NULL)
        return 0;
    if (capture_open(&opt, err, sizeof(err)) < 0) {
        log_error("%s", err);
        return -1;
    }
    log_notice("capture store: %s, up to %u MiB, %u KiB per body", config->capture_dir,
               config->capture_mib, config->settings.capture_message_kib);
    return 0;
}

/*
 * Sets the secret header names and the key their values are hashed under: the key file's
 * (made when absent) when audit.hash_key names one, else a key made now, good for this
 * run.  Returns 0, or -1 with the sentence in err.
 */
static int setup_redaction(const struct sluice_config *config, char *err, size_t cap)
{
    unsigned char key[REDACT_KEY_BYTES];
    int rc;

    if (config->audit_hash_key != NULL) {
        if (redact_load_key(config->audit_hash_key, key, err, cap) < 0)
            return -1;
    } else if (RAND_bytes(key, sizeof(key)) != 1) {
        snprintf(err, cap, "cannot make a key to hash secrets with: no randomness");
        return -1;
    }
    rc = redact_configure(config->audit_secret_headers, key, err, cap);
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

/*
 * Opens the audit sinks besides the trail that config names: the Squid log and syslog.
 * Returns 0, or -1 after logging why.
 */
static int open_audit_sinks(const struct sluice_config *config)
{
    char err[512];

    if (config->squid_log != NULL) {
        if (squidlog_open(config->squid_log, err, sizeof(err)) < 0) {
            log_error("%s", err);
            return -1;
        }
        log_notice("Squid log: %s", config->squid_log);
    }
    if (config->audit_syslog != NULL) {
        if (syslogsink_open(config->audit_syslog, config->audit_syslog_facility, err, sizeof(err)) <
            0) {
            log_error("%s", err);
            return -1;
        }
        log_notice("audit records to syslog: %s, facility %s", config->audit_syslog,
                   syslogsink_facility_str(config->audit_syslog_facility));
    }
    return 0;
}

/* Closes the sinks open_audit_sinks() opened, once every record is in; says what was lost. */
static void close_audit_sinks(void)
{
    squidlog_close();
    if (squidlog_lost() > 0)
        log_error("Squid log: %" PRIu64 " lines were lost", squidlog_lost());
    syslogsink_close();
    if (syslogsink_lost() > 0)
        log_error("syslog: %" PRIu64 " audit records were lost", syslogsink_lost());
}

/*
 * SIGUSR1 (arg: the program's args): reopens the log file, the audit trail and the Squid
 * log (logrotate moved them away).
 */
static void reopen_cb(evutil_socket_t sig, short what, void *arg)
{
    const char *path = ((const struct args *)arg)->log_file;

    char err[512];

    (void)sig;
    (void)what;
    if (auditlog_enabled()) {
        if (auditlog_reopen(err, sizeof(err)) < 0)
            log_error("received SIGUSR1: %s", err);
        else
            log_notice("received SIGUSR1: reopened the audit trail");
    }
    if (squidlog_enabled()) {
        if (squidlog_reopen(err, sizeof(err)) < 0)
            log_error("received SIGUSR1: %s", err);
        else
            log_notice("received SIGUSR1: reopened the Squid log");
    }
    if (path == NULL) {
        if (!auditlog_enabled() && !squidlog_enabled())
            log_notice("received SIGUSR1: no --log-file to reopen; the log goes to stderr");
        return;
    }
    if (open_log_file(path) < 0) {
        log_error("received SIGUSR1: cannot reopen the log file %s: %s; logging on to the old one",
                  path, strerror(errno));
        return;
    }
    log_notice("received SIGUSR1: reopened the log file %s", path);
}

/* What a reload needs: the command line as given and the configuration running. */
struct program {
    const struct cli *cli;
    int argc;
    char **argv;
    const char *config_path;
    const struct sluice_config *config; /* as running; its restart-only keys stay */
    const struct netguard_self *self;   /* the proxy's own addresses */
    struct worker *workers;             /* told about a new policy */
    unsigned nworkers;
    struct event_base *base;   /* the main loop: signals and the drain's clock */
    struct event *drain_tick;  /* while draining: countdown and end */
    uint64_t drain_ms;         /* how long the drain may take */
    uint64_t drain_started_ms; /* 0 until the first SIGTERM or SIGINT */
    uint64_t drain_told_s;     /* the last whole second the countdown logged */
    bool stopping;             /* a second signal: close what is left now */
    atomic_bool draining;      /* a SIGTERM or SIGINT came: read by /healthz's thread */
    bool can_inspect;          /* the TLS layer was loaded at start: policy may inspect */
};

/* A worker whose loop has not beaten for this long is reported stuck by /healthz. */
#define HEALTH_STUCK_MS 5000

/*
 * /healthz, in the admin listener's thread: healthy while no drain has begun, every
 * worker's loop runs (and has turned within HEALTH_STUCK_MS), and the audit trail (when
 * on) is written.
 */
static bool health_cb(char *why, size_t cap, void *arg)
{
    struct program *prog = arg;

    if (atomic_load(&prog->draining)) {
        snprintf(why, cap, "draining: sluice is shutting down and takes no new connections");
        return false;
    }
    for (unsigned k = 0; k < prog->nworkers; k++) {
        uint64_t age = worker_beat_age_ms(&prog->workers[k]);

        if (worker_finished(&prog->workers[k])) {
            snprintf(why, cap, "worker %u has stopped", k);
            return false;
        }
        if (age > HEALTH_STUCK_MS) {
            snprintf(why, cap, "worker %u's loop has not turned for %" PRIu64 " ms", k, age);
            return false;
        }
    }
    if (auditlog_failing()) {
        snprintf(why, cap,
                 "the audit trail cannot be written: records are lost, and requests get 503 "
                 "unless audit.fail_open");
        return false;
    }
    return true;
}

/* Milliseconds of the monotonic clock. */
static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Every 100 ms of a drain: ends the main loop once every worker is done, and once a
 * second says how many connections are left and for how long. */
static void drain_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct program *prog = arg;
    uint64_t elapsed = now_ms() - prog->drain_started_ms, left_s;
    bool done = true;

    (void)fd;
    (void)what;
    for (unsigned k = 0; k < prog->nworkers; k++)
        done = done && worker_finished(&prog->workers[k]);
    if (done) {
        event_base_loopexit(prog->base, NULL);
        return;
    }
    if (prog->stopping || elapsed / 1000 == prog->drain_told_s)
        return;
    prog->drain_told_s = elapsed / 1000;
    left_s = elapsed < prog->drain_ms ? (prog->drain_ms - elapsed + 999) / 1000 : 0;
    log_notice("draining: %u connection%s open, %llu s left (SIGTERM or Ctrl-C again stops "
               "at once)",
               worker_open_connections(), worker_open_connections() == 1 ? "" : "s",
               (unsigned long long)left_s);
}

/*
 * SIGTERM or SIGINT: the first asks every worker to drain (no new connections, requests
 * in flight finish within drain_timeout) and starts the countdown; the next closes what
 * is left at once, each connection with termination code D.
 */
static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct program *prog = arg;
    const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    const struct timeval tick = {.tv_sec = 0, .tv_usec = 100 * 1000};

    (void)what;
    if (prog->drain_started_ms == 0) {
        unsigned open = worker_open_connections();

        (void)sdnotify("STOPPING=1");
        atomic_store(&prog->draining, true);
        prog->drain_started_ms = now_ms();
        log_notice("received %s: no new connections; draining %u connection%s for up to %llu "
                   "s (%s again stops at once)",
                   name, open, open == 1 ? "" : "s",
                   (unsigned long long)(prog->drain_ms + 999) / 1000,
                   sig == SIGINT ? "Ctrl-C" : "SIGTERM");
        for (unsigned k = 0; k < prog->nworkers; k++)
            worker_request_drain(&prog->workers[k]);
        event_add(prog->drain_tick, &tick);
        return;
    }
    if (prog->stopping)
        return;
    prog->stopping = true;
    log_notice("received %s again: closing the %u connection%s left now", name,
               worker_open_connections(), worker_open_connections() == 1 ? "" : "s");
    for (unsigned k = 0; k < prog->nworkers; k++)
        worker_request_stop(&prog->workers[k]);
}

/*
 * The policy that cfg describes (directory, mode, GeoIP databases), checked against the
 * listeners of run (the running ones on a reload): each tool they are bound to must have
 * a profile.
 */
static struct policy_snapshot *load_policy(const struct sluice_config *cfg,
                                           const struct sluice_config *run,
                                           const struct netguard_self *self,
                                           struct yamldoc_errors *errs)
{
    const char *tools[CONFIG_MAX_LISTENERS], *names[CONFIG_MAX_LISTENERS];
    struct policy_source src = {.dir = cfg->policy_dir,
                                .gateway = cfg->mode == CONFIG_MODE_GATEWAY,
                                .geoip_country_db = cfg->geoip_country_db,
                                .geoip_asn_db = cfg->geoip_asn_db,
                                .self = self,
                                .bound_tools = tools,
                                .bound_names = names,
                                .nbound = run->nlisteners,
                                .bound_file = run->path != NULL ? run->path : "the command line"};

    for (size_t i = 0; i < run->nlisteners; i++) {
        tools[i] = run->listeners[i].tool[0] != '\0' ? run->listeners[i].tool : NULL;
        names[i] = run->listeners[i].address;
    }
    return policy_load(&src, errs);
}

/* For "sluice check": each profile and the proxy user names that select it. */
static void print_profiles(const struct policy_snapshot *p)
{
    for (size_t i = 0; i < p->ntools; i++) {
        const struct policy_tool *t = &p->tools[i];

        /* The id selects its tool as a proxy user name too, listed or not. */
        printf("  %-18s proxy users: %s", t->id, t->id);
        for (size_t k = 0; k < t->nproxy_users; k++)
            if (strcmp(t->proxy_users[k], t->id) != 0)
                printf(", %s", t->proxy_users[k]);
        putchar('\n');
    }
}

/* Logs every error of a failed load, one line each. */
static void log_errors(const struct yamldoc_errors *errs)
{
    for (size_t i = 0; i < errs->count && i < YAMLDOC_MAX_ERRORS; i++)
        if (errs->lines[i] != NULL)
            log_error("%s", errs->lines[i]);
    if (errs->count > YAMLDOC_MAX_ERRORS)
        log_error("... and %zu more errors", errs->count - YAMLDOC_MAX_ERRORS);
}

/* True when the key named name is left to the mode by "auto" (CFG_F_BY_MODE). */
static bool is_set_by_mode(const char *name)
{
    for (size_t i = 0; i < config_nkeys; i++)
        if (strcmp(config_keys[i].name, name) == 0)
            return (config_keys[i].flags & CFG_F_BY_MODE) != 0;
    return false;
}

/*
 * SIGHUP: reads the configuration and the policy directory again into a new snapshot and
 * installs it only when all of it is valid; otherwise the running one stays.  Every request
 * head completed from then on is decided on it, and each worker decides again every
 * exchange under way (resolving, connecting, forwarded, tunnelled), ending those it blocks.
 */
static void reload_cb(evutil_socket_t sig, short what, void *arg)
{
    const struct program *prog = arg;
    struct sluice_config *cfg = NULL;
    struct policy_snapshot *p = NULL;
    struct credentials *creds = NULL;
    struct yamldoc_errors errs;
    unsigned generation = policy_current_generation();
    const char *changed;
    size_t pos = 0;

    (void)sig;
    (void)what;
    log_notice("received SIGHUP: reloading the configuration and policies");
    (void)sdnotify("RELOADING=1");
    if (read_config(prog->cli, prog->argc, prog->argv, prog->config_path, &cfg, &errs) == 0)
        p = load_policy(cfg, prog->config, prog->self, &errs);
    /* The credentials file is read again too: a token taken out goes with the reload. */
    if (p != NULL && policy_wants_inspection(p) && !prog->can_inspect) {
        log_error("the new policy inspects TLS, and sluice started without its CA (ca.cert and "
                  "ca.key): restart sluice with them to inspect");
        policy_unref(p);
        p = NULL;
    }
    if (p != NULL && policy_wants_capture(p) && !capture_enabled()) {
        log_error("%s, and restart sluice", capture_unconfigured);
        policy_unref(p);
        p = NULL;
    }
    if (p != NULL && cfg->credentials != NULL &&
        (creds = credentials_load(cfg->credentials, &errs)) == NULL) {
        policy_unref(p);
        p = NULL;
    }
    if (p == NULL) {
        metrics_reload_failed();
        log_errors(&errs);
        log_error("reload failed (%zu error%s): policy generation %u stays in force", errs.count,
                  errs.count == 1 ? "" : "s", generation);
        yamldoc_errors_clear(&errs);
        config_free(cfg);
        (void)sdnotify("READY=1\nSTATUS=reload failed; the previous policy stays in force");
        return;
    }
    /* The workers hold what only a restart applies; say which of it the new files change. */
    while ((changed = config_next_restart_change(prog->config, cfg, &pos)) != NULL) {
        if (prog->config->mode != cfg->mode && is_set_by_mode(changed))
            log_warn("reload: %s changed with the mode (it is auto); it applies only after a "
                     "restart",
                     changed);
        else
            log_warn("reload: %s changed; it applies only after a restart", changed);
    }
    if (p->warning != NULL)
        log_warn("reload: %s", p->warning);
    log_notice("reloaded: policy generation %u, %zu tool profile%s from %s", p->generation,
               p->ntools, p->ntools == 1 ? "" : "s",
               p->dir != NULL ? p->dir
                              : "(none: only the address guard and the CONNECT ports apply)");
    policy_install(p);
    credentials_install(creds);
    if (creds != NULL)
        log_notice("reloaded: %zu proxy user%s in %s", credentials_count(creds),
                   credentials_count(creds) == 1 ? "" : "s", cfg->credentials);
    for (unsigned k = 0; k < prog->nworkers; k++)
        worker_policy_changed(&prog->workers[k]);
    config_free(cfg); /* the snapshot keeps copies of what it needs */
    (void)sdnotify("READY=1\nSTATUS=listening");
}

/* Starts sluice: configuration, policies, listeners and workers, then the signal loop. */
int main(int argc, char **argv)
{
    static struct worker workers[CONFIG_MAX_WORKERS];
    struct listener_addr listen[CONFIG_MAX_LISTENERS];
    struct netguard_cidrs *proxy_from[CONFIG_MAX_LISTENERS] = {NULL};
    struct credentials *credentials = NULL;
    struct sluice_settings settings;
    struct cli cli;
    struct args args;
    struct sluice_config *config = NULL;
    struct policy_snapshot *policy = NULL;
    struct netguard_self *self = NULL;
    struct clientcap *clientcap = NULL;
    struct tls *tls = NULL;
    struct yamldoc_errors errs;
    struct event_base *main_base = NULL;
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL, *reopen = NULL;
    struct admin *admin = NULL;
    bool pid_written = false;
    struct program prog;
    int *fds = NULL, status;
    unsigned nworkers, nstarted = 0;
    size_t nlisten;
    const char *errstr = NULL;
    char message[512];

    memset(&args, 0, sizeof(args));
    memset(&prog, 0, sizeof(prog));
    if (cli_init(&cli, program_options, sizeof(program_options) / sizeof(program_options[0])) < 0) {
        fprintf(stderr, "sluice: more options than CLI_MAX_OPTIONS\n");
        return 1;
    }
    parse_args(&cli, argc, argv, &args);
    status = read_config(&cli, argc, argv, args.config_path, &config, &errs);
    if (status == 2) { /* the command line: each error is one "sluice: --option" line */
        for (size_t i = 0; i < errs.count && i < YAMLDOC_MAX_ERRORS; i++)
            fprintf(stderr, "%s\n", errs.lines[i] != NULL ? errs.lines[i] : "(out of memory)");
        yamldoc_errors_clear(&errs);
        return status;
    }
    if (status != 0) {
        yamldoc_errors_print(&errs, stderr);
        yamldoc_errors_clear(&errs);
        return status;
    }
    if (args.ca_argv != NULL) {
        status = command_ca(config, args.ca_argc, args.ca_argv, args.if_absent);
        goto out_early;
    }
    status = 1;
    self = netguard_self_new();
    if (self == NULL)
        goto out_early;
    policy = load_policy(config, config, self, &errs);
    if (policy == NULL) {
        yamldoc_errors_print(&errs, stderr);
        yamldoc_errors_clear(&errs);
        goto out_early;
    }
    if (config->credentials != NULL &&
        (credentials = credentials_load(config->credentials, &errs)) == NULL) {
        yamldoc_errors_print(&errs, stderr);
        yamldoc_errors_clear(&errs);
        goto out_early;
    }
    if (args.tools) {
        status = command_tools(policy, args.tools_argc, args.tools_argv);
        goto out_early;
    }
    if (args.launch != NULL) {
        status =
            command_launch(config, policy, args.launch, args.tool, args.isolate, args.run_argv);
        goto out_early;
    }
    if (args.check_only) {
        unsigned nerrors = 0;

        if (policy->warning != NULL) {
            fprintf(stderr, "sluice: %s\n", policy->warning);
            nerrors++;
        }
        if (check_ca_key(config, message, sizeof(message)) < 0) {
            fprintf(stderr, "sluice: %s\n", message);
            nerrors++;
        }
        if (policy_wants_inspection(policy) &&
            (config->ca_cert == NULL || config->ca_key == NULL)) {
            fprintf(stderr, "sluice: the policy inspects TLS, and no CA is configured: set "
                            "ca.cert and ca.key (sluice ca init makes them)\n");
            nerrors++;
        }
        if (check_capture(config, policy, message, sizeof(message)) < 0) {
            fprintf(stderr, "sluice: %s\n", message);
            nerrors++;
        }
        if (nerrors > 0) {
            fprintf(stderr, "%u error%s\n", nerrors, nerrors == 1 ? "" : "s");
            goto out_early;
        }
        printf("policies OK: %zu tool profile%s from %s\n", policy->ntools,
               policy->ntools == 1 ? "" : "s", policy->dir != NULL ? policy->dir : "(none)");
        print_profiles(policy);
        if (credentials != NULL)
            printf("credentials OK: %zu user%s in %s\n", credentials_count(credentials),
                   credentials_count(credentials) == 1 ? "" : "s", config->credentials);
        printf("configuration OK%s%s\n", args.config_path != NULL ? ": " : " (built-in defaults)",
               args.config_path != NULL ? args.config_path : "");
        status = 0;
        goto out_early;
    }
    if (args.log_file != NULL && open_log_file(args.log_file) < 0) {
        fprintf(stderr, "sluice: cannot open the log file %s: %s\n", args.log_file,
                strerror(errno));
        goto out_early;
    }
    log_set_level(LOGL_NOTICE + args.verbosity);
    log_route_libevent();
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() < 0) {
        log_error("libevent has no thread support");
        goto out_early;
    }
    nworkers = worker_count(config->workers);
    nlisten = config->nlisteners;
    for (size_t i = 0; i < nlisten; i++) {
        if (listener_parse(config->listeners[i].address, &listen[i], &errstr) < 0) {
            log_error("listener %s: %s", config->listeners[i].address, errstr);
            goto out_early; /* the loader checked it already */
        }
    }
    /* The load balancers each listener takes a PROXY protocol header from (checked by the
     * loader; only memory can fail here). */
    for (size_t i = 0; i < nlisten; i++)
        if (config->listeners[i].proxy_from[0] != '\0' &&
            (proxy_from[i] = listener_proxy_from(config->listeners[i].proxy_from)) == NULL) {
            log_error("listener %s: cannot take its proxy-from list", config->listeners[i].address);
            goto out_early;
        }
    settings = config->settings; /* the workers' copy; the cap below may lower it */
    fit_descriptor_limit(&settings, nworkers);
    if (settings.max_conns_per_client > 0 &&
        (clientcap = clientcap_new(settings.max_conns_per_client)) == NULL)
        goto out;

    fds = calloc((size_t)nworkers * nlisten, sizeof(*fds));
    if (fds == NULL)
        goto out;
    if (listener_open_all(listen, nlisten, nworkers, fds, message, sizeof(message)) < 0) {
        log_error("%s", message);
        goto out;
    }
    /* The proxy's own addresses, with the ports the kernel picked, for the address guard. */
    for (size_t i = 0; i < nlisten; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&listen[i].ss;
        struct netguard_addr a;
        uint16_t port;

        if (sa->sa_family == AF_UNIX)
            continue; /* no address a request could dial */
        port = sa->sa_family == AF_INET
                   ? ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port)
                   : ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);

        if (!netguard_from_sockaddr(sa, &a) || netguard_self_add(self, &a, port, &errstr) < 0) {
            log_error("cannot record listener %s for the address guard: %s", listen[i].text,
                      errstr != NULL ? errstr : "not IPv4 or IPv6");
            goto out;
        }
    }
    /* The pid file is written while root may still write where it goes. */
    if (args.pid_file != NULL) {
        char pid[32];

        snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
        if (write_file_atomic(args.pid_file, pid) < 0) {
            log_error("cannot write the pid file %s: %s", args.pid_file, strerror(errno));
            goto out;
        }
        pid_written = true;
    }
    /* Secrets are hashed under the key before any record is made; read while root may. */
    if (setup_redaction(config, message, sizeof(message)) < 0) {
        log_error("%s", message);
        goto out;
    }
    /* The audit trail is opened while root may still write where it goes. */
    if (config->audit_path != NULL) {
        const struct auditlog_options opt = {
            .path = config->audit_path,
            .sync_ms = config->audit_sync_ms,
            .rotate_bytes = (uint64_t)config->audit_rotate_mib << 20,
            .keep = config->audit_keep,
        };
        if (auditlog_open(&opt, message, sizeof(message)) < 0) {
            log_error("%s", message);
            goto out;
        }
    }
    /* The admin listener is bound while root may still bind where it goes. */
    if (config->admin_listen != NULL &&
        (admin = admin_open(config->admin_listen, message, sizeof(message))) == NULL) {
        log_error("%s", message);
        goto out;
    }
    if (open_audit_sinks(config) < 0)
        goto out;
    if (drop_root(config, &args) < 0)
        goto out;
    if (open_tls(config, policy, &tls) < 0)
        goto out;
    if (open_capture(config, policy) < 0)
        goto out;
    if (policy->warning != NULL)
        log_warn("%s", policy->warning);
    credentials_install(credentials); /* the workers check against it from now on */
    credentials = NULL;
    if (config->mode == CONFIG_MODE_GATEWAY && credentials_current() == NULL)
        log_warn("gateway mode without a credentials file: proxy user names are taken on trust, "
                 "so any client may name any tool; set auth.credentials (or --credentials)");
    log_notice("policies: generation %u, %zu tool profile%s from %s (%s mode)", policy->generation,
               policy->ntools, policy->ntools == 1 ? "" : "s",
               policy->dir != NULL ? policy->dir
                                   : "(none: only the address guard and the CONNECT ports apply)",
               config_mode_str(config->mode));
    policy_install(policy);
    policy = NULL;
    for (unsigned k = 0; k < nworkers; k++) {
        if (worker_init(&workers[k], k, &settings, clientcap, fds + (size_t)k * nlisten, nlisten,
                        &errstr) == 0) {
            workers[k].env.tls = tls;
            for (size_t i = 0; i < nlisten; i++) {
                workers[k].listeners[i].tool =
                    config->listeners[i].tool[0] != '\0' ? config->listeners[i].tool : NULL;
                workers[k].listeners[i].proxy_from = proxy_from[i];
                workers[k].listeners[i].ask_credentials = config->listeners[i].ask_credentials;
            }
        } else {
            log_error("worker %u: %s", k, errstr);
            for (size_t i = (size_t)(k + 1) * nlisten; i < (size_t)nworkers * nlisten; i++)
                close(fds[i]);
            nstarted = k + 1;
            goto out;
        }
    }
    nstarted = nworkers;

    main_base = event_base_new();
    if (main_base == NULL)
        goto out;
    prog.cli = &cli;
    prog.argc = argc;
    prog.argv = argv;
    prog.config_path = args.config_path;
    prog.config = config;
    prog.self = self;
    prog.workers = workers;
    prog.nworkers = nstarted;
    prog.base = main_base;
    prog.drain_ms = settings.drain_ms;
    prog.drain_started_ms = 0;
    prog.drain_told_s = 0;
    prog.stopping = false;
    prog.can_inspect = tls != NULL;
    atomic_init(&prog.draining, false);
    prog.drain_tick = event_new(main_base, -1, EV_PERSIST, drain_tick_cb, &prog);
    sigterm = evsignal_new(main_base, SIGTERM, signal_cb, &prog);
    sigint = evsignal_new(main_base, SIGINT, signal_cb, &prog);
    sighup = evsignal_new(main_base, SIGHUP, reload_cb, &prog);
    reopen = evsignal_new(main_base, SIGUSR1, reopen_cb, &args);
    if (prog.drain_tick == NULL || sigterm == NULL || sigint == NULL || sighup == NULL ||
        reopen == NULL || evsignal_add(reopen, NULL) < 0 || evsignal_add(sigterm, NULL) < 0 ||
        evsignal_add(sigint, NULL) < 0 || evsignal_add(sighup, NULL) < 0)
        goto out;
    /* Client executables are hashed by a thread of their own, never on a worker's loop. */
    if (exehash_start() < 0)
        log_warn("cannot start the thread that hashes client executables: no sha256= in the "
                 "record");
    for (unsigned k = 0; k < nworkers; k++) {
        if (worker_start(&workers[k]) < 0) {
            log_error("cannot start worker %u", k);
            goto out;
        }
    }
    for (size_t i = 0; i < nlisten; i++) {
        char addr[96];
        listener_format(&listen[i], addr, sizeof(addr));
        log_notice("sluice %s listening on %s (%u worker%s, up to %u connections)", SLUICE_VERSION,
                   addr, nworkers, nworkers == 1 ? "" : "s", settings.max_connections);
    }
    if (admin != NULL) {
        char addr[96];

        if (admin_start(admin, health_cb, &prog, message, sizeof(message)) < 0) {
            log_error("%s", message);
            goto out;
        }
        admin_format(admin, addr, sizeof(addr));
        log_notice("admin listener on %s: /metrics and /healthz", addr);
    }
    if (args.ready_file != NULL && write_ready_file(args.ready_file, listen, nlisten) < 0)
        log_warn("cannot write the ready file %s: %s", args.ready_file, strerror(errno));
    if (sdnotify("READY=1\nSTATUS=listening") < 0)
        log_warn("cannot tell the service manager sluice is ready (NOTIFY_SOCKET): %s",
                 strerror(errno));

    event_base_dispatch(main_base);
    status = 0;

out:
    admin_free(admin); /* before the workers go: /healthz asks about them */
    for (unsigned k = 0; k < nstarted; k++)
        worker_request_drain(&workers[k]);
    for (unsigned k = 0; k < nstarted; k++)
        worker_finish(&workers[k]);
    if (prog.drain_tick != NULL)
        event_free(prog.drain_tick);
    if (sigterm != NULL)
        event_free(sigterm);
    if (sigint != NULL)
        event_free(sigint);
    if (sighup != NULL)
        event_free(sighup);
    if (reopen != NULL)
        event_free(reopen);
    if (main_base != NULL)
        event_base_free(main_base);
    free(fds);
    auditlog_close(); /* the workers are gone: every record is queued; they are written now */
    if (auditlog_lost() > 0)
        log_error("audit trail: %" PRIu64 " records were lost", auditlog_lost());
    close_audit_sinks();
    capture_close(); /* the workers are gone: every body is queued; they are stored now */
    if (capture_lost() > 0)
        log_error("capture store: %" PRIu64 " bodies were lost", capture_lost());
    exehash_stop();
    listener_close_unix(listen, nlisten);
    policy_install(NULL);
    credentials_release_all(); /* the workers are gone: no check is under way */
    tls_free(tls);
    if (pid_written && unlink(args.pid_file) < 0)
        log_warn("cannot remove the pid file %s: %s", args.pid_file, strerror(errno));
    if (status == 0)
        log_notice("sluice stopped");
out_early:
    for (size_t i = 0; i < CONFIG_MAX_LISTENERS; i++)
        netguard_cidrs_free(proxy_from[i]);
    credentials_free(credentials);
    policy_unref(policy);
    netguard_self_free(self);
    clientcap_free(clientcap);
    config_free(config);
    return status;
}
