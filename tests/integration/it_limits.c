/*
 * Resource limits and client-side timeouts: a slowloris client is cut off after
 * --timeout-head while another client is served, 1,000 idle clients do not stop the next
 * one being served, --max-connections answers 503, an idle keep-alive client is closed
 * after --timeout-keepalive, and the head size limits given on the command line hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "itcommon.h"

/* What the slowloris thread did. */
struct loris {
    uint16_t proxy_port;
    uint16_t origin_port;
    size_t sent;        /* bytes it managed to send */
    size_t total;       /* bytes of its request */
    bool closed;        /* the proxy closed (or reset) the connection */
    uint64_t start_ms;  /* when the first byte went out */
    uint64_t closed_ms; /* when the close was seen */
    int connect_errno;  /* non-zero when it could not connect */
};

/* Sends its request one byte per 200 ms (at most 60 bytes: 12 s) until the proxy closes. */
static void *loris_main(void *arg)
{
    struct loris *l = arg;
    char req[256];
    int fd;
    size_t i;

    snprintf(req, sizeof(req),
             "GET http://origin.test:%u/slow HTTP/1.1\r\nHost: origin.test\r\n"
             "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
             l->origin_port);
    l->total = strlen(req);
    fd = tio_connect("127.0.0.1", l->proxy_port, 5000);
    if (fd == -1) {
        l->connect_errno = errno;
        return NULL;
    }
    l->start_ms = tio_now_ms();
    for (i = 0; i < l->total && i < 60 && !l->closed; i++) {
        uint64_t until;

        if (tio_write_all(fd, req + i, 1, 1000) != 0) {
            l->closed = true;
            break;
        }
        l->sent++;
        until = tio_now_ms() + 200;
        /* Pace the bytes while watching for the close (a 408 may come first). */
        for (int j = 0; j < 1000 && !l->closed && tio_now_ms() < until; j++) {
            char buf[1024];
            ssize_t n = tio_read_some(fd, buf, sizeof(buf), (int)(until - tio_now_ms()));

            if (n == 0 || (n < 0 && errno != ETIMEDOUT))
                l->closed = true;
        }
    }
    l->closed_ms = tio_now_ms();
    close(fd);
    return NULL;
}

/* A client trickling its head is cut off after --timeout-head; others are served. */
static void test_slowloris(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--timeout-head", "1s", NULL};
    struct loris l = {0};
    pthread_t th;
    struct itcurl *c;
    char url[128];
    uint64_t served_ms;
    uint64_t cut;
    CURLcode rc;
    long status;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    l.proxy_port = t->proxy_port;
    l.origin_port = origin_port(t->origin);
    assert_int_equal(pthread_create(&th, NULL, loris_main, &l), 0);
    /* No assertion until the thread is joined: a failure must not leave it running. */
    tio_sleep_ms(300);
    c = itcurl_new(t->proxy_port);
    rc = c != NULL ? itcurl_perform(c, it_url(t, "/other", url, sizeof(url))) : CURLE_FAILED_INIT;
    served_ms = tio_now_ms();
    status = c != NULL ? itcurl_status(c) : 0;
    itcurl_free(c);
    pthread_join(th, NULL);
    assert_int_equal(rc, CURLE_OK);
    assert_int_equal(status, 200);
    assert_int_equal(l.connect_errno, 0);
    cut = l.closed_ms - l.start_ms;
    fprintf(stderr, "slowloris: sent %zu of %zu bytes, cut after %llu ms\n", l.sent, l.total,
            (unsigned long long)cut);
    assert_true(l.closed);
    assert_true(l.sent < l.total);
    assert_true(cut >= 800 && cut < 3000);
    assert_true(served_ms < l.closed_ms);
    it_expect_access(t, "term=cR", NULL);
    it_expect_access(t, "status=200", "/other", NULL);
}

