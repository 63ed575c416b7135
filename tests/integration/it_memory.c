/*
 * What a client or an origin sends cannot grow sluice's memory without bound.  Each case
 * floods one side -- endless interim responses, an endless response body, an endless
 * request body, a tunnel both ways -- while the other side does not read, and measures
 * the peak resident memory of the real process (VmHWM) against what it used before.
 * The sanitizer's quarantine of freed memory is kept small so that RSS reflects what is
 * live.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <unistd.h>

#include "itcommon.h"

/* Growth of peak RSS a flood may cause, in KiB: buffers are bounded to a few hundred KiB. */
#define MEMORY_BOUND_KIB (24 * 1024)
/* How long each flood runs. */
#define FLOOD_MS 2500

/* What an origin did during a flood. */
struct flood {
    atomic_uint sent;   /* messages or chunks written */
    atomic_bool failed; /* its write failed: the proxy closed the connection */
};

/* Starts the proxy with a small sanitizer quarantine, so freed memory leaves RSS. */
static void start_proxy_measured(struct itcase *t, const char *const args[])
{
    char *saved = it_asan_small_quarantine();

    it_start_proxy(t, args);
    it_asan_restore(saved);
}

/*
 * The resident memory sluice has now (KiB), after a warm-up request to a second origin,
 * so that what every request allocates once is counted before the flood.
 */
static long baseline_kib(struct itcase *t)
{
    struct origin_opts o = {.handler = origin_handler_simple};
    struct rawclient *rc;
    struct rawresp r = {0};
    char req[256];

    t->origin2 = origin_start(&o);
    assert_non_null(t->origin2);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET http://origin.test:%u/warm HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin2));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 5000), 200);
    rawresp_free(&r);
    rawclient_close(rc);
    return sluiceproc_status_kib(t->env->proxy, "VmRSS");
}

/* Asserts that sluice's peak RSS grew by less than the bound since base. */
static void assert_bounded(struct itcase *t, long base, const char *what)
{
    long peak = sluiceproc_status_kib(t->env->proxy, "VmHWM");

    print_message("%s: RSS %ld KiB before, peak %ld KiB\n", what, base, peak);
    assert_true(base > 0 && peak > 0);
    if (peak - base >= MEMORY_BOUND_KIB)
        it_fail_with_log(t, what);
}

/* Stops the origin now: its handlers use state on the case's stack. */
static void stop_origin(struct itcase *t)
{
    origin_stop(t->origin);
    t->origin = NULL;
}

/* Writes "100 Continue" heads for FLOOD_MS, or until the proxy closes. */
static void interim_flood_handler(struct origin_conn *c)
{
    struct flood *f = c->arg;
    uint64_t end = tio_now_ms() + FLOOD_MS * 2;

    if (oconn_read_head(c, 10000) == 0)
        return;
    for (int i = 0; i < TIO_MAX_ITER && tio_now_ms() < end && !origin_stopping(c->origin); i++) {
        if (oconn_writes(c, "HTTP/1.1 100 Continue\r\n\r\n") != 0) {
            atomic_store(&f->failed, true);
            return;
        }
        atomic_fetch_add(&f->sent, 1);
    }
}

/*
 * An origin answering with endless 100 Continue heads to a client that does not read:
 * sluice relays at most FORWARD_MAX_INTERIM (16) of them, answers 502 and drops the
 * upstream; its memory does not grow.
 */
static void test_interim_flood(void **state)
{
    struct itcase *t = *state;
    struct flood f = {0};
    struct rawclient *rc;
    struct rawresp r = {0};
    char req[256], type[64], *line;
    long base;
    int st = 100, interim = 0;

    it_start_origin(t, interim_flood_handler, &f);
    start_proxy_measured(t, NULL);
    base = baseline_kib(t);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET http://origin.test:%u/flood HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    tio_sleep_ms(FLOOD_MS);
    assert_bounded(t, base, "interim flood");
    for (int i = 0; i < 64 && st == 100; i++) {
        st = rawclient_response(rc, &r, false, 5000);
        interim += st == 100;
    }
    assert_int_equal(interim, 16);
    it_assert_sluice_error(&r, 502, type, sizeof(type));
    assert_string_equal(type, "http_protocol_error");
    rawresp_free(&r);
    rawclient_close(rc);
    line = it_access_line(t, "target=\"http://origin.test:", "/flood\"", NULL);
    it_assert_access_field(line, "status", "502");
    it_assert_access_field(line, "term", "SH");
    free(line);
    /* The upstream was dropped, not drained: the origin's writes fail soon. */
    for (int i = 0; i < 50 && !atomic_load(&f.failed); i++)
        tio_sleep_ms(100);
    assert_true(atomic_load(&f.failed));
    stop_origin(t); /* its handler uses f */
}

