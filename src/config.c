/*
 * The main configuration file; see include/sluice/config.h.
 *
 * libyaml loads the file into a node tree (which keeps line and column of every node),
 * and one walk over it checks each key against config_keys[]: a dotted name that is in the
 * table is parsed by its type, a prefix of table names is a section to walk into, anything
 * else is unknown.  Defaults and command-line values (config_set) go through the same
 * parsers, so the table cannot hold a default its own type would refuse, and an option
 * means on the command line exactly what its key means in the file.
 */
#include "sluice/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "sluice/listener.h"
#include "sluice/log.h"
#include "sluice/netguard.h"
#include "sluice/privilege.h"
#include "sluice/redact.h"
#include "sluice/syslogsink.h"

#define CONFIG_NAME_MAX 128
#define DAY_MS          (86400u * 1000u)

#define OFF(field) offsetof(struct sluice_config, field)

/*
 * Every key.  Listeners, workers, limits, timeouts, the upstream pool, the DNS files and
 * the configuration's connect_ports are read once, when the workers start, so a reload
 * cannot apply them (CFG_F_RESTART); policy_dir, mode and geoip go into the policy
 * snapshot a reload builds.  user, the audit sinks and the admin listener are applied
 * once, at start.  Of ca,
 * only the key's owner and mode are checked at start for now.
 * Columns: name, type, min, max, default, flags, offset, expected, option, letter, help.
 */
