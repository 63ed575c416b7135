/*
 * Policies; see include/sluice/policy.h for the files, the snapshot and the order of
 * evaluation, which policy_decide() below is the only place to implement.
 *
 * Each kind of mapping in a policy file (tool profile, its identify section, endpoint
 * group, organisation policy) is a table of keys below, and one walk, walk_mapping(),
 * loads them all: a repeated key is an error, an unknown one is an error that lists the
 * table's keys, a known one is read by its type into the field the table names, and the
 * required keys that are still missing are reported last.  A key is added in one place.
 */
#include "sluice/policy.h"

#include <ctype.h>
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
#include "sluice/urlpath.h"

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

/* How a key's value is read, and what it is stored into. */
enum policy_key_type {
    PK_STRING,    /* a non-empty value into an owned char * */
    PK_LIST,      /* non-empty values (or one) into char *[POLICY_MAX_LIST] and a count */
    PK_PATHS,     /* path prefixes as PK_LIST, each in its normalised form (urlpath.h) */
    PK_ENV,       /* "NAME=VALUE" environment settings as PK_LIST */
    PK_SHA256,    /* SHA-256 digests as PK_LIST: 64 hex digits each, kept in lower case */
    PK_VERDICT,   /* allow, block or report into enum policy_verdict */
    PK_TLS,       /* inspect, splice or block into enum policy_tls */
    PK_CAPTURE,   /* none, requests or requests-and-responses into enum policy_capture */
    PK_BOOL,      /* true or false into bool */
    PK_PURPOSE,   /* one of purpose_names[] into enum policy_purpose */
    PK_PORTS,     /* ports into uint16_t[POLICY_MAX_LIST] and a count */
    PK_HOSTS,     /* host names and *.suffix wildcards into an owned struct domainset * */
    PK_CLASSES,   /* address class names into a uint32_t set of NETGUARD_* bits */
    PK_CIDRS,     /* prefixes and addresses into an owned struct netguard_cidrs * */
    PK_COUNTRIES, /* country codes into char[POLICY_MAX_CODES][3] and a count */
    PK_ASNS,      /* AS numbers into uint32_t[POLICY_MAX_CODES] and a count */
    PK_MAPPING,   /* a nested mapping whose keys are fields of the same struct */
    PK_ENDPOINTS, /* a list of mappings by inner (elements of inner->size) into an owned
                     array and a count */
    PK_FIELDS,    /* "Name: value" request fields as PK_LIST */
};

/* What a key asks besides its type. */
#define PK_F_REQUIRED   0x01u /* its mapping is incomplete without it */
#define PK_F_NAME       0x02u /* a PK_STRING that names its mapping in "needs" messages */
#define PK_F_TOOL_ID    0x04u /* a PK_STRING that must be a tool id */
#define PK_F_COUNTRY_DB 0x08u /* a rule that needs the country database */
#define PK_F_ASN_DB     0x10u /* a rule that needs the ASN database */

struct policy_mapping;

/* One key of a mapping: its name and type, where its value goes, what a valid one is. */
struct policy_key {
    const char *name;
    enum policy_key_type type;
    unsigned flags;                     /* PK_F_* */
    size_t offset;                      /* of the field in the mapping's struct */
    size_t count;                       /* of the size_t entry count, for the list types */
    const char *expect;                 /* what a valid value is, for messages; PK_MAPPING: NULL */
    const char *missing;                /* PK_F_REQUIRED: "an id" in "... needs an id" */
    const struct policy_mapping *inner; /* PK_MAPPING, PK_ENDPOINTS: the inner mapping */
};

/* One kind of mapping: its keys, in the order messages list them, and how messages name it. */
struct policy_mapping {
    const struct policy_key *keys;
    size_t nkeys;
    const char *shape;       /* what a node of this kind is, for "found a list; expected ..." */
    const char *where;       /* "a tool profile", for unknown and missing keys */
    const char *named;       /* "tool profile", before the value of its PK_F_NAME key; or NULL */
    size_t size;             /* the struct of one element, for a list of these (PK_ENDPOINTS) */
    void (*init)(void *obj); /* sets an element's defaults before its keys are read; or NULL */
};

#define NKEYS(keys)      (sizeof(keys) / sizeof((keys)[0]))
#define TOOL(field)      offsetof(struct policy_tool, field)
#define ENDPOINT(field)  offsetof(struct policy_endpoint, field)
#define ORG(field)       offsetof(struct policy_org, field)
#define FIELDRULE(field) offsetof(struct policy_header_rule, field)

/* The identify section of a tool profile; its fields are in struct policy_tool. */
static const struct policy_key identify_keys[] = {
    {"proxy_users", PK_LIST, 0, TOOL(proxy_users), TOOL(nproxy_users), "a list of values", NULL,
     NULL},
    {"user_agents", PK_LIST, 0, TOOL(user_agents), TOOL(nuser_agents), "a list of values", NULL,
     NULL},
    {"executables", PK_LIST, 0, TOOL(executables), TOOL(nexecutables), "a list of values", NULL,
     NULL},
    {"sha256", PK_SHA256, 0, TOOL(sha256), TOOL(nsha256), "a list of SHA-256 digests", NULL, NULL},
};

static const struct policy_mapping identify_mapping = {
    .keys = identify_keys,
    .nkeys = NKEYS(identify_keys),
    .shape = "a mapping",
    .where = "identify",
};

/* One endpoint group of a tool profile. */
static const struct policy_key endpoint_keys[] = {
    {"group", PK_STRING, PK_F_REQUIRED | PK_F_NAME, ENDPOINT(group), 0, "a non-empty value",
     "a group name", NULL},
    {"purpose", PK_PURPOSE, 0, ENDPOINT(purpose), 0,
     "api, auth, update, telemetry, crash-reporting, feature-flags or other", NULL, NULL},
    {"hosts", PK_HOSTS, PK_F_REQUIRED, ENDPOINT(hosts), 0,
     "a list of host names or *.suffix wildcards", "hosts", NULL},
    {"ports", PK_PORTS, 0, ENDPOINT(ports), ENDPOINT(nports), "a list of values", NULL, NULL},
    {"methods", PK_LIST, 0, ENDPOINT(methods), ENDPOINT(nmethods), "a list of values", NULL, NULL},
    {"tls", PK_TLS, 0, ENDPOINT(tls), 0, "inspect, splice or block", NULL, NULL},
    {"capture", PK_CAPTURE, 0, ENDPOINT(capture), 0, "none, requests or requests-and-responses",
     NULL, NULL},
    {"paths", PK_PATHS, 0, ENDPOINT(paths), ENDPOINT(npaths), "a list of path prefixes", NULL,
     NULL},
};

/* A group that does not say is not telemetry. */
static void endpoint_init(void *obj)
{
    ((struct policy_endpoint *)obj)->purpose = POLICY_PURPOSE_OTHER;
}

static const struct policy_mapping endpoint_mapping = {
    .keys = endpoint_keys,
    .nkeys = NKEYS(endpoint_keys),
    .shape = "a mapping with group, purpose and hosts",
    .where = "an endpoint group",
    .named = "endpoint group",
    .size = sizeof(struct policy_endpoint),
    .init = endpoint_init,
};

/* One entry of the organisation's request_headers. */
static const struct policy_key header_rule_keys[] = {
    {"hosts", PK_HOSTS, PK_F_REQUIRED, FIELDRULE(hosts), 0,
     "a list of host names or *.suffix wildcards", "hosts", NULL},
    {"set", PK_FIELDS, PK_F_REQUIRED, FIELDRULE(set), FIELDRULE(nset),
     "a list of 'Name: value' request fields", "fields to set", NULL},
};

