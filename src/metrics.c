/* Process-wide counters and their Prometheus text; see include/sluice/metrics.h. */
#include "sluice/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/auditlog.h"
#include "sluice/capture.h"
#include "sluice/policy.h"
#include "sluice/utf8.h"
#include "sluice/version.h"

/* Decisions as label values; the index of each in the counter cells. */
static const char *const metrics_decisions[] = {"allow", "block", "report", "none"};
#define METRICS_NDECISIONS 4
/* What a record is about: a forwarded request or a tunnel. */
static const char *const metrics_kinds[] = {"http", "tunnel"};
#define METRICS_NKINDS 2

/* Upper bounds of the identification histogram's buckets, in seconds, as written. */
static const char *const metrics_id_le[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                            "0.005",  "0.01",    "0.025",  "0.05",  "0.1",
                                            "0.25",   "0.5",     "1",      "2.5",   "10"};
static const double metrics_id_bounds[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
#define METRICS_ID_BUCKETS (sizeof(metrics_id_bounds) / sizeof(metrics_id_bounds[0]))

/*
 * One table of interned label values.  names[0] is "other"; names[1..count) were interned
 * in order.  slots is an open-addressing hash of index + 1 (0: empty) whose entries are
 * published with a release store after the name is written, so a reader that finds an
 * index finds its name whole, without the lock; inserts take the lock.
 */
struct metrics_names {
    size_t cap;              /* values kept, "other" aside */
    size_t mask;             /* the hash's size - 1 (a power of two, at least 2 * cap) */
    _Atomic uint32_t *slots; /* [mask + 1] */
    char (*names)[METRICS_LABEL_MAX];
    atomic_size_t count; /* names in use, "other" included */
    pthread_mutex_t lock;
};

static _Atomic uint32_t metrics_tool_slots[2 * METRICS_MAX_TOOLS];
static char metrics_tool_names[METRICS_MAX_TOOLS + 1][METRICS_LABEL_MAX];
static _Atomic uint32_t metrics_rule_slots[2 * METRICS_MAX_RULES];
static char metrics_rule_names[METRICS_MAX_RULES + 1][METRICS_LABEL_MAX];
static _Atomic uint32_t metrics_error_slots[2 * METRICS_MAX_ERRORS];
static char metrics_error_names[METRICS_MAX_ERRORS + 1][METRICS_LABEL_MAX];

static struct metrics_names metrics_tables[] = {
    [METRICS_TOOLS] = {METRICS_MAX_TOOLS, 2 * METRICS_MAX_TOOLS - 1, metrics_tool_slots,
                       metrics_tool_names, 1, PTHREAD_MUTEX_INITIALIZER},
    [METRICS_RULES] = {METRICS_MAX_RULES, 2 * METRICS_MAX_RULES - 1, metrics_rule_slots,
                       metrics_rule_names, 1, PTHREAD_MUTEX_INITIALIZER},
    [METRICS_ERRORS] = {METRICS_MAX_ERRORS, 2 * METRICS_MAX_ERRORS - 1, metrics_error_slots,
                        metrics_error_names, 1, PTHREAD_MUTEX_INITIALIZER},
};

/* What the records of one tool, decision and kind add up to. */
struct metrics_cell {
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t sent;     /* bytes the client sent through sluice */
    atomic_uint_fast64_t received; /* bytes sluice sent to the client */
};

/* A histogram: counts per bucket (not cumulative; the last is +Inf), the sum in ns. */
struct metrics_histogram {
    atomic_uint_fast64_t buckets[METRICS_ID_BUCKETS + 1];
    atomic_uint_fast64_t sum_ns;
};

/* Every count; all zero at start. */
static struct {
    struct metrics_cell cells[METRICS_MAX_TOOLS + 1][METRICS_NDECISIONS][METRICS_NKINDS];
    atomic_uint_fast64_t blocked[METRICS_MAX_RULES + 1];
    atomic_uint_fast64_t errors[METRICS_MAX_ERRORS + 1];
    atomic_uint_fast64_t connections, tunnels, reload_failures;
    atomic_uint_fast64_t upstream_handshakes[2]; /* [resumed] */
    atomic_int_fast64_t open_connections, open_tunnels;
    struct metrics_histogram identification;
    struct metrics_histogram certificate;
} metrics;

/* FNV-1a of s. */
static uint32_t metrics_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/*
 * Copies value into out (METRICS_LABEL_MAX) as valid UTF-8, each invalid byte as U+FFFD,
 * cut at a character's end: the form a value is interned and shown in, so two values
 * that would show alike are one series.
 */
static void metrics_normalise(char out[METRICS_LABEL_MAX], const char *value)
{
    const unsigned char *u = (const unsigned char *)value;
    size_t n = strlen(value), o = 0;

    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq_len(u + i, n - i);
        const char *src = len > 0 ? value + i : "\xef\xbf\xbd";
        size_t out_len = len > 0 ? len : 3;

        if (o + out_len >= METRICS_LABEL_MAX)
            break;
        memcpy(out + o, src, out_len);
        o += out_len;
        i += len > 0 ? len : 1;
    }
    out[o] = '\0';
}