const struct config_key config_keys[] = {
    {"mode", CFG_MODE, 0, 0, "local", 0, OFF(mode), "local or gateway", "mode", 0,
     "local, or gateway to refuse every inward address class"},
    {"workers", CFG_UINT, 0, CONFIG_MAX_WORKERS, "0", CFG_F_RESTART, OFF(workers),
     "a number of worker threads from 1 to 256, or 0 for one per core", "workers", 'w',
     "worker threads, 0 for one per core"},
    {"listen", CFG_LISTENERS, 0, 0, "127.0.0.1:3128", CFG_F_RESTART, 0,
     "a list of listeners, each ADDR:PORT, unix:PATH or {address: ADDR:PORT, tool: ID, "
     "proxy_protocol: [CIDR, ...], ask_credentials: true}",
     "listen", 'l',
     "listen here, repeatable; IPv6 as [::1]:3128; ADDR:0 picks a free port; unix:PATH: a "
     "Unix socket, the way out of run --isolate; "
     "ADDR:PORT,tool=ID: its clients are tool ID; ,proxy-from=CIDR: take the PROXY protocol "
     "header of a load balancer there; ,ask-credentials: answer 407 to a request without "
     "proxy credentials"},
    {"connect_ports", CFG_PORTS, 0, 0, "443", CFG_F_RESTART, 0, "a list of ports from 1 to 65535",
     "connect-ports", 0, "ports CONNECT may reach"},
    {"connect_http_port", CFG_UINT, 0, 65535, "80", CFG_F_RESTART, OFF(settings.connect_http_port),
     "a port from 1 to 65535, or 0 for none", "connect-http-port", 0,
     "a CONNECT to this port is read as plain HTTP, each request inside decided and recorded "
     "as a proxy request is (node's undici sends http:// that way); 0: none"},
    {"limits.max_connections", CFG_UINT, 1, 1000000, "16384", CFG_F_RESTART,
     OFF(settings.max_connections), "a number from 1 to 1000000", "max-connections", 0,
     "open client connections"},
    {"limits.max_connections_per_client", CFG_UINT, 0, 1000000, "auto",
     CFG_F_RESTART | CFG_F_BY_MODE, OFF(settings.max_conns_per_client),
     "a number from 0 (no cap) to 1000000, or auto (256 in gateway mode, no cap in local mode)",
     "max-connections-per-client", 0,
     "connections from one client address; 0: no cap; auto: 256 in gateway mode, no cap in "
     "local mode"},
    {"limits.min_upload_rate", CFG_UINT, 0, 1u << 30, "auto", CFG_F_RESTART | CFG_F_BY_MODE,
     OFF(settings.min_upload_rate),
     "bytes per second from 0 (none) to 1073741824, or auto (1024 in gateway mode, none in "
     "local mode)",
     "min-upload-rate", 0,
     "bytes/s a request body must keep up after its grace; 0: none; auto: 1024 in gateway "
     "mode, none in local mode"},
    {"limits.max_request_line", CFG_UINT, 256, 1u << 20, "8192", CFG_F_RESTART,
     OFF(settings.request_limits.max_line), "a number of bytes from 256 to 1048576",
     "max-request-line", 0, "request line bytes"},
    {"limits.max_header_bytes", CFG_UINT, 1024, 16u << 20, "65536", CFG_F_RESTART,
     OFF(settings.request_limits.max_head), "a number of bytes from 1024 to 16777216",
     "max-header-bytes", 0, "request head bytes"},
    {"limits.max_header_fields", CFG_UINT, 8, 10000, "100", CFG_F_RESTART,
     OFF(settings.request_limits.max_fields), "a number from 8 to 10000", "max-header-fields", 0,
     "request header fields"},
    {"timeouts.head", CFG_DURATION, 1, 7 * DAY_MS, "10s", CFG_F_RESTART,
     OFF(settings.timeout_head_ms), "a duration such as 10s", "timeout-head", 0,
     "read a whole request head"},
    {"timeouts.keepalive", CFG_DURATION, 1, 7 * DAY_MS, "60s", CFG_F_RESTART,
     OFF(settings.timeout_keepalive_ms), "a duration such as 60s", "timeout-keepalive", 0,
     "idle client between requests"},
    {"timeouts.connect", CFG_DURATION, 1, 7 * DAY_MS, "10s", CFG_F_RESTART,
     OFF(settings.timeout_connect_ms), "a duration such as 10s", "timeout-connect", 0,
     "resolve and connect upstream"},
    {"timeouts.response", CFG_DURATION, 1, 7 * DAY_MS, "15m", CFG_F_RESTART,
     OFF(settings.timeout_response_ms), "a duration such as 15m", "timeout-response", 0,
     "wait for the response head"},
    {"timeouts.upload_grace", CFG_DURATION, 1, 7 * DAY_MS, "10s", CFG_F_RESTART,
     OFF(settings.upload_grace_ms), "a duration such as 10s", "timeout-upload-grace", 0,
     "a request body's start before min-upload-rate applies"},
    {"timeouts.idle", CFG_DURATION, 1, 7 * DAY_MS, "300s", CFG_F_RESTART,
     OFF(settings.timeout_idle_ms), "a duration such as 5m", "timeout-idle", 0,
     "no data while a body flows"},
    {"timeouts.tunnel", CFG_DURATION, 1, 7 * DAY_MS, "3600s", CFG_F_RESTART,
     OFF(settings.timeout_tunnel_ms), "a duration such as 60m", "timeout-tunnel", 0,
     "no data in a tunnel"},
    {"timeouts.drain", CFG_DURATION, 1, DAY_MS, "10s", CFG_F_RESTART, OFF(settings.drain_ms),
     "a duration such as 10s", "drain-timeout", 0, "let requests finish on SIGTERM or SIGINT"},
    {"upstream.idle_max", CFG_UINT, 0, 100000, "1024", CFG_F_RESTART,
     OFF(settings.upstream_idle_max), "a number of connections per worker from 0 to 100000", NULL,
     0, NULL},
    {"upstream.idle_per_host", CFG_UINT, 1, 100000, "256", CFG_F_RESTART,
     OFF(settings.upstream_idle_per_host), "a number of connections from 1 to 100000", NULL, 0,
     NULL},
    {"upstream.idle_timeout", CFG_DURATION, 1, DAY_MS, "30s", CFG_F_RESTART,
     OFF(settings.upstream_idle_ms), "a duration such as 30s", NULL, 0, NULL},
    {"dns.resolv_conf", CFG_PATH, 0, 0, "/etc/resolv.conf", CFG_F_READABLE | CFG_F_RESTART,
     OFF(resolv_conf), "the path of a readable resolv.conf file", "resolv-conf", 0, "nameservers"},
    {"dns.hosts_file", CFG_PATH, 0, 0, "/etc/hosts", CFG_F_READABLE | CFG_F_RESTART,
     OFF(hosts_file), "the path of a readable hosts file", "hosts-file", 0, "hosts file"},
    {"policy_dir", CFG_PATH, 0, 0, NULL, CFG_F_DIRECTORY, OFF(policy_dir),
     "the path of the policy directory", "policy-dir", 0,
     "tool profiles (DIR/tools/*.yaml) and DIR/organisation.yaml; SIGHUP reloads them"},
    {"geoip.country_db", CFG_PATH, 0, 0, NULL, CFG_F_READABLE, OFF(geoip_country_db),
     "the path of a readable country .mmdb file", "geoip-country", 0,
     "country database (MMDB) for country rules"},
    {"geoip.asn_db", CFG_PATH, 0, 0, NULL, CFG_F_READABLE, OFF(geoip_asn_db),
     "the path of a readable ASN .mmdb file", "geoip-asn", 0, "ASN database (MMDB) for AS rules"},
    {"ca.cert", CFG_PATH, 0, 0, NULL, CFG_F_RESTART, OFF(ca_cert), "the path of the CA certificate",
     "ca-cert", 0, "the local CA's certificate (sluice ca init makes it)"},
    {"ca.key", CFG_PATH, 0, 0, NULL, CFG_F_RESTART, OFF(ca_key), "the path of the CA private key",
     "ca-key", 0, "the local CA's key, mode 0600, the running user's (sluice ca init makes it)"},
    {"tls.upstream_ca", CFG_PATH, 0, 0, NULL, CFG_F_READABLE | CFG_F_RESTART, OFF(tls_upstream_ca),
     "the path of a readable PEM file of CA certificates", "upstream-ca", 0,
     "trust these CAs for inspected origins too, besides the system's (e.g. a company CA)"},
    {"tls.cert_cache", CFG_UINT, 1, 1000000, "4096", CFG_F_RESTART, OFF(tls_cert_cache),
     "a number of certificates from 1 to 1000000", "cert-cache", 0,
     "certificates made for inspected hosts kept for reuse, shared by the workers"},
    {"auth.credentials", CFG_PATH, 0, 0, NULL, CFG_F_READABLE, OFF(credentials),
     "the path of a readable credentials file", "credentials", 0,
     "proxy users and their token hashes (sluice passwd); each request must carry one"},
    {"identity.processes", CFG_SWITCH, 0, 1, "on", CFG_F_RESTART, OFF(settings.identify_processes),
     "on or off", "identify-processes", 0,
     "name a loopback client's tool by its process or an ancestor's"},
    {"user", CFG_USER, 0, 0, NULL, CFG_F_RESTART, OFF(user), "the name of an unprivileged user",
     "user", 0, "when started as root: become this user once the listeners are bound"},
    {"audit.fail_open", CFG_SWITCH, 0, 1, "off", CFG_F_RESTART, OFF(settings.audit_fail_open),
     "on or off", "audit-fail-open", 0,
     "let requests go on while the audit trail cannot be written, or while a body to "
     "capture finds no memory (off: they get 503)"},
    {"audit.hash_key", CFG_PATH, 0, 0, NULL, CFG_F_RESTART, OFF(audit_hash_key),
     "the path of the key file", "audit-hash-key", 0,
     "hash secret header values with the key in this file (made when absent), so hashes "
     "compare across restarts; without it, a key made at start"},
    {"audit.secret_headers", CFG_NAMES, 0, 0, NULL, CFG_F_RESTART, OFF(audit_secret_headers),
     "a list of header field names", "audit-secret-headers", 0,
     "header fields recorded only as a keyed hash, besides Authorization, Cookie, x-api-key "
     "and the other built-in ones"},
    {"audit.interim", CFG_DURATION, 0, DAY_MS, "15m", CFG_F_RESTART, OFF(settings.audit_interim_ms),
     "a duration from 0 (none) to 1440m (a day)", "audit-interim", 0,
     "record what a tunnel or a streaming response moved so far once it has lasted this long, "
     "and every this long after; 0: only when it ends"},
    {"audit.fsync", CFG_DURATION, 0, 3600u * 1000u, "1s", CFG_F_RESTART, OFF(audit_sync_ms),
     "a duration from 0 (after every record) to 60m", "audit-fsync", 0,
     "bring the audit trail to the disk at most this long after a record is written; 0: "
     "after each"},
    {"audit.rotate_mib", CFG_UINT, 0, 1048576, "0", CFG_F_RESTART, OFF(audit_rotate_mib),
     "a size in MiB from 1 to 1048576, or 0 for never", "audit-rotate-mib", 0,
     "past this many MiB the audit trail becomes FILE.1 and a new FILE goes on; 0: never"},
    {"audit.keep", CFG_UINT, 1, 1000, "5", CFG_F_RESTART, OFF(audit_keep),
     "a number of files from 1 to 1000", "audit-keep", 0,
     "rotated audit trail files kept, FILE.1 to FILE.N"},
    {"audit.capture_dir", CFG_PATH, 0, 0, NULL, CFG_F_RESTART | CFG_F_MAKES_DIR, OFF(capture_dir),
     "the path of the capture store's directory", "capture-dir", 0,
     "keep the bodies the policy's capture setting asks for here, each in a file named by its "
     "SHA-256 (made 0700; the user sluice runs as must be able to write it)"},
    {"audit.capture_mib", CFG_UINT, 1, 1048576, "1024", CFG_F_RESTART, OFF(capture_mib),
     "a size in MiB from 1 to 1048576", "capture-mib", 0,
     "the capture store's bodies in all at most; past it the oldest are removed"},
    {"audit.capture_message_kib", CFG_UINT, 1, 65536, "1024", CFG_F_RESTART,
     OFF(settings.capture_message_kib), "a size in KiB from 1 to 65536", "capture-message-kib", 0,
     "bytes of one captured body kept at most; the record says truncated when it was longer"},
    {"admin.listen", CFG_ADDRESS, 0, 0, NULL, CFG_F_RESTART, OFF(admin_listen),
     "ADDR:PORT, e.g. 127.0.0.1:9090", "admin-listen", 0,
     "serve /metrics (Prometheus) and /healthz here; off unless given; loopback only "
     "unless admin.allow_remote is on"},
    {"admin.allow_remote", CFG_SWITCH, 0, 1, "off", CFG_F_RESTART, OFF(admin_allow_remote),
     "on or off", "admin-allow-remote", 0,
     "let --admin-listen be an address other than loopback (whoever reaches it reads "
     "which tools went where)"},
    {"audit.path", CFG_PATH, 0, 0, NULL, CFG_F_RESTART, OFF(audit_path),
     "the path of the audit trail", "audit-log", 0,
     "append a JSON record of every request and tunnel here, each line chained to the one "
     "before by its SHA-256 (check with sluice audit verify)"},
    {"audit.squid_log", CFG_PATH, 0, 0, NULL, CFG_F_RESTART, OFF(squid_log),
     "the path of the Squid-format access log", "squid-log", 0,
     "append a line in Squid's native access.log format for every request and tunnel here, "
     "for calamaris, sarg and the like; SIGUSR1 reopens it"},
    {"audit.syslog", CFG_SYSLOG, 0, 0, "off", CFG_F_RESTART, OFF(audit_syslog),
     "off, on (unix:/dev/log), unix:PATH, or udp:ADDR[:PORT] with an IP address", "audit-syslog", 0,
     "send every record to syslog as an RFC 5424 message with structured data: on "
     "(unix:/dev/log), unix:PATH or udp:ADDR[:PORT]"},
    {"audit.syslog_facility", CFG_FACILITY, 0, 0, "local0", CFG_F_RESTART,
     OFF(audit_syslog_facility), "a syslog facility: local0 to local7, daemon, authpriv, user, ...",
     "audit-syslog-facility", 0, "the facility of those messages"},
};