/* Sends 64 KiB body chunks of an endless chunked response for FLOOD_MS * 2. */
static void body_flood_handler(struct origin_conn *c)
{
    static char chunk[65536 + 16];
    struct flood *f = c->arg;
    uint64_t end = tio_now_ms() + FLOOD_MS * 2;
    size_t n;

    if (oconn_read_head(c, 10000) == 0 ||
        oconn_writes(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") != 0)
        return;
    n = (size_t)snprintf(chunk, sizeof(chunk), "10000\r\n");
    memset(chunk + n, 'b', 65536);
    memcpy(chunk + n + 65536, "\r\n", 2);
    for (int i = 0; i < TIO_MAX_ITER && tio_now_ms() < end && !origin_stopping(c->origin); i++) {
        if (oconn_write(c, chunk, n + 65538) != 0) {
            atomic_store(&f->failed, true);
            return;
        }
        atomic_fetch_add(&f->sent, 1);
    }
}

/* An endless response body to a client that does not read: reading pauses, memory holds. */
static void test_response_flood(void **state)
{
    struct itcase *t = *state;
    struct flood f = {0};
    struct rawclient *rc;
    char req[256];
    long base;

    it_start_origin(t, body_flood_handler, &f);
    start_proxy_measured(t, NULL);
    base = baseline_kib(t);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET http://origin.test:%u/endless HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    tio_sleep_ms(FLOOD_MS);
    assert_bounded(t, base, "response flood");
    /* Back-pressure held the origin: a few MiB of socket buffers, not the whole flood. */
    print_message("origin wrote %u chunks of 64 KiB\n", atomic_load(&f.sent));
    assert_true(atomic_load(&f.sent) < 200);
    rawclient_close(rc);
    stop_origin(t); /* its handler uses f */
}

/* Reads one request head, then reads nothing more for FLOOD_MS * 2. */
static void deaf_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0)
        return;
    (void)oconn_sleep(c, FLOOD_MS * 2);
}

/*
 * Writes as much of the same byte as fd takes for ms milliseconds, without blocking.
 * Returns the bytes written.
 */
static size_t flood_fd(int fd, const char *unit, size_t unit_len, unsigned ms)
{
    uint64_t end = tio_now_ms() + ms;
    size_t total = 0;

    assert_int_equal(tio_set_nonblock(fd, true), 0);
    for (int i = 0; i < TIO_MAX_ITER && tio_now_ms() < end; i++) {
        ssize_t n = send(fd, unit, unit_len, MSG_NOSIGNAL);

        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            break;
        tio_sleep_ms(10);
    }
    return total;
}

/* An endless chunked request body to an origin that does not read: memory holds. */
static void test_request_flood(void **state)
{
    static char chunk[65536 + 16];
    struct itcase *t = *state;
    struct rawclient *rc;
    char req[256];
    size_t n, sent;
    long base;

    it_start_origin(t, deaf_handler, NULL);
    start_proxy_measured(t, NULL);
    base = baseline_kib(t);
    rc = it_raw(t);
    snprintf(req, sizeof(req),
             "POST http://origin.test:%u/upload HTTP/1.1\r\nHost: x\r\n"
             "Transfer-Encoding: chunked\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    n = (size_t)snprintf(chunk, sizeof(chunk), "10000\r\n");
    memset(chunk + n, 'u', 65536);
    memcpy(chunk + n + 65536, "\r\n", 2);
    sent = flood_fd(rc->fd, chunk, n + 65538, FLOOD_MS);
    print_message("client sent %zu bytes of body\n", sent);
    assert_bounded(t, base, "request flood");
    assert_true(sent < 64u * 1024 * 1024);
    rawclient_close(rc);
}

/* Opens a CONNECT tunnel to the origin's port. */
static struct rawclient *open_tunnel(struct itcase *t)
{
    struct rawclient *rc = it_raw(t);
    struct rawresp r = {0};
    char req[256];

    snprintf(req, sizeof(req), "CONNECT origin.test:%u HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, true, 10000), 200);
    rawresp_free(&r);
    return rc;
}

/* Writes to the tunnel's client for FLOOD_MS * 2 without reading. */
static void tunnel_flood_handler(struct origin_conn *c)
{
    static const char unit[65536];
    struct flood *f = c->arg;

    if (flood_fd(c->fd, unit, sizeof(unit), FLOOD_MS * 2) > 0)
        atomic_fetch_add(&f->sent, 1);
}

/* A tunnel flooded both ways while neither end reads: memory holds. */
static void test_tunnel_flood(void **state)
{
    static const char unit[65536];
    struct itcase *t = *state;
    struct flood f = {0};
    const char *args[] = {"--connect-ports", NULL, NULL};
    char port[16];
    struct rawclient *rc;
    long base;
    size_t sent;

    it_start_origin(t, tunnel_flood_handler, &f);
    snprintf(port, sizeof(port), "%u", origin_port(t->origin));
    args[1] = port;
    start_proxy_measured(t, args);
    base = baseline_kib(t);
    rc = open_tunnel(t);
    sent = flood_fd(rc->fd, unit, sizeof(unit), FLOOD_MS);
    print_message("client sent %zu bytes into the tunnel\n", sent);
    assert_bounded(t, base, "tunnel flood");
    assert_true(sent < 64u * 1024 * 1024);
    rawclient_close(rc);
    stop_origin(t); /* its handler uses f */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_interim_flood, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_response_flood, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_request_flood, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_tunnel_flood, it_setup, it_teardown),
    };

    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