/* Interns a value; see the header. */
size_t metrics_intern(enum metrics_table t, const char *value)
{
    struct metrics_names *tab = &metrics_tables[t];
    char name[METRICS_LABEL_MAX];
    uint32_t h, idx;
    size_t n;

    metrics_normalise(name, value);
    if (strcmp(name, METRICS_OTHER) == 0)
        return 0; /* one series of that name: the one past the cap */
    h = metrics_hash(name);
    for (size_t probe = 0; probe <= tab->mask; probe++) {
        idx = atomic_load_explicit(&tab->slots[(h + probe) & tab->mask], memory_order_acquire);
        if (idx == 0)
            break;
        if (strcmp(tab->names[idx], name) == 0)
            return idx;
    }
    /* Not known: insert under the lock, looking again (another thread may have). */
    pthread_mutex_lock(&tab->lock);
    n = atomic_load_explicit(&tab->count, memory_order_relaxed);
    for (size_t probe = 0; probe <= tab->mask; probe++) {
        _Atomic uint32_t *slot = &tab->slots[(h + probe) & tab->mask];

        idx = atomic_load_explicit(slot, memory_order_relaxed);
        if (idx != 0 && strcmp(tab->names[idx], name) == 0)
            break;
        if (idx != 0)
            continue;
        if (n > tab->cap) {
            idx = 0; /* full: counted as other */
            break;
        }
        memcpy(tab->names[n], name, sizeof(name));
        idx = (uint32_t)n;
        atomic_store_explicit(slot, idx, memory_order_release);
        atomic_store_explicit(&tab->count, n + 1, memory_order_release);
        break;
    }
    pthread_mutex_unlock(&tab->lock);
    return idx;
}

/* Escapes a label value; see the header. */
char *metrics_escape_label(char *out, size_t cap, const char *value)
{
    char name[METRICS_LABEL_MAX * 2];
    size_t o = 0;

    /* Normalised in pieces, as a value longer than one label is too. */
    if (strlen(value) < METRICS_LABEL_MAX) {
        metrics_normalise(name, value);
    } else {
        char head[METRICS_LABEL_MAX];
        memcpy(head, value, METRICS_LABEL_MAX - 1);
        head[METRICS_LABEL_MAX - 1] = '\0';
        metrics_normalise(name, head);
    }
    for (const char *p = name; *p != '\0'; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        size_t len = esc != NULL ? 2 : 1;

        /* Cut at a character's end: never inside an escape or a UTF-8 sequence. */
        if (o + len >= cap)
            break;
        if ((unsigned char)*p >= 0xc0) {
            size_t clen = utf8_seq_len((const unsigned char *)p, strlen(p));
            if (clen == 0 || o + clen >= cap)
                break;
            memcpy(out + o, p, clen);
            o += clen;
            p += clen - 1;
            continue;
        }
        memcpy(out + o, esc != NULL ? esc : p, len);
        o += len;
    }
    out[cap > 0 ? o : 0] = '\0';
    return out;
}

/* The decision's index among metrics_decisions ("-" and anything else: none). */
static size_t metrics_decision_index(const char *decision)
{
    for (size_t i = 0; i + 1 < METRICS_NDECISIONS; i++)
        if (strcmp(decision, metrics_decisions[i]) == 0)
            return i;
    return METRICS_NDECISIONS - 1;
}

/* Counts a record; see the header. */
void metrics_count_record(const struct audit_record *r)
{
    size_t tool = metrics_intern(METRICS_TOOLS, r->tool != NULL ? r->tool : "unidentified");
    size_t d = metrics_decision_index(r->decision != NULL ? r->decision : "-");
    struct metrics_cell *c = &metrics.cells[tool][d][r->is_connect ? 1 : 0];

    atomic_fetch_add_explicit(&c->requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->sent, r->sent, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->received, r->received, memory_order_relaxed);
    if (d == 1 && r->rule != NULL)
        atomic_fetch_add_explicit(&metrics.blocked[metrics_intern(METRICS_RULES, r->rule)], 1,
                                  memory_order_relaxed);
    if (r->error != NULL && r->error[0] != '\0')
        atomic_fetch_add_explicit(&metrics.errors[metrics_intern(METRICS_ERRORS, r->error)], 1,
                                  memory_order_relaxed);
}

