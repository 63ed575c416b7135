/*
 * Policies; see include/sluice/policy.h for the files, the snapshot and the order of
 * evaluation, which policy_decide() below is the only place to implement.
 */
#include "sluice/policy.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "sluice/domainset.h"
#include "sluice/geoip.h"
#include "sluice/netguard.h"

/* State of loading one file. */
struct policy_loader {
    const char *file;
    yaml_document_t *doc;
    struct yamldoc_errors *errs;
    const struct geoip *geoip; /* the snapshot's databases, or NULL */
};

#define perr(l, n, ...) yamldoc_error((l)->errs, (l)->file, (n), __VA_ARGS__)

static const char *const purpose_names[] = {
    [POLICY_PURPOSE_API] = "api",
    [POLICY_PURPOSE_AUTH] = "auth",
    [POLICY_PURPOSE_UPDATE] = "update",
    [POLICY_PURPOSE_TELEMETRY] = "telemetry",
    [POLICY_PURPOSE_CRASH_REPORTING] = "crash-reporting",
    [POLICY_PURPOSE_FEATURE_FLAGS] = "feature-flags",
    [POLICY_PURPOSE_OTHER] = "other",
};

/* "allow", "block" or "report". */
const char *policy_verdict_str(enum policy_verdict v)
{
    return v == POLICY_BLOCK ? "block" : v == POLICY_REPORT ? "report" : "allow";
}

/* True for the purposes that "block telemetry" covers. */
static bool purpose_is_telemetry(enum policy_purpose p)
{
    return p == POLICY_PURPOSE_TELEMETRY || p == POLICY_PURPOSE_CRASH_REPORTING ||
           p == POLICY_PURPOSE_FEATURE_FLAGS;
}

/* A node of the document by index. */
static yaml_node_t *pnode(struct policy_loader *l, int index)
{
    return yaml_document_get_node(l->doc, index);
}

/* Copies a scalar into an owned string; false (with an error) for other nodes. */
static bool take_string(struct policy_loader *l, const char *key, yaml_node_t *n, char **out)
{
    const char *s = yamldoc_scalar(n);

    if (s == NULL || s[0] == '\0') {
        perr(l, n, "%s: found %s; expected a non-empty value", key, yamldoc_kind(n));
        return false;
    }
    free(*out);
    *out = strdup(s);
    if (*out == NULL)
        perr(l, n, "%s: out of memory", key);
    return *out != NULL;
}

/* Copies a list of scalars (or one scalar) into out[0..*n). */
static bool take_list(struct policy_loader *l, const char *key, yaml_node_t *n, char **out,
                      size_t *count)
{
    if (n->type == YAML_SCALAR_NODE) {
        if (*count >= POLICY_MAX_LIST) {
            perr(l, n, "%s: too many entries (at most %d)", key, POLICY_MAX_LIST);
            return false;
        }
        out[*count] = NULL;
        if (!take_string(l, key, n, &out[*count]))
            return false;
        (*count)++;
        return true;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        perr(l, n, "%s: found %s; expected a list of values", key, yamldoc_kind(n));
        return false;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = pnode(l, *it);
        if (*count >= POLICY_MAX_LIST) {
            perr(l, item, "%s: too many entries (at most %d)", key, POLICY_MAX_LIST);
            return false;
        }
        out[*count] = NULL;
        if (!take_string(l, key, item, &out[*count]))
            return false;
        (*count)++;
    }
    return true;
}

/* Parses allow / block / report. */
static bool take_verdict(struct policy_loader *l, const char *key, yaml_node_t *n,
                         enum policy_verdict *out)
{
    const char *s = yamldoc_scalar(n);

    if (s != NULL && strcmp(s, "allow") == 0)
        *out = POLICY_ALLOW;
    else if (s != NULL && strcmp(s, "block") == 0)
        *out = POLICY_BLOCK;
    else if (s != NULL && strcmp(s, "report") == 0)
        *out = POLICY_REPORT;
    else {
        char shown[64];
        perr(l, n, "%s: '%s' is not a decision; expected allow, block or report", key,
             yamldoc_shown(n, shown, sizeof(shown)));
        return false;
    }
    return true;
}

/* Parses true / false. */
static bool take_bool(struct policy_loader *l, const char *key, yaml_node_t *n, bool *out)
{
    const char *s = yamldoc_scalar(n);

    if (s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0))
        *out = true;
    else if (s != NULL && (strcmp(s, "false") == 0 || strcmp(s, "no") == 0))
        *out = false;
    else {
        perr(l, n, "%s: found %s; expected true or false", key, yamldoc_kind(n));
        return false;
    }
    return true;
}

/* Parses a list of ports. */
static bool take_ports(struct policy_loader *l, const char *key, yaml_node_t *n, uint16_t *out,
                       size_t *count)
{
    char *texts[POLICY_MAX_LIST] = {0};
    size_t ntexts = 0;
    bool ok = take_list(l, key, n, texts, &ntexts);

    for (size_t i = 0; i < ntexts; i++) {
        uint32_t port;
        const char *errstr = NULL;
        if (ok && settings_parse_uint(texts[i], 1, 65535, &port, &errstr) < 0) {
            perr(l, n, "%s: '%s': %s; expected ports from 1 to 65535", key, texts[i], errstr);
            ok = false;
        } else if (ok) {
            out[(*count)++] = (uint16_t)port;
        }
        free(texts[i]);
    }
    return ok;
}