#define CONFIG_NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

const size_t config_nkeys = CONFIG_NKEYS;

/* Where the values being applied come from, which decides how paths and errors read. */
enum loader_from {
    FROM_DEFAULTS, /* the table's def: trusted, and checked where it is used */
    FROM_FILE,     /* nodes of the YAML document: errors give file:line:column */
    FROM_ARGS,     /* the command line: errors repeat the option as it was typed */
};

/* State of one load. */
struct loader {
    const char *file; /* for messages */
    char dir[4096];   /* the file's directory, for relative paths */
    enum loader_from from;
    yaml_document_t *doc; /* while from is FROM_FILE */
    struct sluice_config *cfg;
    struct yamldoc_errors *errs;
};

/* Where a listener's parts stand in the file, for messages; all NULL off the file. */
struct listener_at {
    const yaml_node_t *item, *addr, *tool, *proxy;
};

/* Name of a mode for messages. */
const char *config_mode_str(enum config_mode mode)
{
    return mode == CONFIG_MODE_GATEWAY ? "gateway" : "local";
}

/* Records one error at node n (or at line/column 0 when n is NULL). */
#define loader_error(l, n, ...) yamldoc_error((l)->errs, (l)->file, (n), __VA_ARGS__)

/*
 * Makes a path from the file absolute against the file's directory (one from the command
 * line stays relative to the working directory, as a shell user expects); returns an owned
 * string.
 */
static char *loader_resolve(const struct loader *l, const char *path)
{
    size_t dlen, plen;
    char *out;

    if (path[0] == '/' || l->from != FROM_FILE)
        return strdup(path);
    dlen = strlen(l->dir);
    plen = strlen(path);
    out = malloc(dlen + 1 + plen + 1);
    if (out != NULL) {
        memcpy(out, l->dir, dlen);
        out[dlen] = '/';
        memcpy(out + dlen + 1, path, plen + 1);
    }
    return out;
}

/*
 * Checks a path value against the key's flags; returns false with an error recorded.
 * label names the key as its source does.
 */
static bool loader_check_path(struct loader *l, const struct config_key *k, const yaml_node_t *n,
                              const char *label, const char *path)
{
    struct stat st;

    if (l->from == FROM_DEFAULTS || (k->flags & (CFG_F_READABLE | CFG_F_DIRECTORY)) == 0)
        return true; /* defaults are checked where they are used */
    if (stat(path, &st) != 0) {
        loader_error(l, n, "%s: cannot use %s: %s; expected %s", label, path, strerror(errno),
                     k->expect);
        return false;
    }
    if ((k->flags & CFG_F_DIRECTORY) != 0 && !S_ISDIR(st.st_mode)) {
        loader_error(l, n, "%s: %s is not a directory; expected %s", label, path, k->expect);
        return false;
    }
    if ((k->flags & CFG_F_READABLE) != 0 && (!S_ISREG(st.st_mode) || access(path, R_OK) != 0)) {
        loader_error(l, n, "%s: %s is not a readable file; expected %s", label, path, k->expect);
        return false;
    }
    return true;
}

