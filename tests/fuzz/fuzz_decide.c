/*
 * libFuzzer target for policy decisions.  The input is a small policy and a request, as
 * lines of text:
 *
 *   deny PATTERN, allow PATTERN   organisation deny_hosts and allow_hosts
 *   ban TOOL                      organisation banned_tools (an id or a proxy user name)
 *   port N                        organisation connect_ports
 *   cport N,M                     the configuration's connect_ports
 *   host PATTERN, telemetry PATTERN   tool alpha's api and telemetry endpoint hosts
 *   default VERDICT, unidentified VERDICT, block_telemetry
 *   tool NAME                     the tool the request is identified as (id or proxy user)
 *   spell N                       deny the request's own host, spelt in way N (upper case,
 *                                 a trailing dot, a parent wildcard; an address in
 *                                 decimal, hex, octal, fewer parts, IPv4-mapped IPv6...)
 *   ---                           the rest is the request head
 *
 * The policy is written to a temporary directory and loaded by policy_load(); the head
 * goes the way the session takes it (HTTP/1.1 parser, request_from_head(), its host
 * normalised, its path read as policy reads it) to policy_decide().  The decision is
 * checked against this file's own reading of the same lines, where it is easy to state:
 * a banned tool is always blocked; a host that deny_hosts names (exactly or as "*.suffix",
 * every spelling of an IP literal being that address, read with inet_aton and inet_pton)
 * and allow_hosts does not is never allowed, for any tool; CONNECT to a port outside
 * connect_ports is never allowed; a rule is only ever named for what it says.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/http1.h"
#include "sluice/policy.h"
#include "sluice/request.h"
#include "sluice/settings.h"
#include "sluice/urlpath.h"
#include "fuzzcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ITEMS 16  /* values kept per kind of line; more are ignored */
#define MAX_VALUE 300 /* longest value of a line */
#define FIELDS    100

/* The kinds of value lines hold. */
enum item_kind {
    IT_DENY,
    IT_ALLOW,
    IT_BAN,
    IT_PORT,
    IT_HOST,
    IT_TELEMETRY,
    IT_SPELL,
    IT_KINDS,
};

static const char *const item_keys[IT_KINDS] = {"deny", "allow",     "ban",  "port",
                                                "host", "telemetry", "spell"};

/* What the input's lines ask for; values are NUL-terminated copies. */
struct spec {
    char items[IT_KINDS][MAX_ITEMS][MAX_VALUE + 1];
    size_t nitems[IT_KINDS];
    char cport[MAX_VALUE + 1];
    char tool[MAX_VALUE + 1];
    char tool_default[MAX_VALUE + 1];
    char unidentified[MAX_VALUE + 1];
    bool block_telemetry;
    const char *head; /* the request head, in the input */
    size_t head_len;
};

/* The names of the tools in the directory: alpha's profile is written per input, beta's
 * once.  A ban or a "tool" line may use any of a tool's names. */
static const char *const alpha_names[] = {"alpha", "al"};
static const char *const beta_names[] = {"beta", "b"};

/* The tool profile of beta: its allowlist covers a host that deny_hosts may name. */
static const char beta_yaml[] = "id: beta\n"
                                "identify:\n"
                                "  proxy_users: [b]\n"
                                "default: allow\n"
                                "endpoints:\n"
                                "  - group: api\n"
                                "    purpose: api\n"
                                "    hosts: [api.beta.test, \"*.example.com\", 127.0.0.1]\n"
                                "    ports: [443, 80]\n";

/* The policy directory: made for each input and removed once loaded, before any check
 * can trap, so that no run leaves one behind. */
static char policy_dir[64];

/* What a host or a pattern is, read independently of sluice. */
enum host_kind {
    HK_UNKNOWN = 0, /* no claim: a reading this file does not attempt */
    HK_NAME,        /* a name, in lower case without its trailing dot */
    HK_V4,
    HK_V6,
};

/* A host or an exact pattern read independently; a name in text, an address in bytes. */
struct reading {
    enum host_kind kind;
    char name[MAX_VALUE + 1];
    unsigned char addr[16];
};

