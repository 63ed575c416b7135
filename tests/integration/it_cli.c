/*
 * The program as an operator meets it: one instance per port (a second sluice, or any
 * process on the port, is a start-up error that names the holder; the same --listen twice
 * is refused), a command line that answers a typo in one line with a suggestion, help
 * for each command, "sluice check" refusing a policy directory with no profile and
 * listing the user names each profile answers to, a proxy user name that names no tool
 * logged as offered, access-line durations in milliseconds, and the reason of each
 * failure in the access line, --log-file reopened on SIGUSR1, --pid-file, sd_notify, and
 * root handing over to an unprivileged user, with the CA key that user's alone.
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
#include <signal.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itcommon.h"
#include "sluiceproc.h"

/* Asserts that output holds needle. */
static void assert_says(const struct it_run *r, const char *needle)
{
    if (strstr(r->output, needle) == NULL)
        fail_msg("the output does not say \"%s\"", needle);
}

/* Number of lines in s. */
static unsigned line_count(const char *s)
{
    unsigned n = 0;

    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/*
 * A second sluice on the port of a running one refuses to start and names the first by
 * pid; the first keeps every client (no request reaches a second process).
 */
static void test_second_instance_refused(void **state)
{
    struct itcase *t = *state;
    char addr[32], holder[64];
    struct it_run r;

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, NULL);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", t->proxy_port);
    snprintf(holder, sizeof(holder), "held by process %ld (sluice)",
             (long)sluiceproc_pid(t->env->proxy));
    {
        const char *const args[] = {"--listen", addr, "-w", "2", NULL};
        r = it_run_sluice(t, args);
    }
    assert_int_equal(r.status, 1);
    assert_says(&r, addr);
    assert_says(&r, holder);
    free(r.output);
    for (int i = 0; i < 10; i++)
        it_assert_serves(t);
    /* Access lines are written within 50 ms: wait (bounded) for the tenth. */
    for (int i = 0; i < 100 && sluiceproc_access_count(t->env->proxy,
                                                       "target=\"http://origin.test:", NULL) < 10;
         i++)
        usleep(20000);
    assert_int_equal(sluiceproc_access_count(t->env->proxy, "target=\"http://origin.test:", NULL),
                     10);
}

/*
 * A port held by another program is refused with its pid and name, whether it shares
 * (SO_REUSEPORT, where the kernel would spread clients over both) or not.
 */
static void test_port_held_by_other_process(void **state)
{
    struct itcase *t = *state;
    char addr[32], holder[64];
    struct it_run r;

    snprintf(holder, sizeof(holder), "held by process %ld (it_cli)", (long)getpid());
    for (int reuse = 0; reuse <= 1; reuse++) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sin);
        int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

        assert_true(fd >= 0);
        if (reuse)
            assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
        assert_int_equal(listen(fd, 4), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
        {
            const char *const args[] = {"--listen", addr, NULL};
            r = it_run_sluice(t, args);
        }
        close(fd);
        assert_int_equal(r.status, 1);
        assert_says(&r, addr);
        assert_says(&r, holder);
        free(r.output);
    }
}

/* The same listener twice is a command-line error (exit 2) that names it. */
static void test_listen_twice_refused(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--listen", "127.0.0.1:3999", "--listen", "127.0.0.1:3999", NULL};
    struct it_run r = it_run_sluice(t, args);

    assert_int_equal(r.status, 2);
    assert_says(&r, "sluice: --listen 127.0.0.1:3999: 127.0.0.1:3999 is given twice");
    free(r.output);
}

/* Sends one proxy request over the Unix socket at path; returns the response's status. */
static int unix_get(const char *path, const char *url)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char req[512], resp[1024];
    size_t got = 0;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), status = -1;

    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", url);
    if (write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        /* Bounded: at most 100 reads, each waiting at most 5 s. */
        for (int i = 0; i < 100 && got < sizeof(resp) - 1 && poll(&pfd, 1, 5000) == 1; i++) {
            ssize_t n = read(fd, resp + got, sizeof(resp) - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    resp[got] = '\0';
    close(fd);
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1)
        status = -1;
    return status;
}

/*
 * A Unix listener: a socket file left by a process that died is replaced; requests over
 * it are served and logged with client=unix; a second sluice on the same path is refused
 * naming the first by pid; a PROXY protocol option on it is an error; the file is gone
 * once sluice stops.
 */
static void test_unix_listener(void **state)
{
    struct itcase *t = *state;
    char path[100], listen[120], holder[64], url[128], *line;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    struct it_run r;
    int fd;

    assert_true(strlen(t->env->dir) < sizeof(path) - 8);
    snprintf(path, sizeof(path), "%.90s/s.sock", t->env->dir);
    snprintf(listen, sizeof(listen), "unix:%s", path);
    /* A leftover: bound, then closed without unlinking, as a killed process leaves it. */
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(fd);
    it_start_origin(t, origin_handler_simple, NULL);
    {
        const char *const args[] = {"--listen", "127.0.0.1:0", "--listen", listen, NULL};
        it_start_proxy(t, args);
    }
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0666);
    assert_int_equal(unix_get(path, it_url(t, "/over-unix", url, sizeof(url))), 200);
    line = it_access_line(t, "/over-unix\"", NULL);
    it_assert_access_field(line, "client", "unix");
    it_assert_access_field(line, "status", "200");
    free(line);
    snprintf(holder, sizeof(holder), "held by process %ld (sluice)",
             (long)sluiceproc_pid(t->env->proxy));
    {
        const char *const args[] = {"--listen", "127.0.0.1:0", "--listen", listen, NULL};
        r = it_run_sluice(t, args);
    }
    assert_int_equal(r.status, 1);
    assert_says(&r, listen);
    assert_says(&r, holder);
    free(r.output);
    /* The refused one left the running one's socket alone. */
    assert_int_equal(unix_get(path, it_url(t, "/after-refusal", url, sizeof(url))), 200);
    {
        char bad[160];
        const char *const args[] = {"check", "--listen", bad, NULL};
        snprintf(bad, sizeof(bad), "%s,proxy-from=127.0.0.1", listen);
        r = it_run_sluice(t, args);
    }
    assert_int_equal(r.status, 2);
    assert_says(&r, "takes no PROXY protocol");
    free(r.output);
    assert_true(testenv_stop_proxy(t->env));
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(errno, ENOENT);
    /* A file that is not a socket is never removed to make room for one. */
    assert_int_equal(tio_write_file(path, "keep me\n"), 0);
    {
        const char *const args[] = {"--listen", "127.0.0.1:0", "--listen", listen, NULL};
        r = it_run_sluice(t, args);
    }
    assert_int_equal(r.status, 1);
    assert_says(&r, "is not a socket");
    free(r.output);
    {
        char *kept = tio_read_file(path, NULL);
        assert_non_null(kept);
        assert_string_equal(kept, "keep me\n");
        free(kept);
    }
}