/* Builds a frozen domain set from a list of host patterns. */
static struct domainset *take_hosts(struct policy_loader *l, const char *key, yaml_node_t *n)
{
    struct domainset *set = domainset_new();

    if (set == NULL) {
        perr(l, n, "%s: out of memory", key); /* a list that is not loaded must not pass */
        return NULL;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        perr(l, n, "%s: found %s; expected a list of host names or *.suffix wildcards", key,
             yamldoc_kind(n));
        domainset_free(set);
        return NULL;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = pnode(l, *it);
        const char *host = yamldoc_scalar(item), *errstr = NULL;
        char shown[96];
        if (host == NULL || domainset_add(set, host, 1, &errstr) < 0)
            perr(l, item, "%s: '%s' is not a host name or *.suffix wildcard%s%s", key,
                 yamldoc_shown(item, shown, sizeof(shown)), errstr != NULL ? ": " : "",
                 errstr != NULL ? errstr : "");
    }
    if (domainset_freeze(set) < 0) {
        perr(l, n, "%s: out of memory", key);
        domainset_free(set);
        return NULL;
    }
    return set;
}

/* Parses a list of address class names ("all" for every class) into a bit set. */
static void take_classes(struct policy_loader *l, const char *key, yaml_node_t *n, uint32_t *out)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        perr(l, n, "%s: found %s; expected a list of address classes", key, yamldoc_kind(n));
        return;
    }
    *out = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = pnode(l, *it);
        const char *name = yamldoc_scalar(item);
        uint32_t bit = name != NULL && strcmp(name, "all") == 0 ? NETGUARD_ALL_CLASSES
                       : name != NULL                           ? netguard_class_parse(name)
                                                                : 0;
        char shown[64];

        if (bit == 0)
            perr(l, item,
                 "%s: '%s' is not an address class; expected all, loopback, private, "
                 "link-local, metadata, cgnat, unique-local, multicast, unspecified, reserved "
                 "or self",
                 key, yamldoc_shown(item, shown, sizeof(shown)));
        *out |= bit;
    }
}

/* Builds a CIDR set from a list of prefixes and addresses. */
static struct netguard_cidrs *take_cidrs(struct policy_loader *l, const char *key, yaml_node_t *n)
{
    struct netguard_cidrs *set;

    if (n->type != YAML_SEQUENCE_NODE) {
        perr(l, n, "%s: found %s; expected a list of CIDR prefixes such as 10.0.0.0/8", key,
             yamldoc_kind(n));
        return NULL;
    }
    set = netguard_cidrs_new();
    if (set == NULL) {
        perr(l, n, "%s: out of memory", key);
        return NULL;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = pnode(l, *it);
        const char *text = yamldoc_scalar(item), *errstr = "found a list or a mapping";
        char shown[96];

        if (text == NULL || netguard_cidrs_add(set, text, &errstr) < 0)
            perr(l, item, "%s: '%s' is not a CIDR prefix or an address: %s", key,
                 yamldoc_shown(item, shown, sizeof(shown)), errstr);
    }
    return set;
}

/* Parses a list of ISO 3166 country codes. */
static void take_countries(struct policy_loader *l, const char *key, yaml_node_t *n, char (*out)[3],
                           size_t *count)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        perr(l, n, "%s: found %s; expected a list of two-letter country codes", key,
             yamldoc_kind(n));
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = pnode(l, *it);
        const char *text = yamldoc_scalar(item);
        char shown[64];

        if (*count >= POLICY_MAX_CODES) {
            perr(l, item, "%s: too many entries (at most %d)", key, POLICY_MAX_CODES);
            return;
        }
        if (text == NULL || !geoip_country_code_valid(text, out[*count]))
            perr(l, item, "%s: '%s' is not a country code; expected two letters such as DE", key,
                 yamldoc_shown(item, shown, sizeof(shown)));
        else
            (*count)++;
    }
}

/* Parses a list of AS numbers (64500 or AS64500). */
static void take_asns(struct policy_loader *l, const char *key, yaml_node_t *n, uint32_t *out,
                      size_t *count)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        perr(l, n, "%s: found %s; expected a list of AS numbers such as AS64500", key,
             yamldoc_kind(n));
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = pnode(l, *it);
        const char *text = yamldoc_scalar(item), *errstr = NULL;
        char shown[64];
        uint32_t asn;

        if (*count >= POLICY_MAX_CODES) {
            perr(l, item, "%s: too many entries (at most %d)", key, POLICY_MAX_CODES);
            return;
        }
        if (text != NULL && strncasecmp(text, "AS", 2) == 0)
            text += 2;
        if (text == NULL || settings_parse_uint(text, 1, UINT32_MAX, &asn, &errstr) < 0)
            perr(l, item, "%s: '%s' is not an AS number; expected a number such as AS64500", key,
                 yamldoc_shown(item, shown, sizeof(shown)));
        else
            out[(*count)++] = asn;
    }
}

