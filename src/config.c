/*
 * The main configuration file; see include/sluice/config.h.
 *
 * libyaml loads the file into a node tree (which keeps line and column of every node),
 * and one walk over it checks each key against config_keys[]: a dotted name that is in the
 * table is parsed by its type, a prefix of table names is a section to walk into, anything
 * else is unknown.  Defaults go through the same parsers, so the table cannot hold a
 * default its own type would refuse.
 */
#include "sluice/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "sluice/listener.h"
#include "sluice/log.h"

#define CONFIG_NAME_MAX 128
#define DAY_MS          (86400u * 1000u)

/* How a key's value is read. */
enum config_type {
    CFG_MODE,      /* "local" or "gateway" into enum config_mode */
    CFG_UINT,      /* decimal number in [min, max] into uint32_t */
    CFG_DURATION,  /* "10s", "500ms", "1m" into uint32_t milliseconds in [min, max] */
    CFG_PORTS,     /* list of ports, or "443,8443", into settings.connect_ports */
    CFG_PATH,      /* file or directory path into an owned char * */
    CFG_LISTENERS, /* list of addresses or {address, tool} mappings */
};

/* Checks a CFG_PATH value must pass. */
#define CFG_F_READABLE  0x1u /* a readable regular file */
#define CFG_F_DIRECTORY 0x2u /* an existing directory */

/* One key of the file: its dotted name, type, bounds, default and where it goes. */
struct config_key {
    const char *name;
    enum config_type type;
    uint32_t min, max;
    const char *def; /* default as it would be written in the file, or NULL */
    unsigned flags;
    size_t offset;      /* into struct sluice_config */
    const char *expect; /* what a valid value looks like, for messages */
};

#define OFF(field) offsetof(struct sluice_config, field)

static const struct config_key config_keys[] = {
    {"mode", CFG_MODE, 0, 0, "local", 0, OFF(mode), "local or gateway"},
    {"workers", CFG_UINT, 0, 256, "0", 0, OFF(workers),
     "a number of worker threads from 1 to 256, or 0 for one per core"},
    {"listen", CFG_LISTENERS, 0, 0, NULL, 0, 0,
     "a list of listeners, each ADDR:PORT or {address: ADDR:PORT, tool: ID}"},
    {"connect_ports", CFG_PORTS, 0, 0, "443", 0, 0, "a list of ports from 1 to 65535"},
    {"limits.max_connections", CFG_UINT, 1, 1000000, "16384", 0, OFF(settings.max_connections),
     "a number from 1 to 1000000"},
    {"limits.max_request_line", CFG_UINT, 256, 1u << 20, "8192", 0,
     OFF(settings.request_limits.max_line), "a number of bytes from 256 to 1048576"},
    {"limits.max_header_bytes", CFG_UINT, 1024, 16u << 20, "65536", 0,
     OFF(settings.request_limits.max_head), "a number of bytes from 1024 to 16777216"},
    {"limits.max_header_fields", CFG_UINT, 8, 10000, "100", 0,
     OFF(settings.request_limits.max_fields), "a number from 8 to 10000"},
    {"timeouts.head", CFG_DURATION, 1, 7 * DAY_MS, "10s", 0, OFF(settings.timeout_head_ms),
     "a duration such as 10s"},
    {"timeouts.keepalive", CFG_DURATION, 1, 7 * DAY_MS, "60s", 0,
     OFF(settings.timeout_keepalive_ms), "a duration such as 60s"},
    {"timeouts.connect", CFG_DURATION, 1, 7 * DAY_MS, "10s", 0, OFF(settings.timeout_connect_ms),
     "a duration such as 10s"},
    {"timeouts.response", CFG_DURATION, 1, 7 * DAY_MS, "60s", 0, OFF(settings.timeout_response_ms),
     "a duration such as 60s"},
    {"timeouts.idle", CFG_DURATION, 1, 7 * DAY_MS, "300s", 0, OFF(settings.timeout_idle_ms),
     "a duration such as 5m"},
    {"timeouts.tunnel", CFG_DURATION, 1, 7 * DAY_MS, "3600s", 0, OFF(settings.timeout_tunnel_ms),
     "a duration such as 60m"},
    {"timeouts.drain", CFG_DURATION, 1, DAY_MS, "10s", 0, OFF(settings.drain_ms),
     "a duration such as 10s"},
    {"upstream.idle_max", CFG_UINT, 0, 100000, "1024", 0, OFF(settings.upstream_idle_max),
     "a number of connections per worker from 0 to 100000"},
    {"upstream.idle_per_host", CFG_UINT, 1, 100000, "256", 0, OFF(settings.upstream_idle_per_host),
     "a number of connections from 1 to 100000"},
    {"upstream.idle_timeout", CFG_DURATION, 1, DAY_MS, "30s", 0, OFF(settings.upstream_idle_ms),
     "a duration such as 30s"},
    {"dns.resolv_conf", CFG_PATH, 0, 0, "/etc/resolv.conf", CFG_F_READABLE, OFF(resolv_conf),
     "the path of a readable resolv.conf file"},
    {"dns.hosts_file", CFG_PATH, 0, 0, "/etc/hosts", CFG_F_READABLE, OFF(hosts_file),
     "the path of a readable hosts file"},
    {"policy_dir", CFG_PATH, 0, 0, NULL, CFG_F_DIRECTORY, OFF(policy_dir),
     "the path of the policy directory"},
    {"geoip.country_db", CFG_PATH, 0, 0, NULL, CFG_F_READABLE, OFF(geoip_country_db),
     "the path of a readable country .mmdb file"},
    {"geoip.asn_db", CFG_PATH, 0, 0, NULL, CFG_F_READABLE, OFF(geoip_asn_db),
     "the path of a readable ASN .mmdb file"},
    {"ca.cert", CFG_PATH, 0, 0, NULL, 0, OFF(ca_cert), "the path of the CA certificate"},
    {"ca.key", CFG_PATH, 0, 0, NULL, 0, OFF(ca_key), "the path of the CA private key"},
    {"audit.path", CFG_PATH, 0, 0, NULL, 0, OFF(audit_path), "the path of the audit log"},
};