/* Raises the soft RLIMIT_NOFILE to at least want (bounded by the hard limit). */
static bool raise_nofile(rlim_t want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    if (rl.rlim_cur >= want)
        return true;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        return false;
    rl.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

/* 1,000 connected idle clients do not keep the next client from being served. */
static void test_thousand_idle_clients(void **state)
{
    struct itcase *t = *state;
    enum { NIDLE = 1000 };
    int *fds = calloc(NIDLE, sizeof(int));
    struct itcurl *c;
    char url[128];
    uint64_t t0;
    uint64_t elapsed;
    int i;
    int open_after = 0;

    assert_non_null(fds);
    for (i = 0; i < NIDLE; i++)
        fds[i] = -1;
    if (!raise_nofile(4096)) {
        free(fds);
        fprintf(stderr, "cannot raise RLIMIT_NOFILE to 4096; skipping\n");
        skip();
    }
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL); /* inherits the raised limit */
    t0 = tio_now_ms();
    for (i = 0; i < NIDLE && tio_now_ms() - t0 < 20000; i++) {
        fds[i] = tio_connect("127.0.0.1", t->proxy_port, 5000);
        if (fds[i] == -1) {
            fprintf(stderr, "idle client %d: connect: %s\n", i, strerror(errno));
            break;
        }
    }
    fprintf(stderr, "%d idle clients connected in %llu ms\n", i,
            (unsigned long long)(tio_now_ms() - t0));
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    t0 = tio_now_ms();
    assert_int_equal(itcurl_perform(c, it_url(t, "/next", url, sizeof(url))), CURLE_OK);
    elapsed = tio_now_ms() - t0;
    assert_int_equal(itcurl_status(c), 200);
    itcurl_free(c);
    fprintf(stderr, "client %d served in %llu ms\n", NIDLE + 1, (unsigned long long)elapsed);
    for (i = 0; i < NIDLE; i++) {
        if (fds[i] >= 0 && tio_wait(fds[i], POLLIN, 0) == 0)
            open_after++;
        tio_close(&fds[i]);
    }
    free(fds);
    fprintf(stderr, "%d idle clients were still open\n", open_after);
    assert_int_equal(open_after, NIDLE);
    assert_true(elapsed < 5000);
}

/* Over --max-connections a client gets 503 and is closed; under it again, it is served. */
static void test_connection_cap_503(void **state)
{
    struct itcase *t = *state;
    /* No process lookup: the executable's hash holds a descriptor of its own for a while,
     * and the count below must be the clients' alone. */
    const char *const args[] = {"--max-connections", "4", "--identify-processes", "off", NULL};
    struct rawclient *idle[4] = {NULL};
    struct rawclient *rc;
    struct rawresp r = {0};
    int i, base;
    int st = -1;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    base = sluiceproc_fd_count(t->env->proxy);
    assert_true(base > 0);
    for (i = 0; i < 4; i++)
        idle[i] = it_raw(t);
    /* Both workers have accepted them: four more descriptors are open. */
    assert_true(sluiceproc_wait_fds(t->env->proxy, base + 4, 5000));
    rc = it_raw(t);
    {
        char req[256];

        snprintf(req, sizeof(req), "GET http://origin.test:%u/over HTTP/1.1\r\nHost: x\r\n\r\n",
                 origin_port(t->origin));
        (void)rawclient_sends(rc, req); /* the 503 may come before it is read */
    }
    assert_int_equal(rawclient_response(rc, &r, false, 5000), 503);
    it_assert_sluice_error(&r, 503, NULL, 0);
    assert_true(rawclient_wait_closed(rc, 5000));
    rawclient_close(rc);
    rawresp_free(&r);
    /* No access line is required here: no request was read (see the report). */
    rawclient_close(idle[0]);
    idle[0] = NULL;
    for (i = 0; i < 20 && st != 200; i++) { /* the proxy sees the close soon, not at once */
        char req[256];

        tio_sleep_ms(100);
        rc = it_raw(t);
        snprintf(req, sizeof(req), "GET http://origin.test:%u/x HTTP/1.1\r\nHost: x\r\n\r\n",
                 origin_port(t->origin));
        (void)rawclient_sends(rc, req);
        st = rawclient_response(rc, &r, false, 5000);
        rawclient_close(rc);
        rawresp_free(&r);
    }
    assert_int_equal(st, 200);
    for (i = 1; i < 4; i++)
        rawclient_close(idle[i]);
}