/* Three-valued match: a definite no, a definite yes, or no claim. */
enum tri {
    T_NO = 0,
    T_YES,
    T_UNKNOWN,
};

/* Removes the policy directory and what it holds. */
static void remove_policy_dir(void)
{
    char path[128];

    snprintf(path, sizeof(path), "%s/tools/alpha.yaml", policy_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/tools/beta.yaml", policy_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/organisation.yaml", policy_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/tools", policy_dir);
    rmdir(path);
    rmdir(policy_dir);
}

/* Writes text to policy_dir/name; returns false when it cannot. */
static bool put(const char *name, const char *text, size_t len)
{
    char path[128];
    FILE *f;
    bool ok;

    snprintf(path, sizeof(path), "%s/%s", policy_dir, name);
    if ((f = fopen(path, "w")) == NULL)
        return false;
    ok = fwrite(text, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* Makes the policy directory with beta's profile. */
static void make_policy_dir(void)
{
    char tools[96];

    snprintf(policy_dir, sizeof(policy_dir), "/tmp/sluice-fuzz-decide-XXXXXX");
    CHECK(mkdtemp(policy_dir) != NULL);
    snprintf(tools, sizeof(tools), "%s/tools", policy_dir);
    CHECK(mkdir(tools, 0700) == 0);
    CHECK(put("tools/beta.yaml", beta_yaml, sizeof(beta_yaml) - 1));
}

/* Copies v[0..n) into out (MAX_VALUE + 1 bytes); false when it is too long. */
static bool take(char *out, const char *v, size_t n)
{
    if (n > MAX_VALUE || memchr(v, '\0', n) != NULL)
        return false;
    memcpy(out, v, n);
    out[n] = '\0';
    return true;
}

/* Reads the input's lines into *s; false when they cannot make a policy and a request. */
static bool read_spec(const char *in, size_t len, struct spec *s)
{
    size_t pos = 0;

    memset(s, 0, sizeof(*s));
    while (pos < len) {
        const char *line = in + pos, *nl = memchr(line, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - line) : len - pos, klen;
        const char *sp = memchr(line, ' ', n), *v;

        pos += n + 1;
        if (n == 3 && memcmp(line, "---", 3) == 0) {
            s->head = in + (pos < len ? pos : len);
            s->head_len = pos < len ? len - pos : 0;
            return true;
        }
        if (n == 15 && memcmp(line, "block_telemetry", 15) == 0) {
            s->block_telemetry = true;
            continue;
        }
        if (sp == NULL)
            continue;
        klen = (size_t)(sp - line);
        v = sp + 1;
        n -= klen + 1;
        for (int k = 0; k < IT_KINDS; k++) {
            if (strlen(item_keys[k]) == klen && memcmp(line, item_keys[k], klen) == 0 &&
                s->nitems[k] < MAX_ITEMS) {
                if (!take(s->items[k][s->nitems[k]++], v, n))
                    return false;
            }
        }
        if ((klen == 5 && memcmp(line, "cport", 5) == 0 && !take(s->cport, v, n)) ||
            (klen == 4 && memcmp(line, "tool", 4) == 0 && !take(s->tool, v, n)) ||
            (klen == 7 && memcmp(line, "default", 7) == 0 && !take(s->tool_default, v, n)) ||
            (klen == 12 && memcmp(line, "unidentified", 12) == 0 && !take(s->unidentified, v, n)))
            return false;
    }
    return false;
}

/* Appends c to buf (capacity cap) at *off, when there is room for it and a NUL. */
static void put_char(char *buf, size_t cap, size_t *off, char c)
{
    if (*off + 1 < cap) {
        buf[(*off)++] = c;
        buf[*off] = '\0';
    }
}

/* Appends a YAML flow list of the n values to buf (capacity cap) at *off, each
 * single-quoted when quote is true (a quote inside doubled, as YAML wants). */
static void yaml_list(char *buf, size_t cap, size_t *off, char vals[][MAX_VALUE + 1], size_t n,
                      bool quote)
{
    put_char(buf, cap, off, '[');
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            put_char(buf, cap, off, ',');
            put_char(buf, cap, off, ' ');
        }
        if (quote)
            put_char(buf, cap, off, '\'');
        for (const char *c = vals[i]; *c != '\0'; c++) {
            if (*c == '\'' && quote)
                put_char(buf, cap, off, '\'');
            put_char(buf, cap, off, *c);
        }
        if (quote)
            put_char(buf, cap, off, '\'');
    }
    put_char(buf, cap, off, ']');
    put_char(buf, cap, off, '\n');
}

/* True when every byte of s is a decimal digit (and there is one). */
static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* True when v is empty (the default) or a verdict word. */
static bool is_verdict(const char *v)
{
    return v[0] == '\0' || strcmp(v, "allow") == 0 || strcmp(v, "block") == 0 ||
           strcmp(v, "report") == 0;
}

/* Writes the organisation policy and alpha's profile for *s and loads the directory. */
static struct policy_snapshot *load_spec(struct spec *s)
{
    static char buf[IT_KINDS * MAX_ITEMS * (2 * MAX_VALUE + 8) + 1024];
    struct policy_source src = {.dir = policy_dir};
    struct yamldoc_errors errs;
    struct policy_snapshot *p;
    size_t off = 0, cap = sizeof(buf);

    for (size_t i = 0; i < s->nitems[IT_PORT]; i++)
        if (!all_digits(s->items[IT_PORT][i]))
            return NULL; /* YAML would read something else than a number */
    if (!is_verdict(s->unidentified) || !is_verdict(s->tool_default))
        return NULL; /* written as they are, so only the words themselves */
    if (s->nitems[IT_BAN] > 0) {
        off += (size_t)snprintf(buf + off, cap - off, "banned_tools: ");
        yaml_list(buf, cap, &off, s->items[IT_BAN], s->nitems[IT_BAN], true);
    }
    if (s->nitems[IT_DENY] > 0) {
        off += (size_t)snprintf(buf + off, cap - off, "deny_hosts: ");
        yaml_list(buf, cap, &off, s->items[IT_DENY], s->nitems[IT_DENY], true);
    }
    if (s->nitems[IT_ALLOW] > 0) {
        off += (size_t)snprintf(buf + off, cap - off, "allow_hosts: ");
        yaml_list(buf, cap, &off, s->items[IT_ALLOW], s->nitems[IT_ALLOW], true);
    }
    if (s->nitems[IT_PORT] > 0) {
        off += (size_t)snprintf(buf + off, cap - off, "connect_ports: ");
        yaml_list(buf, cap, &off, s->items[IT_PORT], s->nitems[IT_PORT], false);
    }
    off += (size_t)snprintf(buf + off, cap - off, "unidentified: %s\nblock_telemetry: %s\n",
                            s->unidentified[0] != '\0' ? s->unidentified : "allow",
                            s->block_telemetry ? "true" : "false");
    make_policy_dir();
    if (!put("organisation.yaml", buf, off)) {
        remove_policy_dir();
        return NULL;
    }

    off = (size_t)snprintf(buf, cap,
                           "id: alpha\nidentify:\n  proxy_users: [al]\ndefault: %s\nendpoints:\n"
                           "  - group: api\n    purpose: api\n    hosts: ",
                           s->tool_default[0] != '\0' ? s->tool_default : "allow");
    /* A fixed host first, so that an endpoint never has an empty list. */
    memmove(s->items[IT_HOST][1], s->items[IT_HOST][0],
            sizeof(s->items[IT_HOST][0]) * (MAX_ITEMS - 1));
    snprintf(s->items[IT_HOST][0], sizeof(s->items[IT_HOST][0]), "api.alpha.test");
    s->nitems[IT_HOST] += s->nitems[IT_HOST] < MAX_ITEMS;
    yaml_list(buf, cap, &off, s->items[IT_HOST], s->nitems[IT_HOST], true);
    if (s->nitems[IT_TELEMETRY] > 0) {
        off += (size_t)snprintf(buf + off, cap - off,
                                "  - group: tel\n    purpose: telemetry\n    hosts: ");
        yaml_list(buf, cap, &off, s->items[IT_TELEMETRY], s->nitems[IT_TELEMETRY], true);
    }
    if (!put("tools/alpha.yaml", buf, off)) {
        remove_policy_dir();
        return NULL;
    }
    p = policy_load(&src, &errs);
    yamldoc_errors_clear(&errs);
    remove_policy_dir();
    return p;
}

/* Lower-cases ASCII s in place; false when it holds a byte outside ASCII. */
static bool lower_ascii(char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s >= 0x80)
            return false;
        *s = (char)tolower((unsigned char)*s);
    }
    return true;
}