#define CONFIG_NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

/* State of one load. */
struct loader {
    const char *file;     /* for messages */
    char dir[4096];       /* the file's directory, for relative paths */
    yaml_document_t *doc; /* NULL while applying defaults */
    struct sluice_config *cfg;
    struct yamldoc_errors *errs;
};

/* Name of a mode for messages. */
const char *config_mode_str(enum config_mode mode)
{
    return mode == CONFIG_MODE_GATEWAY ? "gateway" : "local";
}

/* Records one error at node n (or at line/column 0 when n is NULL). */
#define loader_error(l, n, ...) yamldoc_error((l)->errs, (l)->file, (n), __VA_ARGS__)

/* Makes path absolute against the config file's directory; returns an owned string. */
static char *loader_resolve(const struct loader *l, const char *path)
{
    size_t dlen, plen;
    char *out;

    if (path[0] == '/' || l->doc == NULL)
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

/* Checks a path value against the key's flags; returns false with an error recorded. */
static bool loader_check_path(struct loader *l, const struct config_key *k, const yaml_node_t *n,
                              const char *path)
{
    struct stat st;

    if (l->doc == NULL || k->flags == 0)
        return true; /* defaults are checked where they are used */
    if (stat(path, &st) != 0) {
        loader_error(l, n, "%s: cannot use %s: %s; expected %s", k->name, path, strerror(errno),
                     k->expect);
        return false;
    }
    if ((k->flags & CFG_F_DIRECTORY) != 0 && !S_ISDIR(st.st_mode)) {
        loader_error(l, n, "%s: %s is not a directory; expected %s", k->name, path, k->expect);
        return false;
    }
    if ((k->flags & CFG_F_READABLE) != 0 && (!S_ISREG(st.st_mode) || access(path, R_OK) != 0)) {
        loader_error(l, n, "%s: %s is not a readable file; expected %s", k->name, path, k->expect);
        return false;
    }
    return true;
}

/* Parses a list of ports (a YAML list, or one "443,8443" value). */
static void loader_set_ports(struct loader *l, const struct config_key *k, yaml_node_t *n,
                             const char *text)
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
        loader_error(l, n, "%s: %s; expected %s", k->name, errstr, k->expect);
}

/* Checks a tool id: lower-case letters, digits, '-', '_', '.'. */
static bool is_tool_id(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n < sizeof(((struct config_listener *)0)->tool) &&
           strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_.") == n;
}

/* Takes one listener entry (a scalar address, or a mapping with address and tool). */
static void loader_add_listener(struct loader *l, yaml_node_t *item)
{
    struct config_listener *out;
    struct listener_addr parsed;
    const char *errstr = NULL;
    const yaml_node_t *addr_node = NULL, *tool_node = NULL;

    if (l->cfg->nlisteners == CONFIG_MAX_LISTENERS) {
        loader_error(l, item, "listen: too many listeners (at most %d)", CONFIG_MAX_LISTENERS);
        return;
    }
    if (item->type == YAML_SCALAR_NODE) {
        addr_node = item;
    } else if (item->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top;
             p++) {
            yaml_node_t *key = yaml_document_get_node(l->doc, p->key);
            yaml_node_t *val = yaml_document_get_node(l->doc, p->value);
            const char *name = key != NULL && key->type == YAML_SCALAR_NODE
                                   ? (const char *)key->data.scalar.value
                                   : "";
            if (strcmp(name, "address") == 0 && val != NULL && val->type == YAML_SCALAR_NODE)
                addr_node = val;
            else if (strcmp(name, "tool") == 0 && val != NULL && val->type == YAML_SCALAR_NODE)
                tool_node = val;
            else
                loader_error(l, key != NULL ? key : item,
                             "listen: unknown or malformed key '%s' in a listener; expected "
                             "address and tool",
                             name);
        }
    }
    if (addr_node == NULL) {
        loader_error(l, item, "listen: a listener needs an address; expected %s",
                     config_keys[2].expect);
        return;
    }
    if (listener_parse((const char *)addr_node->data.scalar.value, &parsed, &errstr) < 0) {
        char shown[96];
        loader_error(l, addr_node, "listen: '%s': %s",
                     yamldoc_shown(addr_node, shown, sizeof(shown)), errstr);
        return;
    }
    if (tool_node != NULL && !is_tool_id((const char *)tool_node->data.scalar.value)) {
        char shown[96];
        loader_error(l, tool_node,
                     "listen: tool '%s' is not a tool id; expected lower-case letters, digits, "
                     "'-', '_' or '.'",
                     yamldoc_shown(tool_node, shown, sizeof(shown)));
        return;
    }
    out = &l->cfg->listeners[l->cfg->nlisteners++];
    snprintf(out->address, sizeof(out->address), "%s", (const char *)addr_node->data.scalar.value);
    if (tool_node != NULL)
        snprintf(out->tool, sizeof(out->tool), "%s", (const char *)tool_node->data.scalar.value);
}