/* Sends one GET on rc and returns the status of the answer. */
static int raw_get_on(struct itcase *t, struct rawclient *rc, struct rawresp *r)
{
    char req[256];

    snprintf(req, sizeof(req), "GET http://origin.test:%u/x HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin));
    (void)rawclient_sends(rc, req); /* a 503 may come before it is read */
    return rawclient_response(rc, r, false, 5000);
}

/*
 * One client address may hold at most --max-connections-per-client connections: the next
 * one from it gets a 503 that says so, while another address is served, and a connection
 * closed makes room again.
 */
static void test_per_client_cap(void **state)
{
    struct itcase *t = *state;
    /* One worker: connections are accepted in the order they were made. */
    const char *const args[] = {"--max-connections-per-client", "3",   "-w", "1",
                                "--identify-processes",         "off", NULL};
    struct rawclient *held[3], *rc;
    struct rawresp r = {0};
    char type[64];
    int st = -1, base;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    base = sluiceproc_fd_count(t->env->proxy);
    assert_true(base > 0);
    for (int i = 0; i < 3; i++)
        held[i] = it_raw_from("127.0.0.1", t->proxy_port);
    assert_true(sluiceproc_wait_fds(t->env->proxy, base + 3, 5000)); /* all three accepted */
    rc = it_raw_from("127.0.0.1", t->proxy_port);
    assert_int_equal(raw_get_on(t, rc, &r), 503);
    it_assert_sluice_error(&r, 503, type, sizeof(type));
    assert_string_equal(type, "connection_limit_reached");
    assert_non_null(strstr(tbuf_str(&r.body), "this client holds as many connections"));
    rawresp_free(&r);
    rawclient_close(rc);
    assert_true(sluiceproc_log_wait(t->env->proxy, "client 127.0.0.1 holds 3 connections", 2000));

    rc = it_raw_from("127.0.0.2", t->proxy_port); /* another client is not held back */
    assert_int_equal(raw_get_on(t, rc, &r), 200);
    rawresp_free(&r);
    rawclient_close(rc);

    rawclient_close(held[0]);
    for (int i = 0; i < 20 && st != 200; i++) { /* the proxy sees the close soon, not at once */
        tio_sleep_ms(100);
        rc = it_raw_from("127.0.0.1", t->proxy_port);
        st = raw_get_on(t, rc, &r);
        rawresp_free(&r);
        rawclient_close(rc);
    }
    assert_int_equal(st, 200);
    rawclient_close(held[1]);
    rawclient_close(held[2]);
}

/* Reads a request head and its whole body slowly enough to keep up with a trickle. */
static void body_reader_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0 || oconn_read_body(c, NULL, 20000) != 0)
        return;
    (void)oconn_respond(c, 200, NULL, "got it\n", 7);
}

/*
 * A request body trickled below --min-upload-rate is cut off with 408 and termination code
 * cD once its grace is over, while a body sent at a fair rate goes through.
 */