static const struct policy_mapping header_rule_mapping = {
    .keys = header_rule_keys,
    .nkeys = NKEYS(header_rule_keys),
    .shape = "a mapping with hosts and set",
    .where = "a request_headers entry",
    .size = sizeof(struct policy_header_rule),
};

/* A tool profile, the whole of a tools/NAME.yaml file. */
static const struct policy_key tool_keys[] = {
    {"id", PK_STRING, PK_F_REQUIRED | PK_F_NAME | PK_F_TOOL_ID, TOOL(id), 0, "a non-empty value",
     "an id", NULL},
    {"name", PK_STRING, 0, TOOL(name), 0, "a non-empty value", NULL, NULL},
    {"identify", PK_MAPPING, 0, 0, 0, NULL, NULL, &identify_mapping},
    {"default", PK_VERDICT, 0, TOOL(default_verdict), 0, "allow, block or report", NULL, NULL},
    {"block_telemetry", PK_BOOL, 0, TOOL(block_telemetry), 0, "true or false", NULL, NULL},
    {"tls", PK_TLS, 0, TOOL(tls), 0, "inspect, splice or block", NULL, NULL},
    {"capture", PK_CAPTURE, 0, TOOL(capture), 0, "none, requests or requests-and-responses", NULL,
     NULL},
    {"splice_pinned", PK_BOOL, 0, TOOL(splice_pinned), 0, "true or false", NULL, NULL},
    {"refuse_uninspectable", PK_BOOL, 0, TOOL(refuse_uninspectable), 0, "true or false", NULL,
     NULL},
    {"telemetry_env", PK_ENV, 0, TOOL(telemetry_env), TOOL(ntelemetry_env),
     "a list of NAME=VALUE settings", NULL, NULL},
    {"endpoints", PK_ENDPOINTS, 0, TOOL(endpoints), TOOL(nendpoints), "a list of endpoint groups",
     NULL, &endpoint_mapping},
};

static const struct policy_mapping tool_mapping = {
    .keys = tool_keys,
    .nkeys = NKEYS(tool_keys),
    .shape = "a tool profile (id, name, identify, default, endpoints)",
    .where = "a tool profile",
    .named = "tool profile",
};

/* The organisation policy, the whole of organisation.yaml. */
static const struct policy_key org_keys[] = {
    {"banned_tools", PK_LIST, 0, ORG(banned), ORG(nbanned), "a list of values", NULL, NULL},
    {"block_telemetry", PK_BOOL, 0, ORG(block_telemetry), 0, "true or false", NULL, NULL},
    {"block_identity_mismatch", PK_BOOL, 0, ORG(block_identity_mismatch), 0, "true or false", NULL,
     NULL},
    {"unidentified", PK_VERDICT, 0, ORG(unidentified), 0, "allow, block or report", NULL, NULL},
    {"tls", PK_TLS, 0, ORG(tls), 0, "inspect, splice or block", NULL, NULL},
    {"capture", PK_CAPTURE, 0, ORG(capture), 0, "none, requests or requests-and-responses", NULL,
     NULL},
    {"splice_pinned", PK_BOOL, 0, ORG(splice_pinned), 0, "true or false", NULL, NULL},
    {"refuse_uninspectable", PK_BOOL, 0, ORG(refuse_uninspectable), 0, "true or false", NULL, NULL},
    {"request_headers", PK_ENDPOINTS, 0, ORG(header_rules), ORG(nheader_rules),
     "a list of mappings with hosts and set", NULL, &header_rule_mapping},
    {"deny_hosts", PK_HOSTS, 0, ORG(deny_hosts), 0, "a list of host names or *.suffix wildcards",
     NULL, NULL},
    {"allow_hosts", PK_HOSTS, 0, ORG(allow_hosts), 0, "a list of host names or *.suffix wildcards",
     NULL, NULL},
    {"connect_ports", PK_PORTS, 0, ORG(connect_ports), ORG(nconnect_ports), "a list of values",
     NULL, NULL},
    {"deny_addresses", PK_CLASSES, 0, ORG(deny_classes), 0, "a list of address classes", NULL,
     NULL},
    {"deny_cidrs", PK_CIDRS, 0, ORG(deny_cidrs), 0, "a list of CIDR prefixes such as 10.0.0.0/8",
     NULL, NULL},
    {"allow_cidrs", PK_CIDRS, 0, ORG(allow_cidrs), 0, "a list of CIDR prefixes such as 10.0.0.0/8",
     NULL, NULL},
    {"deny_countries", PK_COUNTRIES, PK_F_COUNTRY_DB, ORG(deny_countries), ORG(ndeny_countries),
     "a list of two-letter country codes", NULL, NULL},
    {"allow_countries", PK_COUNTRIES, PK_F_COUNTRY_DB, ORG(allow_countries), ORG(nallow_countries),
     "a list of two-letter country codes", NULL, NULL},
    {"deny_asns", PK_ASNS, PK_F_ASN_DB, ORG(deny_asns), ORG(ndeny_asns),
     "a list of AS numbers such as AS64500", NULL, NULL},
    {"allow_asns", PK_ASNS, PK_F_ASN_DB, ORG(allow_asns), ORG(nallow_asns),
     "a list of AS numbers such as AS64500", NULL, NULL},
};

static const struct policy_mapping org_mapping = {
    .keys = org_keys,
    .nkeys = NKEYS(org_keys),
    .shape = "the organisation policy",
    .where = "the organisation policy",
};

/* The name of a purpose, as profiles write it. */
const char *policy_purpose_str(enum policy_purpose p)
{
    return (size_t)p < sizeof(purpose_names) / sizeof(purpose_names[0]) ? purpose_names[p] : "?";
}

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

/* Reports a node of the wrong kind: "key: found a list; expected ...", without key at the top. */
static void wrong_kind(struct policy_loader *l, const char *key, const yaml_node_t *n,
                       const char *expect)
{
    perr(l, n, "%s%sfound %s; expected %s", key != NULL ? key : "", key != NULL ? ": " : "",
         yamldoc_kind(n), expect);
}

/* Copies a non-empty scalar into an owned string; false (with an error) for anything else. */
static bool take_string(struct policy_loader *l, const char *key, const char *expect,
                        yaml_node_t *n, char **out)
{
    const char *s = yamldoc_scalar(n);

    if (s == NULL || s[0] == '\0') {
        wrong_kind(l, key, n, expect);
        return false;
    }
    free(*out);
    *out = strdup(s);
    if (*out == NULL)
        perr(l, n, "%s: out of memory", key);
    return *out != NULL;
}

/* Copies a list of scalars (or one scalar) into out[0..*count). */
static bool take_list(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                      char **out, size_t *count)
{
    if (n->type == YAML_SCALAR_NODE) {
        if (*count >= POLICY_MAX_LIST) {
            perr(l, n, "%s: too many entries (at most %d)", k->name, POLICY_MAX_LIST);
            return false;
        }
        out[*count] = NULL;
        if (!take_string(l, k->name, "a non-empty value", n, &out[*count]))
            return false;
        (*count)++;
        return true;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        wrong_kind(l, k->name, n, k->expect);
        return false;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = pnode(l, *it);
        if (*count >= POLICY_MAX_LIST) {
            perr(l, item, "%s: too many entries (at most %d)", k->name, POLICY_MAX_LIST);
            return false;
        }
        out[*count] = NULL;
        if (!take_string(l, k->name, "a non-empty value", item, &out[*count]))
            return false;
        (*count)++;
    }
    return true;
}