/* Applies one value (text, from node n or from the table's default when n is NULL). */
static void loader_apply(struct loader *l, const struct config_key *k, yaml_node_t *n,
                         const char *text)
{
    char *field = (char *)l->cfg + k->offset;
    const char *errstr = NULL;
    char shown[96];
    uint32_t v;

    if (n != NULL && k->type != CFG_PORTS && k->type != CFG_LISTENERS &&
        n->type != YAML_SCALAR_NODE) {
        loader_error(l, n, "%s: found %s; expected %s", k->name, yamldoc_kind(n), k->expect);
        return;
    }
    if (n != NULL && n->type == YAML_SCALAR_NODE)
        yamldoc_shown(n, shown, sizeof(shown));
    else
        snprintf(shown, sizeof(shown), "%s", text != NULL ? text : "");

    switch (k->type) {
    case CFG_MODE:
        if (strcmp(text, "local") == 0)
            l->cfg->mode = CONFIG_MODE_LOCAL;
        else if (strcmp(text, "gateway") == 0)
            l->cfg->mode = CONFIG_MODE_GATEWAY;
        else
            loader_error(l, n, "%s: '%s' is not a mode; expected %s", k->name, shown, k->expect);
        break;
    case CFG_UINT:
        if (settings_parse_uint(text, k->min, k->max, &v, &errstr) < 0)
            loader_error(l, n, "%s: '%s': %s; expected %s", k->name, shown, errstr, k->expect);
        else
            memcpy(field, &v, sizeof(v));
        break;
    case CFG_DURATION:
        if (settings_parse_duration(text, &v, &errstr) < 0)
            loader_error(l, n, "%s: '%s': %s; expected %s", k->name, shown, errstr, k->expect);
        else if (v < k->min || v > k->max)
            loader_error(l, n, "%s: '%s' is out of range; expected %s", k->name, shown, k->expect);
        else
            memcpy(field, &v, sizeof(v));
        break;
    case CFG_PORTS:
        loader_set_ports(l, k, n, text);
        break;
    case CFG_PATH: {
        char *path = text[0] != '\0' ? loader_resolve(l, text) : NULL;
        char **slot = (char **)(void *)field;
        if (path == NULL) {
            loader_error(l, n, "%s: empty path; expected %s", k->name, k->expect);
            break;
        }
        if (!loader_check_path(l, k, n, path)) {
            free(path);
            break;
        }
        free(*slot);
        *slot = path;
        break;
    }
    case CFG_LISTENERS:
        if (n == NULL || n->type != YAML_SEQUENCE_NODE) {
            loader_error(l, n, "listen: found %s; expected %s", n != NULL ? yamldoc_kind(n) : "",
                         k->expect);
            break;
        }
        l->cfg->nlisteners = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            yaml_node_t *item = yaml_document_get_node(l->doc, *it);
            if (item != NULL)
                loader_add_listener(l, item);
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
    free(cfg->audit_path);
    free(cfg);
}

/* Sets every default from the table (through the same parsers as the file). */
static void loader_defaults(struct loader *l)
{
    settings_init(&l->cfg->settings);
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (config_keys[i].def != NULL)
            loader_apply(l, &config_keys[i], NULL, config_keys[i].def);
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
    l.cfg = calloc(1, sizeof(*l.cfg));
    if (l.cfg == NULL || (l.cfg->path = strdup(path)) == NULL) {
        loader_error(&l, NULL, "out of memory");
        config_free(l.cfg);
        return NULL;
    }
    loader_defaults(&l);

    if (yamldoc_parse(path, data, len, &doc, errs) < 0) {
        config_free(l.cfg);
        return NULL;
    }
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

    l.cfg->settings.resolv_conf = l.cfg->resolv_conf;
    l.cfg->settings.hosts_file = l.cfg->hosts_file;
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