/* Runs python3 code with args, output to /dev/null; returns its exit status or -1. */
static int run_python(const char *code, const char *arg)
{
    char cmd[4096];
    int st;

    snprintf(cmd, sizeof(cmd), "python3 -c '%s' '%s' >/dev/null 2>&1", code, arg);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * The audit trail (--audit-log): a JSON record per request and tunnel with the ECS
 * fields, allowed and blocked alike, valid under dist/audit-record.schema.json; the
 * chain holds across a restart and a rotation (the file moved, SIGUSR1); and a line
 * edited, removed or moved is caught by sluice audit verify at the line where it shows.
 */
static void test_audit_trail(void **state)
{
    struct itcase *t = *state;
    char path[400], url[128], bad[400], *text;
    const char *const args[] = {"--audit-log", path, NULL};
    /* Every line is JSON with the fields a pipeline reads. */
    static const char check[] =
        "import json, sys\n"
        "recs = [json.loads(l) for l in open(sys.argv[1])]\n"
        "assert len(recs) == 3, len(recs)\n"
        "a, b, c = recs\n"
        "assert a[\"event\"][\"action\"] == \"http_request\"\n"
        "assert a[\"http\"][\"response\"][\"status_code\"] == 200\n"
        "assert a[\"url\"][\"full\"].endswith(\"/audit-1\")\n"
        "assert a[\"destination\"][\"domain\"] == \"origin.test\"\n"
        "assert a[\"sluice\"][\"decision\"] == \"allow\" and a[\"sluice\"][\"record_id\"] == 1\n"
        "assert c[\"event\"][\"action\"] == \"tunnel\"\n"
        "assert c[\"http\"][\"response\"][\"status_code\"] == 403\n"
        "assert c[\"sluice\"][\"decision\"] == \"block\" and c[\"rule\"][\"id\"] == "
        "\"connect-ports\"\n"
        "assert c[\"destination\"][\"port\"] == 25 and c[\"sluice\"][\"record_id\"] == 3\n";
    struct it_run r;

    snprintf(path, sizeof(path), "%s/audit.jsonl", t->env->dir);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    for (int i = 1; i <= 2; i++) {
        struct itcurl *c = itcurl_new(t->proxy_port);
        char p[32];
        snprintf(p, sizeof(p), "/audit-%d", i);
        assert_int_equal(itcurl_perform(c, it_url(t, p, url, sizeof(url))), CURLE_OK);
        itcurl_free(c);
    }
    {
        struct rawclient *rc = it_raw(t);
        struct rawresp resp = {0};
        assert_int_equal(rawclient_sends(rc, "CONNECT origin.test:25 HTTP/1.1\r\nHost: x\r\n\r\n"),
                         0);
        assert_int_equal(rawclient_response(rc, &resp, false, 5000), 403);
        rawresp_free(&resp);
        rawclient_close(rc);
    }
    assert_true(testenv_stop_proxy(t->env)); /* every record is written by the exit */
    assert_int_equal(run_python(check, path), 0);
    {
        /* Debian's python3 and python3-jsonschema (the test packages): each record is
         * valid under the committed schema, and a record that is not fails (the control). */
        static const char validate[] =
            "import json, sys, jsonschema\n"
            "v = jsonschema.Draft202012Validator(json.load(open(sys.argv[1])))\n"
            "for line in open(sys.argv[2]):\n"
            "    v.validate(json.loads(line))\n";
        char cmd[2000], control[400];

        snprintf(cmd, sizeof(cmd),
                 "/usr/bin/python3 -c '%s' '%s/dist/audit-record.schema.json' '%s'", validate,
                 SLUICE_SOURCE_DIR, path);
        assert_int_equal(system(cmd), 0);
        snprintf(control, sizeof(control), "%s/control.jsonl", t->env->dir);
        assert_int_equal(tio_write_file(control, "{\"@timestamp\": \"now\"}\n"), 0);
        snprintf(cmd, sizeof(cmd),
                 "/usr/bin/python3 -c '%s' '%s/dist/audit-record.schema.json' '%s' 2>/dev/null",
                 validate, SLUICE_SOURCE_DIR, control);
        assert_int_not_equal(system(cmd), 0);
    }
    {
        const char *const v[] = {"audit", "verify", path, NULL};
        r = it_run_sluice(t, v);
        assert_int_equal(r.status, 0);
        assert_says(&r, "3 records, the chain holds");
        free(r.output);
    }
    /* A restart continues the chain and the numbering. */
    it_start_proxy(t, args);
    {
        struct itcurl *c = itcurl_new(t->proxy_port);
        assert_int_equal(itcurl_perform(c, it_url(t, "/audit-4", url, sizeof(url))), CURLE_OK);
        itcurl_free(c);
    }
    assert_true(testenv_stop_proxy(t->env));
    {
        const char *const v[] = {"audit", "verify", path, NULL};
        r = it_run_sluice(t, v);
        assert_int_equal(r.status, 0);
        assert_says(&r, "4 records, the chain holds");
        free(r.output);
    }
    text = tio_read_file(path, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"record_id\":4,"));
    /* Tampering: each kind is caught where it shows. */
    snprintf(bad, sizeof(bad), "%s/bad.jsonl", t->env->dir);
    {
        static const char *const edits[][2] = {
            {"sed '2s/audit-2/audit-X/'", "bad.jsonl:3: the chain breaks here"},
            {"sed '2d'", "bad.jsonl:2: the chain breaks here"},
            {"awk 'NR==2{h=$0;next} {print} NR==3{print h}'", "bad.jsonl:2: the chain breaks here"},
        };
        for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
            char cmd[1000];
            const char *const v[] = {"audit", "verify", bad, NULL};

            snprintf(cmd, sizeof(cmd), "%s '%s' > '%s'", edits[i][0], path, bad);
            assert_int_equal(system(cmd), 0);
            r = it_run_sluice(t, v);
            assert_int_equal(r.status, 1);
            assert_says(&r, edits[i][1]);
            free(r.output);
        }
    }
    free(text);
    /* Rotation: the file moved away, SIGUSR1, and the chain goes on in a new file. */
    it_start_proxy(t, args);
    {
        char moved[420];
        struct itcurl *c = itcurl_new(t->proxy_port);

        assert_int_equal(itcurl_perform(c, it_url(t, "/audit-5", url, sizeof(url))), CURLE_OK);
        itcurl_free(c);
        snprintf(moved, sizeof(moved), "%s.1", path);
        /* The fifth record is written before the move: its access line is out by then. */
        for (int i = 0; i < 250 && !sluiceproc_log_contains(t->env->proxy, "/audit-5\""); i++)
            tio_sleep_ms(20);
        for (int i = 0; i < 250; i++) {
            char *now = tio_read_file(path, NULL);
            bool five = now != NULL && strstr(now, "\"record_id\":5,") != NULL;
            free(now);
            if (five)
                break;
            tio_sleep_ms(20);
        }
        assert_int_equal(rename(path, moved), 0);
        assert_int_equal(sluiceproc_signal(t->env->proxy, SIGUSR1), 0);
        for (int i = 0;
             i < 250 && !sluiceproc_log_contains(t->env->proxy, "reopened the audit trail"); i++)
            tio_sleep_ms(20);
        c = itcurl_new(t->proxy_port);
        assert_int_equal(itcurl_perform(c, it_url(t, "/audit-6", url, sizeof(url))), CURLE_OK);
        itcurl_free(c);
        assert_true(testenv_stop_proxy(t->env));
        {
            const char *const v[] = {"audit", "verify", moved, path, NULL};
            r = it_run_sluice(t, v);
            assert_int_equal(r.status, 0);
            assert_says(&r, "6 records, the chain holds");
            free(r.output);
        }
        text = tio_read_file(path, NULL);
        assert_non_null(text);
        assert_non_null(strstr(text, "/audit-6"));
        assert_null(strstr(text, "/audit-5")); /* each record in one file only */
        free(text);
    }
}