/* Parses a list of ports (a YAML list, or one "443,8443" value); label names the key. */
static void loader_set_ports(struct loader *l, const struct config_key *k, yaml_node_t *n,
                             const char *label, const char *text)
{
    char joined[SETTINGS_MAX_CONNECT_PORTS * 8] = "";
    const char *errstr = NULL;

    if (n != NULL && n->type == YAML_SEQUENCE_NODE) {
        size_t off = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            yaml_node_t *item = yaml_document_get_node(l->doc, *it);
            if (item == NULL || item->type != YAML_SCALAR_NODE || item->data.scalar.length > 5) {
                loader_error(l, item != NULL ? item : n,
                             "%s: each entry must be a port; expected %s", k->name, k->expect);
                return;
            }
            if (off + item->data.scalar.length + 2 >= sizeof(joined)) {
                loader_error(l, n, "%s: too many ports (at most %d)", k->name,
                             SETTINGS_MAX_CONNECT_PORTS);
                return;
            }
            if (off > 0)
                joined[off++] = ',';
            memcpy(joined + off, item->data.scalar.value, item->data.scalar.length);
            off += item->data.scalar.length;
            joined[off] = '\0';
        }
        text = joined;
    }
    if (settings_parse_ports(&l->cfg->settings, text, &errstr) < 0)
        loader_error(l, n, "%s: %s; expected %s", label, errstr, k->expect);
}

/*
 * Sets a list of header field names: a YAML sequence of names, or text with the names
 * separated by commas; each checked, joined by commas into an owned string at *slot.
 */
static void loader_set_names(struct loader *l, const struct config_key *k, yaml_node_t *n,
                             const char *label, const char *text, char **slot)
{
    char joined[REDACT_NAMES_MAX * 65] = "", why[160];
    size_t off = 0;
    char *copy;

    if (n != NULL && n->type != YAML_SEQUENCE_NODE && n->type != YAML_SCALAR_NODE) {
        loader_error(l, n, "%s: found %s; expected %s", k->name, yamldoc_kind(n), k->expect);
        return;
    }
    if (n != NULL && n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            yaml_node_t *item = yaml_document_get_node(l->doc, *it);
            if (item == NULL || item->type != YAML_SCALAR_NODE) {
                loader_error(l, item != NULL ? item : n,
                             "%s: each entry must be a header field name; expected %s", k->name,
                             k->expect);
                return;
            }
            if (redact_check_name((const char *)item->data.scalar.value, item->data.scalar.length,
                                  why, sizeof(why)) < 0) {
                loader_error(l, item, "%s: %s", k->name, why);
                return;
            }
            if (off + item->data.scalar.length + 2 >= sizeof(joined)) {
                loader_error(l, n, "%s: too many names (at most %d)", k->name, REDACT_NAMES_MAX);
                return;
            }
            if (off > 0)
                joined[off++] = ',';
            memcpy(joined + off, item->data.scalar.value, item->data.scalar.length);
            off += item->data.scalar.length;
            joined[off] = '\0';
        }
        text = joined;
    } else {
        for (const char *p = text; *p != '\0';) {
            size_t len = strcspn(p, ",");
            if (redact_check_name(p, len, why, sizeof(why)) < 0) {
                loader_error(l, n, "%s: %s; expected %s", label, why, k->expect);
                return;
            }
            p += len + (p[len] == ',');
        }
    }
    if ((copy = strdup(text)) == NULL) {
        loader_error(l, n, "out of memory");
        return;
    }
    free(*slot);
    *slot = copy;
}

/*
 * Checks a listener's proxy_from text: CIDRs (or addresses) separated by spaces, each one
 * netguard takes, and at least one.  False after reporting the first that is not.
 */
static bool loader_check_cidrs(struct loader *l, const char *label, const char *text,
                               const struct listener_at *at)
{
    struct netguard_cidrs *set = netguard_cidrs_new();
    char item[CONFIG_PROXY_FROM_MAX];
    const char *p = text, *errstr = NULL;
    bool ok = set != NULL;
    size_t n = 0;

    while (ok && *p != '\0') {
        size_t len = strcspn(p, " ");

        if (len > 0) {
            if (len >= sizeof(item))
                len = sizeof(item) - 1; /* the whole text fits: this cannot cut */
            memcpy(item, p, len);
            item[len] = '\0';
            if (netguard_cidrs_add(set, item, &errstr) < 0) {
                loader_error(l, at->proxy,
                             "%s: '%s' is not the address or CIDR of a load "
                             "balancer: %s",
                             label, item, errstr != NULL ? errstr : "invalid");
                ok = false;
            }
            n++;
        }
        p += len + (p[len] == ' ');
    }
    if (ok && n == 0) {
        loader_error(l, at->proxy,
                     "%s: proxy_protocol: no address; list the load balancers it comes from",
                     label);
        ok = false;
    }
    netguard_cidrs_free(set);
    return ok;
}

/*
 * Checks one listener, an address and a tool id (or NULL), and appends it.  label names
 * the key as its source does; at says where the file gave each part.
 */