/*
 * True (with an error) when the key of pair p was already given earlier in mapping n:
 * libyaml keeps both, and a silent "last one wins" would hide a mistake in a policy.
 */
static bool repeated_key(struct policy_loader *l, const yaml_node_t *n, const yaml_node_pair_t *p)
{
    const char *k = yamldoc_scalar(pnode(l, p->key));

    for (const yaml_node_pair_t *q = n->data.mapping.pairs.start; k != NULL && q < p; q++) {
        const char *other = yamldoc_scalar(pnode(l, q->key));
        if (other != NULL && strcmp(other, k) == 0) {
            perr(l, pnode(l, p->key), "%s: given twice; keep one", k);
            return true;
        }
    }
    return false;
}

/* Reports a key that does not belong where it is. */
static void unknown_key(struct policy_loader *l, yaml_node_t *key, const char *where,
                        const char *expected)
{
    char shown[64];

    perr(l, key, "unknown key '%s' in %s; expected one of: %s",
         yamldoc_shown(key, shown, sizeof(shown)), where, expected);
}

/* Parses one endpoint group. */
static void load_endpoint(struct policy_loader *l, yaml_node_t *n, struct policy_endpoint *e)
{
    bool has_hosts = false;

    e->purpose = POLICY_PURPOSE_OTHER;
    if (n->type != YAML_MAPPING_NODE) {
        perr(l, n, "endpoints: found %s; expected a mapping with group, purpose and hosts",
             yamldoc_kind(n));
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *key = pnode(l, p->key), *val = pnode(l, p->value);
        const char *k = yamldoc_scalar(key);

        if (repeated_key(l, n, p))
            continue;
        if (k == NULL)
            k = "";
        if (strcmp(k, "group") == 0) {
            take_string(l, "group", val, &e->group);
        } else if (strcmp(k, "purpose") == 0) {
            const char *s = yamldoc_scalar(val);
            size_t i;
            for (i = 0; i < sizeof(purpose_names) / sizeof(purpose_names[0]); i++)
                if (s != NULL && strcmp(s, purpose_names[i]) == 0)
                    break;
            if (i == sizeof(purpose_names) / sizeof(purpose_names[0]))
                perr(l, val,
                     "purpose: expected api, auth, update, telemetry, crash-reporting, "
                     "feature-flags or other");
            else
                e->purpose = (enum policy_purpose)i;
        } else if (strcmp(k, "hosts") == 0) {
            e->hosts = take_hosts(l, "hosts", val);
            has_hosts = true;
        } else if (strcmp(k, "ports") == 0) {
            take_ports(l, "ports", val, e->ports, &e->nports);
        } else if (strcmp(k, "methods") == 0) {
            take_list(l, "methods", val, e->methods, &e->nmethods);
        } else if (strcmp(k, "paths") == 0) {
            take_list(l, "paths", val, e->paths, &e->npaths);
        } else {
            unknown_key(l, key, "an endpoint group",
                        "group, purpose, hosts, ports, methods, paths");
        }
    }
    if (e->group == NULL)
        perr(l, n, "an endpoint group needs a group name");
    if (!has_hosts)
        perr(l, n, "endpoint group '%s' needs hosts", e->group != NULL ? e->group : "?");
}

/* Parses the identify section of a tool profile. */
static void load_identify(struct policy_loader *l, yaml_node_t *n, struct policy_tool *t)
{
    if (n->type != YAML_MAPPING_NODE) {
        perr(l, n, "identify: found %s; expected a mapping", yamldoc_kind(n));
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *key = pnode(l, p->key), *val = pnode(l, p->value);
        const char *k = yamldoc_scalar(key);

        if (repeated_key(l, n, p))
            continue;
        if (k != NULL && strcmp(k, "proxy_users") == 0)
            take_list(l, "proxy_users", val, t->proxy_users, &t->nproxy_users);
        else if (k != NULL && strcmp(k, "user_agents") == 0)
            take_list(l, "user_agents", val, t->user_agents, &t->nuser_agents);
        else if (k != NULL && strcmp(k, "executables") == 0)
            take_list(l, "executables", val, t->executables, &t->nexecutables);
        else
            unknown_key(l, key, "identify", "proxy_users, user_agents, executables");
    }
}

/* True when s is a valid tool id: lower-case letters, digits, '-', '_', '.'. */
static bool is_tool_id(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n < 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_.") == n;
}