/* Answers with a session cookie, so the response's secret fields are recorded too. */
static void cookie_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0)
        return;
    (void)oconn_respond(c, 200, "Set-Cookie: sid=SECRET-SET-COOKIE; HttpOnly\r\n", "ok", 2);
}

/*
 * Secrets in the trail: Authorization, Cookie, x-api-key, a configured header and the
 * response's Set-Cookie are recorded as present with a keyed hash, equal for equal
 * credentials and across a restart with the same key file, never in clear anywhere (the
 * trail, the log); secret query parameters are hidden in url.full in every spelling.
 */
static void test_audit_secrets(void **state)
{
    struct itcase *t = *state;
    char path[400], key[400], squid[400], url[256];
    const char *const args[] = {"--audit-log", path,  "--audit-hash-key",       key,
                                "--squid-log", squid, "--audit-secret-headers", "X-Team-Pass",
                                NULL};
    static const char check[] =
        "import json, sys\n"
        "recs = [json.loads(l) for l in open(sys.argv[1])]\n"
        "assert len(recs) == 4, len(recs)\n"
        "def sec(r): return {s[\"field\"]: s for s in r[\"sluice\"][\"request_secrets\"]}\n"
        "a, b, c, d = map(sec, recs)\n"
        "assert set(a) == {\"authorization\", \"cookie\", \"x-api-key\", \"x-team-pass\"}, a\n"
        "assert a[\"authorization\"][\"scheme\"] == \"Bearer\"\n"
        "assert a[\"authorization\"][\"hash\"] == b[\"authorization\"][\"hash\"]\n"
        "assert a[\"authorization\"][\"hash\"] != c[\"authorization\"][\"hash\"]\n"
        "assert a[\"authorization\"][\"hash\"] == d[\"authorization\"][\"hash\"]\n"
        "assert a[\"x-api-key\"][\"hash\"] != a[\"cookie\"][\"hash\"]\n"
        "r = recs[0][\"sluice\"][\"response_secrets\"]\n"
        "assert [s[\"field\"] for s in r] == [\"set-cookie\"], r\n"
        "u = recs[0][\"url\"]\n"
        "assert "
        "u[\"full\"].endswith(\"/"
        "s;jsessionid=<redacted>?q=1&api_key=<redacted>&%74oken=<redacted>\"), u\n"
        "assert u[\"path\"] == \"/s;jsessionid=<redacted>\", u\n"
        "assert recs[0][\"user_agent\"][\"original\"] == \"sluice-test/1\"\n"
        "p = recs[0][\"process\"]\n"
        "assert p[\"parent\"][\"pid\"] > 1 and p[\"parent\"][\"pid\"] != p[\"pid\"], p\n"
        "assert p[\"parent\"][\"executable\"].startswith(\"/\"), p\n";
    char *text, *log;

    snprintf(path, sizeof(path), "%s/audit.jsonl", t->env->dir);
    snprintf(key, sizeof(key), "%s/audit.key", t->env->dir);
    snprintf(squid, sizeof(squid), "%s/access.log", t->env->dir);
    it_start_origin(t, cookie_handler, NULL);
    for (int run = 0; run < 2; run++) {
        it_start_proxy(t, args);
        for (int i = 0; i < (run == 0 ? 3 : 1); i++) {
            struct itcurl *c = itcurl_new(t->proxy_port);
            itcurl_add_header(c, i == 2 ? "Authorization: Bearer OTHER-TOKEN"
                                        : "Authorization: Bearer SECRET-TOKEN");
            if (run == 0 && i == 0) {
                itcurl_add_header(c, "Cookie: session=SECRET-COOKIE");
                itcurl_add_header(c, "X-Api-Key: SECRET-API-KEY");
                itcurl_add_header(c, "X-Team-Pass: SECRET-TEAM");
            }
            itcurl_add_header(c, "User-Agent: sluice-test/1");
            assert_int_equal(
                itcurl_perform(
                    c, it_url(t, "/s;jsessionid=SECRET-J?q=1&api_key=SECRET-Q1&%74oken=SECRET-Q2",
                              url, sizeof(url))),
                CURLE_OK);
            assert_int_equal(itcurl_status(c), 200);
            itcurl_free(c);
        }
        log = sluiceproc_log_path(t->env->proxy) != NULL
                  ? strdup(sluiceproc_log_path(t->env->proxy))
                  : NULL;
        assert_true(testenv_stop_proxy(t->env));
        /* Nothing secret in the log either. */
        text = log != NULL ? tio_read_file(log, NULL) : NULL;
        assert_non_null(text);
        assert_null(strstr(text, "SECRET"));
        free(text);
        free(log);
    }
    text = tio_read_file(path, NULL);
    assert_non_null(text);
    assert_null(strstr(text, "SECRET")); /* not one secret in clear */
    assert_null(strstr(text, "OTHER-TOKEN"));
    free(text);
    /* The Squid log has the request, its query's secrets hidden as in the trail. */
    text = tio_read_file(squid, NULL);
    assert_non_null(text);
    assert_non_null(
        strstr(text, "/s;jsessionid=<redacted>?q=1&api_key=<redacted>&%74oken=<redacted>"));
    assert_null(strstr(text, "SECRET"));
    free(text);
    assert_int_equal(run_python(check, path), 0);
}

