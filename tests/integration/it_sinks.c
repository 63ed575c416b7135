/*
 * The audit sinks companies already run, fed by real traffic: the Squid-format log read
 * by Debian's calamaris, whose report must count the requests, the denials, the tunnel
 * and the bytes the clients here received (the test fails, not skips, without
 * calamaris: tests/run installs it); the log reopened on SIGUSR1 after a rotation; and
 * syslog over UDP to a socket this test binds on loopback, each datagram one RFC 5424
 * message read strictly (tests/support/syslog5424.c), with a hostile proxy user escaped.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "itcommon.h"
#include "sluiceproc.h"
#include "squidline.h"
#include "syslog5424.h"

/* The body the origin serves: its size is what the client counts. */
#define PAGE "<html><body>sinks</body></html>\n"

/* Answers every request with 200, a text/html page and a Content-Length. */
static void page_handler(struct origin_conn *c)
{
    for (int i = 0; i < 100 && !origin_stopping(c->origin); i++) {
        if (oconn_read_head(c, 10000) == 0 ||
            oconn_respond(c, 200, "Content-Type: text/html; charset=utf-8\r\n", PAGE,
                          sizeof(PAGE) - 1) != 0)
            return;
    }
}

/* Sends back what it reads (the far end of a tunnel). */
static void echo_handler(struct origin_conn *c)
{
    char buf[16384];

    for (int i = 0; i < 10000 && !origin_stopping(c->origin); i++) {
        ssize_t n = oconn_read(c, buf, sizeof(buf), 10000);

        if (n <= 0 || oconn_write(c, buf, (size_t)n) != 0)
            return;
    }
}

/* Sends request on a new connection; returns the bytes of the response the client read. */
static size_t exchange(struct itcase *t, const char *request, int want_status)
{
    struct rawclient *rc = it_raw(t);
    struct rawresp r = {0};
    size_t got;

    assert_int_equal(rawclient_sends(rc, request), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), want_status);
    assert_true(r.complete && !r.chunked);
    got = r.head.len + r.body.len;
    rawresp_free(&r);
    rawclient_close(rc);
    return got;
}

/*
 * Opens a tunnel to port, sends n bytes through it and reads them back; returns the bytes
 * the client read (the 200 head and the echo).
 */
static size_t tunnel(struct itcase *t, uint16_t port, size_t n)
{
    struct rawclient *rc = it_raw(t);
    struct rawresp r = {0};
    struct tbuf back = {0};
    char req[160], *data = malloc(n);
    size_t got;

    assert_non_null(data);
    memset(data, 'x', n);
    snprintf(req, sizeof(req), "CONNECT origin.test:%u HTTP/1.1\r\nHost: origin.test:%u\r\n\r\n",
             port, port);
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, true, 10000), 200);
    assert_int_equal(rawclient_send(rc, data, n), 0);
    assert_int_equal(rawclient_read_exact(rc, &back, n, 10000), n);
    got = r.head.len + back.len;
    rawresp_free(&r);
    tbuf_free(&back);
    rawclient_close(rc);
    free(data);
    return got;
}

/* Runs cmd and returns what it printed (malloc'd); fails the case when it does not exit 0. */
static char *run_output(const char *cmd)
{
    struct tbuf out = {0};
    char buf[4096];
    size_t n;
    FILE *p = popen(cmd, "r");
    char *text;
    int st;

    assert_non_null(p);
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
        tbuf_append(&out, buf, n);
    st = pclose(p);
    if (st != 0)
        fail_msg("'%s' exited with %d:\n%s", cmd, st, tbuf_str(&out));
    text = strdup(tbuf_str(&out));
    tbuf_free(&out);
    return text;
}

/*
 * The numbers of the report line that starts (after blanks) with label, up to two:
 * calamaris puts the count, then the percentage, then the bytes; summary lines end in
 * their one number.  Fails the case when no line has it.
 */
static unsigned long long report_number(const char *report, const char *label, int which)
{
    const char *p = report;
    size_t len = strlen(label);

    while ((p = strstr(p, label)) != NULL) {
        const char *line = p;

        while (line > report && line[-1] == ' ')
            line--;
        if ((line == report || line[-1] == '\n') && (p[len] == ' ' || p[len] == ':')) {
            const char *end = strchr(p, '\n');
            char text[256], *words[16], *save = NULL;
            int nw = 0;

            size_t n = end != NULL ? (size_t)(end - p) - len : strlen(p + len);

            if (n >= sizeof(text))
                n = sizeof(text) - 1;
            memcpy(text, p + len, n);
            text[n] = '\0';
            for (char *w = strtok_r(text, " :", &save); w != NULL && nw < 16;
                 w = strtok_r(NULL, " :", &save))
                words[nw++] = w;
            /* "requests 7", "Byte 6250", or "3 42.86 0.00 2379 ...". */
            for (int i = 0, seen = 0; i < nw; i++)
                if (strspn(words[i], "0123456789") == strlen(words[i]) && seen++ == which)
                    return strtoull(words[i], NULL, 10);
        }
        p += len;
    }
    fail_msg("the report has no line '%s':\n%s", label, report);
    return 0;
}