/* Parses a tool profile document into t. */
static void load_tool(struct policy_loader *l, yaml_node_t *root, struct policy_tool *t)
{
    t->default_verdict = POLICY_ALLOW;
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        perr(l, root, "found %s; expected a tool profile (id, name, identify, default, endpoints)",
             yamldoc_kind(root));
        return;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *key = pnode(l, p->key), *val = pnode(l, p->value);
        const char *k = yamldoc_scalar(key);

        if (repeated_key(l, root, p))
            continue;
        if (k == NULL)
            k = "";
        if (strcmp(k, "id") == 0) {
            if (take_string(l, "id", val, &t->id) && !is_tool_id(t->id))
                perr(l, val,
                     "id '%s' is not a tool id; expected lower-case letters, digits, '-', "
                     "'_' or '.'",
                     t->id);
        } else if (strcmp(k, "name") == 0) {
            take_string(l, "name", val, &t->name);
        } else if (strcmp(k, "identify") == 0) {
            load_identify(l, val, t);
        } else if (strcmp(k, "default") == 0) {
            take_verdict(l, "default", val, &t->default_verdict);
        } else if (strcmp(k, "block_telemetry") == 0) {
            take_bool(l, "block_telemetry", val, &t->block_telemetry);
        } else if (strcmp(k, "endpoints") == 0) {
            size_t n;
            if (val->type != YAML_SEQUENCE_NODE) {
                perr(l, val, "endpoints: found %s; expected a list of endpoint groups",
                     yamldoc_kind(val));
                continue;
            }
            n = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
            t->endpoints = calloc(n > 0 ? n : 1, sizeof(*t->endpoints));
            if (t->endpoints == NULL) {
                perr(l, val, "endpoints: out of memory");
                continue;
            }
            for (size_t i = 0; i < n; i++)
                load_endpoint(l, pnode(l, val->data.sequence.items.start[i]),
                              &t->endpoints[t->nendpoints++]);
        } else {
            unknown_key(l, key, "a tool profile",
                        "id, name, identify, default, block_telemetry, endpoints");
        }
    }
    if (t->id == NULL)
        perr(l, root, "a tool profile needs an id");
}

/* Parses the organisation policy document into o. */
static void load_org(struct policy_loader *l, yaml_node_t *root, struct policy_org *o)
{
    if (root == NULL)
        return; /* an empty file: the defaults */
    if (root->type != YAML_MAPPING_NODE) {
        perr(l, root, "found %s; expected the organisation policy", yamldoc_kind(root));
        return;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *key = pnode(l, p->key), *val = pnode(l, p->value);
        const char *k = yamldoc_scalar(key);

        if (repeated_key(l, root, p))
            continue;
        if (k == NULL)
            k = "";
        if (strcmp(k, "banned_tools") == 0)
            take_list(l, "banned_tools", val, o->banned, &o->nbanned);
        else if (strcmp(k, "block_telemetry") == 0)
            take_bool(l, "block_telemetry", val, &o->block_telemetry);
        else if (strcmp(k, "unidentified") == 0)
            take_verdict(l, "unidentified", val, &o->unidentified);
        else if (strcmp(k, "deny_hosts") == 0)
            o->deny_hosts = take_hosts(l, "deny_hosts", val);
        else if (strcmp(k, "allow_hosts") == 0)
            o->allow_hosts = take_hosts(l, "allow_hosts", val);
        else if (strcmp(k, "connect_ports") == 0)
            take_ports(l, "connect_ports", val, o->connect_ports, &o->nconnect_ports);
        else if (strcmp(k, "deny_addresses") == 0)
            take_classes(l, "deny_addresses", val, &o->deny_classes);
        else if (strcmp(k, "deny_cidrs") == 0)
            o->deny_cidrs = take_cidrs(l, "deny_cidrs", val);
        else if (strcmp(k, "allow_cidrs") == 0)
            o->allow_cidrs = take_cidrs(l, "allow_cidrs", val);
        else if (strcmp(k, "deny_countries") == 0)
            take_countries(l, "deny_countries", val, o->deny_countries, &o->ndeny_countries);
        else if (strcmp(k, "allow_countries") == 0)
            take_countries(l, "allow_countries", val, o->allow_countries, &o->nallow_countries);
        else if (strcmp(k, "deny_asns") == 0)
            take_asns(l, "deny_asns", val, o->deny_asns, &o->ndeny_asns);
        else if (strcmp(k, "allow_asns") == 0)
            take_asns(l, "allow_asns", val, o->allow_asns, &o->nallow_asns);
        else
            unknown_key(l, key, "the organisation policy",
                        "banned_tools, block_telemetry, unidentified, deny_hosts, allow_hosts, "
                        "connect_ports, deny_addresses, deny_cidrs, allow_cidrs, "
                        "deny_countries, allow_countries, deny_asns, allow_asns");
        if (strstr(k, "countries") != NULL && !geoip_has_country(l->geoip))
            perr(l, key,
                 "%s: country rules need a country database; set geoip.country_db in the "
                 "configuration or give --geoip-country",
                 k);
        else if (strstr(k, "asns") != NULL && !geoip_has_asn(l->geoip))
            perr(l, key,
                 "%s: AS rules need an ASN database; set geoip.asn_db in the configuration or "
                 "give --geoip-asn",
                 k);
    }
}

/* Loads one file's text through fn, as load_file() does after reading it. */
static void load_text(const char *path, const char *data, size_t len, struct yamldoc_errors *errs,
                      const struct geoip *geoip,
                      void (*fn)(struct policy_loader *, yaml_node_t *, void *), void *arg)
{
    struct policy_loader l = {.file = path, .errs = errs, .geoip = geoip};
    yaml_document_t doc;

    if (yamldoc_parse(path, data, len, &doc, errs) == 0) {
        l.doc = &doc;
        fn(&l, yaml_document_get_root_node(&doc), arg);
        yaml_document_delete(&doc);
    }
}