static void loader_add_listener(struct loader *l, const char *label, const char *addr,
                                const char *tool, const char *proxy_from, bool ask_credentials,
                                const struct listener_at *at)
{
    struct config_listener *out;
    struct listener_addr parsed;
    const char *errstr = NULL;
    char shown[96];

    if (l->cfg->nlisteners == CONFIG_MAX_LISTENERS) {
        loader_error(l, at->item, "%s: too many listeners (at most %d)", label,
                     CONFIG_MAX_LISTENERS);
        return;
    }
    if (listener_parse(addr, &parsed, &errstr) < 0) {
        if (at->addr != NULL)
            loader_error(l, at->addr, "%s: '%s': %s", label,
                         yamldoc_shown(at->addr, shown, sizeof(shown)), errstr);
        else
            loader_error(l, NULL, "%s: %s", label, errstr);
        return;
    }
    if (tool != NULL && !settings_is_tool_id(tool)) {
        loader_error(l, at->tool,
                     "%s: tool '%s' is not a tool id; expected lower-case letters, digits, "
                     "'-', '_' or '.'",
                     label,
                     at->tool != NULL ? yamldoc_shown(at->tool, shown, sizeof(shown)) : tool);
        return;
    }
    if (proxy_from != NULL && parsed.ss.ss_family == AF_UNIX) {
        loader_error(l, at->proxy != NULL ? at->proxy : at->item,
                     "%s: %s takes no PROXY protocol: a load balancer reaches sluice over TCP",
                     label, addr);
        return;
    }
    if (proxy_from != NULL && !loader_check_cidrs(l, label, proxy_from, at))
        return;
    for (size_t i = 0; i < l->cfg->nlisteners; i++) {
        struct listener_addr other;

        if (listener_parse(l->cfg->listeners[i].address, &other, &errstr) == 0 &&
            listener_same(&parsed, &other)) {
            loader_error(
                l, at->addr != NULL ? at->addr : at->item,
                "%s: %s is given twice%s%s%s; each listener needs an address and port "
                "of its own",
                label, addr, strcmp(addr, l->cfg->listeners[i].address) != 0 ? " (as " : "",
                strcmp(addr, l->cfg->listeners[i].address) != 0 ? l->cfg->listeners[i].address : "",
                strcmp(addr, l->cfg->listeners[i].address) != 0 ? " before)" : "");
            return;
        }
    }
    out = &l->cfg->listeners[l->cfg->nlisteners++];
    snprintf(out->address, sizeof(out->address), "%s", addr);
    /* Always written: the slot may hold a listener of the list this one replaces. */
    snprintf(out->tool, sizeof(out->tool), "%s", tool != NULL ? tool : "");
    snprintf(out->proxy_from, sizeof(out->proxy_from), "%s", proxy_from != NULL ? proxy_from : "");
    out->ask_credentials = ask_credentials;
}

/*
 * Takes one listener written as text, "ADDR:PORT" followed by options, each ",tool=ID" or
 * ",proxy-from=CIDR" (repeatable): the command line's form, and the table's default.
 */
static void loader_add_listener_text(struct loader *l, const char *label, const char *text)
{
    static const struct listener_at nowhere = {NULL, NULL, NULL, NULL};
    size_t len = strcspn(text, ",");
    char addr[sizeof(((struct config_listener *)0)->address)];
    char tool[SETTINGS_TOOL_ID_MAX + 1] = "", proxy_from[CONFIG_PROXY_FROM_MAX] = "";
    bool has_tool = false, has_proxy = false, ask = false;
    const char *p = text + len;

    if (len >= sizeof(addr)) {
        loader_error(l, NULL, "%s: address too long", label);
        return;
    }
    memcpy(addr, text, len);
    addr[len] = '\0';
    while (*p == ',') {
        size_t n = strcspn(p + 1, ",");
        const char *opt = p + 1;

        if (n >= 5 && strncmp(opt, "tool=", 5) == 0 && n - 5 < sizeof(tool)) {
            memcpy(tool, opt + 5, n - 5);
            tool[n - 5] = '\0';
            has_tool = true;
        } else if (n >= 11 && strncmp(opt, "proxy-from=", 11) == 0 &&
                   strlen(proxy_from) + (n - 11) + 2 < sizeof(proxy_from)) {
            size_t at = strlen(proxy_from);
            if (at > 0)
                proxy_from[at++] = ' ';
            memcpy(proxy_from + at, opt + 11, n - 11);
            proxy_from[at + n - 11] = '\0';
            has_proxy = true;
        } else if (n == 15 && strncmp(opt, "ask-credentials", 15) == 0) {
            ask = true;
        } else if ((n >= 5 && strncmp(opt, "tool=", 5) == 0) ||
                   (n >= 11 && strncmp(opt, "proxy-from=", 11) == 0)) {
            loader_error(l, NULL, "%s: listener option '%.*s' is too long", label,
                         (int)(n > 64 ? 64 : n), opt);
            return;
        } else {
            loader_error(l, NULL,
                         "%s: unknown listener option '%.*s'; expected tool=ID, "
                         "proxy-from=CIDR or ask-credentials",
                         label, (int)n, opt);
            return;
        }
        p = opt + n;
    }
    loader_add_listener(l, label, addr, has_tool ? tool : NULL, has_proxy ? proxy_from : NULL, ask,
                        &nowhere);
}

/* Appends the scalar node n to the space-separated list out (capacity cap). */
static void loader_append_cidr(struct loader *l, const yaml_node_t *n, char *out, size_t cap)
{
    const char *v = yamldoc_scalar(n);
    size_t at = strlen(out);

    if (v == NULL || strchr(v, ' ') != NULL || at + strlen(v) + 2 > cap) {
        loader_error(l, n,
                     "listen: proxy_protocol: expected addresses or CIDRs, at most %d "
                     "bytes of them",
                     CONFIG_PROXY_FROM_MAX - 1);
        return;
    }
    if (at > 0)
        out[at++] = ' ';
    memcpy(out + at, v, strlen(v) + 1); /* fits: checked above */
}

/* Takes one listener entry of the file (a scalar address, or a mapping with address and tool). */
static void loader_add_listener_node(struct loader *l, const struct config_key *k,
                                     yaml_node_t *item)
{
    struct listener_at at = {.item = item};
    char proxy_from[CONFIG_PROXY_FROM_MAX] = "";
    bool ask = false;

    if (item->type == YAML_SCALAR_NODE) {
        at.addr = item;
    } else if (item->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top;
             p++) {
            yaml_node_t *key = yaml_document_get_node(l->doc, p->key);
            yaml_node_t *val = yaml_document_get_node(l->doc, p->value);
            const char *name = key != NULL && key->type == YAML_SCALAR_NODE
                                   ? (const char *)key->data.scalar.value
                                   : "";
            if (strcmp(name, "address") == 0 && val != NULL && val->type == YAML_SCALAR_NODE)
                at.addr = val;
            else if (strcmp(name, "tool") == 0 && val != NULL && val->type == YAML_SCALAR_NODE)
                at.tool = val;
            else if (strcmp(name, "proxy_protocol") == 0 && val != NULL &&
                     (val->type == YAML_SCALAR_NODE || val->type == YAML_SEQUENCE_NODE))
                at.proxy = val;
            else if (strcmp(name, "ask_credentials") == 0 && val != NULL &&
                     val->type == YAML_SCALAR_NODE &&
                     (strcmp(yamldoc_scalar(val), "true") == 0 ||
                      strcmp(yamldoc_scalar(val), "false") == 0))
                ask = strcmp(yamldoc_scalar(val), "true") == 0;
            else
                loader_error(l, key != NULL ? key : item,
                             "listen: unknown or malformed key '%s' in a listener; expected "
                             "address, tool, proxy_protocol and ask_credentials (true or false)",
                             name);
        }
    }
    if (at.addr == NULL) {
        loader_error(l, item, "listen: a listener needs an address; expected %s", k->expect);
        return;
    }
    if (at.proxy != NULL && at.proxy->type == YAML_SCALAR_NODE) {
        loader_append_cidr(l, at.proxy, proxy_from, sizeof(proxy_from));
    } else if (at.proxy != NULL) {
        for (yaml_node_item_t *it = at.proxy->data.sequence.items.start;
             it < at.proxy->data.sequence.items.top; it++) {
            const yaml_node_t *cidr = yaml_document_get_node(l->doc, *it);
            if (cidr != NULL)
                loader_append_cidr(l, cidr, proxy_from, sizeof(proxy_from));
        }
    }
    loader_add_listener(l, k->name, yamldoc_scalar(at.addr), yamldoc_scalar(at.tool),
                        at.proxy != NULL ? proxy_from : NULL, ask, &at);
}

