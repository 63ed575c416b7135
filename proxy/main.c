/*
 * sluice: the program.  Parses the command line, raises the descriptor limit to fit the
 * connection cap, opens the listening sockets, starts the workers, turns SIGTERM and
 * SIGINT into a graceful drain and SIGHUP into a reload of the policies.
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

#include "sluice/config.h"
#include "sluice/listener.h"
#include "sluice/log.h"
#include "sluice/netguard.h"
#include "sluice/policy.h"
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
    const char *listen_tool[WORKER_MAX_LISTENERS]; /* tool each listener is bound to, or NULL */
    const char *config_path;
    const char *policy_dir;
    bool gateway;                 /* mode: gateway (true) or local */
    const char *geoip_country_db; /* or NULL */
    const char *geoip_asn_db;     /* or NULL */
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
    OPT_POLICY_DIR,
    OPT_MODE,
    OPT_GEOIP_COUNTRY,
    OPT_GEOIP_ASN,
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
    {"policy-dir", required_argument, NULL, OPT_POLICY_DIR},
    {"mode", required_argument, NULL, OPT_MODE},
    {"geoip-country", required_argument, NULL, OPT_GEOIP_COUNTRY},
    {"geoip-asn", required_argument, NULL, OPT_GEOIP_ASN},
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
                 "                              IPv6 as [::1]:3128; port 0 picks a free port;\n"
                 "                              ADDR:PORT,tool=ID: its clients are tool ID)\n"
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
                 "      --policy-dir DIR        tool profiles (DIR/tools/*.yaml) and\n"
                 "                              DIR/organisation.yaml; SIGHUP reloads them\n"
                 "      --mode MODE             local (default) or gateway (every private\n"
                 "                              address class denied by default)\n"
                 "      --geoip-country FILE    country database (MMDB) for country rules\n"
                 "      --geoip-asn FILE        ASN database (MMDB) for AS rules\n"
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

/*
 * Parses one --listen value, "ADDR:PORT" or "ADDR:PORT,tool=ID" (every client of that
 * listener is the tool ID), into the next listener of o, or exits.
 */