/* Loads one YAML file and hands its root to fn. */
static void load_file(const char *path, struct yamldoc_errors *errs, const struct geoip *geoip,
                      void (*fn)(struct policy_loader *, yaml_node_t *, void *), void *arg)
{
    size_t len = 0;
    char *data = yamldoc_read_file(path, &len, errs);

    if (data == NULL)
        return;
    load_text(path, data, len, errs, geoip, fn, arg);
    free(data);
}

/* load_file() adapter for a tool profile. */
static void load_tool_cb(struct policy_loader *l, yaml_node_t *root, void *arg)
{
    load_tool(l, root, arg);
}

/* load_file() adapter for the organisation policy. */
static void load_org_cb(struct policy_loader *l, yaml_node_t *root, void *arg)
{
    load_org(l, root, arg);
}

/* Frees a string array. */
static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
}

/* Frees everything a tool owns. */
static void tool_clear(struct policy_tool *t)
{
    free(t->id);
    free(t->name);
    free(t->file);
    free_list(t->proxy_users, t->nproxy_users);
    free_list(t->user_agents, t->nuser_agents);
    free_list(t->executables, t->nexecutables);
    for (size_t i = 0; i < t->nendpoints; i++) {
        struct policy_endpoint *e = &t->endpoints[i];
        free(e->group);
        domainset_free(e->hosts);
        free_list(e->methods, e->nmethods);
        free_list(e->paths, e->npaths);
    }
    free(t->endpoints);
}

/* Frees a snapshot. */
static void policy_free(struct policy_snapshot *p)
{
    for (size_t i = 0; i < p->ntools; i++)
        tool_clear(&p->tools[i]);
    free(p->tools);
    free(p->org.file);
    free_list(p->org.banned, p->org.nbanned);
    domainset_free(p->org.deny_hosts);
    domainset_free(p->org.allow_hosts);
    netguard_cidrs_free(p->org.deny_cidrs);
    netguard_cidrs_free(p->org.allow_cidrs);
    geoip_close(p->geoip);
    free(p->dir);
    free(p);
}

/* Compares file names for a stable load order. */
static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Loads every dir/tools/NAME.yaml profile, in name order. */
static void load_tools(struct policy_snapshot *p, const char *dir, struct yamldoc_errors *errs)
{
    char tools_dir[4096], *names[1024];
    size_t nnames = 0;
    DIR *d;
    struct dirent *de;

    snprintf(tools_dir, sizeof(tools_dir), "%s/tools", dir);
    d = opendir(tools_dir);
    if (d == NULL)
        return; /* no profiles: every client is unidentified */
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.' || !((n > 5 && strcmp(de->d_name + n - 5, ".yaml") == 0) ||
                                      (n > 4 && strcmp(de->d_name + n - 4, ".yml") == 0)))
            continue;
        if (nnames == sizeof(names) / sizeof(names[0])) {
            yamldoc_error(errs, tools_dir, NULL, "more than %zu tool profiles; merge some",
                          sizeof(names) / sizeof(names[0]));
            break;
        }
        if ((names[nnames] = strdup(de->d_name)) == NULL) {
            yamldoc_error(errs, tools_dir, NULL, "out of memory");
            break;
        }
        nnames++;
    }
    closedir(d);
    qsort(names, nnames, sizeof(names[0]), name_cmp);
    p->tools = calloc(nnames > 0 ? nnames : 1, sizeof(*p->tools));
    if (p->tools == NULL)
        yamldoc_error(errs, tools_dir, NULL, "out of memory");
    for (size_t i = 0; i < nnames; i++) {
        char path[4400];
        struct policy_tool *t;
        snprintf(path, sizeof(path), "%s/%s", tools_dir, names[i]);
        free(names[i]);
        if (p->tools == NULL)
            continue;
        t = &p->tools[p->ntools++];
        t->file = strdup(path);
        if (t->file == NULL) {
            yamldoc_error(errs, path, NULL, "out of memory");
            continue;
        }
        load_file(path, errs, NULL, load_tool_cb, t);
    }
}

/* Checks what only the whole directory can tell: unique ids and users, banned tools exist. */
static void check_references(struct policy_snapshot *p, struct yamldoc_errors *errs)
{
    for (size_t i = 0; i < p->ntools; i++) {
        const struct policy_tool *t = &p->tools[i];
        for (size_t j = 0; j < i && t->id != NULL; j++)
            if (p->tools[j].id != NULL && strcmp(p->tools[j].id, t->id) == 0)
                yamldoc_error(errs, t->file, NULL, "tool id '%s' is also used by %s", t->id,
                              p->tools[j].file);
        for (size_t u = 0; u < t->nproxy_users; u++) {
            const struct policy_tool *other = policy_find_tool(p, t->proxy_users[u]);
            if (other != NULL && other != t)
                yamldoc_error(errs, t->file, NULL, "proxy user '%s' also names tool '%s' (%s)",
                              t->proxy_users[u], other->id, other->file);
        }
    }
    for (size_t i = 0; i < p->org.nbanned; i++)
        if (policy_find_tool(p, p->org.banned[i]) == NULL)
            yamldoc_error(errs, p->org.file, NULL,
                          "banned_tools: no tool profile has the id '%s'; add "
                          "tools/%s.yaml or fix the name",
                          p->org.banned[i], p->org.banned[i]);
}

