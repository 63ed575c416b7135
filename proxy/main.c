/*
 * sluice: the program.  Parses the command line, raises the descriptor limit to fit the
 * connection cap, opens the listening sockets, starts the workers and turns SIGTERM and
 * SIGINT into a graceful drain.
 */
#include <errno.h>
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

#include "sluice/config.h"
#include "sluice/listener.h"
#include "sluice/log.h"
#include "sluice/settings.h"
#include "sluice/version.h"
#include "sluice/worker.h"

#define MAX_WORKERS 256

/* Everything the command line sets beyond the core settings. */
struct options {
    struct listener_addr listen[WORKER_MAX_LISTENERS];
    size_t nlisten;
    unsigned workers;
    int verbosity;
    const char *config_path;
    const char *ready_file;
    bool check_only; /* "sluice check": validate and exit */
};

/* Long options; the ones without a short form use values above 255. */
enum {
    OPT_MAX_CONNECTIONS = 256,
    OPT_CONNECT_PORTS,
    OPT_TIMEOUT_HEAD,
    OPT_TIMEOUT_KEEPALIVE,
    OPT_TIMEOUT_CONNECT,
    OPT_TIMEOUT_RESPONSE,
    OPT_TIMEOUT_IDLE,
    OPT_TIMEOUT_TUNNEL,
    OPT_DRAIN_TIMEOUT,
    OPT_MAX_REQUEST_LINE,
    OPT_MAX_HEADER_BYTES,
    OPT_MAX_HEADER_FIELDS,
    OPT_RESOLV_CONF,
    OPT_HOSTS_FILE,
    OPT_READY_FILE,
};

static const struct option long_options[] = {
    {"listen", required_argument, NULL, 'l'},
    {"workers", required_argument, NULL, 'w'},
    {"config", required_argument, NULL, 'c'},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"connect-ports", required_argument, NULL, OPT_CONNECT_PORTS},
    {"timeout-head", required_argument, NULL, OPT_TIMEOUT_HEAD},
    {"timeout-keepalive", required_argument, NULL, OPT_TIMEOUT_KEEPALIVE},
    {"timeout-connect", required_argument, NULL, OPT_TIMEOUT_CONNECT},
    {"timeout-response", required_argument, NULL, OPT_TIMEOUT_RESPONSE},
    {"timeout-idle", required_argument, NULL, OPT_TIMEOUT_IDLE},
    {"timeout-tunnel", required_argument, NULL, OPT_TIMEOUT_TUNNEL},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
    {"max-request-line", required_argument, NULL, OPT_MAX_REQUEST_LINE},
    {"max-header-bytes", required_argument, NULL, OPT_MAX_HEADER_BYTES},
    {"max-header-fields", required_argument, NULL, OPT_MAX_HEADER_FIELDS},
    {"resolv-conf", required_argument, NULL, OPT_RESOLV_CONF},
    {"hosts-file", required_argument, NULL, OPT_HOSTS_FILE},
    {"ready-file", required_argument, NULL, OPT_READY_FILE},
    {NULL, 0, NULL, 0},
};

/* Prints the usage text. */
static void usage(FILE *out)
{
    fprintf(out, "usage: sluice [options]\n"
                 "\n"
                 "An egress-filtering HTTP/HTTPS forward proxy for developer tools.\n"
                 "\n"
                 "  -l, --listen ADDR:PORT      listen here (repeatable; default 127.0.0.1:3128;\n"
                 "                              IPv6 as [::1]:3128; port 0 picks a free port)\n"
                 "  -w, --workers N             worker threads (default: number of cores)\n"
                 "  -c, --config FILE           configuration file (YAML); options given here\n"
                 "                              override it\n"
                 "  -v, --verbose               more logging (repeat for debug)\n"
                 "  -q, --quiet                 less logging\n"
                 "      --max-connections N     open client connections (default 16384)\n"
                 "      --connect-ports LIST    ports CONNECT may reach (default 443)\n"
                 "      --timeout-head DUR      read a whole request head (default 10s)\n"
                 "      --timeout-keepalive DUR idle client between requests (default 60s)\n"
                 "      --timeout-connect DUR   resolve and connect upstream (default 10s)\n"
                 "      --timeout-response DUR  wait for the response head (default 60s)\n"
                 "      --timeout-idle DUR      no data while a body flows (default 300s)\n"
                 "      --timeout-tunnel DUR    no data in a tunnel (default 3600s)\n"
                 "      --drain-timeout DUR     let requests finish on SIGTERM (default 10s)\n"
                 "      --max-request-line N    request line bytes (default 8192)\n"
                 "      --max-header-bytes N    request head bytes (default 65536)\n"
                 "      --max-header-fields N   request header fields (default 100)\n"
                 "      --resolv-conf FILE      nameservers (default /etc/resolv.conf)\n"
                 "      --hosts-file FILE       hosts file (default /etc/hosts)\n"
                 "      --ready-file FILE       write the listening addresses here when ready\n"
                 "  -h, --help                  this text\n"
                 "  -V, --version               the version\n"
                 "\n"
                 "DUR is a number with an optional unit: 500ms, 2s, 1m (seconds by default).\n");
}

