/*
 * The process's life: SIGTERM with a slow response in flight lets it finish, refuses new
 * connections at once and exits 0; an idle keep-alive client does not hold shutdown up;
 * SIGINT acts like SIGTERM; a startup error exits 1 with a message, a bad option value
 * exits non-zero with one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itcommon.h"

/* Sends half a body, signals the test, waits 1.5 s, sends the rest. */
static void slow_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0)
        return;
    if (oconn_writes(c, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n0123456789") != 0)
        return;
    origin_event(c->origin);
    if (!oconn_sleep(c, 1500))
        return;
    (void)oconn_writes(c, "abcdefghij");
    origin_event(c->origin);
}

/* A client on its own thread (libcurl blocks while the test signals the proxy). */
struct slow_client {
    uint16_t proxy_port;
    char url[128];
    CURLcode rc;
    long status;
    char body[64];
    uint64_t done_ms;
};

/* Runs one GET and records the outcome. */
static void *slow_client_main(void *arg)
{
    struct slow_client *s = arg;
    struct itcurl *c = itcurl_new(s->proxy_port);

    if (c == NULL) {
        s->rc = CURLE_FAILED_INIT;
        return NULL;
    }
    s->rc = itcurl_perform(c, s->url);
    s->status = itcurl_status(c);
    snprintf(s->body, sizeof(s->body), "%s", tbuf_str(&c->body));
    s->done_ms = tio_now_ms();
    itcurl_free(c);
    return NULL;
}

/* SIGTERM: the response in flight completes, new connections are refused, exit 0. */
static void test_graceful_shutdown(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--drain-timeout", "5s", NULL};
    struct slow_client s = {0};
    pthread_t th;
    uint64_t t0;
    uint64_t refused_ms = 0;
    bool signalled;
    int i;
    int st;

    it_start_origin(t, slow_handler, NULL);
    it_start_proxy(t, args);
    s.proxy_port = t->proxy_port;
    it_url(t, "/slow", s.url, sizeof(s.url));
    assert_int_equal(pthread_create(&th, NULL, slow_client_main, &s), 0);
    if (!origin_wait_events(t->origin, 1, 10000)) {
        pthread_join(th, NULL);
        it_fail_with_log(t, "the slow response never started");
    }
    /* No assertion until the thread is joined: a failure must not leave it running. */
    t0 = tio_now_ms();
    signalled = sluiceproc_signal(t->env->proxy, SIGTERM) == 0;
    for (i = 0; signalled && i < 100 && tio_now_ms() - t0 < 1000; i++) {
        int fd = tio_connect("127.0.0.1", t->proxy_port, 500);

        if (fd == -1 && errno == ECONNREFUSED) {
            refused_ms = tio_now_ms() - t0;
            break;
        }
        tio_close(&fd);
        tio_sleep_ms(20);
    }
    pthread_join(th, NULL);
    assert_true(signalled);
    fprintf(stderr, "new connections refused %llu ms after SIGTERM; response done %llu ms after\n",
            (unsigned long long)refused_ms, (unsigned long long)(s.done_ms - t0));
    assert_true(refused_ms > 0);
    assert_true(refused_ms < s.done_ms - t0); /* refused while the response was in flight */
    if (s.rc != CURLE_OK)
        fprintf(stderr, "client: curl %d, status %ld, body '%s'\n", s.rc, s.status, s.body);
    assert_int_equal(s.rc, CURLE_OK);
    assert_int_equal(s.status, 200);
    assert_string_equal(s.body, "0123456789abcdefghij");
    if (!sluiceproc_wait_exit(t->env->proxy, 8000))
        it_fail_with_log(t, "sluice did not exit after draining");
    st = sluiceproc_status(t->env->proxy);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    it_expect_access(t, "status=200", "/slow", NULL);
    /* The count in it is a snapshot (a probe of the start may still be open): not asserted. */
    assert_true(sluiceproc_log_wait(t->env->proxy,
                                    "received SIGTERM: no new connections; draining ", 2000));
    assert_true(
        sluiceproc_log_wait(t->env->proxy, " for up to 5 s (SIGTERM again stops at once)", 2000));
}

/* Sends a head and half the body, then waits for the proxy to go (at most 30 s). */
static void stalled_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0)
        return;
    if (oconn_writes(c, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n0123456789") != 0)
        return;
    origin_event(c->origin);
    (void)oconn_wait_close(c, 30000);
}

/*
 * A drain counts down in the log; a second signal (SIGINT after SIGTERM, as Ctrl-C after
 * systemctl stop) closes what is left at once, with termination code D, and exits 0.
 */
static void test_second_signal_stops_at_once(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--drain-timeout", "30s", NULL};
    struct rawclient *rc;
    struct tbuf got = {0};
    char req[200], *line;
    uint64_t t0;
    int st;

    it_start_origin(t, stalled_handler, NULL);
    it_start_proxy(t, args);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET http://origin.test:%u/stalled HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_true(origin_wait_events(t->origin, 1, 10000));
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGTERM), 0);
    /* The countdown: a line within the first two seconds (bounded wait). */
    for (int i = 0;
         i < 60 && !sluiceproc_log_contains(t->env->proxy, "draining: 1 connection open, "); i++)
        tio_sleep_ms(50);
    assert_true(sluiceproc_log_wait(t->env->proxy,
                                    "draining 1 connection for up to 30 s (SIGTERM again "
                                    "stops at once)",
                                    2000));
    assert_true(sluiceproc_log_wait(t->env->proxy, "s left (SIGTERM or Ctrl-C again stops", 2000));
    t0 = tio_now_ms();
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGINT), 0);
    if (!sluiceproc_wait_exit(t->env->proxy, 5000))
        it_fail_with_log(t, "sluice did not stop at the second signal");
    fprintf(stderr, "exited %llu ms after the second signal\n",
            (unsigned long long)(tio_now_ms() - t0));
    st = sluiceproc_status(t->env->proxy);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(sluiceproc_log_wait(
        t->env->proxy, "received SIGINT again: closing the 1 connection left now", 2000));
    line = it_access_line(t, "/stalled", NULL);
    it_assert_access_field(line, "term", "D-");
    free(line);
    (void)rawclient_read_exact(rc, &got, 1000, 2000); /* the head and half the body, then EOF */
    assert_true(rc->eof || rawclient_wait_closed(rc, 2000));
    tbuf_free(&got);
    rawclient_close(rc);
}