/* Snapshots made so far, for their generation numbers. */
static atomic_uint policy_generations;

/* Loads a policy directory into a new snapshot. */
struct policy_snapshot *policy_load(const struct policy_source *src, struct yamldoc_errors *errs)
{
    struct policy_snapshot *p = calloc(1, sizeof(*p));
    char org_path[4400];
    struct stat st;

    memset(errs, 0, sizeof(*errs));
    if (p == NULL)
        return NULL;
    atomic_init(&p->refs, 1);
    p->self = src->self;
    p->org.unidentified = POLICY_ALLOW;
    /* A shared gateway never dials inward; a laptop proxy may reach the developer's own
       services, but never cloud metadata or itself. */
    p->org.deny_classes = src->gateway ? NETGUARD_ALL_CLASSES
                                       : NETGUARD_METADATA | NETGUARD_SELF | NETGUARD_UNSPECIFIED;
    if (src->geoip_country_db != NULL || src->geoip_asn_db != NULL) {
        char err[512];
        p->geoip = geoip_open(src->geoip_country_db, src->geoip_asn_db, err, sizeof(err));
        if (p->geoip == NULL)
            yamldoc_error(errs, "geoip", NULL, "%s", err);
    }
    if (src->dir == NULL) {
        p->org.file = strdup("(built-in: no policy directory)");
    } else if (stat(src->dir, &st) != 0) {
        yamldoc_error(errs, src->dir, NULL, "cannot read the policy directory: %s",
                      strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
        yamldoc_error(errs, src->dir, NULL,
                      "not a directory; give the policy directory, which holds tools/ and "
                      "organisation.yaml");
    } else {
        p->dir = realpath(src->dir, NULL); /* messages name the files plainly */
        if (p->dir == NULL)
            p->dir = strdup(src->dir);
        load_tools(p, p->dir != NULL ? p->dir : src->dir, errs);
        snprintf(org_path, sizeof(org_path), "%s/organisation.yaml",
                 p->dir != NULL ? p->dir : src->dir);
        if (stat(org_path, &st) == 0) {
            p->org.file = strdup(org_path);
            load_file(org_path, errs, p->geoip, load_org_cb, &p->org);
        } else {
            p->org.file = strdup("(built-in: no organisation.yaml)");
        }
        if (p->org.file != NULL)
            check_references(p, errs);
    }
    for (size_t i = 0; i < src->nbound; i++)
        if (src->bound_tools[i] != NULL && policy_find_tool(p, src->bound_tools[i]) == NULL)
            yamldoc_error(errs, src->bound_file, NULL,
                          "listen: %s is bound to tool '%s', which has no profile in %s; add "
                          "tools/%s.yaml there or fix the name",
                          src->bound_names[i], src->bound_tools[i],
                          p->dir != NULL ? p->dir : "(no policy directory)", src->bound_tools[i]);
    if (p->org.file == NULL && errs->count == 0) /* a strdup failed; nothing else did */
        yamldoc_error(errs, src->dir != NULL ? src->dir : "policy", NULL, "out of memory");
    if (errs->count > 0) {
        policy_free(p);
        return NULL;
    }
    p->generation = atomic_fetch_add(&policy_generations, 1) + 1;
    return p;
}

/* Parses one profile or organisation text alone, for tests and fuzzing. */
int policy_check_text(const char *path, const char *data, size_t len, bool is_org,
                      struct yamldoc_errors *errs)
{
    struct policy_snapshot *p = calloc(1, sizeof(*p));