/*
 * A trail that cannot be written (/dev/full: every write is ENOSPC): by default the
 * requests after the first failed write get 503 naming the audit trail, and the origin
 * sees none of them; with --audit-fail-open on they go on, and the loss is logged.
 */
static void test_audit_fail_closed(void **state)
{
    struct itcase *t = *state;
    char url[128];

    it_start_origin(t, origin_handler_simple, NULL);
    for (int open_mode = 0; open_mode <= 1; open_mode++) {
        const char *const args[] = {"--audit-log", "/dev/full", "--audit-fail-open",
                                    open_mode ? "on" : "off", NULL};
        unsigned before = origin_requests(t->origin);
        struct itcurl *c;

        it_start_proxy(t, args);
        /* The first request finds the trail writable: its own record is what fails. */
        c = itcurl_new(t->proxy_port);
        assert_int_equal(itcurl_perform(c, it_url(t, "/first", url, sizeof(url))), CURLE_OK);
        assert_int_equal(itcurl_status(c), 200);
        itcurl_free(c);
        for (int i = 0;
             i < 250 && !sluiceproc_log_contains(t->env->proxy, "cannot write the audit trail");
             i++)
            tio_sleep_ms(20);
        assert_true(
            sluiceproc_log_wait(t->env->proxy, "cannot write the audit trail /dev/full", 2000));
        c = itcurl_new(t->proxy_port);
        assert_int_equal(itcurl_perform(c, it_url(t, "/second", url, sizeof(url))), CURLE_OK);
        if (open_mode) {
            assert_int_equal(itcurl_status(c), 200);
            assert_int_equal(origin_requests(t->origin), before + 2);
        } else {
            assert_int_equal(itcurl_status(c), 503);
            assert_non_null(strstr(tbuf_str(&c->body), "the audit trail cannot be written"));
            assert_int_equal(origin_requests(t->origin), before + 1);
        }
        itcurl_free(c);
        {
            /* The loss is said at exit, in the log the stopped process leaves. */
            char log[600], *text;
            snprintf(log, sizeof(log), "%s", sluiceproc_log_path(t->env->proxy));
            assert_true(testenv_stop_proxy(t->env));
            text = tio_read_file(log, NULL);
            assert_non_null(text);
            assert_non_null(strstr(text, "records were lost"));
            free(text);
        }
    }
}

/* A mistyped option gets one line, prefixed "sluice:", with the option it was meant to be. */
static void test_mistyped_option_one_line(void **state)
{
    struct itcase *t = *state;
    static const struct {
        const char *arg;
        const char *says;
    } cases[] = {
        {"--lisen",
         "sluice: unknown option '--lisen'; did you mean '--listen'? (see sluice --help)\n"},
        {"--polcy-dir=x", "sluice: unknown option '--polcy-dir'; did you mean '--policy-dir'?"},
        {"--zzzzzz", "sluice: unknown option '--zzzzzz' (see sluice --help)\n"},
        {"-j", "sluice: unknown option '-j' (see sluice --help)\n"},
        {"--verbose=2", "sluice: option '--verbose' takes no value (see sluice --help)\n"},
        {"-vxq", "sluice: unknown option '-x' (see sluice --help)\n"},
        {"chek", "sluice: unknown command 'chek'; did you mean 'check'? (see sluice --help)\n"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *const args[] = {cases[i].arg, NULL};
        struct it_run r = it_run_sluice(t, args);

        assert_int_equal(r.status, 2);
        assert_int_equal(line_count(r.output), 1);
        assert_true(strncmp(r.output, cases[i].says, strlen(cases[i].says)) == 0);
        free(r.output);
    }
    {
        const char *const args[] = {"--listen", NULL}; /* the ready file follows: its value */
        struct it_run r = it_run_sluice(t, args);

        assert_int_not_equal(r.status, 0);
        free(r.output);
    }
}

/*
 * --help names the commands, each synopsis apart from its summary, in lines of at most
 * 79 columns; "sluice help check" says what check does.
 */
static void test_help_names_commands(void **state)
{
    struct itcase *t = *state;
    struct it_run r;

    {
        const char *const args[] = {"--help", NULL};
        r = it_run_sluice(t, args);
    }
    assert_int_equal(r.status, 0);
    assert_says(&r, "       sluice check [options]");
    assert_says(&r, "       sluice help [COMMAND]");
    assert_says(&r, "--policy-dir DIR");
    /* A long synopsis has its summary on the next line, not run into it. */
    assert_says(&r, "       sluice audit verify FILE...\n                                  check");
    for (const char *line = r.output; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);

        if (len > 79)
            fail_msg("a --help line of %zu columns: %.*s", len, (int)len, line);
        line += len + (end != NULL);
    }
    free(r.output);
    {
        const char *const args[] = {"help", "check", NULL};
        r = it_run_sluice(t, args);
    }
    assert_int_equal(r.status, 0);
    assert_says(&r, "usage: sluice check [options]\n");
    assert_says(&r, "exits\n0 when all is valid");
    free(r.output);
    {
        const char *const args[] = {"help", "chek", NULL};
        r = it_run_sluice(t, args);
    }
    assert_int_equal(r.status, 2);
    assert_says(&r, "did you mean 'check'?");
    free(r.output);
}

