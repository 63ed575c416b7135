/*
 * The audit sinks besides the trail: the Squid-format line (result codes, hierarchy,
 * columns that a hostile target, user or content type cannot add or remove) and the RFC
 * 5424 message (header, structured data escaped as section 6.3.3 says, severity by
 * decision, the bound on its size), then the syslog sink on a Unix datagram socket this
 * test binds: one message per record, read strictly, and a receiver that stops reading
 * costs records (counted) but never a blocked sender.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "squidline.h"
#include "sluice/squidlog.h"
#include "sluice/syslogsink.h"
#include "syslog5424.h"

/* 2026-12-06T06:11:14.973Z */
static const struct timespec when = {.tv_sec = 1796537474, .tv_nsec = 973000000};

/* A record of an allowed GET that the origin answered with 200. */
static struct audit_record allowed_get(void)
{
    return (struct audit_record){.client = "127.0.0.1:50764",
                                 .method = "GET",
                                 .target = "http://example.test:8000/index.html",
                                 .host = "example.test",
                                 .port = 8000,
                                 .user = "",
                                 .status = 200,
                                 .sent = 139,
                                 .received = 220,
                                 .media_type = "text/html",
                                 .duration_ms = 8,
                                 .sni = "",
                                 .term = "--",
                                 .tool = "unidentified",
                                 .id_source = "none",
                                 .offered = "",
                                 .uid = UINT32_MAX,
                                 .exe = "",
                                 .exe_sha256 = "",
                                 .cmd = "",
                                 .chain = "",
                                 .mismatch = "",
                                 .version = "",
                                 .error = "",
                                 .decision = "allow",
                                 .rule = "unidentified",
                                 .rule_file = "",
                                 .dest_ip = "127.0.0.1",
                                 .country = "-"};
}

/* Formats r as a Squid line into a static buffer. */
static const char *squid(const struct audit_record *r)
{
    static char line[SQUIDLOG_LINE_MAX];

    squidlog_format(r, &when, line, sizeof(line));
    return line;
}

/* Each outcome gets Squid's result code, hierarchy and content type. */
static void test_squid_outcomes(void **state)
{
    struct audit_record r = allowed_get();

    (void)state;
    assert_string_equal(squid(&r), "1796537474.973      8 127.0.0.1 TCP_MISS/200 220 GET "
                                   "http://example.test:8000/index.html - "
                                   "HIER_DIRECT/127.0.0.1 text/html\n");
    /* A tunnel, with a proxy user and an IPv6 client. */
    r = allowed_get();
    r.client = "[::1]:4000";
    r.method = "CONNECT";
    r.target = "example.test:443";
    r.is_connect = true;
    r.user = "claude-code";
    r.media_type = "";
    r.received = 5039;
    assert_string_equal(squid(&r), "1796537474.973      8 ::1 TCP_TUNNEL/200 5039 CONNECT "
                                   "example.test:443 claude-code HIER_DIRECT/127.0.0.1 -\n");
    /* A block: nothing was dialled, whatever address was refused. */
    r = allowed_get();
    r.status = 403;
    r.decision = "block";
    r.dest_ip = "169.254.169.254";
    r.media_type = "text/plain";
    assert_non_null(strstr(squid(&r), " TCP_DENIED/403 220 GET "));
    assert_non_null(strstr(squid(&r), " HIER_NONE/- text/plain\n"));
    /* Credentials asked for before any decision. */
    r = allowed_get();
    r.status = 407;
    r.decision = "-";
    r.dest_ip = "-";
    assert_non_null(strstr(squid(&r), " TCP_DENIED/407 "));
    /* The upstream failed: Squid's miss with sluice's status. */
    r = allowed_get();
    r.status = 502;
    r.term = "SC";
    r.error = "connection_refused";
    assert_non_null(strstr(squid(&r), " TCP_MISS/502 "));
    /* The client went away while the response came. */
    r = allowed_get();
    r.term = "CD";
    assert_non_null(strstr(squid(&r), " TCP_MISS_ABORTED/200 "));
    r.status = 0;
    r.term = "CH";
    assert_non_null(strstr(squid(&r), " TCP_MISS_ABORTED/000 "));
    /* No decision: a malformed request, or none at all. */
    r = allowed_get();
    r.method = "-";
    r.target = "-";
    r.status = 400;
    r.decision = "-";
    r.dest_ip = "-";
    assert_non_null(
        strstr(squid(&r), " NONE_NONE/400 220 NONE error:invalid-request - HIER_NONE/- "));
    r.status = 0;
    assert_non_null(strstr(squid(&r), " NONE_NONE/000 220 NONE error:transaction-end-before-"
                                      "headers - HIER_NONE/- "));
}