    memset(errs, 0, sizeof(*errs));
    if (p == NULL)
        return -1;
    if (is_org) {
        load_text(path, data, len, errs, NULL, load_org_cb, &p->org);
    } else {
        p->tools = calloc(1, sizeof(*p->tools));
        if (p->tools != NULL) {
            p->ntools = 1;
            load_text(path, data, len, errs, NULL, load_tool_cb, &p->tools[0]);
        }
    }
    policy_free(p);
    return errs->count > 0 ? -1 : 0;
}

/* Takes a reference. */
struct policy_snapshot *policy_ref(struct policy_snapshot *p)
{
    atomic_fetch_add(&p->refs, 1);
    return p;
}

/* Drops a reference; the last frees. */
void policy_unref(struct policy_snapshot *p)
{
    if (p != NULL && atomic_fetch_sub(&p->refs, 1) == 1)
        policy_free(p);
}

/* Finds a tool by id or proxy user name. */
const struct policy_tool *policy_find_tool(const struct policy_snapshot *p, const char *name)
{
    for (size_t i = 0; i < p->ntools; i++) {
        const struct policy_tool *t = &p->tools[i];
        if (t->id != NULL && strcmp(t->id, name) == 0)
            return t;
        for (size_t u = 0; u < t->nproxy_users; u++)
            if (strcmp(t->proxy_users[u], name) == 0)
                return t;
    }
    return NULL;
}

/* True when host is in set. */
static bool in_set(const struct domainset *set, const char *host)
{
    uint32_t value;

    return set != NULL && domainset_lookup(set, host, strlen(host), &value);
}

/*
 * True when the endpoint covers the request.  Methods and paths count only where they are
 * visible: a CONNECT tunnel matches on host and port alone unless the group needs a method
 * or a path, in which case it cannot match (it never blocks or allows a whole shared host
 * on the strength of a path rule).
 */
static bool endpoint_matches(const struct policy_endpoint *e, const struct policy_query *q)
{
    bool port_ok = e->nports == 0, method_ok = e->nmethods == 0, path_ok = e->npaths == 0;

    if (!in_set(e->hosts, q->host))
        return false;
    for (size_t i = 0; i < e->nports && !port_ok; i++)
        port_ok = e->ports[i] == q->port;
    for (size_t i = 0; i < e->nmethods && !method_ok; i++)
        method_ok =
            !q->is_connect && q->method != NULL && strcasecmp(e->methods[i], q->method) == 0;
    for (size_t i = 0; i < e->npaths && !path_ok; i++)
        path_ok = q->path != NULL && strncmp(q->path, e->paths[i], strlen(e->paths[i])) == 0;
    return port_ok && method_ok && path_ok;
}

/* Fills a decision. */
static void decide(struct policy_decision *d, enum policy_verdict v, const char *tool,
                   const char *file, const char *reason, const char *rule, const char *arg)
{
    d->verdict = v;
    d->tool = tool;
    d->file = file;
    d->reason = reason;
    snprintf(d->rule, sizeof(d->rule), "%s%s", rule, arg);
}

/* True when CONNECT may reach port: the organisation's list, else the configuration's. */
static bool connect_port_allowed(const struct policy_snapshot *p, const struct policy_query *q)
{
    if (p->org.nconnect_ports == 0)
        return settings_connect_port_allowed(q->settings, q->port);
    for (size_t i = 0; i < p->org.nconnect_ports; i++)
        if (p->org.connect_ports[i] == q->port)
            return true;
    return false;
}

/* Decides a request; the order here is the documented order of evaluation. */
void policy_decide(const struct policy_snapshot *p, const struct policy_query *q,
                   struct policy_decision *d)
{
    const struct policy_tool *t = q->tool;
    const char *tool = t != NULL ? t->id : "unidentified";
    const char *org = p->org.file;

    /* 1. A banned tool goes nowhere. */
    for (size_t i = 0; t != NULL && i < p->org.nbanned; i++)
        if (strcmp(p->org.banned[i], t->id) == 0) {
            decide(d, POLICY_BLOCK, tool, org,
                   "this tool is banned by the organisation policy; ask your administrator",
                   "ban:", t->id);
            return;
        }
    /* 2. Global deny: hosts (unless excepted) and CONNECT ports. */
    if (in_set(p->org.deny_hosts, q->host) && !in_set(p->org.allow_hosts, q->host)) {
        decide(d, POLICY_BLOCK, tool, org,
               "this host is denied by the organisation policy for every tool", "deny-host", "");
        return;
    }
    if (q->is_connect && !connect_port_allowed(p, q)) {
        decide(d, POLICY_BLOCK, tool, p->org.nconnect_ports > 0 ? org : "the configuration",
               "CONNECT to this port is not allowed; add it to connect_ports", "connect-ports", "");
        return;
    }
    if (t != NULL) {
        bool block_telemetry = p->org.block_telemetry || t->block_telemetry;
        /* 3. The tool's telemetry, when blocked. */
        for (size_t i = 0; block_telemetry && i < t->nendpoints; i++) {
            const struct policy_endpoint *e = &t->endpoints[i];
            if (purpose_is_telemetry(e->purpose) && endpoint_matches(e, q)) {
                decide(d, POLICY_BLOCK, tool, t->file,
                       "this tool's telemetry is blocked by policy; turn it off in the tool",
                       "telemetry:", e->group);
                return;
            }
        }
        /* 4. The tool's allowlist. */
        for (size_t i = 0; i < t->nendpoints; i++) {
            const struct policy_endpoint *e = &t->endpoints[i];
            if (endpoint_matches(e, q) && !(block_telemetry && purpose_is_telemetry(e->purpose))) {
                decide(d, POLICY_ALLOW, tool, t->file, "", "allow:", e->group);
                return;
            }
        }
        /* 5. The tool's default. */
        decide(d, t->default_verdict, tool, t->file,
               "this host is not among the tool's endpoints; add it to its profile if the tool "
               "needs it",
               "default", "");
        return;
    }
    /* 6. No tool identified. */
    decide(d, p->org.unidentified, tool, org,
           "the client is not identified as a known tool; connect as "
           "http://TOOL@proxy:port or through the tool's listener",
           "unidentified", "");
}

/* True when code is among the n country codes of list. */
static bool has_country(const char (*list)[3], size_t n, const char *code)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], code) == 0)
            return true;
    return false;
}