/*
 * A policy directory with neither organisation.yaml nor tools/ (the tools folder given by
 * mistake) fails "sluice check" and is a warning at start-up, where it allows everything.
 */
static void test_policy_dir_without_profiles(void **state)
{
    struct itcase *t = *state;
    const char *dir = it_write_policy(t, "{}\n", NULL, NULL);
    char tools[600];
    struct it_run r;

    snprintf(tools, sizeof(tools), "%s/tools", dir);
    {
        const char *const args[] = {"check", "--policy-dir", tools, NULL};
        r = it_run_sluice(t, args);
    }
    assert_int_equal(r.status, 1);
    assert_says(&r, "holds neither organisation.yaml nor tools/");
    free(r.output);
    {
        const char *const args[] = {"check", "--policy-dir", dir, NULL};
        r = it_run_sluice(t, args);
    }
    assert_int_equal(r.status, 1);
    assert_says(&r, "has no tool profile (tools/*.yaml)");
    free(r.output);
    it_start_origin(t, origin_handler_simple, NULL);
    {
        const char *const args[] = {"--policy-dir", tools, NULL};
        it_start_proxy(t, args);
    }
    assert_true(sluiceproc_log_wait(t->env->proxy, " warn policy directory ", 2000));
    it_assert_serves(t);
}

/* "sluice check" lists each profile with its proxy user names. */
static void test_check_lists_proxy_users(void **state)
{
    struct itcase *t = *state;
    const char *dir = it_write_policy(t, "{}\n", "alpha",
                                      "id: alpha\n"
                                      "identify: {proxy_users: [alpha, al]}\n"
                                      "default: allow\n");
    const char *const args[] = {"check", "--policy-dir", dir, NULL};
    struct it_run r = it_run_sluice(t, args);

    assert_int_equal(r.status, 0);
    assert_says(&r, "policies OK: 1 tool profile from ");
    assert_says(&r, "\n  alpha              proxy users: alpha, al\n");
    free(r.output);
}

static int get_through(struct itcase *t, const char *url, const char *auth);

/* A proxy user name that names no profile is in the access line as offered, quoted. */
static void test_offered_user_logged(void **state)
{
    struct itcase *t = *state;
    const char *dir = it_write_policy(t, "{}\n", "alpha",
                                      "id: alpha\n"
                                      "identify: {proxy_users: [alpha]}\n"
                                      "default: allow\n");
    struct rawclient *rc;
    struct rawresp resp = {0};
    char req[300], *line;

    it_start_origin(t, origin_handler_simple, NULL);
    {
        const char *const args[] = {"--policy-dir", dir, NULL};
        it_start_proxy(t, args);
    }
    rc = it_raw(t);
    /* alpah:x, in Basic */
    snprintf(req, sizeof(req),
             "GET http://origin.test:%u/x HTTP/1.1\r\nHost: origin.test\r\n"
             "Proxy-Authorization: Basic YWxwYWg6eA==\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &resp, false, 5000), 200);
    line = it_access_line(t, "method=GET", NULL);
    it_assert_access_field(line, "tool", "unidentified");
    it_assert_access_field(line, "id", "none");
    it_assert_access_field(line, "offered", "alpah");
    free(line);
    rawresp_free(&resp);
    rawclient_close(rc);
    /* "al pah=1:x": a name with a space and '=' stays one quoted field */
    snprintf(req, sizeof(req), "http://origin.test:%u/forged", origin_port(t->origin));
    assert_int_equal(get_through(t, req, "Proxy-Authorization: Basic YWwgcGFoPTE6eA=="), 200);
    line = it_access_line(t, "/forged", NULL);
    assert_non_null(strstr(line, " offered=\"al pah=1\" "));
    free(line);
}

/* Answers "GET /sleep/N" after N milliseconds. */
static void sleep_handler(struct origin_conn *c)
{
    const char *p;

    if (oconn_read_head(c, 10000) == 0)
        return;
    p = strstr(c->head.data, "/sleep/");
    if (p != NULL && !oconn_sleep(c, (unsigned)strtoul(p + 7, NULL, 10)))
        return;
    (void)oconn_respond(c, 200, "Connection: close\r\n", "ok", 2);
}

/*
 * Durations in the access line have millisecond resolution: for origins that take 1 to
 * 24 ms, ms= is never shorter than the wait and not always a multiple of 4 (the coarse
 * clock moves 4 ms at a time, which made every value one).
 */
static void test_durations_in_milliseconds(void **state)
{
    struct itcase *t = *state;
    unsigned not_multiple_of_4 = 0;

    it_start_origin(t, sleep_handler, NULL);
    it_start_proxy(t, NULL);
    for (unsigned i = 1; i <= 24; i++) {
        struct rawclient *rc = it_raw(t);
        struct rawresp resp = {0};
        char req[200], path[32], ms[32], *line;

        snprintf(path, sizeof(path), "/sleep/%u ", i);
        snprintf(req, sizeof(req), "GET http://origin.test:%u/sleep/%u HTTP/1.1\r\nHost: x\r\n\r\n",
                 origin_port(t->origin), i);
        assert_int_equal(rawclient_sends(rc, req), 0);
        assert_int_equal(rawclient_response(rc, &resp, false, 5000), 200);
        snprintf(path, sizeof(path), "/sleep/%u\"", i);
        line = it_access_line(t, path, NULL);
        it_access_field(line, "ms", ms, sizeof(ms));
        assert_true(strtoul(ms, NULL, 10) >= i);
        not_multiple_of_4 += strtoul(ms, NULL, 10) % 4 != 0;
        free(line);
        rawresp_free(&resp);
        rawclient_close(rc);
    }
    assert_true(not_multiple_of_4 > 0);
}

/* Sends "GET url" through the proxy on a new connection; returns the status. */
static int get_through(struct itcase *t, const char *url, const char *auth)
{
    struct rawclient *rc = it_raw(t);
    struct rawresp resp = {0};
    char req[400];
    int status;

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s%s\r\n", url,
             auth != NULL ? auth : "", auth != NULL ? "\r\n" : "");
    assert_int_equal(rawclient_sends(rc, req), 0);
    status = rawclient_response(rc, &resp, false, 8000);
    rawresp_free(&resp);
    rawclient_close(rc);
    return status;
}