/* Replaces the owned string at *slot with a copy of text (NULL: none). */
static void loader_keep_text(struct loader *l, yaml_node_t *n, char **slot, const char *text)
{
    char *copy = NULL;

    if (text != NULL && (copy = strdup(text)) == NULL) {
        loader_error(l, n, "out of memory");
        return;
    }
    free(*slot);
    *slot = copy;
}

/*
 * Applies one value: text, from node n of the file, or from the table's default or the
 * command line when n is NULL.  A file's error names the key and quotes the value
 * ("timeouts.head: '0': ..."); a command-line error repeats what was typed
 * ("--timeout-head 0: ..."), so each reads in the words its writer used.
 */
static void loader_apply(struct loader *l, const struct config_key *k, yaml_node_t *n,
                         const char *text)
{
    char *field = (char *)l->cfg + k->offset;
    const char *errstr = NULL;
    char shown[96], label[CONFIG_NAME_MAX + sizeof(shown) + 4], subject[sizeof(label) + 4];
    uint32_t v;

    if (n != NULL && k->type != CFG_PORTS && k->type != CFG_LISTENERS && k->type != CFG_NAMES &&
        n->type != YAML_SCALAR_NODE) {
        loader_error(l, n, "%s: found %s; expected %s", k->name, yamldoc_kind(n), k->expect);
        return;
    }
    if (n != NULL && n->type == YAML_SCALAR_NODE)
        yamldoc_shown(n, shown, sizeof(shown));
    else
        snprintf(shown, sizeof(shown), "%s", text != NULL ? text : "");
    if (l->from == FROM_ARGS) {
        snprintf(label, sizeof(label), "--%s %s", k->option, shown);
        snprintf(subject, sizeof(subject), "%s", label);
    } else {
        snprintf(label, sizeof(label), "%s", k->name);
        snprintf(subject, sizeof(subject), "%s: '%s'", k->name, shown);
    }

    switch (k->type) {
    case CFG_MODE:
        if (strcmp(text, "local") == 0)
            l->cfg->mode = CONFIG_MODE_LOCAL;
        else if (strcmp(text, "gateway") == 0)
            l->cfg->mode = CONFIG_MODE_GATEWAY;
        else
            loader_error(l, n, "%s is not a mode; expected %s", subject, k->expect);
        break;
    case CFG_UINT:
        if ((k->flags & CFG_F_BY_MODE) != 0 && strcmp(text, "auto") == 0)
            memcpy(field, &(uint32_t){SETTINGS_BY_MODE}, sizeof(uint32_t));
        else if (settings_parse_uint(text, k->min, k->max, &v, &errstr) < 0)
            loader_error(l, n, "%s: %s; expected %s", subject, errstr, k->expect);
        else
            memcpy(field, &v, sizeof(v));
        break;
    case CFG_SWITCH:
        if (strcmp(text, "on") == 0 || strcmp(text, "true") == 0 || strcmp(text, "yes") == 0)
            memcpy(field, &(uint32_t){1}, sizeof(uint32_t));
        else if (strcmp(text, "off") == 0 || strcmp(text, "false") == 0 || strcmp(text, "no") == 0)
            memcpy(field, &(uint32_t){0}, sizeof(uint32_t));
        else
            loader_error(l, n, "%s is not a switch; expected %s", subject, k->expect);
        break;
    case CFG_DURATION:
        if (settings_parse_duration(text, &v, &errstr) < 0)
            loader_error(l, n, "%s: %s; expected %s", subject, errstr, k->expect);
        else if (v < k->min || v > k->max)
            loader_error(l, n, "%s is out of range; expected %s", subject, k->expect);
        else
            memcpy(field, &v, sizeof(v));
        break;
    case CFG_PORTS:
        loader_set_ports(l, k, n, label, text);
        break;
    case CFG_PATH: {
        char *path = text[0] != '\0' ? loader_resolve(l, text) : NULL;
        char **slot = (char **)(void *)field;
        if (path == NULL) {
            loader_error(l, n, "%s: empty path; expected %s", label, k->expect);
            break;
        }
        if (!loader_check_path(l, k, n, label, path)) {
            free(path);
            break;
        }
        free(*slot);
        *slot = path;
        break;
    }
    case CFG_NAMES:
        loader_set_names(l, k, n, label, text, (char **)(void *)field);
        break;
    case CFG_USER: {
        struct privilege_user u;
        char why[256];
        if (privilege_lookup(text, &u, why, sizeof(why)) < 0)
            loader_error(l, n, "%s: %s", label, why);
        else
            loader_keep_text(l, n, (char **)(void *)field, text);
        break;
    }
    case CFG_ADDRESS: {
        struct listener_addr parsed;
        if (strncmp(text, "unix:", 5) == 0 || listener_parse(text, &parsed, &errstr) < 0)
            loader_error(l, n, "%s: not a TCP address; expected %s", subject, k->expect);
        else
            loader_keep_text(l, n, (char **)(void *)field, text);
        break;
    }
    case CFG_SYSLOG: {
        struct syslogsink_target target;
        if (strcmp(text, "off") != 0 && syslogsink_parse_target(text, &target, &errstr) < 0)
            loader_error(l, n, "%s: %s; expected %s", subject, errstr, k->expect);
        else
            loader_keep_text(l, n, (char **)(void *)field, strcmp(text, "off") != 0 ? text : NULL);
        break;
    }
    case CFG_FACILITY:
        if (syslogsink_parse_facility(text, &v) < 0)
            loader_error(l, n, "%s is not a syslog facility; expected %s", subject, k->expect);
        else
            memcpy(field, &v, sizeof(v));
        break;
    case CFG_LISTENERS:
        if (n == NULL) {
            loader_add_listener_text(l, label, text);
            break;
        }
        if (n->type != YAML_SEQUENCE_NODE) {
            loader_error(l, n, "listen: found %s; expected %s", yamldoc_kind(n), k->expect);
            break;
        }
        /* A list replaces the default; an empty one keeps it, as a missing key does. */
        if (n->data.sequence.items.top > n->data.sequence.items.start)
            l->cfg->nlisteners = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            yaml_node_t *item = yaml_document_get_node(l->doc, *it);
            if (item != NULL)
                loader_add_listener_node(l, k, item);
        }
        break;
    }
}