/* True when asn is among the n numbers of list. */
static bool has_asn(const uint32_t *list, size_t n, uint32_t asn)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == asn)
            return true;
    return false;
}

/* The port of an AF_INET or AF_INET6 socket address, in host byte order. */
static uint16_t sockaddr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
}

/* Checks an address about to be dialled; the order within is classes, CIDRs, country, ASN. */
bool policy_check_address(const struct policy_snapshot *p, const struct policy_tool *t,
                          const struct sockaddr *sa, struct policy_dest *dest,
                          struct policy_decision *d)
{
    const struct policy_org *o = &p->org;
    const char *org = o->file, *tool = t != NULL ? t->id : "unidentified";
    struct netguard_addr a;
    struct geoip_result geo;
    uint32_t classes;
    char arg[16];

    memset(dest, 0, sizeof(*dest));
    if (!netguard_from_sockaddr(sa, &a)) {
        decide(d, POLICY_BLOCK, tool, org, "the address family is not IPv4 or IPv6", "deny-address",
               "");
        return false;
    }
    netguard_format(&a, dest->ip, sizeof(dest->ip));
    if (p->geoip != NULL) {
        geoip_lookup(p->geoip, sa, &geo);
        memcpy(dest->country, geo.country, sizeof(dest->country));
        dest->asn = geo.asn;
    }
    if (!netguard_cidrs_match(o->allow_cidrs, &a)) {
        classes = netguard_classify_target(p->self, &a, sockaddr_port(sa));
        if ((classes & o->deny_classes) != 0) {
            uint32_t bit = classes & o->deny_classes;
            /* One name in the rule: metadata, the most specific, else the lowest class. */
            bit = (bit & NETGUARD_METADATA) != 0 ? NETGUARD_METADATA : bit & ~(bit - 1);
            decide(d, POLICY_BLOCK, tool, org,
                   bit == NETGUARD_SELF
                       ? "the address is one of sluice's own listeners; the request would loop "
                         "back into the proxy"
                       : "the host resolves to an address of a class the organisation policy "
                         "denies (deny_addresses); list it in allow_cidrs if it must be reached",
                   "deny-address:", netguard_class_str(bit));
            return false;
        }
        if (netguard_cidrs_match(o->deny_cidrs, &a)) {
            decide(d, POLICY_BLOCK, tool, org,
                   "the host resolves to an address in deny_cidrs of the organisation policy",
                   "deny-cidr", "");
            return false;
        }
    }
    if (has_country(o->deny_countries, o->ndeny_countries, dest->country)) {
        decide(d, POLICY_BLOCK, tool, org,
               "the host's address is in a country the organisation policy denies",
               "deny-country:", dest->country);
        return false;
    }
    if (o->nallow_countries > 0 &&
        !has_country(o->allow_countries, o->nallow_countries, dest->country)) {
        decide(d, POLICY_BLOCK, tool, org,
               dest->country[0] != '\0'
                   ? "the host's address is outside the countries the organisation policy allows"
                   : "the country of the host's address is unknown, and the organisation policy "
                     "allows only listed countries",
               "allow-countries:", dest->country[0] != '\0' ? dest->country : "unknown");
        return false;
    }
    if (o->ndeny_asns == 0 && o->nallow_asns == 0)
        return true;
    snprintf(arg, sizeof(arg), "AS%u", dest->asn);
    if (dest->asn != 0 && has_asn(o->deny_asns, o->ndeny_asns, dest->asn)) {
        decide(d, POLICY_BLOCK, tool, org,
               "the host's address belongs to an autonomous system the organisation policy denies",
               "deny-asn:", arg);
        return false;
    }
    if (o->nallow_asns > 0 && !has_asn(o->allow_asns, o->nallow_asns, dest->asn)) {
        decide(d, POLICY_BLOCK, tool, org,
               "the host's address is outside the autonomous systems the organisation policy "
               "allows",
               "allow-asns:", dest->asn != 0 ? arg : "unknown");
        return false;
    }
    return true;
}

/* The snapshot new requests take; swapped whole by policy_install(). */
static struct policy_snapshot *policy_current;
static pthread_mutex_t policy_current_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint policy_current_gen; /* policy_current's generation, read without the lock */

/* Installs a new current snapshot. */
void policy_install(struct policy_snapshot *p)
{
    struct policy_snapshot *old;

    pthread_mutex_lock(&policy_current_lock);
    old = policy_current;
    policy_current = p;
    atomic_store(&policy_current_gen, p != NULL ? p->generation : 0);
    pthread_mutex_unlock(&policy_current_lock);
    policy_unref(old);
}

/* The current snapshot's generation. */
unsigned policy_current_generation(void)
{
    return atomic_load_explicit(&policy_current_gen, memory_order_acquire);
}

/* References the current snapshot. */
struct policy_snapshot *policy_acquire(void)
{
    struct policy_snapshot *p;

    pthread_mutex_lock(&policy_current_lock);
    p = policy_current != NULL ? policy_ref(policy_current) : NULL;
    pthread_mutex_unlock(&policy_current_lock);
    return p;
}