/*
 * Takes a list of environment settings, each "NAME=VALUE" with NAME a variable name
 * ([A-Z_][A-Z0-9_]*) and VALUE without control bytes: what sluice run sets.
 */
static void take_env(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                     char **out, size_t *count)
{
    size_t before = *count;

    if (!take_list(l, k, n, out, count))
        return;
    for (size_t i = before; i < *count; i++) {
        const char *e = out[i], *eq = strchr(e, '=');
        bool ok = eq != NULL && eq > e && !(e[0] >= '0' && e[0] <= '9');

        for (const char *c = e; ok && c < eq; c++)
            ok = (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_';
        for (const char *c = eq != NULL ? eq + 1 : e; ok && *c != '\0'; c++)
            ok = (unsigned char)*c >= 0x20 && *c != 0x7f;
        if (!ok) {
            char shown[96];
            snprintf(shown, sizeof(shown), "%.80s", e);
            perr(l, n, "%s: '%s' is not a NAME=VALUE setting (NAME in upper case, digits and _)",
                 k->name, shown);
        }
    }
}

/* A list of SHA-256 digests: 64 hex digits each, kept in lower case. */
static void take_sha256(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                        char **out, size_t *count)
{
    size_t before = *count;

    if (!take_list(l, k, n, out, count))
        return;
    for (size_t i = before; i < *count; i++) {
        char *d = out[i];
        size_t len = strlen(d), hex = strspn(d, "0123456789abcdefABCDEF");

        if (len != 64 || hex != 64) {
            char shown[96];
            snprintf(shown, sizeof(shown), "%.80s", d);
            perr(l, n,
                 "%s: '%s' is not a SHA-256 digest (64 hex digits, as sha256sum prints; "
                 "sluice tools which PID prints a running tool's)",
                 k->name, shown);
            continue;
        }
        for (size_t c = 0; c < len; c++)
            d[c] = (char)tolower((unsigned char)d[c]);
    }
}

/*
 * Writes every byte of *text outside printable ASCII (0x21-0x7E) as %XX, replacing *text
 * when there was one.  Returns false when out of memory (*text is left as it was).
 */
static bool escape_unprintable(char **text)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0, len = strlen(*text);
    char *esc;

    for (size_t i = 0; i < len; i++)
        n += (unsigned char)(*text)[i] < 0x21 || (unsigned char)(*text)[i] > 0x7e;
    if (n == 0)
        return true;
    if ((esc = malloc(len + 2 * n + 1)) == NULL)
        return false;
    n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)(*text)[i];
        if (c >= 0x21 && c <= 0x7e) {
            esc[n++] = (char)c;
            continue;
        }
        esc[n++] = '%';
        esc[n++] = hex[c >> 4];
        esc[n++] = hex[c & 0xf];
    }
    esc[n] = '\0';
    free(*text);
    *text = esc;
    return true;
}

/*
 * Reads a list of path prefixes and puts each in the form request paths are matched in
 * (urlpath_normalize), so that "/%761/" and "/v1/" are one rule; a prefix that does not
 * start with '/' or that servers would read in different ways is an error.
 */
static void take_paths(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                       char **out, size_t *count)
{
    size_t first = *count;

    if (!take_list(l, k, n, out, count))
        return;
    for (size_t i = first; i < *count; i++) {
        /* The node of this entry, for the message: the list's item, or n for a scalar. */
        yaml_node_t *at =
            n->type == YAML_SEQUENCE_NODE ? pnode(l, n->data.sequence.items.start[i - first]) : n;
        size_t len;
        char *norm, flags_text[128];
        unsigned flags = 0;

        /* A request carries only printable ASCII in its target (http1.c): "/ü" or "/a b"
         * arrive as "/%C3%BC" and "/a%20b", so the prefix is matched in that spelling. */
        if (!escape_unprintable(&out[i])) {
            perr(l, at, "%s: out of memory", k->name);
            return;
        }
        len = strlen(out[i]);
        if ((norm = malloc(len + 2)) == NULL) {
            perr(l, at, "%s: out of memory", k->name);
            return;
        }
        if (out[i][0] != '/' || urlpath_normalize(out[i], len, norm, len + 2, &flags) < 0 ||
            (flags & URLPATH_AMBIGUOUS) != 0) {
            urlpath_flags_format(flags, flags_text, sizeof(flags_text));
            perr(l, at,
                 "%s: '%s' is not a plain path prefix (%s); expected a path that starts with "
                 "one '/', without dot segments above the root, encoded '/' or '\\', or '%%00'",
                 k->name, out[i], out[i][0] != '/' ? "no leading '/'" : flags_text);
            free(norm);
            continue;
        }
        free(out[i]);
        out[i] = norm;
    }
}

/* Parses allow / block / report. */
static bool take_verdict(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
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
        perr(l, n, "%s: '%s' is not a decision; expected %s", k->name,
             yamldoc_shown(n, shown, sizeof(shown)), k->expect);
        return false;
    }
    return true;
}

/* Parses true / false. */
static bool take_bool(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                      bool *out)
{
    const char *s = yamldoc_scalar(n);

    if (s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0))
        *out = true;
    else if (s != NULL && (strcmp(s, "false") == 0 || strcmp(s, "no") == 0))
        *out = false;
    else {
        wrong_kind(l, k->name, n, k->expect);
        return false;
    }
    return true;
}

static const char *const tls_names[] = {"", "splice", "inspect", "block"};

/* Name of a TLS mode. */
const char *policy_tls_str(enum policy_tls m)
{
    return (size_t)m < sizeof(tls_names) / sizeof(tls_names[0]) ? tls_names[m] : "?";
}

/*
 * Parses one of names[first..count) (what says what they are, for the error), into *out as
 * its index.  False, with an error, for anything else.
 */
static bool take_name(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                      const char *const *names, size_t first, size_t count, const char *what,
                      size_t *out)
{
    const char *s = yamldoc_scalar(n);

    for (size_t i = first; s != NULL && i < count; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return true;
        }
    if (s != NULL)
        perr(l, n, "%s: '%s' is not %s; expected %s", k->name, s, what, k->expect);
    else
        perr(l, n, "%s: expected %s", k->name, k->expect);
    return false;
}

/* Parses a TLS mode (never UNSET, whose name is ""). */
static void take_tls(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                     enum policy_tls *out)
{
    size_t i;

    if (take_name(l, k, n, tls_names, 1, sizeof(tls_names) / sizeof(tls_names[0]), "a TLS mode",
                  &i))
        *out = (enum policy_tls)i;
}

static const char *const capture_names[] = {"", "none", "requests", "requests-and-responses"};

/* Name of a capture setting. */
const char *policy_capture_str(enum policy_capture c)
{
    return (size_t)c < sizeof(capture_names) / sizeof(capture_names[0]) ? capture_names[c] : "?";
}

/* Parses a capture setting (never UNSET, whose name is ""). */
static void take_capture(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                         enum policy_capture *out)
{
    size_t i;

    if (take_name(l, k, n, capture_names, 1, sizeof(capture_names) / sizeof(capture_names[0]),
                  "a capture setting", &i))
        *out = (enum policy_capture)i;
}

/* Parses the name of an endpoint group's purpose. */
static void take_purpose(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                         enum policy_purpose *out)
{
    size_t i;

    if (take_name(l, k, n, purpose_names, 0, sizeof(purpose_names) / sizeof(purpose_names[0]),
                  "a purpose", &i))
        *out = (enum policy_purpose)i;
}

