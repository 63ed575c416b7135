/*
 * What every integration test executable shares on top of sluice_testsupport: the cmocka
 * fixture (a test environment per case, checked on teardown: sluice must exit 0 with no
 * sanitizer report), assertions that dump the proxy's log when they fail, and the checks
 * of a response sluice makes itself.
 *
 * Include after <stdarg.h>, <stddef.h>, <setjmp.h> and <cmocka.h>.
 */
#ifndef SLUICE_IT_COMMON_H
#define SLUICE_IT_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "itcurl.h"
#include "origin.h"
#include "rawclient.h"
#include "tbuf.h"
#include "testca.h"
#include "testenv.h"
#include "tio.h"

/* One test case's resources; teardown frees whatever is set. */
struct itcase {
    struct testenv *env;    /* directory, DNS stub, hosts file, the proxy */
    struct origin *origin;  /* the main scripted origin, or NULL */
    struct origin *origin2; /* a second one when a case needs it */
    uint16_t proxy_port;    /* port of the proxy's first listener */
    struct testca *ca;      /* throwaway CA for a TLS origin, or NULL */
    SSL_CTX *tls;           /* that origin's context; freed after the origins stop */
    const void *param;      /* the case's initial state (cmocka prestate), or NULL */
};

/* cmocka setup: makes the environment (no proxy yet). */
int it_setup(void **state);

/* cmocka teardown: stops origins and the proxy; fails when sluice did not exit cleanly. */
int it_teardown(void **state);

/*
 * Makes a sluice started from now on keep a small sanitizer quarantine (4 MiB), so that
 * freed memory leaves RSS and a test can measure what sluice holds.  Returns what
 * ASAN_OPTIONS was (malloc'd, or NULL), for it_asan_restore().
 */
char *it_asan_small_quarantine(void);

/* Puts ASAN_OPTIONS back as it_asan_small_quarantine() found it, and frees saved. */
void it_asan_restore(char *saved);

/* Starts the proxy with the given extra args (NULL-terminated or NULL); fails the case if not. */
void it_start_proxy(struct itcase *t, const char *const args[]);

/* Starts t->origin with handler and arg (plain, IPv4); fails the case if not. */
void it_start_origin(struct itcase *t, origin_handler_fn handler, void *arg);

/* Starts t->origin as an HTTPS origin for "origin.test" and 127.0.0.1 (t->ca, t->tls). */
void it_start_tls_origin(struct itcase *t, origin_handler_fn handler, void *arg);

/* Formats "http://origin.test:<origin port><path>" into buf. */
const char *it_url(struct itcase *t, const char *path, char *buf, size_t cap);

/*
 * Waits up to 5 s for an access line holding every token (NULL-terminated); fails the
 * case, with the log on stderr, when none appears.  Returns nothing: the line is printed.
 */
void it_expect_access(struct itcase *t, ...) __attribute__((sentinel));

/*
 * Waits up to 5 s for an access line holding every token (NULL-terminated) and returns it
 * (malloc'd; the caller frees it); fails the case, with the log, when none appears.
 */
char *it_access_line(struct itcase *t, ...) __attribute__((sentinel));

/*
 * Copies the value of field key ("term", "rule", "target", ...) of an access line into
 * out, unquoted; fails the case when the line has no such field.  Returns out.
 */
const char *it_access_field(const char *line, const char *key, char *out, size_t cap);

/* Asserts that field key of an access line is exactly want. */
void it_assert_access_field(const char *line, const char *key, const char *want);

/* Opens a raw connection to the proxy; fails the case if it cannot. */
struct rawclient *it_raw(struct itcase *t);

/*
 * Writes <dir>/policies with organisation.yaml holding org and, when tool is not NULL,
 * tools/<tool>.yaml holding profile.  Returns the directory (static storage).
 */
const char *it_write_policy(struct itcase *t, const char *org, const char *tool,
                            const char *profile);

/*
 * A raw connection from the local address src_ip (an IPv4 loopback address such as
 * 127.0.0.2, port chosen by the kernel) to 127.0.0.1:port.  Fails the case when it cannot.
 */
struct rawclient *it_raw_from(const char *src_ip, uint16_t port);

/* Sends "GET http://<authority>/x" on a new raw connection; returns the status, r filled. */
int it_raw_get(struct itcase *t, const char *authority, struct rawresp *r);

/*
 * Sends one plain GET for http://origin.test:<port>/after through the proxy on a new
 * connection and asserts a 200 from the origin: "the proxy still serves".
 */
void it_assert_serves(struct itcase *t);

/*
 * Asserts that r is a response sluice made itself with status code status: Server: sluice,
 * Proxy-Status "sluice; error=<RFC 9209 type>", text/plain, a Content-Length that matches
 * the body, and (for errors) Connection: close.  Returns the error type in type[].
 */
void it_assert_sluice_error(const struct rawresp *r, int status, char *type, size_t cap);

/* What one run of the binary, to its exit, did. */
struct it_run {
    int status;   /* exit status, or -1 when it did not exit normally */
    char *output; /* stdout and stderr, malloc'd; the caller frees it */
};

/*
 * Runs sluice with args (a ready file is added), waits at most 10 s for it to exit, prints
 * and returns what it did; fails the case when it keeps running.
 */
struct it_run it_run_sluice(struct itcase *t, const char *const args[]);

/*
 * Runs argv (argv[0] found on PATH) with stdin and stdout on /dev/null, stderr as this
 * process's, and waits at most 20 s (then kills it).  Returns its wait status, or -1.
 */
int it_run_command(const char *const argv[]);

/*
 * Runs only the cases whose name matches $SLUICE_CASE (a cmocka pattern: * and ? wild),
 * when it is set: SLUICE_CASE=test_connect_tunnel_bytes tests/run -R integration_connect.
 */
void it_select_cases(void);

/* Fails the case with the proxy's log tail on stderr. */
void it_fail_with_log(struct itcase *t, const char *what);

#endif /* SLUICE_IT_COMMON_H */