/* Asserts that line has ten columns and that column i decodes to want (strict columns). */
static void assert_column(const char *line, int i, const char *want)
{
    struct squidline_col cols[SQUIDLINE_COLUMNS];
    const char *why = NULL;
    char *dec;

    if (squidline_split(line, strlen(line), cols, &why) < 0)
        fail_msg("%s: %s", why, line);
    dec = malloc(cols[i].n + 1);
    assert_non_null(dec);
    assert_true(squidline_decode(cols[i], dec) >= 0);
    assert_string_equal(dec, want);
    free(dec);
}

/* Spaces, control bytes and bytes past ASCII from the network stay inside their column. */
static void test_squid_hostile_columns(void **state)
{
    struct audit_record r = allowed_get();
    char *big;

    (void)state;
    r.target = "http://x.test/a b\r\n1796537474.973 0 1.2.3.4 TCP_MISS/200 1 GET http://y/ - "
               "HIER_NONE/- -\n";
    r.user = "u s\te\x7fr%20\xc3\xa9";
    r.method = "G T";
    r.media_type = "text/html x";
    assert_column(squid(&r), 5, "G T");
    assert_column(squid(&r), 6,
                  "http://x.test/a b\r\n1796537474.973 0 1.2.3.4 TCP_MISS/200 1 GET "
                  "http://y/ - HIER_NONE/- -\n");
    assert_column(squid(&r), 7, "u s\te\x7fr%20\xc3\xa9"); /* '%' too: it decodes exactly */
    assert_column(squid(&r), 9, "text/html x");
    assert_non_null(strstr(squid(&r), " u%20s%09e%7Fr%2520%C3%A9 "));
    /* A user called "-" is not "no user". */
    r = allowed_get();
    r.user = "-";
    assert_column(squid(&r), 7, "-");
    assert_non_null(strstr(squid(&r), " %2D HIER_DIRECT"));
    /* A URL far past the bound is cut, never inside an escape, and the line stays whole. */
    big = malloc(20001);
    assert_non_null(big);
    for (int i = 0; i < 20000; i++)
        big[i] = i % 3 == 0 ? ' ' : 'a';
    big[20000] = '\0';
    r = allowed_get();
    r.target = big;
    {
        const char *line = squid(&r);
        struct squidline_col cols[SQUIDLINE_COLUMNS];
        const char *why = NULL;

        assert_int_equal(squidline_split(line, strlen(line), cols, &why), 0);
        assert_true(cols[6].n < SQUIDLOG_URL_MAX);
        assert_true(squidline_decode(cols[6], big + 10000) >= 0); /* no cut %XX */
    }
    free(big);
}

/* Formats r as a syslog message and parses it strictly. */
static void syslog_parse(const struct audit_record *r, struct syslog5424 *m, size_t *len)
{
    char out[SYSLOGSINK_MSG_MAX + 1];
    const char *why = NULL;
    size_t n = syslogsink_format(r, 16, &when, "gw-1.example", 4242, out, sizeof(out));

    if (len != NULL)
        *len = n;
    assert_true(n > 0 && n <= SYSLOGSINK_MSG_MAX);
    assert_int_equal(strlen(out), n);
    if (syslog5424_parse(out, n, m, &why) < 0)
        fail_msg("%s: %s", why, out);
}