/* Parses a list of ports. */
static bool take_ports(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                       uint16_t *out, size_t *count)
{
    char *texts[POLICY_MAX_LIST] = {0};
    size_t ntexts = 0;
    bool ok = take_list(l, k, n, texts, &ntexts);

    for (size_t i = 0; i < ntexts; i++) {
        uint32_t port;
        const char *errstr = NULL;
        if (ok && settings_parse_uint(texts[i], 1, 65535, &port, &errstr) < 0) {
            perr(l, n, "%s: '%s': %s; expected ports from 1 to 65535", k->name, texts[i], errstr);
            ok = false;
        } else if (ok) {
            out[(*count)++] = (uint16_t)port;
        }
        free(texts[i]);
    }
    return ok;
}

/* Builds a frozen domain set from a list of host patterns. */
static struct domainset *take_hosts(struct policy_loader *l, const struct policy_key *k,
                                    yaml_node_t *n)
{
    struct domainset *set = domainset_new();

    if (set == NULL) {
        perr(l, n, "%s: out of memory", k->name); /* a list that is not loaded must not pass */
        return NULL;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        wrong_kind(l, k->name, n, k->expect);
        domainset_free(set);
        return NULL;
    }
    /* A group's hosts say where its rules apply: an empty list would match nothing, and a
     * telemetry group with it would block nothing without a word. */
    if ((k->flags & PK_F_REQUIRED) != 0 &&
        n->data.sequence.items.top == n->data.sequence.items.start)
        perr(l, n, "%s: the list is empty; expected %s", k->name, k->expect);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = pnode(l, *it);
        const char *host = yamldoc_scalar(item), *errstr = NULL;
        char shown[96];
        if (host == NULL || domainset_add(set, host, 1, &errstr) < 0)
            perr(l, item, "%s: '%s' is not a host name or *.suffix wildcard%s%s", k->name,
                 yamldoc_shown(item, shown, sizeof(shown)), errstr != NULL ? ": " : "",
                 errstr != NULL ? errstr : "");
    }
    if (domainset_freeze(set) < 0) {
        perr(l, n, "%s: out of memory", k->name);
        domainset_free(set);
        return NULL;
    }
    return set;
}

/* Parses a list of address class names ("all" for every class) into a bit set. */
static void take_classes(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                         uint32_t *out)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        wrong_kind(l, k->name, n, k->expect);
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
                 k->name, yamldoc_shown(item, shown, sizeof(shown)));
        *out |= bit;
    }
}

/* Builds a CIDR set from a list of prefixes and addresses. */
static struct netguard_cidrs *take_cidrs(struct policy_loader *l, const struct policy_key *k,
                                         yaml_node_t *n)
{
    struct netguard_cidrs *set;

    if (n->type != YAML_SEQUENCE_NODE) {
        wrong_kind(l, k->name, n, k->expect);
        return NULL;
    }
    set = netguard_cidrs_new();
    if (set == NULL) {
        perr(l, n, "%s: out of memory", k->name);
        return NULL;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = pnode(l, *it);
        const char *text = yamldoc_scalar(item), *errstr = "found a list or a mapping";
        char shown[96];

        if (text == NULL || netguard_cidrs_add(set, text, &errstr) < 0)
            perr(l, item, "%s: '%s' is not a CIDR prefix or an address: %s", k->name,
                 yamldoc_shown(item, shown, sizeof(shown)), errstr);
    }
    return set;
}

/* Parses a list of ISO 3166 country codes. */
static void take_countries(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                           char (*out)[3], size_t *count)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        wrong_kind(l, k->name, n, k->expect);
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = pnode(l, *it);
        const char *text = yamldoc_scalar(item);
        char shown[64];

        if (*count >= POLICY_MAX_CODES) {
            perr(l, item, "%s: too many entries (at most %d)", k->name, POLICY_MAX_CODES);
            return;
        }
        if (text == NULL || !geoip_country_code_valid(text, out[*count]))
            perr(l, item, "%s: '%s' is not a country code; expected two letters such as DE",
                 k->name, yamldoc_shown(item, shown, sizeof(shown)));
        else
            (*count)++;
    }
}

/* Parses a list of AS numbers (64500 or AS64500). */
static void take_asns(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                      uint32_t *out, size_t *count)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        wrong_kind(l, k->name, n, k->expect);
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = pnode(l, *it);
        const char *text = yamldoc_scalar(item), *errstr = NULL;
        char shown[64];
        uint32_t asn;

        if (*count >= POLICY_MAX_CODES) {
            perr(l, item, "%s: too many entries (at most %d)", k->name, POLICY_MAX_CODES);
            return;
        }
        if (text != NULL && strncasecmp(text, "AS", 2) == 0)
            text += 2;
        if (text == NULL || settings_parse_uint(text, 1, UINT32_MAX, &asn, &errstr) < 0)
            perr(l, item, "%s: '%s' is not an AS number; expected a number such as AS64500",
                 k->name, yamldoc_shown(item, shown, sizeof(shown)));
        else
            out[(*count)++] = asn;
    }
}

/* Declared ahead: endpoint groups are mappings in a list that is itself a mapping's value. */
static void walk_mapping(struct policy_loader *l, const struct policy_mapping *m, const char *key,
                         yaml_node_t *n, void *obj);

/*
 * Reads a list of mappings (endpoint groups, request_headers entries) into an owned array
 * of *count elements of k->inner->size bytes, each by k->inner.
 */
static void take_mappings(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                          void **out, size_t *count)
{
    const struct policy_mapping *m = k->inner;
    size_t len;

    if (n->type != YAML_SEQUENCE_NODE) {
        wrong_kind(l, k->name, n, k->expect);
        return;
    }
    len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    *out = calloc(len > 0 ? len : 1, m->size);
    if (*out == NULL) {
        perr(l, n, "%s: out of memory", k->name);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        void *e = (char *)*out + m->size * (*count)++;
        if (m->init != NULL)
            m->init(e);
        walk_mapping(l, m, k->name, pnode(l, n->data.sequence.items.start[i]), e);
    }
}

/* True for a byte of an HTTP token (RFC 9110 section 5.6.2). */
static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/*
 * Takes a list of request fields to set, each "Name: value": a token name that sluice does
 * not write itself, and a non-empty value of visible characters, spaces and tabs.  Each is
 * kept as "Name: value", the value's surrounding blanks removed.
 */