/*
 * Allowed requests, denied ones and a tunnel, logged in Squid's format; calamaris reads
 * every line and its report says how many of each and how many bytes, exactly as the
 * clients counted them.
 */
static void test_squid_log_calamaris(void **state)
{
    struct itcase *t = *state;
    struct origin *echo;
    struct origin_opts eo = {.handler = echo_handler};
    char path[400], ports[16], req[300], cmd[600], *report, *text;
    size_t allowed = 0, denied = 0, tunnelled, total;
    unsigned lines = 0;

    snprintf(path, sizeof(path), "%s/access.log", t->env->dir);
    it_start_origin(t, page_handler, NULL);
    echo = origin_start(&eo);
    assert_non_null(echo);
    t->origin2 = echo; /* stopped by the teardown */
    snprintf(ports, sizeof(ports), "%u", origin_port(echo));
    {
        const char *const args[] = {"--squid-log", path, "--connect-ports", ports, NULL};
        it_start_proxy(t, args);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(req, sizeof(req),
                 "GET http://origin.test:%u/page-%d HTTP/1.1\r\nHost: origin.test:%u\r\n"
                 "Connection: close\r\n\r\n",
                 origin_port(t->origin), i, origin_port(t->origin));
        allowed += exchange(t, req, 200);
    }
    /* Two refused by the address guard (the cloud metadata address), one CONNECT port. */
    for (int i = 0; i < 2; i++)
        denied += exchange(t,
                           "GET http://169.254.169.254/latest/meta-data HTTP/1.1\r\nHost: "
                           "169.254.169.254\r\nConnection: close\r\n\r\n",
                           403);
    denied += exchange(t, "CONNECT origin.test:25 HTTP/1.1\r\nHost: origin.test:25\r\n\r\n", 403);
    tunnelled = tunnel(t, origin_port(echo), 3000);
    total = allowed + denied + tunnelled;
    assert_true(testenv_stop_proxy(t->env)); /* every line is written by the exit */

    /* Each line is ten columns, as an analyzer splits them. */
    text = tio_read_file(path, NULL);
    assert_non_null(text);
    for (char *line = text, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        struct squidline_col cols[SQUIDLINE_COLUMNS];
        const char *why = NULL;

        if (squidline_split(line, (size_t)(nl - line + 1), cols, &why) < 0)
            fail_msg("%s: %.*s", why, (int)(nl - line), line);
        lines++;
    }
    printf("%s", text);
    assert_int_equal(lines, 7);
    assert_non_null(strstr(text, " TCP_TUNNEL/200 "));
    assert_non_null(strstr(text, " text/html\n"));
    free(text);

    /* Debian's calamaris, as an operator runs it on Squid's log: absent, the test fails. */
    if (access("/usr/bin/calamaris", X_OK) != 0)
        fail_msg("calamaris is not installed (apt-get install calamaris; tests/run does)");
    snprintf(cmd, sizeof(cmd), "/usr/bin/calamaris -a < '%s'", path);
    report = run_output(cmd);
    printf("%s", report);
    assert_int_equal(report_number(report, "lines parsed", 0), 7);
    assert_int_equal(report_number(report, "invalid lines", 0), 0);
    assert_int_equal(report_number(report, "Total amount", 0), 7);
    assert_int_equal(report_number(report, "Total Bandwidth", 0), total);
    /* Incoming TCP requests by status: requests, then bytes (the 2nd whole number). */
    assert_int_equal(report_number(report, "TCP_DENIED", 0), 3);
    assert_int_equal(report_number(report, "TCP_DENIED", 1), denied);
    assert_int_equal(report_number(report, "TCP_MISS", 0), 3);
    assert_int_equal(report_number(report, "TCP_MISS", 1), allowed);
    assert_int_equal(report_number(report, "TCP_TUNNEL", 0), 1);
    assert_int_equal(report_number(report, "TCP_TUNNEL", 1), tunnelled);
    /* By method: five GETs (two denied), two CONNECTs (the tunnel and the refused port). */
    assert_int_equal(report_number(report, "GET", 0), 5);
    assert_int_equal(report_number(report, "CONNECT", 0), 2);
    free(report);
}