/*
 * The drain timeout ends a drain that would not end by itself: a response stalled in
 * flight is cut when --drain-timeout is over (not before, not much after), with
 * termination code D-, and sluice exits 0.
 */
static void test_drain_timeout_expires(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--drain-timeout", "1s", NULL};
    struct rawclient *rc;
    char req[256], *line;
    uint64_t t0, took;
    int st;

    it_start_origin(t, stalled_handler, NULL);
    it_start_proxy(t, args);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET http://origin.test:%u/stalled HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_true(origin_wait_events(t->origin, 1, 10000));
    t0 = tio_now_ms();
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGTERM), 0);
    if (!sluiceproc_wait_exit(t->env->proxy, 6000))
        it_fail_with_log(t, "sluice did not stop when the drain timeout was over");
    took = tio_now_ms() - t0;
    fprintf(stderr, "stopped %llu ms after SIGTERM\n", (unsigned long long)took);
    assert_true(took >= 900 && took < 4000);
    st = sluiceproc_status(t->env->proxy);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    line = it_access_line(t, "/stalled", NULL);
    it_assert_access_field(line, "term", "D-");
    it_assert_access_field(line, "status", "200");
    free(line);
    assert_true(sluiceproc_log_wait(t->env->proxy, "sluice stopped", 2000));
    assert_true(rc->eof || rawclient_wait_closed(rc, 2000));
    rawclient_close(rc);
}