/* The header, the parameters and the severity of each decision. */
static void test_syslog_message(void **state)
{
    static struct syslog5424 m;
    struct audit_record r = allowed_get();
    char out[SYSLOGSINK_MSG_MAX + 1];

    (void)state;
    syslogsink_format(&r, 16, &when, "gw-1.example", 4242, out, sizeof(out));
    assert_string_equal(out, "<134>1 2026-12-06T06:11:14.973Z gw-1.example sluice 4242 access "
                             "[sluice@32473 tool=\"unidentified\" decision=\"allow\" "
                             "rule=\"unidentified\" status=\"200\" client=\"127.0.0.1:50764\" "
                             "method=\"GET\" url=\"http://example.test:8000/index.html\" "
                             "sent=\"139\" received=\"220\" ms=\"8\" term=\"--\" id=\"none\" "
                             "dst=\"127.0.0.1\"] allow GET http://example.test:8000/index.html "
                             "200");
    syslog_parse(&r, &m, NULL);
    assert_int_equal(m.pri, 16 * 8 + 6);
    assert_string_equal(m.app, "sluice");
    assert_string_equal(m.msgid, "access");
    assert_int_equal(m.nelements, 1);
    assert_string_equal(m.sd_id, "sluice@32473");
    r.decision = "block";
    r.rule = "telemetry:statsig";
    syslog_parse(&r, &m, NULL);
    assert_int_equal(m.pri, 16 * 8 + 4); /* warning */
    assert_string_equal(syslog5424_param(&m, "rule"), "telemetry:statsig");
    r.decision = "report";
    syslog_parse(&r, &m, NULL);
    assert_int_equal(m.pri, 16 * 8 + 5); /* notice */
    /* A host name syslog could not take is "-". */
    syslogsink_format(&r, 16, &when, "bad host", 1, out, sizeof(out));
    assert_non_null(strstr(out, "Z - sluice 1 access ["));
}

/* '"', '\' and ']' come after a backslash; control bytes and past ASCII as \xHH. */
static void test_syslog_escaping(void **state)
{
    static struct syslog5424 m;
    struct audit_record r = allowed_get();
    char out[SYSLOGSINK_MSG_MAX + 1];
    char *big;
    size_t len;

    (void)state;
    r.user = "a\"b]c\\d [x=\"y\"]";
    r.target = "http://x.test/\r\n<13>1 - - - - - -";
    r.exe = "/opt/caf\xc3\xa9/bin";
    syslogsink_format(&r, 16, &when, "h", 1, out, sizeof(out));
    assert_non_null(strstr(out, " user=\"a\\\"b\\]c\\\\d [x=\\\"y\\\"\\]\""));
    assert_non_null(strstr(out, " exe=\"/opt/caf\\xc3\\xa9/bin\""));
    syslog_parse(&r, &m, NULL);
    assert_string_equal(syslog5424_param(&m, "user"), "a\"b]c\\d [x=\"y\"]");
    assert_string_equal(syslog5424_param(&m, "url"), "http://x.test/\\x0d\\x0a<13>1 - - - - - -");
    assert_int_equal(m.nelements, 1);
    /* Values past their bound are cut with "...", and the message stays within 2048. */
    big = malloc(5001);
    assert_non_null(big);
    memset(big, ']', 5000);
    big[5000] = '\0';
    r.target = big;
    r.user = big;
    r.exe = big;
    r.sni = big;
    r.rule = big;
    syslog_parse(&r, &m, &len);
    assert_true(len <= SYSLOGSINK_MSG_MAX);
    assert_true(strlen(syslog5424_param(&m, "url")) > 3);
    assert_non_null(strstr(syslog5424_param(&m, "url"), "]]]..."));
    free(big);
}