static void take_fields(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                        char **out, size_t *count)
{
    static const char *const own[] = {
        "host", "content-length", "transfer-encoding",   "connection", "keep-alive",      "upgrade",
        "te",   "trailer",        "proxy-authorization", "via",        "proxy-connection"};
    size_t before = *count;

    if (!take_list(l, k, n, out, count))
        return;
    for (size_t i = before; i < *count; i++) {
        char *f = out[i], *colon = strchr(f, ':'), *v, *end, shown[96];
        bool ok = colon != NULL && colon > f;
        /* Errors point at the entry (the list was read whole, or was one value). */
        yaml_node_t *at =
            n->type == YAML_SEQUENCE_NODE ? pnode(l, n->data.sequence.items.start[i - before]) : n;

        for (const char *c = f; ok && c < colon; c++)
            ok = is_tchar((unsigned char)*c);
        snprintf(shown, sizeof(shown), "%.80s", f);
        for (char *c = shown; *c != '\0'; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
        if (!ok) {
            perr(l, at, "%s: '%s' is not a 'Name: value' field (the name an HTTP token)", k->name,
                 shown);
            continue;
        }
        for (size_t j = 0; j < sizeof(own) / sizeof(own[0]); j++)
            if ((size_t)(colon - f) == strlen(own[j]) &&
                strncasecmp(f, own[j], strlen(own[j])) == 0)
                ok = false;
        if (!ok) {
            perr(l, at, "%s: '%s': sluice writes %.*s itself; set another field", k->name, shown,
                 (int)(colon - f), f);
            continue;
        }
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
            ;
        for (end = v + strlen(v); end > v && (end[-1] == ' ' || end[-1] == '\t'); end--)
            ;
        for (const char *c = v; ok && c < end; c++)
            ok = *c == ' ' || *c == '\t' || ((unsigned char)*c >= 0x21 && *c != 0x7f);
        if (!ok || end == v) {
            perr(l, at, "%s: '%s' has %s value; expected visible characters, spaces or tabs",
                 k->name, shown, end == v ? "an empty" : "a control byte in its");
            continue;
        }
        {
            size_t nlen = (size_t)(colon - f), vlen = (size_t)(end - v);
            char *field = malloc(nlen + vlen + 3);
            if (field == NULL) {
                perr(l, n, "%s: out of memory", k->name);
                continue;
            }
            memcpy(field, f, nlen);
            memcpy(field + nlen, ": ", 2);
            memcpy(field + nlen + 2, v, vlen);
            field[nlen + 2 + vlen] = '\0';
            free(out[i]);
            out[i] = field;
        }
    }
}

/*
 * Reads the value n of key k into its field of obj (the struct of k's mapping), by its type.
 * What it allocates belongs to obj's struct and is freed with it (tool_clear(), policy_free()).
 */
static void take_value(struct policy_loader *l, const struct policy_key *k, yaml_node_t *n,
                       void *obj)
{
    char *field = (char *)obj + k->offset;
    size_t *count = (size_t *)(void *)((char *)obj + k->count); /* the list types' only */

    switch (k->type) {
    case PK_STRING: {
        char **s = (char **)(void *)field;
        if (take_string(l, k->name, k->expect, n, s) && (k->flags & PK_F_TOOL_ID) != 0 &&
            !settings_is_tool_id(*s))
            perr(l, n,
                 "%s '%s' is not a tool id; expected lower-case letters, digits, '-', '_' or '.'",
                 k->name, *s);
        break;
    }
    case PK_LIST:
        take_list(l, k, n, (char **)(void *)field, count);
        break;
    case PK_PATHS:
        take_paths(l, k, n, (char **)(void *)field, count);
        break;
    case PK_ENV:
        take_env(l, k, n, (char **)(void *)field, count);
        break;
    case PK_SHA256:
        take_sha256(l, k, n, (char **)(void *)field, count);
        break;
    case PK_VERDICT:
        take_verdict(l, k, n, (enum policy_verdict *)(void *)field);
        break;
    case PK_TLS:
        take_tls(l, k, n, (enum policy_tls *)(void *)field);
        break;
    case PK_CAPTURE:
        take_capture(l, k, n, (enum policy_capture *)(void *)field);
        break;
    case PK_BOOL:
        take_bool(l, k, n, (bool *)(void *)field);
        break;
    case PK_PURPOSE:
        take_purpose(l, k, n, (enum policy_purpose *)(void *)field);
        break;
    case PK_PORTS:
        take_ports(l, k, n, (uint16_t *)(void *)field, count);
        break;
    case PK_HOSTS:
        *(struct domainset **)(void *)field = take_hosts(l, k, n);
        break;
    case PK_CLASSES:
        take_classes(l, k, n, (uint32_t *)(void *)field);
        break;
    case PK_CIDRS:
        *(struct netguard_cidrs **)(void *)field = take_cidrs(l, k, n);
        break;
    case PK_COUNTRIES:
        take_countries(l, k, n, (char(*)[3])(void *)field, count);
        break;
    case PK_ASNS:
        take_asns(l, k, n, (uint32_t *)(void *)field, count);
        break;
    case PK_MAPPING:
        walk_mapping(l, k->inner, k->name, n, obj);
        break;
    case PK_ENDPOINTS:
        take_mappings(l, k, n, (void **)(void *)field, count);
        break;
    case PK_FIELDS:
        take_fields(l, k, n, (char **)(void *)field, count);
        break;
    }
}

/* Reports a rule given at key whose GeoIP database this load does not have. */
static void check_database(struct policy_loader *l, const struct policy_key *k,
                           const yaml_node_t *key)
{
    if ((k->flags & PK_F_COUNTRY_DB) != 0 && !geoip_has_country(l->geoip))
        perr(l, key,
             "%s: country rules need a country database; set geoip.country_db in the "
             "configuration or give --geoip-country",
             k->name);
    else if ((k->flags & PK_F_ASN_DB) != 0 && !geoip_has_asn(l->geoip))
        perr(l, key,
             "%s: AS rules need an ASN database; set geoip.asn_db in the configuration or give "
             "--geoip-asn",
             k->name);
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

/* The entry of m named name, or NULL (also for a key that is not a scalar). */
static const struct policy_key *find_key(const struct policy_mapping *m, const char *name)
{
    for (size_t i = 0; name != NULL && i < m->nkeys; i++)
        if (strcmp(m->keys[i].name, name) == 0)
            return &m->keys[i];
    return NULL;
}

/* Reports a key that m does not have, with the keys it has, in the order of its table. */
static void unknown_key(struct policy_loader *l, const struct policy_mapping *m,
                        const yaml_node_t *key)
{
    char shown[64], known[512];
    size_t off = 0;

    known[0] = '\0';
    for (size_t i = 0; i < m->nkeys; i++) {
        size_t len = strlen(m->keys[i].name);
        if (off + len + 3 > sizeof(known))
            break; /* the tables are far shorter; a cut list beats an overflow */
        if (i > 0) {
            memcpy(known + off, ", ", 2);
            off += 2;
        }
        memcpy(known + off, m->keys[i].name, len + 1);
        off += len;
    }
    perr(l, key, "unknown key '%s' in %s; expected one of: %s",
         yamldoc_shown(key, shown, sizeof(shown)), m->where, known);
}

/* The string field of PK_STRING key k in obj, or NULL. */
static const char *string_field(const struct policy_key *k, const void *obj)
{
    return *(char *const *)(const void *)((const char *)obj + k->offset);
}

/* True when mapping n gives a key called name. */
static bool has_key(struct policy_loader *l, const yaml_node_t *n, const char *name)
{
    for (const yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
         p++) {
        const char *k = yamldoc_scalar(pnode(l, p->key));
        if (k != NULL && strcmp(k, name) == 0)
            return true;
    }
    return false;
}

/*
 * True when required key k is missing from mapping n.  A string is missing while its field
 * is empty, so a refused id or group name counts as missing too (nothing names the mapping);
 * any other value only when its key is not given, since a refused one has said why.
 */
static bool is_missing(struct policy_loader *l, const struct policy_key *k, const yaml_node_t *n,
                       const void *obj)
{
    return k->type == PK_STRING ? string_field(k, obj) == NULL : !has_key(l, n, k->name);
}

/* Reports, at mapping n, each required key of m that it left missing in obj. */
static void check_required(struct policy_loader *l, const struct policy_mapping *m,
                           const yaml_node_t *n, const void *obj)
{
    const struct policy_key *name_key = NULL;
    const char *name = NULL;

    for (size_t i = 0; i < m->nkeys; i++)
        if ((m->keys[i].flags & PK_F_NAME) != 0)
            name_key = &m->keys[i];
    if (name_key != NULL)
        name = string_field(name_key, obj);
    for (size_t i = 0; i < m->nkeys; i++) {
        const struct policy_key *k = &m->keys[i];

        if ((k->flags & PK_F_REQUIRED) == 0 || !is_missing(l, k, n, obj))
            continue;
        if (name_key == NULL || k == name_key)
            perr(l, n, "%s needs %s", m->where, k->missing);
        else
            perr(l, n, "%s '%s' needs %s", m->named, name != NULL ? name : "?", k->missing);
    }
}

/*
 * Walks mapping n of kind m into obj, the struct its keys' offsets are into: each key by
 * its table entry, a repeated or unknown one as an error, then the required keys.  key is
 * what n is the value of, for messages, or NULL for a whole document.
 */
static void walk_mapping(struct policy_loader *l, const struct policy_mapping *m, const char *key,
                         yaml_node_t *n, void *obj)
{
    if (n == NULL || n->type != YAML_MAPPING_NODE) {
        wrong_kind(l, key, n, m->shape);
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *name = pnode(l, p->key);
        const struct policy_key *k;

        if (repeated_key(l, n, p))
            continue; /* so no field is written twice, and none leaks */
        k = find_key(m, yamldoc_scalar(name));
        if (k == NULL) {
            unknown_key(l, m, name);
            continue;
        }
        take_value(l, k, pnode(l, p->value), obj);
        check_database(l, k, name);
    }
    check_required(l, m, n, obj);
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

/* load_file() adapter for a tool profile: its default, then the keys of the file. */
static void load_tool_cb(struct policy_loader *l, yaml_node_t *root, void *arg)
{
    struct policy_tool *t = arg;

    t->default_verdict = POLICY_ALLOW; /* a profile that does not say lets its tool through */
    walk_mapping(l, &tool_mapping, NULL, root, t);
}

/* load_file() adapter for the organisation policy. */
static void load_org_cb(struct policy_loader *l, yaml_node_t *root, void *arg)
{
    const struct policy_org *org = arg;
    size_t fields = 0;

    if (root == NULL) /* an empty file keeps the defaults policy_load() set */
        return;
    walk_mapping(l, &org_mapping, NULL, root, arg);
    /* One request gets at most POLICY_MAX_SET_FIELDS: more, where entries overlap, would
     * leave a name neither set nor taken from the client. */
    for (size_t i = 0; i < org->nheader_rules; i++)
        fields += org->header_rules[i].nset;
    if (fields > POLICY_MAX_SET_FIELDS)
        perr(l, root,
             "request_headers: %zu fields in all; at most %d (one request could get "
             "them all)",
             fields, POLICY_MAX_SET_FIELDS);
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
    free_list(t->sha256, t->nsha256);
    free_list(t->telemetry_env, t->ntelemetry_env);
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
    for (size_t i = 0; i < p->org.nheader_rules; i++) {
        domainset_free(p->org.header_rules[i].hosts);
        free_list(p->org.header_rules[i].set, p->org.header_rules[i].nset);
    }
    free(p->org.header_rules);
    netguard_cidrs_free(p->org.deny_cidrs);
    netguard_cidrs_free(p->org.allow_cidrs);
    geoip_close(p->geoip);
    free(p->warning);
    free(p->dir);
    free(p);
}

/* Compares file names for a stable load order. */
static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * A directory with no profile identifies no tool, so its organisation policy alone
 * decides and, without one, only the address guard and the CONNECT ports stop a request: a
 * mistyped --policy-dir (the tools/
 * folder itself, say) would otherwise pass unnoticed.  Sets p->warning to say so.
 */
static void policy_explain_empty(struct policy_snapshot *p, const char *dir)
{
    char text[1024], tools_dir[4096];
    struct stat st;
    bool has_tools, has_org = p->org.file != NULL && strncmp(p->org.file, "(built-in", 9) != 0;

    if (p->ntools > 0)
        return;
    snprintf(tools_dir, sizeof(tools_dir), "%s/tools", dir);
    has_tools = stat(tools_dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (!has_tools && !has_org)
        snprintf(text, sizeof(text),
                 "policy directory %s holds neither organisation.yaml nor tools/, so no tool "
                 "is known and nothing but the address guard and the CONNECT ports stops a "
                 "request; give the directory that holds them "
                 "(policies, not policies/tools)",
                 dir);
    else
        snprintf(text, sizeof(text),
                 "policy directory %s has no tool profile (tools/*.yaml), so no tool is "
                 "known and only the organisation policy applies%s",
                 dir,
                 has_org ? ""
                         : ": nothing but the address guard and the CONNECT ports stops a "
                           "request");
    p->warning = strdup(text);
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

/*
 * The tool other than self that proxy user name of self also selects, or NULL: another
 * profile with that id, or (reported once per pair, at the later profile) another that
 * lists the same proxy user.  A name must select one tool, whatever the search meets first.
 */
static const struct policy_tool *policy_other_tool_named(const struct policy_snapshot *p,
                                                         const struct policy_tool *self,
                                                         const char *name)
{
    for (size_t i = 0; i < p->ntools; i++) {
        const struct policy_tool *t = &p->tools[i];
        if (t == self)
            continue;
        if (t->id != NULL && strcmp(t->id, name) == 0)
            return t;
        for (size_t u = 0; u < t->nproxy_users && t < self; u++)
            if (strcmp(t->proxy_users[u], name) == 0)
                return t;
    }
    return NULL;
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
            const struct policy_tool *other = policy_other_tool_named(p, t, t->proxy_users[u]);
            if (other != NULL)
                yamldoc_error(errs, t->file, NULL, "proxy user '%s' also names tool '%s' (%s)",
                              t->proxy_users[u], other->id, other->file);
        }
    }
    for (size_t i = 0; i < p->org.nbanned; i++) {
        const struct policy_tool *t = policy_find_tool(p, p->org.banned[i]);
        char *id;

        if (t == NULL) {
            yamldoc_error(errs, p->org.file, NULL,
                          "banned_tools: no tool profile has the id '%s'; add "
                          "tools/%s.yaml or fix the name",
                          p->org.banned[i], p->org.banned[i]);
            continue;
        }
        /* A ban may name a tool by a proxy user name; the decision compares ids. */
        if (strcmp(t->id, p->org.banned[i]) == 0)
            continue;
        if ((id = strdup(t->id)) == NULL) {
            yamldoc_error(errs, p->org.file, NULL, "out of memory");
            continue;
        }
        free(p->org.banned[i]);
        p->org.banned[i] = id;
    }
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
        p->warning = strdup("no policy directory (policy_dir, or --policy-dir), so no tool is "
                            "known and nothing but the address guard and the CONNECT ports "
                            "stops a request");
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
        policy_explain_empty(p, p->dir != NULL ? p->dir : src->dir);
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

/* True when host, already normalised (request_normalize_host), is in set. */
static bool in_set(const struct domainset *set, const char *host)
{
    uint32_t value;

    return set != NULL && domainset_lookup_normal(set, host, strlen(host), &value);
}

/*
 * True when path starts with prefix.  A path is read as servers read it: the normalised
 * reading, the one without segment parameters (Tomcat and Spring drop ";x") and the one
 * with its dot segments kept (servers that route on the path before resolving them).  A
 * block rule matches if any reading starts with its prefix, or the path as received, in
 * any case (IIS and others ignore it); an allow rule needs every reading to start with it.
 */
static bool path_has_prefix(const struct policy_query *q, const char *prefix, bool for_block)
{
    size_t n = strlen(prefix);

    if (!for_block)
        return q->path != NULL && strncmp(q->path, prefix, n) == 0 &&
               (q->plain_path == NULL || strncmp(q->plain_path, prefix, n) == 0) &&
               (q->literal_path == NULL || strncmp(q->literal_path, prefix, n) == 0);
    return (q->path != NULL && strncasecmp(q->path, prefix, n) == 0) ||
           (q->raw_path != NULL && strncasecmp(q->raw_path, prefix, n) == 0) ||
           (q->plain_path != NULL && strncasecmp(q->plain_path, prefix, n) == 0) ||
           (q->literal_path != NULL && strncasecmp(q->literal_path, prefix, n) == 0);
}

/*
 * True when the endpoint's hosts and ports cover the request's host and port, whatever
 * its methods and paths: what a group says of a tunnel (tls, capture) holds for the host.
 */
static bool endpoint_covers_host(const struct policy_endpoint *e, const struct policy_query *q)
{
    bool port_ok = e->nports == 0;

    if (!in_set(e->hosts, q->host))
        return false;
    for (size_t i = 0; i < e->nports && !port_ok; i++)
        port_ok = e->ports[i] == q->port;
    return port_ok;
}

/* True when the endpoint's hosts, ports and methods cover the request (paths aside). */
static bool endpoint_reaches(const struct policy_endpoint *e, const struct policy_query *q)
{
    bool method_ok = e->nmethods == 0;

    for (size_t i = 0; i < e->nmethods && !method_ok; i++)
        method_ok =
            !q->is_connect && q->method != NULL && strcasecmp(e->methods[i], q->method) == 0;
    return method_ok && endpoint_covers_host(e, q);
}

/*
 * True when the endpoint covers the request.  Methods and paths count only where they are
 * visible: a CONNECT tunnel matches on host and port alone unless the group needs a method
 * or a path, in which case it cannot match (it never blocks or allows a whole shared host
 * on the strength of a path rule).  for_block matches paths the wider way.
 */
static bool endpoint_matches(const struct policy_endpoint *e, const struct policy_query *q,
                             bool for_block)
{
    bool path_ok = e->npaths == 0;

    if (!endpoint_reaches(e, q))
        return false;
    for (size_t i = 0; i < e->npaths && !path_ok; i++)
        path_ok = path_has_prefix(q, e->paths[i], for_block);
    return path_ok;
}

/* Fills a decision. */
static void decide(struct policy_decision *d, enum policy_verdict v, const char *tool,
                   const char *file, const char *reason, const char *rule, const char *arg)
{
    d->verdict = v;
    d->bad_request = false;
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
static void decide_request(const struct policy_snapshot *p, const struct policy_query *q,
                           struct policy_decision *d)
{
    const struct policy_tool *t = q->tool;
    const char *tool = t != NULL ? t->id : "unidentified";
    const char *org = p->org.file;

    /* 1. A banned tool goes nowhere: the one the request is decided as, and one running
     * behind the connection when a stronger source (a tool's listener, another tool's
     * credentials) named the request otherwise. */
    for (size_t i = 0; i < p->org.nbanned; i++) {
        if (t != NULL && strcmp(p->org.banned[i], t->id) == 0) {
            decide(d, POLICY_BLOCK, tool, org,
                   "this tool is banned by the organisation policy; ask your administrator",
                   "ban:", t->id);
            return;
        }
        if (q->process_tool != NULL && strcmp(p->org.banned[i], q->process_tool) == 0) {
            decide(d, POLICY_BLOCK, tool, org,
                   "a tool the organisation policy bans runs behind this connection; ask your "
                   "administrator",
                   "ban:", q->process_tool);
            return;
        }
    }
    /* A local client whose process could not be seen may be a banned tool hiding (a
     * connection made by a child that has exited, a process with more descriptors than the
     * look reads in its bound): not let out where a ban relies on seeing it, nor through
     * the Unix listener, where nothing else names the client. */
    if (q->process_unseen && (p->org.nbanned > 0 || q->unix_client)) {
        decide(d, POLICY_BLOCK, tool, org,
               "the local process behind this connection could not be looked at (it exited, is "
               "hidden from sluice, or holds too many descriptors to find in time), and a banned "
               "tool could hide so; connect from the process that sends, or run sluice as root",
               "identity-unverified", "");
        return;
    }
    /* What was not seen under an isolating launcher may be a banned tool: not let out. */
    if (q->identity_unverified) {
        decide(d, POLICY_BLOCK, tool, org,
               "the processes this isolated tool started could not all be looked at for a "
               "banned tool (more than 1024, more than 10 ms of looking, or hidden from sluice); "
               "run fewer, or run sluice as their user or root",
               "identity-unverified", "");
        return;
    }
    /* A client whose sources disagree (a process of one tool, credentials of another) is
     * not given the benefit of the doubt where the organisation says so. */
    if (p->org.block_identity_mismatch && q->identity_mismatch != NULL &&
        q->identity_mismatch[0] != '\0') {
        decide(d, POLICY_BLOCK, tool, org,
               "the sources that name this client disagree about its tool; send the tool's own "
               "credentials, or run it as itself",
               "identity-mismatch", "");
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
        /* A path rule cannot judge a path that servers read in different ways. */
        for (size_t i = 0; (q->path_flags & URLPATH_AMBIGUOUS) != 0 && i < t->nendpoints; i++) {
            const struct policy_endpoint *e = &t->endpoints[i];
            if (e->npaths > 0 && endpoint_reaches(e, q)) {
                decide(d, POLICY_BLOCK, tool, t->file,
                       "the request path can mean different things to different servers, and "
                       "a path rule applies to it; send the path in its plain form",
                       "ambiguous-path:", e->group);
                d->bad_request = true;
                return;
            }
        }
        /* 3. The tool's telemetry, when blocked. */
        for (size_t i = 0; block_telemetry && i < t->nendpoints; i++) {
            const struct policy_endpoint *e = &t->endpoints[i];
            if (purpose_is_telemetry(e->purpose) && endpoint_matches(e, q, true)) {
                decide(d, POLICY_BLOCK, tool, t->file,
                       "this tool's telemetry is blocked by policy; turn it off in the tool",
                       "telemetry:", e->group);
                return;
            }
        }
        /* 4. The tool's allowlist. */
        for (size_t i = 0; i < t->nendpoints; i++) {
            const struct policy_endpoint *e = &t->endpoints[i];
            if (endpoint_matches(e, q, false) &&
                !(block_telemetry && purpose_is_telemetry(e->purpose))) {
                decide(d, POLICY_ALLOW, tool, t->file, "", "allow:", e->group);
                return;
            }
        }
        /* 5. The tool's default. */
        decide(d, t->default_verdict, tool, t->file,
               "no endpoint group of the tool covers this host, port, method and path; add "
               "one to its profile if the tool needs it",
               "default", "");
        return;
    }
    /* 6. No tool identified. */
    decide(d, p->org.unidentified, tool, org,
           "the client is not identified as a known tool; connect as "
           "http://TOOL@proxy:port or through the tool's listener",
           "unidentified", "");
}

/* True when an entry of request_headers names host. */
static bool header_rule_covers(const struct policy_snapshot *p, const char *host)
{
    for (size_t i = 0; i < p->org.nheader_rules; i++)
        if (in_set(p->org.header_rules[i].hosts, host))
            return true;
    return false;
}

/* The fields request_headers sets on a request to host; see the header. */
size_t policy_request_fields(const struct policy_snapshot *p, const char *host, const char **out,
                             size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < p->org.nheader_rules; i++) {
        const struct policy_header_rule *r = &p->org.header_rules[i];
        if (!in_set(r->hosts, host))
            continue;
        for (size_t j = 0; j < r->nset && n < max; j++) {
            size_t name_len = (size_t)(strchr(r->set[j], ':') - r->set[j]);
            bool named = false;
            for (size_t k = 0; k < n && !named; k++)
                named = strncasecmp(out[k], r->set[j], name_len) == 0 && out[k][name_len] == ':';
            if (!named)
                out[n++] = r->set[j];
        }
    }
    return n;
}

/* The capture setting where no endpoint group says: the tool's, else the organisation's. */
static enum policy_capture capture_fallback(const struct policy_snapshot *p,
                                            const struct policy_tool *t)
{
    if (t != NULL && t->capture != POLICY_CAPTURE_UNSET)
        return t->capture;
    return p->org.capture != POLICY_CAPTURE_UNSET ? p->org.capture : POLICY_CAPTURE_NONE;
}

/*
 * Which bodies of a request let through are kept: the most any endpoint group of the tool
 * covering the request asks, else the tool's setting, else the organisation's, else none.
 * A group that keeps more than that fallback covers the path the wide way, as a block
 * does, and one that keeps less the strict way, as an allow does: another spelling of a
 * path can bring a body under capture, never take it out.
 */
static enum policy_capture decide_capture(const struct policy_snapshot *p,
                                          const struct policy_query *q)
{
    const struct policy_tool *t = q->tool;
    enum policy_capture fallback = capture_fallback(p, t);
    enum policy_capture chosen = POLICY_CAPTURE_UNSET;

    for (size_t i = 0; t != NULL && i < t->nendpoints; i++) {
        const struct policy_endpoint *e = &t->endpoints[i];
        if (e->capture > chosen && endpoint_matches(e, q, e->capture > fallback))
            chosen = e->capture;
    }
    return chosen != POLICY_CAPTURE_UNSET ? chosen : fallback;
}

/*
 * True when some request of the tool in a tunnel to q's host and port may have its body
 * kept: a group reaching them captures (whatever its methods and paths), or the fallback
 * does.  Such a tunnel, when inspected, is never spliced instead.
 */
static bool capture_reaches(const struct policy_snapshot *p, const struct policy_query *q)
{
    const struct policy_tool *t = q->tool;

    if (capture_fallback(p, t) > POLICY_CAPTURE_NONE)
        return true;
    for (size_t i = 0; t != NULL && i < t->nendpoints; i++) {
        const struct policy_endpoint *e = &t->endpoints[i];
        if (e->capture > POLICY_CAPTURE_NONE && endpoint_covers_host(e, q))
            return true;
    }
    return false;
}

/*
 * The TLS mode of a tunnel the request decision let through: the strictest mode an
 * endpoint group of the tool covering the host and port names (block, then inspect, then
 * splice), else the tool's, else the organisation's, else splice.  Names the scope in
 * d->tls_rule.  A group's methods and paths do not count: a CONNECT shows neither, and
 * they are what inspection is there to judge.
 */
static void decide_tls(const struct policy_snapshot *p, const struct policy_query *q,
                       struct policy_decision *d)
{
    const struct policy_tool *t = q->tool;
    const struct policy_endpoint *chosen = NULL;

    for (size_t i = 0; t != NULL && i < t->nendpoints; i++) {
        const struct policy_endpoint *e = &t->endpoints[i];
        if (e->tls != POLICY_TLS_UNSET && endpoint_covers_host(e, q) &&
            (chosen == NULL || e->tls > chosen->tls))
            chosen = e;
    }
    if (chosen != NULL) {
        d->tls = chosen->tls;
        snprintf(d->tls_rule, sizeof(d->tls_rule), "tls:%s:%s/%s", policy_tls_str(d->tls), t->id,
                 chosen->group);
    } else if (t != NULL && t->tls != POLICY_TLS_UNSET) {
        d->tls = t->tls;
        snprintf(d->tls_rule, sizeof(d->tls_rule), "tls:%s:%s", policy_tls_str(d->tls), t->id);
    } else {
        d->tls = p->org.tls != POLICY_TLS_UNSET ? p->org.tls : POLICY_TLS_SPLICE;
        snprintf(d->tls_rule, sizeof(d->tls_rule), "tls:%s", policy_tls_str(d->tls));
    }
    d->refuse_uninspectable = p->org.refuse_uninspectable || (t != NULL && t->refuse_uninspectable);
    /* Fields request_headers sets must reach the requests inside: their hosts are never
     * spliced, not even for a client that refused sluice's certificate. */
    if (d->tls != POLICY_TLS_BLOCK && header_rule_covers(p, q->host)) {
        if (d->tls != POLICY_TLS_INSPECT)
            snprintf(d->tls_rule, sizeof(d->tls_rule), "tls:inspect:request_headers");
        d->tls = POLICY_TLS_INSPECT;
        d->must_inspect = true;
        return;
    }
    if (d->tls == POLICY_TLS_BLOCK) {
        char rule[sizeof(d->tls_rule)];
        snprintf(rule, sizeof(rule), "%s", d->tls_rule);
        decide(d, POLICY_BLOCK, d->tool,
               chosen != NULL || (t != NULL && t->tls != POLICY_TLS_UNSET) ? t->file : p->org.file,
               "policy blocks TLS tunnels to this host for this tool; ask your administrator", rule,
               "");
        d->tls = POLICY_TLS_UNSET;
    }
    d->splice_pinned = p->org.splice_pinned || (t != NULL && t->splice_pinned);
    /* Bodies policy keeps must not leave through a splice the client can ask for (an
     * HTTP/2-only offer, a refused certificate). */
    if (d->tls == POLICY_TLS_INSPECT && capture_reaches(p, q)) {
        d->must_capture = true;
        d->splice_pinned = false;
    }
}

/* Decides a request, and for a CONNECT let through, what happens to the TLS inside. */
void policy_decide(const struct policy_snapshot *p, const struct policy_query *q,
                   struct policy_decision *d)
{
    d->capture = POLICY_CAPTURE_UNSET;
    d->tls = POLICY_TLS_UNSET;
    d->tls_rule[0] = '\0';
    d->splice_pinned = false;
    d->must_inspect = false;
    d->refuse_uninspectable = false;
    d->must_capture = false;
    decide_request(p, q, d);
    if (q->is_connect && d->verdict != POLICY_BLOCK)
        decide_tls(p, q, d);
    else if (!q->is_connect && d->verdict != POLICY_BLOCK)
        d->capture = decide_capture(p, q);
}

/* True when some scope asks for bodies to be captured. */
bool policy_wants_capture(const struct policy_snapshot *p)
{
    if (p->org.capture > POLICY_CAPTURE_NONE)
        return true;
    for (size_t i = 0; i < p->ntools; i++) {
        if (p->tools[i].capture > POLICY_CAPTURE_NONE)
            return true;
        for (size_t j = 0; j < p->tools[i].nendpoints; j++)
            if (p->tools[i].endpoints[j].capture > POLICY_CAPTURE_NONE)
                return true;
    }
    return false;
}

/* True when some scope asks for inspection. */
bool policy_wants_inspection(const struct policy_snapshot *p)
{
    if (p->org.tls == POLICY_TLS_INSPECT || p->org.nheader_rules > 0)
        return true;
    for (size_t i = 0; i < p->ntools; i++) {
        if (p->tools[i].tls == POLICY_TLS_INSPECT)
            return true;
        for (size_t j = 0; j < p->tools[i].nendpoints; j++)
            if (p->tools[i].endpoints[j].tls == POLICY_TLS_INSPECT)
                return true;
    }
    return false;
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
