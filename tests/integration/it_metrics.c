/*
 * The admin listener through the real binary: /metrics scraped before and after real
 * requests (allowed, blocked, a tunnel, an upstream refusal, reloads), each counter moving
 * by exactly what was sent, with the right labels; the open-connection and open-tunnel
 * gauges while a connection is held; the text checked by Debian's promtool; /healthz, 404,
 * 405, HEAD, an oversized head and a body refused while the listener keeps serving.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "itcommon.h"

/* Connections test_admin_bounded opens at once: past the admin listener's cap of 64. */
#define ADMIN_CONNS_TRIED 100

/* Scrapes at most this long for a gauge to reach its value. */
#define WAIT_MS 5000

/* The port of the admin listener, read from the line sluice logs when it starts. */
static uint16_t admin_port(struct itcase *t)
{
    const char *needle = "admin listener on 127.0.0.1:";
    char *log = tio_read_file(sluiceproc_log_path(t->env->proxy), NULL);
    const char *at = log != NULL ? strstr(log, needle) : NULL;
    unsigned long port = at != NULL ? strtoul(at + strlen(needle), NULL, 10) : 0;

    free(log);
    if (port == 0 || port > 65535)
        it_fail_with_log(t, "sluice did not say where its admin listener is");
    return (uint16_t)port;
}

/* Sends request (whole, raw) to the admin listener; returns the status, r filled. */
static int admin_request(struct itcase *t, const char *request, bool head, struct rawresp *r)
{
    struct rawclient *c = rawclient_connect("127.0.0.1", admin_port(t), 5000);
    int status;

    if (c == NULL)
        it_fail_with_log(t, "cannot connect to the admin listener");
    assert_int_equal(rawclient_sends(c, request), 0);
    status = rawclient_response(c, r, head, 5000);
    rawclient_close(c);
    return status;
}

/* GETs path from the admin listener; returns the status, r filled. */
static int admin_get(struct itcase *t, const char *path, struct rawresp *r)
{
    char req[256];

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
             path);
    return admin_request(t, req, false, r);
}

/* The text of /metrics now (malloc'd); fails the case unless it is a 200 of that format. */
static char *scrape(struct itcase *t)
{
    struct rawresp r = {0};
    char type[128];
    char *text;

    assert_int_equal(admin_get(t, "/metrics", &r), 200);
    assert_true(rawresp_field(&r, "Content-Type", type, sizeof(type)));
    assert_string_equal(type, "text/plain; version=0.0.4; charset=utf-8");
    text = strdup(tbuf_str(&r.body));
    assert_non_null(text);
    rawresp_free(&r);
    return text;
}

/* The value of the sample series (name and labels as written) in text; 0 when absent. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return 0;
}

/* The value of series in a scrape made now. */
static double scrape_sample(struct itcase *t, const char *series)
{
    char *text = scrape(t);
    double v = sample(text, series);

    free(text);
    return v;
}

/* Scrapes until series has value want (bounded); fails the case when it never does. */
static void wait_sample(struct itcase *t, const char *series, double want)
{
    double got = -1;

    for (int waited = 0; waited < WAIT_MS; waited += 20) {
        got = scrape_sample(t, series);
        if (got == want)
            return;
        usleep(20 * 1000);
    }
    fprintf(stderr, "%s is %g, expected %g\n", series, got, want);
    it_fail_with_log(t, "a metric did not reach its value");
}

/* Asserts that series moved by exactly delta between the scrapes before and after. */
static void assert_moved(const char *before, const char *after, const char *series, double delta)
{
    double a = sample(before, series), b = sample(after, series);

    if (b - a != delta)
        fail_msg("%s went from %g to %g, expected +%g", series, a, b, delta);
}

/* The sum of field key (sent, received) of the access lines for the given targets. */
static double access_sum(struct itcase *t, const char *key, const char *const targets[])
{
    double sum = 0;
    char value[64];

    for (size_t i = 0; targets[i] != NULL; i++) {
        char *line = it_access_line(t, targets[i], NULL);
        sum += strtod(it_access_field(line, key, value, sizeof(value)), NULL);
        free(line);
    }
    return sum;
}