/* Targets and facilities as the configuration spells them. */
static void test_syslog_targets(void **state)
{
    struct syslogsink_target t;
    const char *errstr = NULL;
    uint32_t code = 0;

    (void)state;
    assert_int_equal(syslogsink_parse_target("on", &t, &errstr), 0);
    assert_int_equal(t.addr.ss_family, AF_UNIX);
    assert_int_equal(syslogsink_parse_target("udp:127.0.0.1:5514", &t, &errstr), 0);
    assert_int_equal(t.addr.ss_family, AF_INET);
    assert_int_equal(syslogsink_parse_target("udp:[::1]", &t, &errstr), 0);
    assert_int_equal(t.addr.ss_family, AF_INET6);
    assert_int_equal(syslogsink_parse_target("udp:localhost:514", &t, &errstr), -1);
    assert_int_equal(syslogsink_parse_target("udp:127.0.0.1:0", &t, &errstr), -1);
    assert_int_equal(syslogsink_parse_target("unix:dev/log", &t, &errstr), -1);
    assert_int_equal(syslogsink_parse_target("tcp:127.0.0.1", &t, &errstr), -1);
    assert_int_equal(syslogsink_parse_facility("local7", &code), 0);
    assert_int_equal(code, 23);
    assert_int_equal(syslogsink_parse_facility("authpriv", &code), 0);
    assert_int_equal(code, 10);
    assert_int_equal(syslogsink_parse_facility("local8", &code), -1);
    assert_string_equal(syslogsink_facility_str(16), "local0");
}

/* Milliseconds of the monotonic clock. */
static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * The sink on a Unix datagram socket: one strict message per record; then, the receiver
 * not reading, records are lost and counted while no send waits; read again, it takes them.
 */
static void test_syslog_socket(void **state)
{
    static struct syslog5424 m;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char dir[] = "/tmp/sluice-sinks-XXXXXX", target[200], err[256], buf[4096];
    struct audit_record r = allowed_get();
    int rx, small = 4096;
    uint64_t start;
    ssize_t n;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/log", dir);
    rx = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(rx >= 0);
    assert_int_equal(setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    assert_int_equal(bind(rx, (struct sockaddr *)&sun, sizeof(sun)), 0);
    snprintf(target, sizeof(target), "unix:%s", sun.sun_path);
    assert_int_equal(syslogsink_open(target, 17, err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++) {
        const char *why = NULL;
        char pid[24];

        r.status = 200 + (unsigned)i;
        syslogsink_record(&r);
        n = recv(rx, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        assert_true(n > 0);
        if (syslog5424_parse(buf, (size_t)n, &m, &why) < 0)
            fail_msg("%s: %.*s", why, (int)n, buf);
        assert_int_equal(m.pri, 17 * 8 + 6);
        snprintf(pid, sizeof(pid), "%ld", (long)getpid());
        assert_string_equal(m.procid, pid);
        assert_int_equal(atoi(syslog5424_param(&m, "status")), 200 + i);
    }
    assert_int_equal(recv(rx, buf, sizeof(buf), MSG_DONTWAIT), -1); /* one message a record */
    assert_int_equal(syslogsink_lost(), 0);
    /* The receiver stops reading: sends fail at once, and are counted. */
    start = now_ms();
    for (int i = 0; i < 2000; i++)
        syslogsink_record(&r);
    assert_true(now_ms() - start < 2000);
    assert_true(syslogsink_lost() > 0);
    assert_true(syslogsink_lost() < 2000);
    while (recv(rx, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
    {
        uint64_t lost = syslogsink_lost();
        syslogsink_record(&r);
        assert_int_equal(syslogsink_lost(), lost);
        assert_true(recv(rx, buf, sizeof(buf), MSG_DONTWAIT) > 0);
    }
    syslogsink_close();
    assert_false(syslogsink_enabled());
    /* A Unix target that is not there is an error at start, not a silent loss. */
    unlink(sun.sun_path);
    assert_int_equal(syslogsink_open(target, 16, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not there"));
    close(rx);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_squid_outcomes), cmocka_unit_test(test_squid_hostile_columns),
        cmocka_unit_test(test_syslog_message), cmocka_unit_test(test_syslog_escaping),
        cmocka_unit_test(test_syslog_targets), cmocka_unit_test(test_syslog_socket),
    };

    return cmocka_run_group_tests_name("unit_sinks", tests, NULL, NULL);
}