static void parse_listen_opt(struct options *o, const char *value)
{
    const char *tool = strstr(value, ",tool="), *errstr = NULL;
    char addr[96];
    size_t len = tool != NULL ? (size_t)(tool - value) : strlen(value);

    if (len >= sizeof(addr))
        die_option("listen", value, "address too long");
    memcpy(addr, value, len);
    addr[len] = '\0';
    if (listener_parse(addr, &o->listen[o->nlisten], &errstr) < 0)
        die_option("listen", value, errstr);
    if (tool != NULL && tool[6] == '\0')
        die_option("listen", value, "tool= needs a tool id, e.g. 127.0.0.1:3129,tool=claude-code");
    o->listen_tool[o->nlisten] = tool != NULL ? tool + 6 : NULL;
    o->nlisten++;
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
            if (!listen_given) {
                o->nlisten = 0; /* the command line replaces the file's listeners */
                memset(o->listen_tool, 0, sizeof(o->listen_tool));
            }
            listen_given = true;
            if (o->nlisten == WORKER_MAX_LISTENERS)
                die_option("listen", optarg, "too many listeners (at most 16)");
            parse_listen_opt(o, optarg);
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
        case OPT_POLICY_DIR:
            o->policy_dir = optarg;
            break;
        case OPT_MODE:
            if (strcmp(optarg, "local") != 0 && strcmp(optarg, "gateway") != 0)
                die_option("mode", optarg, "expected local or gateway");
            o->gateway = strcmp(optarg, "gateway") == 0;
            break;
        case OPT_GEOIP_COUNTRY:
            o->geoip_country_db = optarg;
            break;
        case OPT_GEOIP_ASN:
            o->geoip_asn_db = optarg;
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
 * the loaded configuration (owned by the caller), or NULL with every error in errs.
 */
static struct sluice_config *load_config(const char *path, struct options *o,
                                         struct sluice_settings *s, struct yamldoc_errors *errs)
{
    struct sluice_config *cfg = config_load(path, errs);
    const char *errstr = NULL;

    if (cfg == NULL)
        return NULL;
    *s = cfg->settings;
    o->workers = cfg->workers;
    o->nlisten = 0;
    for (size_t i = 0; i < cfg->nlisteners && i < WORKER_MAX_LISTENERS; i++)
        if (listener_parse(cfg->listeners[i].address, &o->listen[o->nlisten], &errstr) == 0) {
            o->listen_tool[o->nlisten] = cfg->listeners[i].tool[0] ? cfg->listeners[i].tool : NULL;
            o->nlisten++;
        }
    o->policy_dir = cfg->policy_dir;
    o->gateway = cfg->mode == CONFIG_MODE_GATEWAY;
    o->geoip_country_db = cfg->geoip_country_db;
    o->geoip_asn_db = cfg->geoip_asn_db;
    return cfg;
}

/*
 * Reads the configuration file (when one was named) and then the command line, which
 * overrides it, into *o and *s, the same way at startup and on every reload.  Returns 0
 * with *cfg owning what o and s borrow (NULL without a file), or -1 with errs filled.
 */
static int read_options(int argc, char **argv, struct options *o, struct sluice_settings *s,
                        struct sluice_config **cfg, struct yamldoc_errors *errs)
{
    bool check_only = o->check_only;

    memset(o, 0, sizeof(*o));
    memset(errs, 0, sizeof(*errs));
    o->check_only = check_only;
    settings_init(s);
    *cfg = NULL;
    o->config_path = find_config_arg(argc, argv);
    if (o->config_path != NULL && (*cfg = load_config(o->config_path, o, s, errs)) == NULL)
        return -1;
    optind = 0; /* glibc: start the scan afresh, as on the first call */
    parse_args(argc, argv, o, s);
    return 0;
}

/* What a reload needs: the command line as given and the state it replaces. */
struct program {
    int argc;
    char **argv;
    const struct options *opts; /* as running; listeners and their tools stay */
    const struct sluice_settings *settings;
    const struct netguard_self *self; /* the proxy's own addresses */
    struct worker *workers;           /* told about a new policy */
    unsigned nworkers;
};

/*
 * The policy that o describes (directory, mode, GeoIP databases), checked against the
 * listeners of run (the running ones on a reload): each tool they are bound to must have
 * a profile.
 */
static struct policy_snapshot *load_policy(const struct options *o, const struct options *run,
                                           const struct netguard_self *self,
                                           struct yamldoc_errors *errs)
{
    const char *names[WORKER_MAX_LISTENERS];
    struct policy_source src = {.dir = o->policy_dir,
                                .gateway = o->gateway,
                                .geoip_country_db = o->geoip_country_db,
                                .geoip_asn_db = o->geoip_asn_db,
                                .self = self,
                                .bound_tools = run->listen_tool,
                                .bound_names = names,
                                .nbound = run->nlisten,
                                .bound_file = run->config_path != NULL ? run->config_path
                                                                       : "the command line"};

    for (size_t i = 0; i < run->nlisten; i++)
        names[i] = run->listen[i].text;
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

/* Warns about what a reload read but cannot apply to a running process. */
static void warn_restart_only(const struct program *prog, const struct options *o,
                              const struct sluice_settings *s)
{
    const struct sluice_settings *run = prog->settings;
    bool listeners_differ = o->nlisten != prog->opts->nlisten;

    for (size_t i = 0; !listeners_differ && i < o->nlisten; i++)
        listeners_differ = strcmp(o->listen[i].text, prog->opts->listen[i].text) != 0;
    if (listeners_differ || o->workers != prog->opts->workers)
        log_warn("reload: listeners and workers change only on a restart; kept the running ones");
    if (memcmp(&s->request_limits, &run->request_limits, sizeof(run->request_limits)) != 0 ||
        s->timeout_head_ms != run->timeout_head_ms ||
        s->timeout_keepalive_ms != run->timeout_keepalive_ms ||
        s->timeout_connect_ms != run->timeout_connect_ms ||
        s->timeout_response_ms != run->timeout_response_ms ||
        s->timeout_idle_ms != run->timeout_idle_ms ||
        s->timeout_tunnel_ms != run->timeout_tunnel_ms || s->drain_ms != run->drain_ms ||
        s->upstream_idle_max != run->upstream_idle_max ||
        s->upstream_idle_per_host != run->upstream_idle_per_host ||
        s->upstream_idle_ms != run->upstream_idle_ms || s->nconnect_ports != run->nconnect_ports ||
        memcmp(s->connect_ports, run->connect_ports, sizeof(run->connect_ports)) != 0)
        log_warn("reload: limits, timeouts and connect_ports of the configuration change only on "
                 "a restart; the organisation policy's connect_ports apply now");
}

/*
 * SIGHUP: reads the configuration and the policy directory again into a new snapshot and
 * installs it only when all of it is valid; otherwise the running one stays.  Every request
 * from then on is decided on it, and each worker decides its open tunnels and exchanges
 * under way again, closing those it blocks.
 */
static void reload_cb(evutil_socket_t sig, short what, void *arg)
{
    const struct program *prog = arg;
    struct options o;
    struct sluice_settings s;
    struct sluice_config *cfg = NULL;
    struct policy_snapshot *p = NULL, *running = policy_acquire();
    struct yamldoc_errors errs;
    unsigned generation = running != NULL ? running->generation : 0;

    (void)sig;
    (void)what;
    policy_unref(running);
    log_notice("received SIGHUP: reloading the configuration and policies");
    memset(&o, 0, sizeof(o));
    if (read_options(prog->argc, prog->argv, &o, &s, &cfg, &errs) == 0)
        p = load_policy(&o, prog->opts, prog->self, &errs);
    if (p == NULL) {
        log_errors(&errs);
        log_error("reload failed (%zu error%s): policy generation %u stays in force", errs.count,
                  errs.count == 1 ? "" : "s", generation);
        yamldoc_errors_clear(&errs);
        config_free(cfg);
        return;
    }
    warn_restart_only(prog, &o, &s);
    log_notice("reloaded: policy generation %u, %zu tool profile%s from %s", p->generation,
               p->ntools, p->ntools == 1 ? "" : "s",
               p->dir != NULL ? p->dir : "(none: every request allowed)");
    policy_install(p);
    for (unsigned k = 0; k < prog->nworkers; k++)
        worker_policy_changed(&prog->workers[k]);
    config_free(cfg); /* the snapshot keeps copies of what it needs */
}

int main(int argc, char **argv)
{
    static struct worker workers[MAX_WORKERS];
    struct sluice_settings settings;
    struct options opts;
    struct sluice_config *config = NULL;
    struct policy_snapshot *policy = NULL;
    struct netguard_self *self = NULL;
    struct yamldoc_errors errs;
    struct event_base *main_base = NULL;
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    struct program prog;
    int *fds = NULL, status = 1;
    unsigned nstarted = 0;
    const char *errstr = NULL;

    memset(&opts, 0, sizeof(opts));
    if (argc > 1 && strcmp(argv[1], "check") == 0) {
        opts.check_only = true;
        argv[1] = argv[0]; /* getopt sees the rest as if "check" were not there */
        argv++;
        argc--;
    }
    if (read_options(argc, argv, &opts, &settings, &config, &errs) < 0) {
        yamldoc_errors_print(&errs, stderr);
        yamldoc_errors_clear(&errs);
        return 1;
    }
    self = netguard_self_new();
    if (self == NULL)
        return 1;
    policy = load_policy(&opts, &opts, self, &errs);
    if (policy == NULL) {
        yamldoc_errors_print(&errs, stderr);
        yamldoc_errors_clear(&errs);
        goto out_early;
    }
    if (opts.check_only) {
        printf("policies OK: %zu tool profile%s from %s\n", policy->ntools,
               policy->ntools == 1 ? "" : "s", policy->dir != NULL ? policy->dir : "(none)");
        printf("configuration OK%s%s\n", opts.config_path != NULL ? ": " : " (built-in defaults)",
               opts.config_path != NULL ? opts.config_path : "");
        status = 0;
        goto out_early;
    }
    log_set_level(LOGL_NOTICE + opts.verbosity);
    log_route_libevent();
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() < 0) {
        log_error("libevent has no thread support");
        goto out_early;
    }
    fit_descriptor_limit(&settings, opts.workers);

    fds = calloc((size_t)opts.workers * opts.nlisten, sizeof(*fds));
    if (fds == NULL)
        goto out;
    for (size_t i = 0; i < (size_t)opts.workers * opts.nlisten; i++)
        fds[i] = -1;
    if (open_listeners(&opts, opts.workers, fds) < 0)
        goto out;
    /* The proxy's own addresses, with the ports the kernel picked, for the address guard. */
    for (size_t i = 0; i < opts.nlisten; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&opts.listen[i].ss;
        struct netguard_addr a;
        uint16_t port = sa->sa_family == AF_INET
                            ? ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port)
                            : ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);

        if (!netguard_from_sockaddr(sa, &a) || netguard_self_add(self, &a, port, &errstr) < 0) {
            log_error("cannot record listener %s for the address guard: %s", opts.listen[i].text,
                      errstr != NULL ? errstr : "not IPv4 or IPv6");
            goto out;
        }
    }
    log_notice("policies: generation %u, %zu tool profile%s from %s (%s mode)", policy->generation,
               policy->ntools, policy->ntools == 1 ? "" : "s",
               policy->dir != NULL ? policy->dir : "(none: every request allowed)",
               opts.gateway ? "gateway" : "local");
    policy_install(policy);
    policy = NULL;
    for (unsigned k = 0; k < opts.workers; k++) {
        if (worker_init(&workers[k], k, &settings, fds + (size_t)k * opts.nlisten, opts.nlisten,
                        &errstr) == 0) {
            for (size_t i = 0; i < opts.nlisten; i++)
                workers[k].listener_tools[i] = opts.listen_tool[i];
        } else {
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
    prog.argc = argc;
    prog.argv = argv;
    prog.opts = &opts;
    prog.settings = &settings;
    prog.self = self;
    prog.workers = workers;
    prog.nworkers = nstarted;
    sigterm = evsignal_new(main_base, SIGTERM, signal_cb, main_base);
    sigint = evsignal_new(main_base, SIGINT, signal_cb, main_base);
    sighup = evsignal_new(main_base, SIGHUP, reload_cb, &prog);
    if (sigterm == NULL || sigint == NULL || sighup == NULL || evsignal_add(sigterm, NULL) < 0 ||
        evsignal_add(sigint, NULL) < 0 || evsignal_add(sighup, NULL) < 0)
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
        log_notice("sluice %s listening on %s (%u worker%s, up to %u connections)", SLUICE_VERSION,
                   addr, opts.workers, opts.workers == 1 ? "" : "s", settings.max_connections);
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
    config_free(config);
    return status;
}