/* An idle keep-alive client does not keep a SIGTERMed proxy alive for the drain time. */
static void test_shutdown_idle_keepalive(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--drain-timeout", "8s", NULL};
    struct rawclient *rc;
    struct rawresp r = {0};
    char req[256];
    uint64_t t0;
    uint64_t took;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET http://origin.test:%u/idle HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 5000), 200);
    t0 = tio_now_ms();
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGTERM), 0);
    assert_true(sluiceproc_wait_exit(t->env->proxy, 12000));
    took = tio_now_ms() - t0;
    fprintf(stderr, "exited %llu ms after SIGTERM with an idle keep-alive client\n",
            (unsigned long long)took);
    assert_true(rawclient_wait_closed(rc, 1000));
    assert_true(WIFEXITED(sluiceproc_status(t->env->proxy)));
    assert_int_equal(WEXITSTATUS(sluiceproc_status(t->env->proxy)), 0);
    assert_true(took < 3000);
    rawresp_free(&r);
    rawclient_close(rc);
}

/* SIGINT stops the proxy like SIGTERM: exit 0. */
static void test_sigint_exits_0(void **state)
{
    struct itcase *t = *state;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    it_assert_serves(t);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGINT), 0);
    if (!sluiceproc_wait_exit(t->env->proxy, 8000))
        it_fail_with_log(t, "sluice did not exit on SIGINT");
    assert_true(WIFEXITED(sluiceproc_status(t->env->proxy)));
    assert_int_equal(WEXITSTATUS(sluiceproc_status(t->env->proxy)), 0);
}

/*
 * Runs sluice with args to its exit (no readiness expected) and returns its exit status
 * (-1 when it did not exit normally); fails the case if it keeps running or did not say
 * what it was expected to say.
 */
static int run_until_exit(struct itcase *t, const char *const args[], const char *says)
{
    struct it_run r = it_run_sluice(t, args);
    bool said = strstr(r.output, says) != NULL;

    free(r.output);
    if (!said)
        fail_msg("sluice did not say \"%s\"", says);
    return r.status;
}

/* A listener that cannot be opened is a startup error: a message and exit status 1. */
static void test_startup_error_exits_1(void **state)
{
    struct itcase *t = *state;
    uint16_t port = 0;
    int busy = tio_listen("127.0.0.1", 1, &port); /* no SO_REUSEPORT: sluice cannot share it */
    char addr[32], says[160];
    int st;

    assert_true(busy >= 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    snprintf(says, sizeof(says), "error cannot listen on %s: it is already held by process %ld",
             addr, (long)getpid());
    {
        const char *const args[] = {"--listen",
                                    addr,
                                    "-w",
                                    "2",
                                    "-v",
                                    "--resolv-conf",
                                    t->env->resolv_path,
                                    "--hosts-file",
                                    t->env->hosts_path,
                                    NULL};

        st = run_until_exit(t, args, says);
    }
    tio_close(&busy);
    assert_int_equal(st, 1);
}

/* A bad option value stops sluice before it starts, with a message and a non-zero status. */
static void test_bad_option_value_refused(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--timeout-head",
                                "banana",
                                "--listen",
                                "127.0.0.1:0",
                                "-w",
                                "2",
                                "-v",
                                "--resolv-conf",
                                t->env->resolv_path,
                                "--hosts-file",
                                t->env->hosts_path,
                                NULL};
    int st = run_until_exit(t, args, "sluice: --timeout-head banana: not a duration");

    assert_int_equal(st, 2);
}

/* Runs the cases, each with its own environment and proxy. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_graceful_shutdown, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_drain_timeout_expires, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_idle_keepalive, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_sigint_exits_0, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_second_signal_stops_at_once, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_startup_error_exits_1, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_bad_option_value_refused, it_setup, it_teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    it_select_cases(); /* SLUICE_CASE=name runs one case */
    rc = cmocka_run_group_tests_name("integration_shutdown", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