void metrics_connection_opened(void)
{
    atomic_fetch_add_explicit(&metrics.connections, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&metrics.open_connections, 1, memory_order_relaxed);
}

void metrics_connection_closed(void)
{
    atomic_fetch_sub_explicit(&metrics.open_connections, 1, memory_order_relaxed);
}

void metrics_tunnel_opened(void)
{
    atomic_fetch_add_explicit(&metrics.tunnels, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&metrics.open_tunnels, 1, memory_order_relaxed);
}

void metrics_tunnel_closed(void)
{
    atomic_fetch_sub_explicit(&metrics.open_tunnels, 1, memory_order_relaxed);
}

void metrics_reload_failed(void)
{
    atomic_fetch_add_explicit(&metrics.reload_failures, 1, memory_order_relaxed);
}

void metrics_count_upstream_handshake(bool resumed)
{
    atomic_fetch_add_explicit(&metrics.upstream_handshakes[resumed ? 1 : 0], 1,
                              memory_order_relaxed);
}

/* Adds one observation to histogram h. */
static void metrics_observe(struct metrics_histogram *h, double seconds)
{
    size_t b = 0;

    if (!(seconds >= 0)) /* NaN, or a clock that went back */
        seconds = 0;
    if (seconds > 1e6) /* keeps the sum's nanoseconds in range; the bucket is +Inf anyway */
        seconds = 1e6;
    while (b < METRICS_ID_BUCKETS && seconds > metrics_id_bounds[b])
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint_fast64_t)(seconds * 1e9), memory_order_relaxed);
}

/* Adds one observation to the identification histogram. */
void metrics_observe_identification(double seconds)
{
    metrics_observe(&metrics.identification, seconds);
}

/* Adds one observation to the certificate histogram. */
void metrics_observe_certificate(double seconds)
{
    metrics_observe(&metrics.certificate, seconds);
}

/* The text being rendered: grows as needed; failed is sticky. */
struct metrics_text {
    char *p;
    size_t len, cap;
    bool failed;
};

/* Appends formatted text. */
__attribute__((format(printf, 2, 3))) static void mt_printf(struct metrics_text *t, const char *fmt,
                                                            ...)
{
    va_list ap;
    int n;

    if (t->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        {
            size_t cap = (t->cap + (size_t)n + 1) * 2;
            char *p = realloc(t->p, cap);
            if (p == NULL) {
                t->failed = true;
                return;
            }
            t->p = p;
            t->cap = cap;
        }
    }
}