/* True when s could be an IPv4 number in some spelling: digits, hex, 'x' and dots only. */
static bool ipv4_like(const char *s)
{
    for (; *s != '\0'; s++)
        if (!isxdigit((unsigned char)*s) && *s != 'x' && *s != 'X' && *s != '.')
            return false;
    return true;
}

/* Reads text (unbracketed) as an IP literal the way inet_aton (one trailing dot allowed)
 * and inet_pton read it, else as a name; an IPv4-mapped IPv6 address is its IPv4. */
static void read_host(const char *text, bool bracketed, struct reading *r)
{
    char t[MAX_VALUE + 1];
    size_t n = strlen(text);
    struct in_addr a4;
    struct in6_addr a6;

    memset(r, 0, sizeof(*r));
    if (n > MAX_VALUE)
        return;
    memcpy(t, text, n + 1);
    if (bracketed || strchr(t, ':') != NULL) {
        if (inet_pton(AF_INET6, t, &a6) != 1)
            return;
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            r->kind = HK_V4;
            memcpy(r->addr, a6.s6_addr + 12, 4);
        } else {
            r->kind = HK_V6;
            memcpy(r->addr, a6.s6_addr, 16);
        }
        return;
    }
    if (n > 0 && t[n - 1] == '.')
        t[--n] = '\0';
    if (n > 0 && ipv4_like(t) && inet_aton(t, &a4) != 0) {
        r->kind = HK_V4;
        memcpy(r->addr, &a4, 4);
        return;
    }
    if (n == 0 || !lower_ascii(t))
        return;
    r->kind = HK_NAME;
    memcpy(r->name, t, n + 1);
}