/* The table entry named exactly name, or NULL. */
static const struct config_key *config_find(const char *name)
{
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    return NULL;
}

/* True when name is a section: some table entry starts with "name.". */
static bool config_is_section(const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (strncmp(config_keys[i].name, name, n) == 0 && config_keys[i].name[n] == '.')
            return true;
    return false;
}

/* Lists the keys allowed directly under prefix ("" for the top level) into out. */
static void config_known_keys(const char *prefix, char *out, size_t cap)
{
    size_t plen = strlen(prefix), off = 0;

    out[0] = '\0';
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        const char *name = config_keys[i].name, *rest, *dot;
        size_t len;
        bool seen = false;

        if (plen > 0 && (strncmp(name, prefix, plen) != 0 || name[plen] != '.'))
            continue;
        rest = plen > 0 ? name + plen + 1 : name;
        dot = strchr(rest, '.');
        len = dot != NULL ? (size_t)(dot - rest) : strlen(rest);
        for (size_t j = 0; j < i && !seen; j++) {
            const char *other = config_keys[j].name;
            if (plen > 0 && (strncmp(other, prefix, plen) != 0 || other[plen] != '.'))
                continue;
            other = plen > 0 ? other + plen + 1 : other;
            seen = strncmp(other, rest, len) == 0 && (other[len] == '.' || other[len] == '\0');
        }
        if (seen || off + len + 3 >= cap)
            continue;
        if (off > 0) {
            memcpy(out + off, ", ", 2);
            off += 2;
        }
        memcpy(out + off, rest, len);
        off += len;
        out[off] = '\0';
    }
}

/* Walks a mapping whose keys live under prefix. */
static void loader_walk(struct loader *l, yaml_node_t *map, const char *prefix)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *key = yaml_document_get_node(l->doc, p->key);
        yaml_node_t *val = yaml_document_get_node(l->doc, p->value);
        const struct config_key *k;
        char name[CONFIG_NAME_MAX], shown[96];
        bool duplicate = false;

        if (key == NULL || val == NULL)
            continue;
        if (key->type != YAML_SCALAR_NODE || key->data.scalar.length >= 64) {
            loader_error(l, key, "keys must be short plain names; found %s", yamldoc_kind(key));
            continue;
        }
        snprintf(name, sizeof(name), "%s%s%s", prefix, prefix[0] ? "." : "",
                 (const char *)key->data.scalar.value);
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p && !duplicate; q++) {
            yaml_node_t *other = yaml_document_get_node(l->doc, q->key);
            duplicate = other != NULL && other->type == YAML_SCALAR_NODE &&
                        strcmp((const char *)other->data.scalar.value,
                               (const char *)key->data.scalar.value) == 0;
        }
        if (duplicate) {
            loader_error(l, key, "%s: given twice; keep one", name);
            continue;
        }
        k = config_find(name);
        if (k != NULL) {
            loader_apply(l, k, val,
                         val->type == YAML_SCALAR_NODE ? (const char *)val->data.scalar.value : "");
        } else if (config_is_section(name)) {
            char known[256];
            config_known_keys(name, known, sizeof(known));
            if (val->type != YAML_MAPPING_NODE)
                loader_error(l, val, "%s: found %s; expected a mapping of %s", name,
                             yamldoc_kind(val), known);
            else
                loader_walk(l, val, name);
        } else {
            char known[256];
            config_known_keys(prefix, known, sizeof(known));
            loader_error(l, key, "unknown key '%s'; expected one of: %s",
                         yamldoc_shown(key, shown, sizeof(shown)), known);
        }
    }
}

/* Frees a configuration and the strings it owns. */
void config_free(struct sluice_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->resolv_conf);
    free(cfg->hosts_file);
    free(cfg->policy_dir);
    free(cfg->geoip_country_db);
    free(cfg->geoip_asn_db);
    free(cfg->ca_cert);
    free(cfg->ca_key);
    free(cfg->tls_upstream_ca);
    free(cfg->audit_path);
    free(cfg->audit_hash_key);
    free(cfg->capture_dir);
    free(cfg->audit_secret_headers);
    free(cfg->squid_log);
    free(cfg->audit_syslog);
    free(cfg->user);
    free(cfg->credentials);
    free(cfg->admin_listen);
    free(cfg);
}

/* Points the settings at the DNS file names the configuration owns. */
static void config_link_settings(struct sluice_config *cfg)
{
    cfg->settings.resolv_conf = cfg->resolv_conf;
    cfg->settings.hosts_file = cfg->hosts_file;
}

/*
 * Makes l's configuration (named path, or NULL for none) and sets every default from the
 * table, through the same parsers as the file.  Returns false with the error recorded.
 */
static bool loader_start(struct loader *l, const char *path)
{
    l->cfg = calloc(1, sizeof(*l->cfg));
    if (l->cfg == NULL || (path != NULL && (l->cfg->path = strdup(path)) == NULL)) {
        loader_error(l, NULL, "out of memory");
        config_free(l->cfg);
        l->cfg = NULL;
        return false;
    }
    l->from = FROM_DEFAULTS;
    settings_init(&l->cfg->settings);
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (config_keys[i].def != NULL)
            loader_apply(l, &config_keys[i], NULL, config_keys[i].def);
    config_link_settings(l->cfg);
    return true;
}

/* The defaults alone; see the header. */
struct sluice_config *config_defaults(struct yamldoc_errors *errs)
{
    struct loader l = {.file = "sluice", .errs = errs};