/*
 * Runs Debian's promtool on text: 0 when it is valid.  Without promtool the check fails
 * under CI (tests/run installs it) and is skipped with a note elsewhere: returns -1.
 */
static int promtool_check(struct itcase *t, const char *text)
{
    char path[400], cmd[600];
    int rc;

    if (access("/usr/bin/promtool", X_OK) != 0) {
        if (getenv("CI") != NULL)
            fail_msg("promtool is missing: install Debian's prometheus package (tests/run does)");
        fprintf(stderr, "promtool is missing (Debian's prometheus): the format is not checked\n");
        return -1;
    }
    snprintf(path, sizeof(path), "%s/metrics.txt", t->env->dir);
    assert_int_equal(tio_write_file(path, text), 0);
    snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < '%s'", path);
    rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Writes the case's policies: tool alpha, allowed to origin.test but not its /events. */
static const char *write_policies(struct itcase *t)
{
    return it_write_policy(t, "block_telemetry: true\nunidentified: allow\n", "alpha",
                           "id: alpha\n"
                           "identify: {proxy_users: [alpha]}\n"
                           "default: block\n"
                           "endpoints:\n"
                           "  - {group: api, purpose: api, hosts: [origin.test]}\n"
                           "  - group: events\n"
                           "    purpose: telemetry\n"
                           "    hosts: [origin.test]\n"
                           "    paths: [/events]\n");
}

/* GETs url through the proxy as proxy user alpha; returns the status. */
static long get_as_alpha(struct itcase *t, const char *url)
{
    struct itcurl *c = itcurl_new(t->proxy_port);
    long status;

    assert_non_null(c);
    curl_easy_setopt(c->h, CURLOPT_PROXYUSERPWD, "alpha:x");
    assert_int_equal(itcurl_perform(c, url), CURLE_OK);
    status = itcurl_status(c);
    itcurl_free(c);
    return status;
}

#define ALPHA_HTTP(d) "sluice_requests_total{tool=\"alpha\",decision=\"" d "\",kind=\"http\"}"

/* Allowed and blocked requests, a tunnel, a refused upstream: each counter moves exactly. */
static void test_counters_move(void **state)
{
    struct itcase *t = *state;
    char port[16], connect[256], url1[128], url2[128], url3[128];
    char *before, *after;
    const char *args[] = {"--policy-dir",
                          write_policies(t),
                          "--admin-listen",
                          "127.0.0.1:0",
                          "--connect-ports",
                          port,
                          NULL};

    it_start_origin(t, origin_handler_simple, NULL);
    snprintf(port, sizeof(port), "%u", origin_port(t->origin));
    it_start_proxy(t, args);
    before = scrape(t);
    assert_int_equal(sample(before, "sluice_policy_generation"), 1);
    assert_int_equal(sample(before, "sluice_open_connections"), 0);

    assert_int_equal(get_as_alpha(t, it_url(t, "/ok-1", url1, sizeof(url1))), 200);
    assert_int_equal(get_as_alpha(t, it_url(t, "/ok-2", url2, sizeof(url2))), 200);
    assert_int_equal(get_as_alpha(t, it_url(t, "/events/1", url3, sizeof(url3))), 403);
    /* Nothing listens on port 1: the upstream refuses. */
    assert_int_equal(get_as_alpha(t, "http://origin.test:1/down"), 502);
    {
        /* A tunnel, held open while the gauges are read, then closed. */
        struct rawclient *rc = it_raw(t);
        struct rawresp r = {0};

        snprintf(connect, sizeof(connect),
                 "CONNECT origin.test:%s HTTP/1.1\r\nHost: origin.test:%s\r\n"
                 "Proxy-Authorization: Basic YWxwaGE6eA==\r\n\r\n",
                 port, port);
        assert_int_equal(rawclient_sends(rc, connect), 0);
        /* "head": a CONNECT's 200 has no body; the tunnel follows it. */
        assert_int_equal(rawclient_response(rc, &r, true, 5000), 200);
        rawresp_free(&r);
        wait_sample(t, "sluice_open_tunnels", 1);
        wait_sample(t, "sluice_open_connections", 1);
        rawclient_close(rc);
        wait_sample(t, "sluice_open_tunnels", 0);
        wait_sample(t, "sluice_open_connections", 0);
    }
    it_expect_access(t, "method=CONNECT", "tool=alpha", NULL);
    after = scrape(t);

    /* Allowed: the two that reached the origin and the one its upstream refused. */
    assert_moved(before, after, ALPHA_HTTP("allow"), 3);
    assert_moved(before, after, ALPHA_HTTP("block"), 1);
    assert_moved(before, after,
                 "sluice_requests_total{tool=\"alpha\",decision=\"allow\",kind=\"tunnel\"}", 1);
    assert_moved(before, after, "sluice_blocked_total{rule=\"telemetry:events\"}", 1);
    assert_moved(before, after, "sluice_upstream_errors_total{type=\"connection_refused\"}", 1);
    assert_moved(before, after, "sluice_tunnels_total", 1);
    assert_moved(before, after, "sluice_connections_total", 5);
    {
        /* Bytes: what the access lines of the allowed requests say, to the byte; the
         * refused upstream is an allowed request too. */
        char t1[160], t2[160];
        const char *const targets[] = {t1, t2, "target=\"http://origin.test:1/down\"", NULL};

        snprintf(t1, sizeof(t1), "target=\"%s\"", url1);
        snprintf(t2, sizeof(t2), "target=\"%s\"", url2);
        assert_moved(before, after,
                     "sluice_sent_bytes_total{tool=\"alpha\",decision=\"allow\",kind=\"http\"}",
                     access_sum(t, "sent", targets));
        assert_moved(before, after,
                     "sluice_received_bytes_total{tool=\"alpha\",decision=\"allow\",kind=\"http\"}",
                     access_sum(t, "received", targets));
    }
    /* Each connection's process was looked up once (the test is a loopback client). */
    assert_moved(before, after, "sluice_identification_duration_seconds_count",
                 sample(after, "sluice_connections_total") -
                     sample(before, "sluice_connections_total"));
    {
        int rc = promtool_check(t, after);

        if (rc != -1) {
            assert_int_equal(rc, 0);
            /* The control: promtool does refuse a broken text. */
            assert_int_equal(promtool_check(t, "# TYPE x counter\nx{a=\"1} 1\n"), 1);
        }
    }
    free(before);
    free(after);
}

/* A held keep-alive connection is one open connection; closing it ends that. */
static void test_open_connection_gauge(void **state)
{
    struct itcase *t = *state;
    const char *args[] = {"--admin-listen", "127.0.0.1:0", NULL};
    struct rawclient *a, *b;
    struct rawresp r = {0};
    char req[256];

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    assert_int_equal(scrape_sample(t, "sluice_open_connections"), 0);
    a = it_raw(t);
    b = it_raw(t);
    snprintf(req, sizeof(req),
             "GET http://origin.test:%u/held HTTP/1.1\r\nHost: origin.test\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(a, req), 0);
    assert_int_equal(rawclient_response(a, &r, false, 5000), 200);
    rawresp_free(&r);
    wait_sample(t, "sluice_open_connections", 2);
    rawclient_close(b);
    wait_sample(t, "sluice_open_connections", 1);
    rawclient_close(a);
    wait_sample(t, "sluice_open_connections", 0);
    assert_int_equal(scrape_sample(t, "sluice_connections_total"), 2);
}

/* A refused reload is counted and the generation stays; a good one moves it. */
static void test_reload_counted(void **state)
{
    struct itcase *t = *state;
    const char *dir = write_policies(t);
    const char *args[] = {"--policy-dir", dir, "--admin-listen", "127.0.0.1:0", NULL};
    char org[600];

    it_start_proxy(t, args);
    snprintf(org, sizeof(org), "%s/organisation.yaml", dir);
    assert_int_equal(tio_write_file(org, "unidentified: sometimes\n"), 0);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    wait_sample(t, "sluice_policy_reload_failures_total", 1);
    assert_int_equal(scrape_sample(t, "sluice_policy_generation"), 1);
    assert_int_equal(tio_write_file(org, "unidentified: allow\n"), 0);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    wait_sample(t, "sluice_policy_generation", 2);
    assert_int_equal(scrape_sample(t, "sluice_policy_reload_failures_total"), 1);
}

/* A TCP connection to 127.0.0.1:port, non-blocking; fails the case if not. */
static int admin_connect_nb(struct itcase *t, uint16_t port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
        it_fail_with_log(t, "cannot connect to the admin listener");
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    return fd;
}

/*
 * What one client can make the admin listener hold is bounded: pipelined scrapes whose
 * answers it never reads wait in the socket, not in sluice's memory (it took 1 MB of
 * memory for each MB sent before), and past 64 connections at once the rest wait in the
 * listen queue, answered as the first ones go, so they cannot take every descriptor.
 */
static void test_admin_bounded(void **state)
{
    struct itcase *t = *state;
    const char *args[] = {"--admin-listen", "127.0.0.1:0", NULL};
    static const char scrape[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    char *saved = it_asan_small_quarantine();
    char burst[64 * 1024];
    size_t sent = 0;
    long before, after;
    int fd, fds, held[ADMIN_CONNS_TRIED];
    struct rawresp r = {0};

    it_start_proxy(t, args);
    it_asan_restore(saved);
    for (size_t i = 0; i + sizeof(scrape) - 1 <= sizeof(burst); i += sizeof(scrape) - 1)
        memcpy(burst + i, scrape, sizeof(scrape) - 1);
    assert_int_equal(admin_get(t, "/metrics", &r), 200); /* warm */
    rawresp_free(&r);
    before = sluiceproc_status_kib(t->env->proxy, "VmRSS");
    fd = admin_connect_nb(t, admin_port(t));
    /* Sends until the socket takes no more for 2 s, or 64 MB went: bounded both ways. */
    for (int idle_ms = 0; idle_ms < 2000 && sent < 64u * 1024 * 1024;) {
        ssize_t n =
            send(fd, burst, sizeof(burst) - sizeof(burst) % (sizeof(scrape) - 1), MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            idle_ms = 0;
        } else {
            assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
            tio_sleep_ms(50);
            idle_ms += 50;
        }
    }
    after = sluiceproc_status_kib(t->env->proxy, "VmRSS");
    fprintf(stderr, "sent %zu KiB of pipelined scrapes; sluice grew %ld KiB\n", sent / 1024,
            after - before);
    assert_true(after - before < 16 * 1024);
    assert_true(sent < 64u * 1024 * 1024);
    close(fd);

    /* Connections past the cap wait: a scrape on the last gets its answer once others go. */
    fds = sluiceproc_fd_count(t->env->proxy);
    for (int i = 0; i < ADMIN_CONNS_TRIED; i++)
        held[i] = admin_connect_nb(t, admin_port(t));
    tio_sleep_ms(300);
    assert_true(sluiceproc_fd_count(t->env->proxy) - fds <= 64);
    assert_int_equal(send(held[ADMIN_CONNS_TRIED - 1], scrape, sizeof(scrape) - 1, MSG_NOSIGNAL),
                     (ssize_t)(sizeof(scrape) - 1));
    tio_sleep_ms(300);
    {
        char got[16];
        assert_true(recv(held[ADMIN_CONNS_TRIED - 1], got, sizeof(got), 0) < 0);
    }
    for (int i = 0; i < ADMIN_CONNS_TRIED - 1; i++)
        close(held[i]);
    {
        char got[16] = "";
        int flags = fcntl(held[ADMIN_CONNS_TRIED - 1], F_GETFL);
        struct timeval tv = {.tv_sec = 5};
        assert_int_equal(fcntl(held[ADMIN_CONNS_TRIED - 1], F_SETFL, flags & ~O_NONBLOCK), 0);
        assert_int_equal(
            setsockopt(held[ADMIN_CONNS_TRIED - 1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        assert_true(recv(held[ADMIN_CONNS_TRIED - 1], got, sizeof(got) - 1, 0) > 0);
        assert_int_equal(strncmp(got, "HTTP/1.1 200", 12), 0);
    }
    close(held[ADMIN_CONNS_TRIED - 1]);
    assert_int_equal(admin_get(t, "/healthz", &r), 200);
    rawresp_free(&r);
}

/*
 * A head trickled a byte every 300 ms is cut off 10 s after the connection opened, not
 * kept as long as bytes keep coming (each byte used to start the 10 s anew); and a
 * request with a large body gets its 405 whole, the body read and dropped after it
 * rather than the connection reset under the answer.
 */
static void test_admin_deadlines(void **state)
{
    struct itcase *t = *state;
    const char *args[] = {"--admin-listen", "127.0.0.1:0", NULL};
    static const char head[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    uint64_t start = tio_now_ms();
    char got[64] = "";
    int fd;

    it_start_proxy(t, args);
    fd = admin_connect_nb(t, admin_port(t));
    for (size_t i = 0; tio_now_ms() - start < 14000; i++) {
        char c = i < sizeof(head) - 1 ? head[i] : 'a';
        if (send(fd, &c, 1, MSG_NOSIGNAL) != 1)
            break; /* closed by sluice */
        if (recv(fd, got, sizeof(got), 0) == 0)
            break;
        tio_sleep_ms(300);
    }
    fprintf(stderr, "the trickled head was cut off after %llu ms\n",
            (unsigned long long)(tio_now_ms() - start));
    assert_true(tio_now_ms() - start < 12500);
    close(fd);

    fd = admin_connect_nb(t, admin_port(t));
    {
        static const char post[] = "POST /metrics HTTP/1.1\r\nHost: x\r\n"
                                   "Content-Length: 1048576\r\n\r\n";
        char body[16384], resp[256];
        size_t sent = 0, have = 0;
        struct timeval tv = {.tv_sec = 5};
        int flags = fcntl(fd, F_GETFL);

        memset(body, 'b', sizeof(body));
        assert_int_equal(fcntl(fd, F_SETFL, flags & ~O_NONBLOCK), 0);
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        assert_int_equal(send(fd, post, sizeof(post) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(post) - 1);
        while (sent < 256 * 1024) {
            ssize_t n = send(fd, body, sizeof(body), MSG_NOSIGNAL);
            if (n <= 0)
                break;
            sent += (size_t)n;
        }
        while (have < sizeof(resp) - 1) {
            ssize_t n = recv(fd, resp + have, sizeof(resp) - 1 - have, 0);
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        resp[have] = '\0';
        fprintf(stderr, "sent %zu bytes of body; the answer: %.12s\n", sent, resp);
        assert_int_equal(strncmp(resp, "HTTP/1.1 405", 12), 0);
    }
    close(fd);
}

/*
 * Out of descriptors (sluice's open-file limit lowered to a few more than it holds): the admin
 * listener pauses for a second and says so once each time, rather than logging every failed accept
 * at every loop round (700,000 lines a second before), and serves again once descriptors are free.
 */
static void test_admin_out_of_descriptors(void **state)
{
    struct itcase *t = *state;
    const char *args[] = {"--admin-listen", "127.0.0.1:0", "-w", "1", NULL};
    struct rlimit low;
    struct rawresp r = {0};
    int held[ADMIN_CONNS_TRIED], n = 0;
    char *log;
    size_t lines = 0;

    it_start_proxy(t, args);
    /* sluice raises its own limit when it starts: lowered after, to a few more than it
     * holds now. */
    low.rlim_cur = low.rlim_max = (rlim_t)sluiceproc_fd_count(t->env->proxy) + 8;
    assert_int_equal(prlimit(sluiceproc_pid(t->env->proxy), RLIMIT_NOFILE, &low, NULL), 0);
    for (n = 0; n < ADMIN_CONNS_TRIED; n++)
        held[n] = admin_connect_nb(t, admin_port(t));
    assert_true(sluiceproc_log_wait(t->env->proxy, "cannot accept a connection", 5000));
    tio_sleep_ms(2500);
    log = tio_read_file(sluiceproc_log_path(t->env->proxy), NULL);
    assert_non_null(log);
    for (const char *p = log; (p = strstr(p, "cannot accept a connection")) != NULL; p++)
        lines++;
    free(log);
    fprintf(stderr, "%zu lines about failed accepts in about 3 s\n", lines);
    assert_true(lines >= 1 && lines <= 6);
    while (n > 0)
        close(held[--n]);
    {
        int status = admin_get(t, "/healthz", &r);
        for (int i = 0; i < 50 && status != 200; i++) {
            rawresp_free(&r);
            tio_sleep_ms(100);
            status = admin_get(t, "/healthz", &r);
        }
        assert_int_equal(status, 200);
    }
    rawresp_free(&r);
}

/* /healthz, 404, 405, HEAD; an oversized head and a body are refused, and it goes on. */
static void test_admin_http(void **state)
{
    struct itcase *t = *state;
    const char *args[] = {"--admin-listen", "127.0.0.1:0", NULL};
    struct rawresp r = {0};
    char allow[64];

    it_start_proxy(t, args);
    assert_int_equal(admin_get(t, "/healthz", &r), 200);
    assert_string_equal(tbuf_str(&r.body), "ok\n");
    rawresp_free(&r);
    assert_int_equal(admin_get(t, "/", &r), 404);
    rawresp_free(&r);
    assert_int_equal(admin_get(t, "/metrics/x", &r), 404);
    rawresp_free(&r);
    assert_int_equal(admin_get(t, "/metrics?name=x", &r), 200);
    rawresp_free(&r);
    assert_int_equal(admin_request(t,
                                   "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                                   false, &r),
                     405);
    assert_true(rawresp_field(&r, "Allow", allow, sizeof(allow)));
    assert_string_equal(allow, "GET, HEAD");
    rawresp_free(&r);
    assert_int_equal(admin_request(t, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", true, &r), 200);
    assert_int_equal(r.body.len, 0);
    rawresp_free(&r);
    {
        /* A head of 64 KiB, eight times the bound: refused with a 4xx, or cut off. */
        struct tbuf big = {0};
        int status;

        tbuf_append_str(&big, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Fill: ");
        for (int i = 0; i < 64 * 1024; i++)
            tbuf_append(&big, "a", 1);
        tbuf_append_str(&big, "\r\n\r\n");
        status = admin_request(t, tbuf_str(&big), false, &r);
        if (status != -1 && (status < 400 || status > 499))
            fail_msg("an oversized head got %d", status);
        rawresp_free(&r);
        tbuf_free(&big);
    }
    assert_int_equal(
        admin_request(t, "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                      false, &r),
        413);
    rawresp_free(&r);
    /* Still serving. */
    assert_int_equal(admin_get(t, "/healthz", &r), 200);
    rawresp_free(&r);
}

/* While the audit trail cannot be written, /healthz says so with a 503. */
static void test_healthz_audit_failing(void **state)
{
    struct itcase *t = *state;
    const char *args[] = {"--admin-listen", "127.0.0.1:0", "--audit-log", "/dev/full", NULL};
    struct rawresp r = {0};
    char url[128];
    int status = 0;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    {
        struct itcurl *c = itcurl_new(t->proxy_port);
        assert_int_equal(itcurl_perform(c, it_url(t, "/first", url, sizeof(url))), CURLE_OK);
        itcurl_free(c);
    }
    for (int waited = 0; waited < WAIT_MS && status != 503; waited += 20) {
        rawresp_free(&r);
        status = admin_get(t, "/healthz", &r);
        if (status != 503)
            usleep(20 * 1000);
    }
    assert_int_equal(status, 503);
    assert_non_null(strstr(tbuf_str(&r.body), "the audit trail cannot be written"));
    rawresp_free(&r);
    assert_int_equal(scrape_sample(t, "sluice_audit_failing"), 1);
    assert_true(scrape_sample(t, "sluice_audit_lost_records_total") >= 1);
}

/* Without --admin-listen nothing listens; a remote address needs admin.allow_remote. */
static void test_off_and_loopback_only(void **state)
{
    struct itcase *t = *state;
    const char *remote[] = {"check", "--admin-listen", "0.0.0.0:9", NULL};
    const char *none[] = {NULL};
    struct it_run run;

    run = it_run_sluice(t, remote);
    assert_int_equal(run.status, 1);
    assert_non_null(strstr(run.output, "admin.listen 0.0.0.0:9 is not a loopback address"));
    free(run.output);
    it_start_proxy(t, none);
    assert_false(sluiceproc_log_contains(t->env->proxy, "admin listener"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counters_move, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_open_connection_gauge, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_reload_counted, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_admin_http, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_admin_bounded, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_admin_deadlines, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_admin_out_of_descriptors, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_healthz_audit_failing, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_off_and_loopback_only, it_setup, it_teardown),
    };

    it_select_cases();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