/* Number of times s occurs in the proxy's log. */
static unsigned log_count(struct itcase *t, const char *s)
{
    char *log = tio_read_file(sluiceproc_log_path(t->env->proxy), NULL);
    unsigned n = 0;

    for (const char *p = log; p != NULL && (p = strstr(p, s)) != NULL; p += strlen(s))
        n++;
    free(log);
    return n;
}

/*
 * At the default level the access line says why a request failed (error=, the RFC 9209
 * type) and counts sent=0 for every refusal; at -vv a block is said once, not twice.
 */
static void test_failure_reasons_logged(void **state)
{
    struct itcase *t = *state;
    const char *dir = it_write_policy(t, "{}\n", "alpha",
                                      "id: alpha\n"
                                      "identify: {proxy_users: [alpha]}\n"
                                      "default: block\n");
    uint16_t closed_port = 0;
    int fd = tio_listen("127.0.0.1", 1, &closed_port);
    char url[128], *line;

    assert_true(fd >= 0);
    tio_close(&fd); /* nothing listens there now: connection refused */
    {
        const char *const args[] = {"--policy-dir", dir, "-vv", NULL};
        it_start_proxy(t, args);
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/refused", closed_port);
    assert_int_equal(get_through(t, url, NULL), 502);
    line = it_access_line(t, "/refused", NULL);
    it_assert_access_field(line, "error", "connection_refused");
    it_assert_access_field(line, "term", "SC");
    it_assert_access_field(line, "sent", "0");
    free(line);
    assert_int_equal(get_through(t, "http://nosuch.test/dns", NULL), 502);
    line = it_access_line(t, "/dns", NULL);
    it_assert_access_field(line, "error", "dns_error");
    it_assert_access_field(line, "term", "SN");
    it_assert_access_field(line, "sent", "0");
    free(line);
    /* alpha:x in Basic; alpha blocks everything by default */
    assert_int_equal(
        get_through(t, "http://origin.test/blocked", "Proxy-Authorization: Basic YWxwaGE6eA=="),
        403);
    line = it_access_line(t, "/blocked", NULL);
    it_assert_access_field(line, "sent", "0");
    it_assert_access_field(line, "decision", "block");
    assert_null(strstr(line, " error="));
    free(line);
    assert_int_equal(log_count(t, "blocked origin.test:80 for tool alpha"), 1);
}

/* Waits (bounded: 3 s) until the file at path holds s; true when it does. */
static bool file_says(const char *path, const char *s)
{
    for (int i = 0; i < 150; i++) {
        char *text = tio_read_file(path, NULL);
        bool found = text != NULL && strstr(text, s) != NULL;

        free(text);
        if (found)
            return true;
        tio_sleep_ms(20);
    }
    return false;
}

/*
 * --log-file takes the log; after logrotate's move, SIGUSR1 reopens it and the next lines
 * land in the new file.  --pid-file holds the pid while sluice runs and goes at exit.
 */
static void test_log_file_and_pid_file(void **state)
{
    struct itcase *t = *state;
    char log[600], moved[620], pidfile[600], want[32], *pid;
    int st;

    snprintf(log, sizeof(log), "%s/sluice.log", t->env->dir);
    snprintf(moved, sizeof(moved), "%s.1", log);
    snprintf(pidfile, sizeof(pidfile), "%s/sluice.pid", t->env->dir);
    it_start_origin(t, origin_handler_simple, NULL);
    {
        const char *const args[] = {"--log-file", log, "--pid-file", pidfile, NULL};
        it_start_proxy(t, args);
    }
    pid = tio_read_file(pidfile, NULL);
    snprintf(want, sizeof(want), "%ld\n", (long)sluiceproc_pid(t->env->proxy));
    assert_non_null(pid);
    assert_string_equal(pid, want);
    free(pid);
    it_assert_serves(t);
    assert_true(file_says(log, "target=\"http://origin.test:"));
    assert_int_equal(rename(log, moved), 0);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGUSR1), 0);
    assert_true(file_says(log, "received SIGUSR1: reopened the log file"));
    it_assert_serves(t);
    assert_true(file_says(log, "target=\"http://origin.test:"));
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGTERM), 0);
    assert_true(sluiceproc_wait_exit(t->env->proxy, 8000));
    st = sluiceproc_status(t->env->proxy);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(file_says(log, "sluice stopped"));
    assert_int_equal(access(pidfile, F_OK), -1);
    {
        char *old = tio_read_file(moved, NULL);
        assert_non_null(old);
        assert_null(strstr(old, "reopened")); /* nothing after the move went there */
        free(old);
    }
}

/* Reads one datagram from fd within 5 s into buf; returns its text ("" on timeout). */
static const char *notify_read(int fd, char *buf, size_t cap)
{
    ssize_t n;

    buf[0] = '\0';
    if (tio_wait(fd, POLLIN, 5000) <= 0)
        return buf;
    n = recv(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/*
 * Under systemd (Type=notify): READY=1 once listening, RELOADING=1 then READY=1 around a
 * SIGHUP, STOPPING=1 at SIGTERM, each to the socket $NOTIFY_SOCKET names.
 */
static void test_sd_notify(void **state)
{
    struct itcase *t = *state;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char buf[256];
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    size_t len = strlen(t->env->dir);

    assert_true(fd >= 0);
    assert_true(len + sizeof("/notify") <= sizeof(sun.sun_path));
    memcpy(sun.sun_path, t->env->dir, len);
    memcpy(sun.sun_path + len, "/notify", sizeof("/notify"));
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", sun.sun_path, 1), 0);
    it_start_proxy(t, NULL); /* inherits the variable */
    unsetenv("NOTIFY_SOCKET");
    assert_string_equal(notify_read(fd, buf, sizeof(buf)), "READY=1\nSTATUS=listening");
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    assert_string_equal(notify_read(fd, buf, sizeof(buf)), "RELOADING=1");
    assert_string_equal(notify_read(fd, buf, sizeof(buf)), "READY=1\nSTATUS=listening");
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGTERM), 0);
    assert_string_equal(notify_read(fd, buf, sizeof(buf)), "STOPPING=1");
    assert_true(sluiceproc_wait_exit(t->env->proxy, 8000));
    close(fd);
}