/* The HELP and TYPE lines of a family. */
static void mt_family(struct metrics_text *t, const char *name, const char *type, const char *help)
{
    mt_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The escaped name i of table tab into out. */
static const char *metrics_label(enum metrics_table tab, size_t i, char *out, size_t cap)
{
    return metrics_escape_label(out, cap, i == 0 ? METRICS_OTHER : metrics_tables[tab].names[i]);
}

/* Names in use in a table ("other" included), as a reader may take them. */
static size_t metrics_count_of(enum metrics_table tab)
{
    return atomic_load_explicit(&metrics_tables[tab].count, memory_order_acquire);
}

/* One of the three families counted per tool, decision and kind. */
static void metrics_render_cells(struct metrics_text *t, const char *name, const char *help,
                                 size_t field)
{
    size_t ntools = metrics_count_of(METRICS_TOOLS);
    char tool[METRICS_LABEL_MAX * 2];

    mt_family(t, name, "counter", help);
    for (size_t i = 0; i < ntools; i++)
        for (size_t d = 0; d < METRICS_NDECISIONS; d++)
            for (size_t k = 0; k < METRICS_NKINDS; k++) {
                const struct metrics_cell *c = &metrics.cells[i][d][k];
                uint64_t n = atomic_load_explicit(&c->requests, memory_order_relaxed);
                uint64_t v = field == 0 ? n
                             : field == 1
                                 ? atomic_load_explicit(&c->sent, memory_order_relaxed)
                                 : atomic_load_explicit(&c->received, memory_order_relaxed);

                if (n == 0)
                    continue; /* a series appears with its first record */
                mt_printf(t, "%s{tool=\"%s\",decision=\"%s\",kind=\"%s\"} %" PRIu64 "\n", name,
                          metrics_label(METRICS_TOOLS, i, tool, sizeof(tool)), metrics_decisions[d],
                          metrics_kinds[k], v);
            }
}

/*
 * True when an RFC 9209 error type is about the upstream side (its name, its address,
 * the connection to it, its TLS, its response), not the client's request or sluice.
 */
static bool metrics_is_upstream_error(const char *type)
{
    static const char *const prefixes[] = {"dns_", "destination_",   "connection_",
                                           "tls_", "http_response_", "http_upgrade_"};

    if (strcmp(type, "connection_limit_reached") == 0)
        return false; /* sluice's own cap on clients */
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(type, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* The error families: upstream errors, and the others. */
static void metrics_render_errors(struct metrics_text *t)
{
    size_t n = metrics_count_of(METRICS_ERRORS);
    char type[METRICS_LABEL_MAX * 2];

    for (int upstream = 1; upstream >= 0; upstream--) {
        const char *name =
            upstream ? "sluice_upstream_errors_total" : "sluice_request_errors_total";

        mt_family(t, name, "counter",
                  upstream ? "Requests and tunnels that failed on the upstream side, by RFC 9209 "
                             "Proxy-Status error type (dns_error, connection_refused, "
                             "connection_timeout, tls_certificate_error, ...)."
                           : "Requests and tunnels that failed other than on the upstream side "
                             "and other than by a policy block (a malformed request, a "
                             "timeout reading it, a limit), by RFC 9209 Proxy-Status error "
                             "type.");
        for (size_t i = 0; i < n; i++) {
            uint64_t v = atomic_load_explicit(&metrics.errors[i], memory_order_relaxed);
            const char *name_i = i == 0 ? METRICS_OTHER : metrics_tables[METRICS_ERRORS].names[i];

            /* "other" (past the cap) is listed with the request errors. */
            if (v == 0 || (i != 0 && metrics_is_upstream_error(name_i) != upstream) ||
                (i == 0 && upstream))
                continue;
            mt_printf(t, "%s{type=\"%s\"} %" PRIu64 "\n", name,
                      metrics_label(METRICS_ERRORS, i, type, sizeof(type)), v);
        }
    }
}

/* Histogram h as family name. */
static void metrics_render_histogram(struct metrics_text *t, const char *name, const char *help,
                                     struct metrics_histogram *h)
{
    uint64_t cumulative = 0, sum_ns;

    mt_family(t, name, "histogram", help);
    for (size_t b = 0; b <= METRICS_ID_BUCKETS; b++) {
        cumulative += atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
        mt_printf(t, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
                  b < METRICS_ID_BUCKETS ? metrics_id_le[b] : "+Inf", cumulative);
    }
    sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
    mt_printf(t, "%s_sum %" PRIu64 ".%09" PRIu64 "\n", name, sum_ns / 1000000000u,
              sum_ns % 1000000000u);
    mt_printf(t, "%s_count %" PRIu64 "\n", name, cumulative);
}

/* A family of one sample without labels. */
static void metrics_render_one(struct metrics_text *t, const char *name, const char *type,
                               const char *help, int64_t value)
{
    mt_family(t, name, type, help);
    mt_printf(t, "%s %" PRId64 "\n", name, value);
}

/* Renders every family; see the header. */
char *metrics_render(size_t *len)
{
    struct metrics_text t = {.p = malloc(16384), .cap = 16384};
    size_t nrules = metrics_count_of(METRICS_RULES);
    char rule[METRICS_LABEL_MAX * 2], version[64];

    if (t.p == NULL)
        return NULL;
    t.p[0] = '\0';
    mt_family(&t, "sluice_build_info", "gauge", "The version of sluice running; always 1.");
    mt_printf(&t, "sluice_build_info{version=\"%s\"} 1\n",
              metrics_escape_label(version, sizeof(version), SLUICE_VERSION));
    metrics_render_cells(&t, "sluice_requests_total",
                         "Requests (kind http) and tunnels (kind tunnel) finished, by tool and "
                         "policy decision (none: ended before a decision).",
                         0);
    metrics_render_cells(&t, "sluice_sent_bytes_total",
                         "Bytes clients sent through sluice toward the upstream, by tool, "
                         "decision and kind, counted when each request or tunnel finishes.",
                         1);
    metrics_render_cells(&t, "sluice_received_bytes_total",
                         "Bytes sluice sent to clients, its own responses included, by tool, "
                         "decision and kind, counted when each request or tunnel finishes.",
                         2);
    mt_family(&t, "sluice_blocked_total", "counter",
              "Requests and tunnels blocked, by the rule that blocked them (past 1024 rules, "
              "as other).");
    for (size_t i = 0; i < nrules; i++) {
        uint64_t v = atomic_load_explicit(&metrics.blocked[i], memory_order_relaxed);
        if (v > 0)
            mt_printf(&t, "sluice_blocked_total{rule=\"%s\"} %" PRIu64 "\n",
                      metrics_label(METRICS_RULES, i, rule, sizeof(rule)), v);
    }
    metrics_render_errors(&t);
    metrics_render_one(&t, "sluice_connections_total", "counter",
                       "Client connections accepted (those refused at a connection cap "
                       "aside).",
                       (int64_t)atomic_load(&metrics.connections));
    metrics_render_one(&t, "sluice_open_connections", "gauge", "Client connections open now.",
                       (int64_t)atomic_load(&metrics.open_connections));
    metrics_render_one(&t, "sluice_tunnels_total", "counter",
                       "Tunnels (CONNECT, or an upgraded connection) that began relaying.",
                       (int64_t)atomic_load(&metrics.tunnels));
    metrics_render_one(&t, "sluice_open_tunnels", "gauge", "Tunnels relaying now.",
                       (int64_t)atomic_load(&metrics.open_tunnels));
    metrics_render_one(&t, "sluice_audit_queue_depth", "gauge",
                       "Audit records waiting for the audit trail's writer (0 when the trail "
                       "is off).",
                       (int64_t)auditlog_queue_depth());
    metrics_render_one(&t, "sluice_audit_lost_records_total", "counter",
                       "Audit records lost because the trail's queue was full or a write "
                       "failed.",
                       (int64_t)auditlog_lost());
    metrics_render_one(&t, "sluice_audit_failing", "gauge",
                       "1 while the audit trail cannot be written (requests then get 503 "
                       "unless audit.fail_open), else 0.",
                       auditlog_failing() ? 1 : 0);
    metrics_render_one(&t, "sluice_capture_lost_total", "counter",
                       "Captured bodies that could not be kept: memory or the store's queue "
                       "was full, or a write failed.",
                       (int64_t)capture_lost());
    metrics_render_one(&t, "sluice_capture_store_bytes", "gauge",
                       "Bytes of captured bodies in the capture store (0 when it is off).",
                       (int64_t)capture_store_bytes());
    metrics_render_one(&t, "sluice_capture_memory_bytes", "gauge",
                       "Bytes of bodies being captured or waiting for the store's writer.",
                       (int64_t)capture_memory_bytes());
    metrics_render_one(&t, "sluice_policy_generation", "gauge",
                       "Generation of the policy in force: 1 at start, one more per "
                       "successful reload.",
                       (int64_t)policy_current_generation());
    metrics_render_one(&t, "sluice_policy_reload_failures_total", "counter",
                       "Reloads (SIGHUP) refused because the configuration, a policy or the "
                       "credentials were invalid; the previous policy stayed in force.",
                       (int64_t)atomic_load(&metrics.reload_failures));
    mt_family(&t, "sluice_tls_upstream_handshakes_total", "counter",
              "TLS handshakes with origins (inspected requests) that succeeded, by whether they "
              "resumed a session an earlier connection of the same tool and user to the same "
              "host left.");
    for (int resumed = 0; resumed < 2; resumed++)
        mt_printf(&t, "sluice_tls_upstream_handshakes_total{resumed=\"%s\"} %" PRIu64 "\n",
                  resumed ? "true" : "false",
                  (uint64_t)atomic_load_explicit(&metrics.upstream_handshakes[resumed],
                                                 memory_order_relaxed));
    metrics_render_histogram(&t, "sluice_identification_duration_seconds",
                             "Time from asking which local process is behind a loopback or "
                             "Unix client connection (socket, /proc, ancestors, executable) to "
                             "the answer reaching the worker.",
                             &metrics.identification);
    metrics_render_histogram(&t, "sluice_certificate_duration_seconds",
                             "Time to make (sign) a certificate for an inspected host that was "
                             "not in the cache.",
                             &metrics.certificate);
    if (t.failed) {
        free(t.p);
        return NULL;
    }
    *len = t.len;
    return t.p;
}

/* Forgets everything; see the header. */
void metrics_reset(void)
{
    for (size_t t = 0; t < sizeof(metrics_tables) / sizeof(metrics_tables[0]); t++) {
        struct metrics_names *tab = &metrics_tables[t];

        pthread_mutex_lock(&tab->lock);
        for (size_t i = 0; i <= tab->mask; i++)
            atomic_store(&tab->slots[i], 0);
        atomic_store(&tab->count, 1);
        pthread_mutex_unlock(&tab->lock);
    }
    memset(&metrics, 0, sizeof(metrics));
}