/* True when the host is a name in every reading: its last label cannot be an IPv4 part. */
static bool surely_name(const struct reading *h)
{
    const char *last;

    if (h->kind != HK_NAME)
        return false;
    last = strrchr(h->name, '.');
    last = last != NULL ? last + 1 : h->name;
    return *last != '\0' && !ipv4_like(last);
}

/* Whether pattern (exact or "*.suffix") covers the host read as *h. */
static enum tri pattern_covers(const char *pattern, const struct reading *h)
{
    struct reading p;

    if (h->kind == HK_UNKNOWN)
        return T_UNKNOWN;
    if (strncmp(pattern, "*.", 2) == 0) {
        size_t hn, sn;
        read_host(pattern + 2, false, &p);
        if (p.kind != HK_NAME)
            return T_UNKNOWN; /* a wildcard over an address: not this file's business */
        if (h->kind != HK_NAME)
            return T_NO; /* no wildcard covers an IP literal */
        hn = strlen(h->name);
        sn = strlen(p.name);
        return hn > sn + 1 && h->name[hn - sn - 1] == '.' &&
                       memcmp(h->name + hn - sn, p.name, sn) == 0
                   ? T_YES
                   : T_NO;
    }
    if (pattern[0] == '[')
        return T_UNKNOWN;
    read_host(pattern, false, &p);
    if (p.kind == HK_UNKNOWN)
        return T_UNKNOWN;
    if (p.kind != h->kind)
        return T_NO;
    if (p.kind == HK_NAME)
        return strcmp(p.name, h->name) == 0 ? T_YES : T_NO;
    return memcmp(p.addr, h->addr, p.kind == HK_V4 ? 4 : 16) == 0 ? T_YES : T_NO;
}

/* Whether any pattern of the spec's list k covers the host. */
static enum tri list_covers(const struct spec *s, enum item_kind k, const struct reading *h)
{
    enum tri r = T_NO;