/*
 * sluice check reports every error of a file at once, each as file:line:column, then the
 * count, and exits 1; a good file passes with 0.
 */
static void test_check_counts_errors(void **state)
{
    struct itcase *t = *state;
    char bad[600], good[600];
    struct it_run r;

    snprintf(bad, sizeof(bad), "%s/bad.yaml", t->env->dir);
    snprintf(good, sizeof(good), "%s/good.yaml", t->env->dir);
    assert_int_equal(
        tio_write_file(bad, "mode: laptop\nlimits:\n  max_connections: 0\ncolour: blue\n"), 0);
    assert_int_equal(tio_write_file(good, "mode: gateway\n"), 0);
    {
        const char *const args[] = {"check", "--config", bad, NULL};
        r = it_run_sluice(t, args);
    }
    assert_int_equal(r.status, 1);
    assert_says(&r, "bad.yaml:1:7: mode: 'laptop' is not a mode");
    assert_says(&r, "bad.yaml:3:20: limits.max_connections: '0'");
    assert_says(&r, "bad.yaml:4:1: unknown key 'colour'");
    assert_says(&r, "\n3 errors\n");
    free(r.output);
    {
        const char *dir = it_write_policy(t, "{}\n", "alpha", "id: alpha\n");
        const char *const args[] = {"check", "--config", good, "--policy-dir", dir, NULL};
        r = it_run_sluice(t, args);
    }
    assert_int_equal(r.status, 0);
    assert_says(&r, "configuration OK: ");
    free(r.output);
}

/* A port below 1024 on 127.0.0.1 that nothing holds now, or 0 when none is free. */
static uint16_t free_low_port(void)
{
    for (uint16_t port = 1023; port >= 900; port--) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    return 0;
}

/* The IDs of one "Uid:" or "Gid:" line of /proc/PID/status: all four must equal want. */
static void assert_ids(pid_t pid, const char *field, unsigned want)
{
    char path[64], *text, *line;
    unsigned id[4];

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    text = tio_read_file(path, NULL);
    assert_non_null(text);
    line = strstr(text, field);
    assert_non_null(line);
    assert_int_equal(sscanf(line + strlen(field), "%u %u %u %u", &id[0], &id[1], &id[2], &id[3]),
                     4);
    for (int i = 0; i < 4; i++)
        if (id[i] != want)
            fail_msg("%s of sluice is %u %u %u %u, expected %u in every place", field, id[0], id[1],
                     id[2], id[3], want);
    free(text);
}

/*
 * Started as root with --user, sluice binds a port below 1024 and then runs as that user
 * for good (real, effective and saved IDs, and no other group), serves, and hands it the
 * log file so SIGUSR1 can reopen it after a rotation.
 */
static void test_root_becomes_user(void **state)
{
    struct itcase *t = *state;
    struct passwd *pw = getpwnam("nobody");
    char listen[32], log[600], moved[620];
    uint16_t port;
    struct stat st;

    if (geteuid() != 0 || pw == NULL)
        skip(); /* only root can change user, and only to one that exists */
    port = free_low_port();
    assert_true(port != 0);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    snprintf(log, sizeof(log), "%s/sluice.log", t->env->dir);
    snprintf(moved, sizeof(moved), "%s.1", log);
    /* Where the ready file goes must be writable by the user, as a state directory is. */
    assert_int_equal(chown(t->env->dir, pw->pw_uid, pw->pw_gid), 0);
    it_start_origin(t, origin_handler_simple, NULL);
    {
        const char *const args[] = {"--listen",   listen, "--user", "nobody",
                                    "--log-file", log,    NULL};
        it_start_proxy(t, args);
    }
    assert_int_equal(t->proxy_port, port);
    assert_ids(sluiceproc_pid(t->env->proxy), "Uid:", (unsigned)pw->pw_uid);
    assert_ids(sluiceproc_pid(t->env->proxy), "Gid:", (unsigned)pw->pw_gid);
    assert_true(file_says(log, "running as user nobody"));
    it_assert_serves(t);
    assert_int_equal(stat(log, &st), 0);
    assert_int_equal(st.st_uid, pw->pw_uid);
    assert_int_equal(rename(log, moved), 0);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGUSR1), 0);
    assert_true(file_says(log, "received SIGUSR1: reopened the log file"));
}

/* A user that does not exist is a command-line error that says how to make one. */
static void test_unknown_user_refused(void **state)
{
    struct itcase *t = *state;
    const char *const args[] = {"--user", "no-such-user-x", NULL};
    struct it_run r = it_run_sluice(t, args);

    assert_int_equal(r.status, 2);
    assert_says(&r, "sluice: --user no-such-user-x: user 'no-such-user-x' does not exist");
    assert_says(&r, "adduser --system");
    free(r.output);
}

/*
 * sluice ca init makes a CA that OpenSSL takes for one (an EC P-256 key, mode 0600; a
 * self-signed CA:TRUE certificate with keyCertSign), in directories it makes (0700) when
 * they are missing, never overwrites one, and with
 * --if-absent leaves it as it is; sluice ca show gives the fingerprint OpenSSL gives, and
 * refuses a key others may read or one that is not the certificate's.
 */
