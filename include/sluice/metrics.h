/*
 * Counters, gauges and histograms of the whole process, and their text in the Prometheus
 * exposition format (version 0.0.4), which the admin listener serves at /metrics.
 *
 * Counting is lock-free: every cell is a relaxed atomic, so a worker pays one atomic add
 * per value and never waits for a scrape.  Label values that come from policy (tools,
 * rules) or from failures (error types) are interned in bounded tables: the first
 * METRICS_MAX_TOOLS tools, METRICS_MAX_RULES rules and METRICS_MAX_ERRORS error types seen
 * get a series of their own, and every later one is counted in the series labelled
 * "other", so no client, however it steers rule names (allow-asns:<its AS>), grows memory.
 * Memory is static: nothing here allocates.
 *
 * The module counts what it is told and reads the gauges it owns; the audit trail's
 * queue and the policy generation it reads from those modules when it renders.  It knows
 * nothing of sessions or workers: they call down into it.
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/auditrec.h"

/* Distinct label values kept per table; past them, "other". */
#define METRICS_MAX_TOOLS  256
#define METRICS_MAX_RULES  1024
#define METRICS_MAX_ERRORS 64
/* Bytes of one label value kept (a longer one is cut; rules are at most 127). */
#define METRICS_LABEL_MAX 128
/* The label value of the series that counts what is past a table's cap. */
#define METRICS_OTHER "other"

/* A table of interned label values; see metrics_intern(). */
enum metrics_table {
    METRICS_TOOLS = 0, /* tool ids, "unidentified" among them */
    METRICS_RULES,     /* the rules that blocked */
    METRICS_ERRORS,    /* RFC 9209 error types */
};

/*
 * Counts one finished request or tunnel from its record: requests and bytes by tool,
 * decision and kind; the rule of a block; the error type of a failure.  Any thread.
 */
void metrics_count_record(const struct audit_record *r);

/* A client connection was accepted and handed to a session (any thread). */
void metrics_connection_opened(void);

/* A client connection counted by metrics_connection_opened() closed (any thread). */
void metrics_connection_closed(void);

/* A tunnel began relaying bytes (any thread). */
void metrics_tunnel_opened(void);

/* A tunnel counted by metrics_tunnel_opened() ended (any thread). */
void metrics_tunnel_closed(void);

/* A reload of configuration and policies was refused: the previous one stays. */
void metrics_reload_failed(void);

/* A process lookup answered seconds after it was asked (any thread). */
void metrics_observe_identification(double seconds);

/* Adds the time one certificate for an inspected host took to make (any thread). */
void metrics_observe_certificate(double seconds);

/* Counts one TLS handshake with an origin that succeeded: resumed or full (any thread). */
void metrics_count_upstream_handshake(bool resumed);

/*
 * The index of value in table t, interning it when the table has room; 0, the "other"
 * series, when it is full.  Lock-free when value is known.  Exported for the tests.
 */
size_t metrics_intern(enum metrics_table t, const char *value);

/*
 * Writes value into out (capacity cap, always NUL-terminated) escaped as a label value of
 * the text format: backslash, double quote and line feed as \\, \" and \n, and every byte
 * that is not part of valid UTF-8 as U+FFFD.  A value that does not fit is cut at a
 * character's end.  Returns out.
 */
char *metrics_escape_label(char *out, size_t cap, const char *value);

/*
 * Renders every family as the text format into a new buffer (malloc'd, NUL-terminated;
 * the caller frees it), its length in *len.  NULL when out of memory.
 */
char *metrics_render(size_t *len);

/* Forgets every count and label value: for the tests, with no other thread counting. */
void metrics_reset(void);

#endif /* SLUICE_METRICS_H */
