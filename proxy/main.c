/*
 * sluice: the program.  Reads the configuration (the table's defaults, then the file, then
 * the command line, whose options the configuration's key table defines: see src/cli.c),
 * raises the descriptor limit to fit the connection cap, opens the listening sockets,
 * starts the workers, turns SIGTERM and SIGINT into a graceful drain and SIGHUP into a
 * reload of the policies.
 */
#include <errno.h>
#include <netinet/in.h>
#include <getopt.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "sluice/cli.h"
#include "sluice/clientcap.h"
#include "sluice/config.h"
#include "sluice/listener.h"
#include "sluice/log.h"
#include "sluice/netguard.h"
#include "sluice/policy.h"
#include "sluice/settings.h"
#include "sluice/version.h"
#include "sluice/worker.h"

_Static_assert(CONFIG_MAX_LISTENERS <= WORKER_MAX_LISTENERS,
               "each worker has a place for every configured listener");

/* getopt_long() value of --ready-file, the program's one option without a letter. */
#define OPT_READY_FILE 256

/* The program's own options; the configuration's come from its key table. */
static const struct cli_option program_options[] = {
    {"config", 'c', "FILE", "configuration file (YAML); options given here override it"},
    {"verbose", 'v', NULL, "more logging (repeat for debug)"},
    {"quiet", 'q', NULL, "less logging"},
    {"help", 'h', NULL, "this text"},
    {"version", 'V', NULL, "the version"},
    {"ready-file", OPT_READY_FILE, "FILE", "write the listening addresses here when ready"},
};

/* What the command line tells the program itself, beyond the configuration. */
struct args {
    const char *config_path; /* -c FILE, or NULL: the built-in defaults */
    const char *ready_file;  /* or NULL */
    int verbosity;
    bool check_only; /* "sluice check": validate and exit */
};

/* Prints the usage text. */
static void usage(const struct cli *c, FILE *out)
{
    fputs("usage: sluice [options]\n"
          "\n"
          "An egress-filtering HTTP/HTTPS forward proxy for developer tools.\n"
          "\n",
          out);
    cli_usage(c, out);
}

/*
 * Reads the program's own options into *a; exits on --help, --version or a malformed
 * command line.  The configuration's options are left to read_config(), which applies
 * them over the file.
 */