static void test_ca_init_show(void **state)
{
    struct itcase *t = *state;
    char cert[600], key[600], other[600], cmd[5000], fp[200] = "";
    const char *const init[] = {"ca", "init", "--ca-cert", cert, "--ca-key", key, NULL};
    const char *const again[] = {"ca", "init",     "--if-absent", "--ca-cert",
                                 cert, "--ca-key", key,           NULL};
    const char *const show[] = {"ca", "show", "--ca-cert", cert, "--ca-key", key, NULL};
    const char *const show_other[] = {"ca", "show", "--ca-cert", cert, "--ca-key", other, NULL};
    const char *const bare[] = {"ca", "init", NULL};
    struct it_run r;
    struct stat st;
    FILE *p;

    /* In directories that are not there yet: init makes them, 0700. */
    snprintf(cert, sizeof(cert), "%s/config/sluice/ca.pem", t->env->dir);
    snprintf(key, sizeof(key), "%s/config/sluice/ca.key", t->env->dir);
    snprintf(other, sizeof(other), "%s/other.key", t->env->dir);
    r = it_run_sluice(t, bare);
    assert_int_equal(r.status, 2);
    assert_says(&r, "set ca.cert and ca.key");
    free(r.output);

    r = it_run_sluice(t, init);
    assert_int_equal(r.status, 0);
    assert_says(&r, "created the local CA");
    free(r.output);
    snprintf(cmd, sizeof(cmd), "%s/config/sluice", t->env->dir);
    assert_int_equal(stat(cmd, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(cert, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    /* OpenSSL's own reading: a CA for itself, P-256, the key the certificate's. */
    snprintf(
        cmd, sizeof(cmd),
        "openssl verify -CAfile '%s' '%s' >/dev/null && "
        "openssl x509 -in '%s' -noout -text | grep -q 'CA:TRUE, pathlen:0' && "
        "openssl x509 -in '%s' -noout -text | grep -q 'Certificate Sign, CRL Sign' && "
        "openssl pkey -in '%s' -noout -text | grep -q prime256v1 && "
        "[ \"$(openssl x509 -in '%s' -noout -pubkey)\" = \"$(openssl pkey -in '%s' -pubout)\" ]",
        cert, cert, cert, cert, key, cert, key);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s' -noout -fingerprint -sha256", cert);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(fp, sizeof(fp), p));
    pclose(p);
    fp[strcspn(fp, "\n")] = '\0';
    assert_non_null(strchr(fp, '='));

    r = it_run_sluice(t, show);
    assert_int_equal(r.status, 0);
    assert_says(&r, strchr(fp, '=') + 1); /* the same fingerprint */
    assert_says(&r, "the certificate's key");
    assert_says(&r, "days left)");
    free(r.output);

    /* Never overwritten; --if-absent leaves it as it is. */
    r = it_run_sluice(t, init);
    assert_int_equal(r.status, 1);
    assert_says(&r, "a CA is there already");
    free(r.output);
    r = it_run_sluice(t, again);
    assert_int_equal(r.status, 0);
    free(r.output);
    r = it_run_sluice(t, show);
    assert_says(&r, strchr(fp, '=') + 1);
    free(r.output);

    /* A key others may read, and a key that is not the certificate's. */
    assert_int_equal(chmod(key, 0644), 0);
    r = it_run_sluice(t, show);
    assert_int_equal(r.status, 1);
    assert_says(&r, "chmod 600");
    free(r.output);
    assert_int_equal(chmod(key, 0600), 0);
    snprintf(cmd, sizeof(cmd),
             "umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out '%s' "
             "2>/dev/null",
             other);
    assert_int_equal(system(cmd), 0);
    r = it_run_sluice(t, show_other);
    assert_int_equal(r.status, 1);
    assert_says(&r, "it is not the certificate's key");
    free(r.output);
}

/*
 * The CA key must be the running user's alone: a key others may read, or one that belongs
 * to another user than the one sluice runs as, stops it at start with the fix.
 */
static void test_ca_key_private(void **state)
{
    struct itcase *t = *state;
    char key[600], config[600], text[700];
    struct it_run r;

    snprintf(key, sizeof(key), "%s/ca.key", t->env->dir);
    snprintf(config, sizeof(config), "%s/sluice.yaml", t->env->dir);
    snprintf(text, sizeof(text), "ca:\n  key: %s\n", key);
    assert_int_equal(tio_write_file(key, "not a real key\n"), 0);
    assert_int_equal(tio_write_file(config, text), 0);
    it_start_origin(t, origin_handler_simple, NULL);
    {
        /* A port of its own: 3128 may be a running sluice's, which would be refused first. */
        const char *const args[] = {"--config", config, "--listen", "127.0.0.1:0", NULL};
        const char *const check[] = {"check", "--config", config, NULL};

        assert_int_equal(chmod(key, 0644), 0);
        r = it_run_sluice(t, args);
        assert_int_equal(r.status, 1);
        assert_says(&r, "is open to others (mode 0644)");
        assert_says(&r, "chmod 600 ");
        free(r.output);
        r = it_run_sluice(t, check); /* check says so before a start would */
        assert_int_equal(r.status, 1);
        assert_says(&r, "is open to others (mode 0644)");
        free(r.output);

        assert_int_equal(chmod(key, 0600), 0);
        it_start_proxy(t, args); /* the owner's alone: it starts */
        it_assert_serves(t);
    }
    if (geteuid() == 0 && getpwnam("nobody") != NULL) {
        const char *const args[] = {"--config", config,        "--user", "nobody",
                                    "--listen", "127.0.0.1:0", NULL};
        struct passwd *pw = getpwnam("nobody");

        assert_int_equal(chown(t->env->dir, pw->pw_uid, pw->pw_gid), 0);
        r = it_run_sluice(t, args); /* root's key, but sluice runs as nobody */
        assert_int_equal(r.status, 1);
        assert_says(&r, "belongs to uid 0, but sluice runs as nobody");
        assert_says(&r, "chown nobody ");
        free(r.output);
    }
}

/* Runs the cases, each with its own environment. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_second_instance_refused, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_port_held_by_other_process, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_listen_twice_refused, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_unix_listener, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_audit_trail, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_audit_fail_closed, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_audit_secrets, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_mistyped_option_one_line, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_help_names_commands, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_policy_dir_without_profiles, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_check_lists_proxy_users, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_offered_user_logged, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_durations_in_milliseconds, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_failure_reasons_logged, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_log_file_and_pid_file, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_sd_notify, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_check_counts_errors, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_root_becomes_user, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_user_refused, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_ca_key_private, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_ca_init_show, it_setup, it_teardown),
    };

    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests_name("integration_cli", tests, NULL, NULL);
}