static void test_min_upload_rate(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--min-upload-rate", "2000", "--timeout-upload-grace", "1s", NULL};
    struct rawclient *rc;
    struct rawresp r = {0};
    char req[256], chunk[1000], *line;
    uint64_t t0;
    int st = -1;

    memset(chunk, 'f', sizeof(chunk));
    it_start_origin(t, body_reader_handler, NULL);
    it_start_proxy(t, args);

    rc = it_raw(t);
    snprintf(req, sizeof(req),
             "POST http://origin.test:%u/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000"
             "\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    t0 = tio_now_ms();
    for (int i = 0; i < 50 && st < 0; i++) { /* a byte every 100 ms: 10 bytes/s */
        if (rawclient_send(rc, "s", 1) != 0)
            break;
        if (tio_wait(rc->fd, POLLIN, 100) == 1)
            st = rawclient_response(rc, &r, false, 1000);
    }
    if (st < 0)
        st = rawclient_response(rc, &r, false, 3000);
    assert_int_equal(st, 408);
    assert_true(tio_now_ms() - t0 < 4000);
    rawresp_free(&r);
    rawclient_close(rc);
    line = it_access_line(t, "/slow\"", NULL);
    it_assert_access_field(line, "term", "cD");
    free(line);

    rc = it_raw(t);
    snprintf(req, sizeof(req),
             "POST http://origin.test:%u/fair HTTP/1.1\r\nHost: x\r\nContent-Length: 10000"
             "\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    for (int i = 0; i < 10; i++) { /* 1000 bytes every 200 ms: 5000 bytes/s for 2 s */
        assert_int_equal(rawclient_send(rc, chunk, sizeof(chunk)), 0);
        tio_sleep_ms(200);
    }
    assert_int_equal(rawclient_response(rc, &r, false, 5000), 200);
    rawresp_free(&r);
    rawclient_close(rc);
}

/* A keep-alive client idle for --timeout-keepalive is closed. */
static void test_keepalive_idle_timeout(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--timeout-keepalive", "1s", NULL};
    struct rawclient *rc;
    struct rawresp r = {0};
    char req[256];
    uint64_t t0;
    uint64_t waited;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    rc = it_raw(t);
    snprintf(req, sizeof(req), "GET http://origin.test:%u/ka HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 5000), 200);
    t0 = tio_now_ms();
    assert_true(rawclient_wait_closed(rc, 5000));
    waited = tio_now_ms() - t0;
    fprintf(stderr, "idle keep-alive client closed after %llu ms\n", (unsigned long long)waited);
    assert_true(waited >= 800 && waited < 3000);
    rawresp_free(&r);
    rawclient_close(rc);
}

/* Sends req on a new connection and returns the status (the connection is then closed). */
static int raw_status(struct itcase *t, const char *req)
{
    struct rawclient *rc = it_raw(t);
    struct rawresp r = {0};
    int st;

    (void)rawclient_sends(rc, req);
    st = rawclient_response(rc, &r, false, 10000);
    rawresp_free(&r);
    rawclient_close(rc);
    return st;
}

/* --max-request-line, --max-header-bytes and --max-header-fields are honoured. */
static void test_configured_head_limits(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--max-request-line",
                                "300",
                                "--max-header-bytes",
                                "2048",
                                "--max-header-fields",
                                "10",
                                NULL};
    struct tbuf req = {0};
    unsigned port;
    int i;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    port = origin_port(t->origin);

    /* Within every limit: served. */
    tbuf_printf(&req, "GET http://origin.test:%u/ok HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n",
                port);
    assert_int_equal(raw_status(t, req.data), 200);

    /* A 350-byte request line. */
    tbuf_reset(&req);
    tbuf_printf(&req, "GET http://origin.test:%u/", port);
    for (i = 0; i < 320; i++)
        tbuf_append(&req, "l", 1);
    tbuf_append_str(&req, " HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_status(t, req.data), 400);

    /* A head of about 3 KB in 3 fields. */
    tbuf_reset(&req);
    tbuf_printf(&req, "GET http://origin.test:%u/big HTTP/1.1\r\nHost: x\r\nX-Big: ", port);
    for (i = 0; i < 3000; i++)
        tbuf_append(&req, "b", 1);
    tbuf_append_str(&req, "\r\n\r\n");
    assert_int_equal(raw_status(t, req.data), 400);

    /* Eleven fields. */
    tbuf_reset(&req);
    tbuf_printf(&req, "GET http://origin.test:%u/many HTTP/1.1\r\nHost: x\r\n", port);
    for (i = 0; i < 10; i++)
        tbuf_printf(&req, "X-%d: v\r\n", i);
    tbuf_append_str(&req, "\r\n");
    assert_int_equal(raw_status(t, req.data), 400);

    assert_int_equal(origin_requests(t->origin), 1);
    tbuf_free(&req);
}

/* Runs the cases, each with its own environment and proxy. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slowloris, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_thousand_idle_clients, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_connection_cap_503, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_idle_timeout, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_configured_head_limits, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_per_client_cap, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_min_upload_rate, it_setup, it_teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    it_select_cases(); /* SLUICE_CASE=name runs one case */
    rc = cmocka_run_group_tests_name("integration_limits", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