/* logrotate moves the Squid log away and sends SIGUSR1: the next line is in a new file. */
static void test_squid_log_reopen(void **state)
{
    struct itcase *t = *state;
    char path[400], moved[420], *text;
    struct rawresp r = {0};
    const char *const args[] = {"--squid-log", path, NULL};

    snprintf(path, sizeof(path), "%s/access.log", t->env->dir);
    snprintf(moved, sizeof(moved), "%s.1", path);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    assert_int_equal(it_raw_get(t, "origin.test:1", &r), 502);
    rawresp_free(&r);
    for (int i = 0; i < 250; i++) {
        text = tio_read_file(path, NULL);
        if (text != NULL && strstr(text, "origin.test:1/x") != NULL)
            break;
        free(text);
        text = NULL;
        tio_sleep_ms(20);
    }
    assert_non_null(text);
    free(text);
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGUSR1), 0);
    for (int i = 0; i < 250 && !sluiceproc_log_contains(t->env->proxy, "reopened the Squid log");
         i++)
        tio_sleep_ms(20);
    assert_true(sluiceproc_log_wait(t->env->proxy, "reopened the Squid log", 2000));
    it_assert_serves(t);
    assert_true(testenv_stop_proxy(t->env));
    text = tio_read_file(path, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, " TCP_MISS/200 "));
    assert_null(strstr(text, "origin.test:1/x"));
    free(text);
    text = tio_read_file(moved, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, " TCP_MISS/502 ")); /* nothing listens on port 1 */
    assert_null(strstr(text, "/after"));
    free(text);
}

/* Reads one datagram within timeout_ms into buf (cap); returns its length, or -1. */
static ssize_t recv_within(int fd, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    return recv(fd, buf, cap, 0);
}

/*
 * syslog over UDP to a socket bound here: one strict RFC 5424 message per record, the
 * configured facility, the severity of each decision, sluice's pid and host name, and a
 * proxy user made of the characters that end parameters comes back whole.
 */
static void test_syslog_udp(void **state)
{
    struct itcase *t = *state;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    static struct syslog5424 m[3];
    char target[64], req[400], buf[4096], host[256], pid[24];
    int rx = socket(AF_INET, SOCK_DGRAM, 0);

    assert_true(rx >= 0);
    assert_int_equal(bind(rx, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(rx, (struct sockaddr *)&sin, &len), 0);
    snprintf(target, sizeof(target), "udp:127.0.0.1:%u", ntohs(sin.sin_port));
    it_start_origin(t, page_handler, NULL);
    {
        const char *const args[] = {"--audit-syslog", target, "--audit-syslog-facility", "local3",
                                    NULL};
        it_start_proxy(t, args);
    }
    snprintf(req, sizeof(req),
             "GET http://origin.test:%u/syslog HTTP/1.1\r\nHost: origin.test:%u\r\n"
             "Connection: close\r\n\r\n",
             origin_port(t->origin), origin_port(t->origin));
    exchange(t, req, 200);
    /* User a"b]c\d [x="y"] (base64 below): no tool, so logged as offered. */
    exchange(t,
             "GET http://169.254.169.254/ HTTP/1.1\r\nHost: 169.254.169.254\r\n"
             "Proxy-Authorization: Basic YSJiXWNcZCBbeD0ieSJdOng=\r\nConnection: close\r\n\r\n",
             403);
    exchange(t, "CONNECT origin.test:25 HTTP/1.1\r\nHost: origin.test:25\r\n\r\n", 403);
    gethostname(host, sizeof(host));
    snprintf(pid, sizeof(pid), "%ld", (long)sluiceproc_pid(t->env->proxy));
    for (int i = 0; i < 3; i++) {
        ssize_t n = recv_within(rx, buf, sizeof(buf) - 1, 5000);
        const char *why = NULL;

        assert_true(n > 0);
        buf[n] = '\0';
        printf("%s\n", buf);
        if (syslog5424_parse(buf, (size_t)n, &m[i], &why) < 0)
            fail_msg("%s: %s", why, buf);
        assert_string_equal(m[i].hostname, host);
        assert_string_equal(m[i].app, "sluice");
        assert_string_equal(m[i].procid, pid);
        assert_string_equal(m[i].msgid, "access");
        assert_int_equal(m[i].nelements, 1);
        assert_string_equal(m[i].sd_id, "sluice@32473");
    }
    assert_int_equal(recv_within(rx, buf, sizeof(buf), 300), -1); /* one message a record */
    assert_int_equal(m[0].pri, 19 * 8 + 6);                       /* local3.info */
    assert_string_equal(syslog5424_param(&m[0], "decision"), "allow");
    assert_string_equal(syslog5424_param(&m[0], "status"), "200");
    assert_non_null(strstr(syslog5424_param(&m[0], "url"), "/syslog"));
    assert_int_equal(m[1].pri, 19 * 8 + 4); /* local3.warning */
    assert_string_equal(syslog5424_param(&m[1], "decision"), "block");
    assert_string_equal(syslog5424_param(&m[1], "rule"), "deny-address:metadata");
    assert_string_equal(syslog5424_param(&m[1], "user"), "a\"b]c\\d [x=\"y\"]");
    assert_string_equal(syslog5424_param(&m[2], "method"), "CONNECT");
    assert_string_equal(syslog5424_param(&m[2], "rule"), "connect-ports");
    close(rx);
}

/* Runs the cases, each with its own environment. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_squid_log_calamaris, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_squid_log_reopen, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_syslog_udp, it_setup, it_teardown),
    };

    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests_name("integration_sinks", tests, NULL, NULL);
}