/* Reports a bad option value and exits with status 2. */
static void die_option(const char *opt, const char *value, const char *why)
{
    fprintf(stderr, "sluice: --%s %s: %s\n", opt, value, why);
    exit(2);
}

/* Parses a duration option into *ms or exits. */
static void parse_duration_opt(const char *opt, uint32_t *ms)
{
    const char *errstr = NULL;

    if (settings_parse_duration(optarg, ms, &errstr) < 0)
        die_option(opt, optarg, errstr);
}

/* Parses a bounded number option into *out or exits. */
static void parse_uint_opt(const char *opt, uint32_t min, uint32_t max, uint32_t *out)
{
    const char *errstr = NULL;

    if (settings_parse_uint(optarg, min, max, out, &errstr) < 0)
        die_option(opt, optarg, errstr);
}

/* Parses argv into *o and *s; exits on --help, --version or an error. */
static void parse_args(int argc, char **argv, struct options *o, struct sluice_settings *s)
{
    const char *errstr = NULL;
    uint32_t n;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int ch;

    bool listen_given = false;

    if (o->workers == 0)
        o->workers = cores > 0 ? (unsigned)cores : 1;
    while ((ch = getopt_long(argc, argv, "l:w:c:vqhV", long_options, NULL)) != -1) {
        switch (ch) {
        case 'l':
            if (!listen_given)
                o->nlisten = 0; /* the command line replaces the file's listeners */
            listen_given = true;
            if (o->nlisten == WORKER_MAX_LISTENERS)
                die_option("listen", optarg, "too many listeners (at most 16)");
            if (listener_parse(optarg, &o->listen[o->nlisten], &errstr) < 0)
                die_option("listen", optarg, errstr);
            o->nlisten++;
            break;
        case 'w':
            parse_uint_opt("workers", 1, MAX_WORKERS, &n);
            o->workers = n;
            break;
        case 'c':
            o->config_path = optarg;
            break;
        case 'v':
            o->verbosity++;
            break;
        case 'q':
            o->verbosity--;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("sluice %s\n", SLUICE_VERSION);
            exit(0);
        case OPT_MAX_CONNECTIONS:
            parse_uint_opt("max-connections", 1, 1000000, &s->max_connections);
            break;
        case OPT_CONNECT_PORTS:
            if (settings_parse_ports(s, optarg, &errstr) < 0)
                die_option("connect-ports", optarg, errstr);
            break;
        case OPT_TIMEOUT_HEAD:
            parse_duration_opt("timeout-head", &s->timeout_head_ms);
            break;
        case OPT_TIMEOUT_KEEPALIVE:
            parse_duration_opt("timeout-keepalive", &s->timeout_keepalive_ms);
            break;
        case OPT_TIMEOUT_CONNECT:
            parse_duration_opt("timeout-connect", &s->timeout_connect_ms);
            break;
        case OPT_TIMEOUT_RESPONSE:
            parse_duration_opt("timeout-response", &s->timeout_response_ms);
            break;
        case OPT_TIMEOUT_IDLE:
            parse_duration_opt("timeout-idle", &s->timeout_idle_ms);
            break;
        case OPT_TIMEOUT_TUNNEL:
            parse_duration_opt("timeout-tunnel", &s->timeout_tunnel_ms);
            break;
        case OPT_DRAIN_TIMEOUT:
            parse_duration_opt("drain-timeout", &s->drain_ms);
            break;
        case OPT_MAX_REQUEST_LINE:
            parse_uint_opt("max-request-line", 256, 1024 * 1024, &s->request_limits.max_line);
            break;
        case OPT_MAX_HEADER_BYTES:
            parse_uint_opt("max-header-bytes", 1024, 16 * 1024 * 1024, &s->request_limits.max_head);
            break;
        case OPT_MAX_HEADER_FIELDS:
            parse_uint_opt("max-header-fields", 8, 10000, &s->request_limits.max_fields);
            break;
        case OPT_RESOLV_CONF:
            s->resolv_conf = optarg;
            break;
        case OPT_HOSTS_FILE:
            s->hosts_file = optarg;
            break;
        case OPT_READY_FILE:
            o->ready_file = optarg;
            break;
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice: unexpected argument '%s' (see sluice --help)\n", argv[optind]);
        exit(2);
    }
    if (o->nlisten == 0 && listener_parse("127.0.0.1:3128", &o->listen[0], &errstr) == 0)
        o->nlisten = 1;
}

/*
 * Raises RLIMIT_NOFILE to fit the connection cap (a client and an upstream socket each,
 * plus each worker's idle upstream pool, listeners and resolver, plus logs); lowers the
 * cap when the limit cannot grow.
 */
static void fit_descriptor_limit(struct sluice_settings *s, unsigned workers)
{
    struct rlimit rl;
    rlim_t reserve = 64 + (rlim_t)workers * (16 + s->upstream_idle_max);
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
static int write_ready_file(const char *path, const struct options *o)
{
    char tmp[4096], line[96];
    FILE *f;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return -1;
    f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    for (size_t i = 0; i < o->nlisten; i++) {
        listener_format(&o->listen[i], line, sizeof(line));
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
static int open_listeners(struct options *o, unsigned workers, int *fds)
{
    for (size_t i = 0; i < o->nlisten; i++) {
        for (unsigned k = 0; k < workers; k++) {
            int fd = listener_open(&o->listen[i]);
            if (fd < 0) {
                log_error("cannot listen on %s: %s", o->listen[i].text, strerror(errno));
                return -1;
            }
            fds[k * o->nlisten + i] = fd;
            if (k == 0)
                listener_set_port(&o->listen[i], listener_bound_port(fd));
        }
    }
    return 0;
}

/* The --config argument, found before the full parse so options can override the file. */
static const char *find_config_arg(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
    }
    return NULL;
}

/*
 * Loads the configuration file into *o and *s (which then borrow its strings).  Returns
 * the loaded configuration (owned by the caller), or NULL after printing every error.
 */
static struct sluice_config *load_config(const char *path, struct options *o,
                                         struct sluice_settings *s)
{
    struct yamldoc_errors errs;
    struct sluice_config *cfg = config_load(path, &errs);
    const char *errstr = NULL;

    if (cfg == NULL) {
        yamldoc_errors_print(&errs, stderr);
        yamldoc_errors_clear(&errs);
        return NULL;
    }
    *s = cfg->settings;
    o->workers = cfg->workers;
    o->nlisten = 0;
    for (size_t i = 0; i < cfg->nlisteners && i < WORKER_MAX_LISTENERS; i++)
        if (listener_parse(cfg->listeners[i].address, &o->listen[o->nlisten], &errstr) == 0)
            o->nlisten++;
    return cfg;
}

int main(int argc, char **argv)
{
    static struct worker workers[MAX_WORKERS];
    struct sluice_settings settings;
    struct options opts;
    struct sluice_config *config = NULL;
    struct event_base *main_base = NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    int *fds = NULL, status = 1;
    unsigned nstarted = 0;
    const char *errstr = NULL;

    memset(&opts, 0, sizeof(opts));
    settings_init(&settings);
    if (argc > 1 && strcmp(argv[1], "check") == 0) {
        opts.check_only = true;
        argv[1] = argv[0]; /* getopt sees the rest as if "check" were not there */
        argv++;
        argc--;
    }
    opts.config_path = find_config_arg(argc, argv);
    if (opts.config_path != NULL) {
        config = load_config(opts.config_path, &opts, &settings);
        if (config == NULL)
            return 1;
    }
    parse_args(argc, argv, &opts, &settings);
    if (opts.check_only) {
        printf("configuration OK%s%s\n", opts.config_path != NULL ? ": " : " (built-in defaults)",
               opts.config_path != NULL ? opts.config_path : "");
        config_free(config);
        return 0;
    }
    log_set_level(LOGL_NOTICE + opts.verbosity);
    log_route_libevent();
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() < 0) {
        log_error("libevent has no thread support");
        return 1;
    }
    fit_descriptor_limit(&settings, opts.workers);

    fds = calloc((size_t)opts.workers * opts.nlisten, sizeof(*fds));
    if (fds == NULL)
        goto out;
    for (size_t i = 0; i < (size_t)opts.workers * opts.nlisten; i++)
        fds[i] = -1;
    if (open_listeners(&opts, opts.workers, fds) < 0)
        goto out;
    for (unsigned k = 0; k < opts.workers; k++) {
        if (worker_init(&workers[k], k, &settings, fds + (size_t)k * opts.nlisten, opts.nlisten,
                        &errstr) < 0) {
            log_error("worker %u: %s", k, errstr);
            for (size_t i = (size_t)(k + 1) * opts.nlisten; i < (size_t)opts.workers * opts.nlisten;
                 i++)
                close(fds[i]);
            nstarted = k + 1;
            goto out;
        }
    }
    nstarted = opts.workers;

    main_base = event_base_new();
    if (main_base == NULL)
        goto out;
    sigterm = evsignal_new(main_base, SIGTERM, signal_cb, main_base);
    sigint = evsignal_new(main_base, SIGINT, signal_cb, main_base);
    if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) < 0 ||
        evsignal_add(sigint, NULL) < 0)
        goto out;
    for (unsigned k = 0; k < opts.workers; k++) {
        if (worker_start(&workers[k]) < 0) {
            log_error("cannot start worker %u", k);
            goto out;
        }
    }
    for (size_t i = 0; i < opts.nlisten; i++) {
        char addr[96];
        listener_format(&opts.listen[i], addr, sizeof(addr));
        log_notice("sluice %s listening on %s (%u workers, up to %u connections)", SLUICE_VERSION,
                   addr, opts.workers, settings.max_connections);
    }
    if (opts.ready_file != NULL && write_ready_file(opts.ready_file, &opts) < 0)
        log_warn("cannot write the ready file %s: %s", opts.ready_file, strerror(errno));

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
    if (main_base != NULL)
        event_base_free(main_base);
    free(fds);
    config_free(config);
    if (status == 0)
        log_notice("sluice stopped");
    return status;
}