    memset(errs, 0, sizeof(*errs));
    if (!loader_start(&l, NULL))
        return NULL;
    if (errs->count > 0) {
        config_free(l.cfg);
        return NULL;
    }
    return l.cfg;
}

/* Applies one command-line value; see the header.  Its errors begin with the program's name. */
int config_set(struct sluice_config *cfg, const struct config_key *k, const char *value,
               struct yamldoc_errors *errs)
{
    struct loader l = {.file = "sluice", .from = FROM_ARGS, .cfg = cfg, .errs = errs};
    size_t before = errs->count;

    loader_apply(&l, k, NULL, value);
    config_link_settings(cfg);
    return errs->count > before ? -1 : 0;
}

/* Loads and checks configuration text; see the header. */
struct sluice_config *config_load_buffer(const char *path, const char *data, size_t len,
                                         struct yamldoc_errors *errs)
{
    struct loader l = {.file = path, .errs = errs};
    yaml_document_t doc;
    yaml_node_t *root;
    const char *slash = strrchr(path, '/');

    memset(errs, 0, sizeof(*errs));
    if (slash == NULL) {
        memcpy(l.dir, ".", 2);
    } else if ((size_t)(slash - path) < sizeof(l.dir)) {
        memcpy(l.dir, path, (size_t)(slash - path));
        l.dir[slash - path] = '\0';
    } else {
        loader_error(&l, NULL, "the configuration file's path is too long");
        return NULL;
    }
    if (!loader_start(&l, path))
        return NULL;
    if (yamldoc_parse(path, data, len, &doc, errs) < 0) {
        config_free(l.cfg);
        return NULL;
    }
    l.from = FROM_FILE;
    l.doc = &doc;
    root = yaml_document_get_root_node(&doc);
    if (root != NULL && root->type != YAML_MAPPING_NODE)
        loader_error(&l, root,
                     "found %s at the top; expected a mapping of keys such as mode, "
                     "listen, limits, timeouts",
                     yamldoc_kind(root));
    else if (root != NULL)
        loader_walk(&l, root, "");
    yaml_document_delete(&doc);

    config_link_settings(l.cfg);
    if (errs->count > 0) {
        config_free(l.cfg);
        return NULL;
    }
    return l.cfg;
}

/* Reads the file at path (bounded) and loads it. */
struct sluice_config *config_load(const char *path, struct yamldoc_errors *errs)
{
    struct sluice_config *cfg;
    size_t len = 0;
    char *data;

    memset(errs, 0, sizeof(*errs));
    data = yamldoc_read_file(path, &len, errs);
    if (data == NULL)
        return NULL;
    cfg = config_load_buffer(path, data, len, errs);
    free(data);
    return cfg;
}

/* True when key k has the same value in a and b. */
static bool config_same(const struct config_key *k, const struct sluice_config *a,
                        const struct sluice_config *b)
{
    const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
    const char *pa, *pb;

    switch (k->type) {
    case CFG_MODE:
        return a->mode == b->mode;
    case CFG_UINT:
    case CFG_DURATION:
    case CFG_SWITCH:
    case CFG_FACILITY:
        return memcmp(fa, fb, sizeof(uint32_t)) == 0;
    case CFG_PORTS:
        return a->settings.nconnect_ports == b->settings.nconnect_ports &&
               memcmp(a->settings.connect_ports, b->settings.connect_ports,
                      a->settings.nconnect_ports * sizeof(a->settings.connect_ports[0])) == 0;
    case CFG_PATH:
    case CFG_USER:
    case CFG_NAMES:
    case CFG_ADDRESS:
    case CFG_SYSLOG:
        memcpy(&pa, fa, sizeof(pa));
        memcpy(&pb, fb, sizeof(pb));
        return pa == pb || (pa != NULL && pb != NULL && strcmp(pa, pb) == 0);
    case CFG_LISTENERS:
        if (a->nlisteners != b->nlisteners)
            return false;
        for (size_t i = 0; i < a->nlisteners; i++)
            if (strcmp(a->listeners[i].address, b->listeners[i].address) != 0 ||
                strcmp(a->listeners[i].tool, b->listeners[i].tool) != 0 ||
                strcmp(a->listeners[i].proxy_from, b->listeners[i].proxy_from) != 0 ||
                a->listeners[i].ask_credentials != b->listeners[i].ask_credentials)
                return false;
        return true;
    }
    return false;
}

/* True when a (a parsed TCP address) is loopback: 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. */
static bool config_is_loopback(const struct listener_addr *a)
{
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)&a->ss;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)&a->ss;
        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && sin6->sin6_addr.s6_addr[12] == 127);
    }
    return false;
}

/* Checks what takes more than one key; see the header. */
int config_check(const struct sluice_config *cfg, struct yamldoc_errors *errs)
{
    struct listener_addr a;
    const char *errstr = NULL;
    size_t before = errs->count;

    if (cfg->admin_listen != NULL && !cfg->admin_allow_remote &&
        listener_parse(cfg->admin_listen, &a, &errstr) == 0 && !config_is_loopback(&a))
        yamldoc_error(errs, cfg->path != NULL ? cfg->path : "sluice", NULL,
                      "admin.listen %s is not a loopback address: whoever reaches it reads "
                      "which tools went where; set admin.allow_remote: on "
                      "(--admin-allow-remote on) to serve it there",
                      cfg->admin_listen);
    /* A port both lists would be read as plain HTTP, so a TLS tunnel there could not work. */
    if (cfg->settings.connect_http_port != 0 &&
        settings_connect_port_allowed(&cfg->settings, (uint16_t)cfg->settings.connect_http_port))
        yamldoc_error(errs, cfg->path != NULL ? cfg->path : "sluice", NULL,
                      "connect_http_port %u is also in connect_ports: a CONNECT to it is read "
                      "as plain HTTP, so tunnels there could not carry TLS; remove it from one "
                      "of the two (connect_http_port: 0 turns reading off)",
                      (unsigned)cfg->settings.connect_http_port);
    return errs->count > before ? -1 : 0;
}

/* Finds the next restart-only key that differs; see the header. */
const char *config_next_restart_change(const struct sluice_config *a, const struct sluice_config *b,
                                       size_t *pos)
{
    while (*pos < CONFIG_NKEYS) {
        const struct config_key *k = &config_keys[(*pos)++];

        if ((k->flags & CFG_F_RESTART) != 0 && !config_same(k, a, b))
            return k->name;
    }
    return NULL;
}