static void parse_args(const struct cli *c, int argc, char **argv, struct args *a)
{
    int ch;

    optind = 0; /* glibc: start the scan afresh */
    while ((ch = getopt_long(argc, argv, c->shortopts, c->longopts, NULL)) != -1) {
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
        case '?':
            usage(c, stderr);
            exit(2);
        default:
            break; /* a configuration key */
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice: unexpected argument '%s' (see sluice --help)\n", argv[optind]);
        exit(2);
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

/* Writes one "ADDR:PORT" line per listener to path, atomically through a rename. */
static int write_ready_file(const char *path, const struct listener_addr *listen, size_t n)
{
    char tmp[4096], line[96];
    FILE *f;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return -1;
    f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        listener_format(&listen[i], line, sizeof(line));
        fprintf(f, "%s\n", line);
    }
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

/* SIGTERM or SIGINT: ask every worker to drain, then leave the main loop. */
static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct event_base *base = arg;

    (void)what;
    log_notice("received %s: no new connections, draining requests in flight",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
    event_base_loopexit(base, NULL);
}

/* Opens every listener for every worker; port 0 is fixed by the first bind. */
static int open_listeners(struct listener_addr *listen, size_t n, unsigned workers, int *fds)
{
    for (size_t i = 0; i < n; i++) {
        for (unsigned k = 0; k < workers; k++) {
            int fd = listener_open(&listen[i]);
            if (fd < 0) {
                log_error("cannot listen on %s: %s", listen[i].text, strerror(errno));
                return -1;
            }
            fds[k * n + i] = fd;
            if (k == 0)
                listener_set_port(&listen[i], listener_bound_port(fd));
        }
    }
    return 0;
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
};

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

/* Logs every error of a failed load, one line each. */
static void log_errors(const struct yamldoc_errors *errs)
{
    for (size_t i = 0; i < errs->count && i < YAMLDOC_MAX_ERRORS; i++)
        if (errs->lines[i] != NULL)
            log_error("%s", errs->lines[i]);
    if (errs->count > YAMLDOC_MAX_ERRORS)
        log_error("... and %zu more errors", errs->count - YAMLDOC_MAX_ERRORS);
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
    struct yamldoc_errors errs;
    unsigned generation = policy_current_generation();
    const char *changed;
    size_t pos = 0;

    (void)sig;
    (void)what;
    log_notice("received SIGHUP: reloading the configuration and policies");
    if (read_config(prog->cli, prog->argc, prog->argv, prog->config_path, &cfg, &errs) == 0)
        p = load_policy(cfg, prog->config, prog->self, &errs);
    if (p == NULL) {
        log_errors(&errs);
        log_error("reload failed (%zu error%s): policy generation %u stays in force", errs.count,
                  errs.count == 1 ? "" : "s", generation);
        yamldoc_errors_clear(&errs);
        config_free(cfg);
        return;
    }
    /* The workers hold what only a restart applies; say which of it the new files change. */
    while ((changed = config_next_restart_change(prog->config, cfg, &pos)) != NULL)
        log_warn("reload: %s changed; it applies only after a restart", changed);
    log_notice("reloaded: policy generation %u, %zu tool profile%s from %s", p->generation,
               p->ntools, p->ntools == 1 ? "" : "s",
               p->dir != NULL ? p->dir : "(none: every request allowed)");
    policy_install(p);
    for (unsigned k = 0; k < prog->nworkers; k++)
        worker_policy_changed(&prog->workers[k]);
    config_free(cfg); /* the snapshot keeps copies of what it needs */
}

/* Starts sluice: configuration, policies, listeners and workers, then the signal loop. */
int main(int argc, char **argv)
{
    static struct worker workers[CONFIG_MAX_WORKERS];
    struct listener_addr listen[CONFIG_MAX_LISTENERS];
    struct sluice_settings settings;
    struct cli cli;
    struct args args;
    struct sluice_config *config = NULL;
    struct policy_snapshot *policy = NULL;
    struct netguard_self *self = NULL;
    struct clientcap *clientcap = NULL;
    struct yamldoc_errors errs;
    struct event_base *main_base = NULL;
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    struct program prog;
    int *fds = NULL, status;
    unsigned nworkers, nstarted = 0;
    size_t nlisten;
    const char *errstr = NULL;

    memset(&args, 0, sizeof(args));
    if (argc > 1 && strcmp(argv[1], "check") == 0) {
        args.check_only = true;
        argv[1] = argv[0]; /* getopt sees the rest as if "check" were not there */
        argv++;
        argc--;
    }
    if (cli_init(&cli, program_options, sizeof(program_options) / sizeof(program_options[0])) < 0) {
        fprintf(stderr, "sluice: more options than CLI_MAX_OPTIONS\n");
        return 1;
    }
    parse_args(&cli, argc, argv, &args);
    status = read_config(&cli, argc, argv, args.config_path, &config, &errs);
    if (status != 0) {
        yamldoc_errors_print(&errs, stderr);
        yamldoc_errors_clear(&errs);
        return status;
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
    if (args.check_only) {
        printf("policies OK: %zu tool profile%s from %s\n", policy->ntools,
               policy->ntools == 1 ? "" : "s", policy->dir != NULL ? policy->dir : "(none)");
        printf("configuration OK%s%s\n", args.config_path != NULL ? ": " : " (built-in defaults)",
               args.config_path != NULL ? args.config_path : "");
        status = 0;
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
    settings = config->settings; /* the workers' copy; the cap below may lower it */
    fit_descriptor_limit(&settings, nworkers);
    if (settings.max_conns_per_client > 0 &&
        (clientcap = clientcap_new(settings.max_conns_per_client)) == NULL)
        goto out;

    fds = calloc((size_t)nworkers * nlisten, sizeof(*fds));
    if (fds == NULL)
        goto out;
    for (size_t i = 0; i < (size_t)nworkers * nlisten; i++)
        fds[i] = -1;
    if (open_listeners(listen, nlisten, nworkers, fds) < 0)
        goto out;
    /* The proxy's own addresses, with the ports the kernel picked, for the address guard. */
    for (size_t i = 0; i < nlisten; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&listen[i].ss;
        struct netguard_addr a;
        uint16_t port = sa->sa_family == AF_INET
                            ? ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port)
                            : ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);

        if (!netguard_from_sockaddr(sa, &a) || netguard_self_add(self, &a, port, &errstr) < 0) {
            log_error("cannot record listener %s for the address guard: %s", listen[i].text,
                      errstr != NULL ? errstr : "not IPv4 or IPv6");
            goto out;
        }
    }
    log_notice("policies: generation %u, %zu tool profile%s from %s (%s mode)", policy->generation,
               policy->ntools, policy->ntools == 1 ? "" : "s",
               policy->dir != NULL ? policy->dir : "(none: every request allowed)",
               config_mode_str(config->mode));
    policy_install(policy);
    policy = NULL;
    for (unsigned k = 0; k < nworkers; k++) {
        if (worker_init(&workers[k], k, &settings, clientcap, fds + (size_t)k * nlisten, nlisten,
                        &errstr) == 0) {
            for (size_t i = 0; i < nlisten; i++)
                workers[k].listeners[i].tool =
                    config->listeners[i].tool[0] != '\0' ? config->listeners[i].tool : NULL;
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
    sigterm = evsignal_new(main_base, SIGTERM, signal_cb, main_base);
    sigint = evsignal_new(main_base, SIGINT, signal_cb, main_base);
    sighup = evsignal_new(main_base, SIGHUP, reload_cb, &prog);
    if (sigterm == NULL || sigint == NULL || sighup == NULL || evsignal_add(sigterm, NULL) < 0 ||
        evsignal_add(sigint, NULL) < 0 || evsignal_add(sighup, NULL) < 0)
        goto out;
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
    if (args.ready_file != NULL && write_ready_file(args.ready_file, listen, nlisten) < 0)
        log_warn("cannot write the ready file %s: %s", args.ready_file, strerror(errno));

    event_base_dispatch(main_base);
    status = 0;

out:
    for (unsigned k = 0; k < nstarted; k++)
        worker_request_drain(&workers[k]);
    for (unsigned k = 0; k < nstarted; k++)
        worker_finish(&workers[k]);
    if (sigterm != NULL)
        event_free(sigterm);
    if (sigint != NULL)
        event_free(sigint);
    if (sighup != NULL)
        event_free(sighup);
    if (main_base != NULL)
        event_base_free(main_base);
    free(fds);
    policy_install(NULL);
    if (status == 0)
        log_notice("sluice stopped");
out_early:
    policy_unref(policy);
    netguard_self_free(self);
    clientcap_free(clientcap);
    config_free(config);
    return status;
}