    for (size_t i = 0; i < s->nitems[k]; i++) {
        enum tri m = pattern_covers(s->items[k][i], h);
        if (m == T_YES)
            return T_YES;
        if (m == T_UNKNOWN)
            r = T_UNKNOWN;
    }
    return r;
}

/* True when name is one of the n names. */
static bool among(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

/* The names of the tool the "tool" line names, or NULL for no tool. */
static const char *const *tool_names(const char *tool)
{
    if (among(tool, alpha_names, 2))
        return alpha_names;
    if (among(tool, beta_names, 2))
        return beta_names;
    return NULL;
}

/* The verdict a "default" or "unidentified" line gives; none means allow. */
static enum policy_verdict verdict_of(const char *v)
{
    return strcmp(v, "block") == 0    ? POLICY_BLOCK
           : strcmp(v, "report") == 0 ? POLICY_REPORT
                                      : POLICY_ALLOW;
}

/* Reads the host of a request target independently: after "http://" (absolute-form) or
 * from the start (CONNECT), up to the port, without IPv6 brackets. */
static void target_host(const char *t, size_t n, bool connect, char *out, bool *bracketed)
{
    size_t i = connect ? 0 : 7, end = i, o = 0;

    while (end < n && t[end] != '/' && t[end] != '?')
        end++;
    *bracketed = i < end && t[i] == '[';
    if (*bracketed) {
        for (i++; i < end && t[i] != ']' && o < MAX_VALUE; i++)
            out[o++] = t[i];
    } else {
        for (; i < end && t[i] != ':' && o < MAX_VALUE; i++)
            out[o++] = t[i];
    }
    out[o] = '\0';
}

/* The path readings policy judges, as the session takes them (session_take_path). */
struct paths {
    char *buf;
    char *raw, *path, *plain, *literal;
    unsigned flags;
};

/* Fills *pp from the origin-form span sp of buf; false when out of memory. */
static bool take_paths(struct paths *pp, const char *buf, struct http1_span sp)
{
    size_t cap = (size_t)sp.len + 2;
    int n, m;

    memset(pp, 0, sizeof(*pp));
    if ((pp->buf = malloc(4 * cap)) == NULL)
        return false;
    pp->raw = pp->buf + 3 * cap;
    memcpy(pp->raw, buf + sp.off, sp.len);
    pp->raw[sp.len] = '\0';
    pp->path = pp->buf;
    n = urlpath_normalize(buf + sp.off, sp.len, pp->path, cap, &pp->flags);
    CHECK(n >= 0);
    m = urlpath_literal(buf + sp.off, sp.len, pp->buf + 2 * cap, cap);
    CHECK(m >= 0);
    if (urlpath_strip_params(pp->path, (size_t)n, pp->buf + cap, cap) != n)
        pp->plain = pp->buf + cap;
    if (m != n || memcmp(pp->buf + 2 * cap, pp->path, (size_t)n) != 0)
        pp->literal = pp->buf + 2 * cap;
    return true;
}

/* True when CONNECT may reach port under the spec's lists, read independently. */
static bool port_listed(const struct spec *s, const struct sluice_settings *st, uint16_t port)
{
    if (s->nitems[IT_PORT] > 0) {
        for (size_t i = 0; i < s->nitems[IT_PORT]; i++)
            if (strtoul(s->items[IT_PORT][i], NULL, 10) == port)
                return true;
        return false;
    }
    for (size_t i = 0; i < st->nconnect_ports; i++)
        if (st->connect_ports[i] == port)
            return true;
    return false;
}

/* Decides the request against the loaded policy and checks the decision. */
static void check_decision(const struct policy_snapshot *p, const struct spec *s,
                           const struct sluice_settings *st, const char *buf,
                           const struct http1_head *h, const struct request *r)
{
    const char *const *names = tool_names(s->tool);
    const struct policy_tool *t = s->tool[0] != '\0' ? policy_find_tool(p, s->tool) : NULL;
    struct policy_query q = {.settings = st, .tool = t, .is_connect = r->is_connect};
    struct policy_decision d, d2;
    struct reading host;
    struct paths pp = {0};
    char raw_host[MAX_VALUE + 1], rule[160];
    bool bracketed, banned = false, port_ok;
    enum tri deny, allow;

    /* The loader found the tools this file wrote, under the names it gave them. */
    CHECK((t != NULL) == (names != NULL));
    if (t != NULL)
        CHECK(strcmp(t->id, names[0]) == 0);
    for (size_t i = 0; names != NULL && i < s->nitems[IT_BAN]; i++)
        banned |= among(s->items[IT_BAN][i], names, 2);

    if (!r->is_connect && !take_paths(&pp, buf, r->path))
        return;
    q.method = r->method;
    q.host = r->host;
    q.port = r->port;
    q.path = pp.path;
    q.raw_path = pp.raw;
    q.plain_path = pp.plain;
    q.literal_path = pp.literal;
    q.path_flags = pp.flags;
    policy_decide(p, &q, &d);
    policy_decide(p, &q, &d2);
    free(pp.buf);

    /* Every decision names its rule, file and tool, and the same question gets the same
     * answer. */
    CHECK(d.rule[0] != '\0' && d.file != NULL && d.tool != NULL && d.reason != NULL);
    CHECK(d.verdict == d2.verdict && strcmp(d.rule, d2.rule) == 0);
    CHECK(strcmp(d.tool, t != NULL ? t->id : "unidentified") == 0);

    /* 1. A banned tool goes nowhere, and only a banned tool is refused as one. */
    snprintf(rule, sizeof(rule), "ban:%s", t != NULL ? t->id : "");
    CHECK(banned == (strcmp(d.rule, rule) == 0));
    if (banned) {
        CHECK(d.verdict == POLICY_BLOCK);
        return;
    }

    /* 2. A host deny_hosts names and allow_hosts does not is never allowed. */
    target_host(buf + h->target.off, h->target.len, r->is_connect, raw_host, &bracketed);
    read_host(raw_host, bracketed, &host);
    deny = list_covers(s, IT_DENY, &host);
    allow = list_covers(s, IT_ALLOW, &host);
    if (deny == T_YES && allow == T_NO) {
        CHECK(d.verdict == POLICY_BLOCK && strcmp(d.rule, "deny-host") == 0);
        return;
    }
    /* ... and only such a host is refused by that rule (when the reading is sure). */
    if (surely_name(&host) && (deny == T_NO || allow == T_YES))
        CHECK(strcmp(d.rule, "deny-host") != 0);
    if (strcmp(d.rule, "deny-host") == 0)
        return;

    /* 2. CONNECT reaches only the listed ports. */
    port_ok = !r->is_connect || port_listed(s, st, r->port);
    CHECK(port_ok == (strcmp(d.rule, "connect-ports") != 0));
    if (!port_ok) {
        CHECK(d.verdict == POLICY_BLOCK);
        return;
    }

    /* 6. No tool: the organisation's default, whatever the host. */
    if (t == NULL)
        CHECK(strcmp(d.rule, "unidentified") == 0 && d.verdict == verdict_of(s->unidentified));
    else if (strncmp(d.rule, "allow:", 6) == 0)
        CHECK(d.verdict == POLICY_ALLOW);
    else if (strcmp(d.rule, "default") == 0)
        CHECK(d.verdict == (names == alpha_names ? verdict_of(s->tool_default) : POLICY_ALLOW));
}

/* Writes into out (capacity cap) the host read as *h spelt in way how, another spelling
 * of the same host that a deny pattern must match all the same; false when there is none. */
static bool spell(const struct reading *h, unsigned how, char *out, size_t cap)
{
    const unsigned char *a = h->addr;
    uint32_t v = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
    const char *dot = strchr(h->name, '.');
    size_t i, o;

    switch (h->kind) {
    case HK_NAME:
        switch (how % 5) {
        case 0:
            snprintf(out, cap, "%s", h->name);
            return true;
        case 1:
        case 2:
            /* Upper case, or every other letter in upper case with a trailing dot. */
            for (i = 0; h->name[i] != '\0' && i + 2 < cap; i++)
                out[i] = how % 5 == 1 || i % 2 == 0 ? (char)toupper((unsigned char)h->name[i])
                                                    : h->name[i];
            if (how % 5 == 2)
                out[i++] = '.';
            out[i] = '\0';
            return true;
        case 3:
            o = strlen(h->name);
            if (o + 2 > cap)
                return false; /* cut short, it would be another name */
            memcpy(out, h->name, o);
            memcpy(out + o, ".", 2);
            return true;
        default: {
            int n = dot != NULL ? snprintf(out, cap, "*.%s", dot + 1) : -1;
            return n > 0 && (size_t)n < cap;
        }
        }
    case HK_V4:
        switch (how % 9) {
        case 0:
            snprintf(out, cap, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
            break;
        case 1:
            snprintf(out, cap, "%" PRIu32, v);
            break;
        case 2:
            snprintf(out, cap, "0x%08" PRIx32, v);
            break;
        case 3:
            snprintf(out, cap, "0X%" PRIX32, v);
            break;
        case 4:
            snprintf(out, cap, "0%o.0%o.0%o.0%o", a[0], a[1], a[2], a[3]);
            break;
        case 5:
            snprintf(out, cap, "%u.%" PRIu32, a[0], v & 0xffffff);
            break;
        case 6:
            snprintf(out, cap, "%u.%u.%" PRIu32, a[0], a[1], v & 0xffff);
            break;
        case 7:
            snprintf(out, cap, "::ffff:%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
            break;
        default:
            snprintf(out, cap, "%u.%u.%u.%u.", a[0], a[1], a[2], a[3]);
            break;
        }
        return true;
    case HK_V6:
        if (how % 3 == 0)
            return inet_ntop(AF_INET6, a, out, (socklen_t)cap) != NULL;
        /* Every group written out, in lower case or with leading zeros in upper case. */
        for (i = 0, o = 0; i < 8 && o < cap; i++)
            o += (size_t)snprintf(out + o, cap - o, how % 3 == 1 ? "%x:" : "%04X:",
                                  (unsigned)(a[2 * i] << 8 | a[2 * i + 1]));
        out[o - 1] = '\0';
        return true;
    default:
        return false;
    }
}

/* Adds to deny_hosts the request's own host in each spelling the "spell" lines ask for. */
static void add_spellings(struct spec *s, const char *buf, const struct http1_head *h, bool connect)
{
    char raw[MAX_VALUE + 1];
    struct reading host;
    bool bracketed;

    target_host(buf + h->target.off, h->target.len, connect, raw, &bracketed);
    read_host(raw, bracketed, &host);
    for (size_t i = 0; i < s->nitems[IT_SPELL] && s->nitems[IT_DENY] < MAX_ITEMS; i++) {
        unsigned how = (unsigned)strtoul(s->items[IT_SPELL][i], NULL, 10);
        if (spell(&host, how, s->items[IT_DENY][s->nitems[IT_DENY]], MAX_VALUE + 1))
            s->nitems[IT_DENY]++;
    }
}

/* Loads the input's policy, takes its request as the session does, and checks the
 * decision. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct spec s;
    static struct http1_field fields[FIELDS];
    struct sluice_settings st;
    struct policy_snapshot *p;
    struct http1_limits lim;
    struct http1_parser ps;
    struct http1_head h;
    struct request r;
    struct request_error err;
    const char *errstr = NULL;

    settings_init(&st);
    if (!read_spec((const char *)data, size, &s) || s.head_len == 0)
        return 0;
    if (s.cport[0] != '\0' && settings_parse_ports(&st, s.cport, &errstr) < 0)
        return 0;
    http1_limits_default(&lim);
    http1_parser_init(&ps, HTTP1_REQUEST, &lim, &h, fields, FIELDS);
    if (http1_parse_head(&ps, s.head, s.head_len) <= 0)
        return 0;
    if (request_from_head(s.head, &h, &r, &err) < 0)
        return 0;
    add_spellings(&s, s.head, &h, r.is_connect);
    if ((p = load_spec(&s)) == NULL)
        return 0;
    check_decision(p, &s, &st, s.head, &h, &r);
    policy_unref(p);
    return 0;
}
