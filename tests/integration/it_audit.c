/*
 * The audit trail kept under load: nothing lost when it rotates by size or is reopened
 * after logrotate moved it (records written equal requests answered, the chain verifies
 * across every file), and a kill -9 in the middle of the traffic leaves a file every
 * line of which parses, whose chain verifies, that holds every request answered more
 * than a second before the kill, and that a restart continues; a line cut short by a
 * crash is removed at the next start and said in the log.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "itcommon.h"
#include "sluiceproc.h"

/* One client thread: keep-alive GETs through the proxy until told to stop or max done. */
struct load {
    struct itcase *t;
    atomic_bool *stop;
    unsigned max;
    atomic_uint ok;     /* answered 200 */
    atomic_uint failed; /* anything else */
};

static void *load_main(void *arg)
{
    struct load *l = arg;
    char url[128];
    unsigned n = 0;

    it_url(l->t, "/load?api_key=hidden", url, sizeof(url));
    while (!atomic_load(l->stop) && n < l->max) {
        struct itcurl *c = itcurl_new(l->t->proxy_port);
        if (c == NULL)
            break;
        for (int i = 0; i < 50 && !atomic_load(l->stop) && n < l->max; i++, n++) {
            if (itcurl_perform(c, url) == CURLE_OK && itcurl_status(c) == 200)
                atomic_fetch_add(&l->ok, 1);
            else
                atomic_fetch_add(&l->failed, 1);
        }
        itcurl_free(c);
    }
    return NULL;
}

enum { NLOAD = 2 };

/* Starts NLOAD client threads, each making at most max requests. */
static void load_start(struct itcase *t, struct load *l, pthread_t *th, atomic_bool *stop,
                       unsigned max)
{
    for (int i = 0; i < NLOAD; i++) {
        l[i].t = t;
        l[i].stop = stop;
        l[i].max = max;
        atomic_init(&l[i].ok, 0);
        atomic_init(&l[i].failed, 0);
        assert_int_equal(pthread_create(&th[i], NULL, load_main, &l[i]), 0);
    }
}

/* Joins the threads; returns the requests answered 200. */
static unsigned load_join(struct load *l, pthread_t *th, unsigned *failed)
{
    unsigned ok = 0;

    *failed = 0;
    for (int i = 0; i < NLOAD; i++) {
        pthread_join(th[i], NULL);
        ok += atomic_load(&l[i].ok);
        *failed += atomic_load(&l[i].failed);
    }
    return ok;
}

static unsigned load_ok(struct load *l)
{
    unsigned ok = 0;

    for (int i = 0; i < NLOAD; i++)
        ok += atomic_load(&l[i].ok);
    return ok;
}

/* Lines in the file at path (0 when it is missing). */
static unsigned count_lines(const char *path)
{
    char *text = tio_read_file(path, NULL);
    unsigned n = 0;

    if (text == NULL)
        return 0;
    for (const char *p = text; *p != '\0'; p++)
        n += *p == '\n';
    free(text);
    return n;
}

/*
 * Runs sluice audit verify on files (NULL-terminated); asserts its exit status and that it
 * says says.
 */
static void expect_verify(struct itcase *t, const char *const *files, int status, const char *says)
{
    const char *v[16] = {"audit", "verify"};
    struct it_run r;
    size_t n = 2;

    for (size_t i = 0; files[i] != NULL && n < 15; i++)
        v[n++] = files[i];
    v[n] = NULL;
    r = it_run_sluice(t, v);
    if (r.status != status || strstr(r.output, says) == NULL)
        fail_msg("sluice audit verify said (status %d): %s; wanted (status %d): %s", r.status,
                 r.output, status, says);
    free(r.output);
}

/* Runs sluice audit verify on files (NULL-terminated); asserts "N records, the chain holds". */
static void assert_verifies(struct itcase *t, const char *const *files, unsigned want)
{
    char says[80];

    snprintf(says, sizeof(says), "%u record%s, the chain holds from record 1 to record %u", want,
             want == 1 ? "" : "s", want);
    expect_verify(t, files, 0, says);
}

/* One GET of path through the proxy, answered 200. */
static void get_ok(struct itcase *t, const char *path)
{
    struct itcurl *c = itcurl_new(t->proxy_port);
    char url[128];

    assert_int_equal(itcurl_perform(c, it_url(t, path, url, sizeof(url))), CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    itcurl_free(c);
}

/* The SHA-256 of the last line of the file at path (its newline left out), in hex. */
static void last_line_hash(const char *path, char hash[65])
{
    char cmd[600];
    FILE *p;

    snprintf(cmd, sizeof(cmd), "tail -n 1 '%s' | tr -d '\\n' | sha256sum", path);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_int_equal(fscanf(p, "%64s", hash), 1);
    assert_int_equal(pclose(p), 0);
}

/* Runs a shell command line; asserts that it succeeds. */
static void shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void shell(const char *fmt, ...)
{
    char cmd[2000];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fail_msg("failed: %s", cmd);
}

/*
 * Rotation by size under load: with --audit-rotate-mib 1 the trail becomes FILE.1, FILE.2
 * as two clients make 2,400 requests; no record is lost and the chain holds from the
 * oldest file to the newest.  Then logrotate's way, under load: the file is moved and
 * SIGUSR1 sent while the clients run, and again the two files hold every request.
 */
static void test_rotation_under_load(void **state)
{
    struct itcase *t = *state;
    char path[400], p1[420], p2[420], p3[420], moved[420];
    const char *const args[] = {"--audit-log", path, "--audit-rotate-mib", "1", "--audit-keep",
                                "3",           NULL};
    const char *const plain[] = {"--audit-log", path, NULL};
    struct load l[NLOAD];
    pthread_t th[NLOAD];
    atomic_bool stop = false;
    unsigned ok, failed, records;

    snprintf(path, sizeof(path), "%s/audit.jsonl", t->env->dir);
    snprintf(p1, sizeof(p1), "%s.1", path);
    snprintf(p2, sizeof(p2), "%s.2", path);
    snprintf(p3, sizeof(p3), "%s.3", path);
    snprintf(moved, sizeof(moved), "%s.moved", path);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    load_start(t, l, th, &stop, 1200);
    ok = load_join(l, th, &failed);
    assert_int_equal(failed, 0);
    assert_int_equal(ok, 2 * 1200);
    assert_true(testenv_stop_proxy(t->env));
    assert_true(access(p1, F_OK) == 0);
    assert_true(access(p2, F_OK) == 0); /* ~1.3 KB a record: three files' worth */
    assert_true(access(p3, F_OK) != 0);
    records = count_lines(p2) + count_lines(p1) + count_lines(path);
    assert_int_equal(records, ok);
    {
        struct stat st;
        assert_int_equal(stat(p1, &st), 0);
        assert_true(st.st_size >= 1 << 20 && st.st_size < (1 << 20) + 20000);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
    {
        const char *const files[] = {p2, p1, path, NULL};
        assert_verifies(t, files, ok);
    }

    /* logrotate's way: moved, then SIGUSR1, with the clients running.  A new chain: the
     * files gone, and the lock file that keeps the chain's head too. */
    assert_int_equal(unlink(p2), 0);
    assert_int_equal(unlink(p1), 0);
    assert_int_equal(unlink(path), 0);
    {
        char lock[420];
        snprintf(lock, sizeof(lock), "%s/.audit.jsonl.lock", t->env->dir);
        assert_int_equal(unlink(lock), 0);
    }
    it_start_proxy(t, plain);
    load_start(t, l, th, &stop, 600);
    for (int i = 0; i < 500 && count_lines(path) < 200; i++)
        tio_sleep_ms(10);
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGUSR1), 0);
    ok = load_join(l, th, &failed);
    assert_int_equal(failed, 0);
    assert_true(testenv_stop_proxy(t->env));
    assert_true(count_lines(moved) >= 200);
    assert_true(count_lines(path) > 0); /* the reopen happened while requests ran */
    assert_int_equal(count_lines(moved) + count_lines(path), ok);
    {
        const char *const files[] = {moved, path, NULL};
        assert_verifies(t, files, ok);
    }
}

/*
 * kill -9 under load: every line of the file parses as JSON, the chain verifies, every
 * request answered 1.5 s before the kill has its record (the trail loses at most the
 * last second), and a restart continues the chain.  Then a record cut short, as a kill
 * inside a write could leave it: the next start removes it, says so, and goes on.
 */
static void test_kill9_under_load(void **state)
{
    struct itcase *t = *state;
    char path[400], url[128];
    const char *const args[] = {"--audit-log", path, NULL};
    static const char parse[] = "import json, sys\n"
                                "n = 0\n"
                                "for line in open(sys.argv[1]):\n"
                                "    json.loads(line); n += 1\n"
                                "print(n)\n";
    struct load l[NLOAD];
    pthread_t th[NLOAD];
    atomic_bool stop = false;
    unsigned answered_before, failed, records;
    char cmd[2000];

    snprintf(path, sizeof(path), "%s/audit.jsonl", t->env->dir);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    load_start(t, l, th, &stop, 100000);
    for (int i = 0; i < 1000 && load_ok(l) < 300; i++)
        tio_sleep_ms(10);
    answered_before = load_ok(l);
    assert_true(answered_before >= 300);
    tio_sleep_ms(1500);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGKILL), 0);
    assert_true(sluiceproc_wait_exit(t->env->proxy, 5000));
    atomic_store(&stop, true);
    (void)load_join(l, th, &failed);
    sluiceproc_free(t->env->proxy);
    t->env->proxy = NULL;

    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -c '%s' '%s'", parse, path);
    {
        FILE *py = popen(cmd, "r");
        assert_non_null(py);
        assert_int_equal(fscanf(py, "%u", &records), 1);
        assert_int_equal(pclose(py), 0); /* every line is whole JSON */
    }
    assert_true(records >= answered_before);
    {
        const char *const files[] = {path, NULL};
        assert_verifies(t, files, records);
    }

    /* A restart goes on with the chain. */
    it_start_proxy(t, args);
    {
        struct itcurl *c = itcurl_new(t->proxy_port);
        assert_int_equal(itcurl_perform(c, it_url(t, "/after", url, sizeof(url))), CURLE_OK);
        itcurl_free(c);
    }
    assert_true(testenv_stop_proxy(t->env));
    {
        const char *const files[] = {path, NULL};
        assert_verifies(t, files, records + 1);
    }

    /* Half a record at the end: verify says so; the next start removes it and goes on. */
    {
        FILE *f = fopen(path, "a");
        struct it_run r;
        const char *const v[] = {"audit", "verify", path, NULL};

        assert_non_null(f);
        fputs("{\"@timestamp\":\"2026-12-06T00:00:00.000Z\",\"event\":{\"act", f);
        fclose(f);
        r = it_run_sluice(t, v);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.output, "the last line is cut short"));
        free(r.output);
    }
    it_start_proxy(t, args);
    assert_true(sluiceproc_log_wait(t->env->proxy, "a line cut short", 2000));
    {
        struct itcurl *c = itcurl_new(t->proxy_port);
        assert_int_equal(itcurl_perform(c, it_url(t, "/after-cut", url, sizeof(url))), CURLE_OK);
        itcurl_free(c);
    }
    assert_true(testenv_stop_proxy(t->env));
    {
        const char *const files[] = {path, NULL};
        assert_verifies(t, files, records + 2);
    }
}

/*
 * Interim records: a tunnel that lives 2.6 s with --audit-interim 1s is in the trail
 * twice before it ends (interim: true, no termination code, its bytes so far, growing),
 * then once when it ends with all its bytes; the access line has it once; every record
 * is valid under the schema.
 */
static void test_interim_records(void **state)
{
    struct itcase *t = *state;
    char path[400], port[8], authority[64], req[200], cmd[2000];
    const char *const args[] = {"--audit-log", path, "--audit-interim", "1s", "--connect-ports",
                                port,          NULL};
    static const char check[] =
        "import json, sys, jsonschema\n"
        "v = jsonschema.Draft202012Validator(json.load(open(sys.argv[1])))\n"
        "recs = [json.loads(l) for l in open(sys.argv[2])]\n"
        "for r in recs: v.validate(r)\n"
        "tun = [r for r in recs if r['event']['action'] == 'tunnel']\n"
        "interim = [r for r in tun if r['sluice'].get('interim')]\n"
        "final = [r for r in tun if not r['sluice'].get('interim')]\n"
        "assert len(final) == 1, recs\n"
        "assert 2 <= len(interim) <= 3, interim\n"
        "assert all('termination' not in r['sluice'] for r in interim)\n"
        "assert final[0]['sluice']['termination'] == '--'\n"
        "up = [r['http']['request']['bytes'] for r in interim + final]\n"
        "down = [r['http']['response']['bytes'] for r in interim + final]\n"
        "assert up == sorted(up) and down == sorted(down), (up, down)\n"
        "assert interim[0]['http']['request']['bytes'] > 0\n"
        "assert final[0]['http']['request']['bytes'] > interim[0]['http']['request']['bytes']\n"
        "d = [r['event']['duration'] for r in interim + final]\n"
        "assert d == sorted(d) and d[0] >= 10**9 and d[-1] >= 2500 * 10**6, d\n";
    struct rawclient *rc;
    struct rawresp resp = {0};

    snprintf(path, sizeof(path), "%s/audit.jsonl", t->env->dir);
    it_start_origin(t, origin_handler_simple, NULL);
    snprintf(port, sizeof(port), "%u", (unsigned)origin_port(t->origin));
    it_start_proxy(t, args);
    rc = it_raw(t);
    snprintf(authority, sizeof(authority), "origin.test:%s", port);
    snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority);
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &resp, true, 5000), 200);
    rawresp_free(&resp);
    /* Bytes through the tunnel before the first interim record, and more after it. */
    for (int i = 0; i < 2; i++) {
        struct rawresp inner = {0};
        snprintf(req, sizeof(req), "GET /tunnel-%d HTTP/1.1\r\nHost: %s\r\n\r\n", i, authority);
        assert_int_equal(rawclient_sends(rc, req), 0);
        assert_int_equal(rawclient_response(rc, &inner, false, 5000), 200);
        rawresp_free(&inner);
        tio_sleep_ms(1300);
    }
    rawclient_close(rc);
    {
        char *line = sluiceproc_access_wait(t->env->proxy, 5000, "method=CONNECT", NULL);
        assert_non_null(line);
        free(line);
        assert_int_equal(sluiceproc_access_count(t->env->proxy, "method=CONNECT", NULL), 1);
    }
    assert_true(testenv_stop_proxy(t->env));
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -c \"%s\" '%s/dist/audit-record.schema.json' '%s'",
             check, SLUICE_SOURCE_DIR, path);
    assert_int_equal(system(cmd), 0);
}

/*
 * A record no client can break: a target of 3,000 quotes (each escaped, twice its size),
 * a User-Agent of quotes and backslashes or of bytes past ASCII (each written as six),
 * and a long proxy user name: each record still a line of valid JSON under the schema,
 * its fields cut with "..." rather than the line.
 */
static void test_hostile_record(void **state)
{
    struct itcase *t = *state;
    char path[400], cmd[2000];
    const char *const args[] = {"--audit-log", path, NULL};
    static const char check[] =
        "import json, sys, jsonschema\n"
        "v = jsonschema.Draft202012Validator(json.load(open(sys.argv[1])))\n"
        "recs = [json.loads(l) for l in open(sys.argv[2])]\n"
        "assert len(recs) == 2, len(recs)\n"
        "for r in recs:\n"
        "    v.validate(r)\n"
        "    assert r['sluice']['termination'], r['sluice']\n"
        "for r in recs:\n"
        "    assert r['url']['full'].endswith('...'), r['url']\n"
        "    assert r['user_agent']['original'].endswith('...'), r['user_agent']\n"
        "    assert r['http']['response']['status_code'] == 200, r['http']\n";
    struct tbuf req = {0};

    snprintf(path, sizeof(path), "%s/audit.jsonl", t->env->dir);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    for (int k = 0; k < 2; k++) {
        struct rawclient *rc = it_raw(t);
        struct rawresp resp = {0};
        char head[200];

        tbuf_reset(&req);
        snprintf(head, sizeof(head), "GET http://origin.test:%u/", origin_port(t->origin));
        tbuf_append(&req, head, strlen(head));
        for (int i = 0; i < 1500; i++)
            tbuf_append(&req, k == 0 ? "\"\"" : "%22", k == 0 ? 2 : 3);
        tbuf_append_str(&req, " HTTP/1.1\r\nHost: x\r\nUser-Agent: ");
        for (int i = 0; i < 400; i++)
            tbuf_append(&req, k == 0 ? "\"\\" : "\xc3\x80\xff", k == 0 ? 2 : 3);
        tbuf_append_str(&req, "\r\nProxy-Authorization: Basic ");
        for (int i = 0; i < 300; i++)
            tbuf_append(&req, "Ij", 2); /* base64 of quotes */
        tbuf_append_str(&req, "\r\n\r\n");
        assert_int_equal(rawclient_send(rc, req.data, req.len), 0);
        assert_true(rawclient_response(rc, &resp, false, 5000) > 0);
        rawresp_free(&resp);
        rawclient_close(rc);
    }
    tbuf_free(&req);
    assert_true(testenv_stop_proxy(t->env));
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -c \"%s\" '%s/dist/audit-record.schema.json' '%s'",
             check, SLUICE_SOURCE_DIR, path);
    assert_int_equal(system(cmd), 0);
}

/* Answers /abort with the head of a 10 MiB body and then 1 KiB at a time, slowly, for the
 * client to go in the middle; anything else with a short 200. */
static void abort_handler(struct origin_conn *c)
{
    static char kib[1024];

    if (oconn_read_head(c, 10000) == 0)
        return;
    if (strstr(c->head.data, "/abort") == NULL) {
        (void)oconn_respond(c, 200, "Connection: close\r\n", "ok", 2);
        return;
    }
    if (oconn_writes(c, "HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n") < 0)
        return;
    /* 1 KiB every 20 ms, until sluice, its client gone, closes this side (at most 5 s). */
    for (int i = 0; i < 250 && oconn_write(c, kib, sizeof(kib)) == 0; i++)
        if (!oconn_sleep(c, 20))
            return;
}

/* GETs url through the proxy as proxy user user (NULL: none); returns the status. */
static long get_as(struct itcase *t, const char *user, const char *url)
{
    struct itcurl *c = itcurl_new(t->proxy_port);
    long status;

    assert_non_null(c);
    if (user != NULL) {
        char cred[64];
        snprintf(cred, sizeof(cred), "%s:pw", user);
        curl_easy_setopt(c->h, CURLOPT_PROXYUSERPWD, cred);
    }
    assert_int_equal(itcurl_perform(c, url), CURLE_OK);
    status = itcurl_status(c);
    itcurl_free(c);
    return status;
}

/*
 * A record for every way an exchange ends, with the fields that say how: allowed,
 * blocked by a path rule, reported, refused by the upstream (502, connection_refused),
 * the client gone in the middle of the response, a head that never came whole (408), and
 * a tunnel; each valid under the schema.
 */
static void test_record_paths(void **state)
{
    struct itcase *t = *state;
    char path[400], dir[400], file[500], url[160], port[8], cmd[4000];
    const char *const args[] = {
        "--audit-log", path, "--policy-dir", dir, "--timeout-head", "1s", "--connect-ports",
        port,          NULL};
    static const char check[] =
        "import json, sys, jsonschema\n"
        "v = jsonschema.Draft202012Validator(json.load(open(sys.argv[1])))\n"
        "recs = [json.loads(l) for l in open(sys.argv[2])]\n"
        "for r in recs: v.validate(r)\n"
        "def one(cond):\n"
        "    m = [r for r in recs if cond(r)]\n"
        "    assert len(m) == 1, (len(m), recs)\n"
        "    return m[0]\n"
        "def path(p): return lambda r: r.get('url', {}).get('path') == p\n"
        "a = one(path('/ok'))\n"
        "assert a['sluice']['decision'] == 'allow' and a['sluice']['tool'] == 'alpha'\n"
        "assert a['http']['response']['status_code'] == 200 and a['user']['name'] == 'alpha'\n"
        "assert a['sluice']['termination'] == '--' and a['sluice']['identity_source'] == "
        "'proxy-user'\n"
        "b = one(path('/events'))\n"
        "assert b['sluice']['decision'] == 'block' and b['rule']['id'].startswith('telemetry')\n"
        "assert b['http']['response']['status_code'] == 403 and b['sluice']['termination'] == "
        "'PR'\n"
        "assert b['rule']['ruleset'].endswith('alpha.yaml')\n"
        "c = one(path('/reported'))\n"
        "assert c['sluice']['decision'] == 'report' and c['sluice']['tool'] == 'beta'\n"
        "assert c['http']['response']['status_code'] == 200\n"
        "d = one(path('/refused'))\n"
        "assert d['http']['response']['status_code'] == 502, d\n"
        "assert d['sluice']['error'] == 'connection_refused', d['sluice']\n"
        "assert d['sluice']['termination'][0] == 'S', d['sluice']\n"
        "e = one(path('/abort'))\n"
        "assert e['sluice']['termination'][0] == 'C', e['sluice']\n"
        "assert 1024 <= e['http']['response']['bytes'] < 10485760, e['http']\n"
        "f = one(lambda r: r['http']['response'].get('status_code') == 408)\n"
        "assert f['sluice']['termination'] == 'cR', f['sluice']\n"
        "g = one(lambda r: r['event']['action'] == 'tunnel')\n"
        "assert g['http']['response']['status_code'] == 200 and g['destination']['port'] == "
        "int(sys.argv[3])\n"
        "assert g['sluice']['termination'] == '--' and g['http']['request']['bytes'] > 0\n"
        "assert len(recs) == 7, len(recs)\n";
    uint16_t closed;

    snprintf(path, sizeof(path), "%s/audit.jsonl", t->env->dir);
    snprintf(dir, sizeof(dir), "%s/policies", t->env->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(file, sizeof(file), "%s/tools", dir);
    assert_int_equal(mkdir(file, 0700), 0);
    snprintf(file, sizeof(file), "%s/tools/alpha.yaml", dir);
    assert_int_equal(tio_write_file(file, "id: alpha\n"
                                          "identify: {proxy_users: [alpha]}\n"
                                          "default: allow\n"
                                          "endpoints:\n"
                                          "  - group: events\n"
                                          "    purpose: telemetry\n"
                                          "    hosts: [origin.test]\n"
                                          "    paths: [/events]\n"),
                     0);
    snprintf(file, sizeof(file), "%s/tools/beta.yaml", dir);
    assert_int_equal(tio_write_file(file, "id: beta\ndefault: report\n"), 0);
    snprintf(file, sizeof(file), "%s/organisation.yaml", dir);
    assert_int_equal(tio_write_file(file, "block_telemetry: true\nunidentified: allow\n"), 0);
    it_start_origin(t, abort_handler, NULL);
    snprintf(port, sizeof(port), "%u", (unsigned)origin_port(t->origin));
    it_start_proxy(t, args);

    assert_int_equal(get_as(t, "alpha", it_url(t, "/ok", url, sizeof(url))), 200);
    assert_int_equal(get_as(t, "alpha", it_url(t, "/events", url, sizeof(url))), 403);
    assert_int_equal(get_as(t, "beta", it_url(t, "/reported", url, sizeof(url))), 200);
    {
        /* A port nothing listens on: bound, then closed. */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
        socklen_t len = sizeof(sin);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
        closed = ntohs(sin.sin_port);
        close(fd);
        snprintf(url, sizeof(url), "http://origin.test:%u/refused", closed);
        assert_int_equal(get_as(t, NULL, url), 502);
    }
    {
        /* The client goes after the response head and 1 KiB of its body. */
        struct rawclient *rc = it_raw(t);
        struct tbuf got = {0};
        char req[200];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: origin.test\r\n\r\n",
                 it_url(t, "/abort", url, sizeof(url)));
        assert_int_equal(rawclient_sends(rc, req), 0);
        assert_true(rawclient_read_exact(rc, &got, 1024, 5000) == 1024);
        tbuf_free(&got);
        rawclient_close(rc);
    }
    {
        /* Half a head, then nothing: 408 after --timeout-head. */
        struct rawclient *rc = it_raw(t);
        struct rawresp resp = {0};
        assert_int_equal(rawclient_sends(rc, "GET http://origin.test/slow HTTP/1.1\r\nHost"), 0);
        assert_int_equal(rawclient_response(rc, &resp, false, 5000), 408);
        rawresp_free(&resp);
        rawclient_close(rc);
    }
    {
        /* A tunnel that carries one request. */
        struct rawclient *rc = it_raw(t);
        struct rawresp resp = {0};
        char req[200];
        snprintf(req, sizeof(req), "CONNECT origin.test:%s HTTP/1.1\r\nHost: origin.test\r\n\r\n",
                 port);
        assert_int_equal(rawclient_sends(rc, req), 0);
        assert_int_equal(rawclient_response(rc, &resp, true, 5000), 200);
        rawresp_free(&resp);
        assert_int_equal(rawclient_sends(rc, "GET /in-tunnel HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        assert_int_equal(rawclient_response(rc, &resp, false, 5000), 200);
        rawresp_free(&resp);
        rawclient_close(rc);
    }
    for (int i = 0; i < 250 && sluiceproc_access_count(t->env->proxy, "access", NULL) < 7; i++)
        tio_sleep_ms(20);
    assert_true(testenv_stop_proxy(t->env));
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c \"%s\" '%s/dist/audit-record.schema.json' '%s' '%s'", check,
             SLUICE_SOURCE_DIR, path, port);
    assert_int_equal(system(cmd), 0);
}

/* Lines of path that hold needle. */
static unsigned count_in(const char *path, const char *needle)
{
    char *text = tio_read_file(path, NULL);
    unsigned n = 0;

    for (const char *p = text; p != NULL && (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(text);
    return n;
}

/*
 * The trail reaches the disk, not only the page cache, within a second: strace, attached
 * to sluice, sees an fdatasync soon after the first record (the last sync was long ago)
 * and another within about a second of a second record made 100 ms later.
 */
static void test_fsync_within_a_second(void **state)
{
    struct itcase *t = *state;
    char path[400], trace[400], pid[16], url[128];
    const char *const args[] = {"--audit-log", path, NULL};
    pid_t tracer;
    unsigned first = 0, syncs = 0;
    bool ok[2];

    snprintf(path, sizeof(path), "%s/audit.jsonl", t->env->dir);
    snprintf(trace, sizeof(trace), "%s/strace.out", t->env->dir);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    snprintf(pid, sizeof(pid), "%d", (int)sluiceproc_pid(t->env->proxy));
    tracer = fork();
    assert_true(tracer >= 0);
    if (tracer == 0) {
        execlp("strace", "strace", "-f", "-qq", "-e", "trace=fdatasync", "-p", pid, "-o", trace,
               (char *)NULL);
        _exit(127);
    }
    tio_sleep_ms(500); /* attached to every thread by then */
    for (int k = 0; k < 2; k++) {
        struct itcurl *c = itcurl_new(t->proxy_port);
        ok[k] =
            itcurl_perform(c, it_url(t, k == 0 ? "/one" : "/two", url, sizeof(url))) == CURLE_OK;
        itcurl_free(c);
        if (k == 0) {
            for (int i = 0; i < 50 && (first = count_in(trace, "fdatasync(")) < 1; i++)
                tio_sleep_ms(10);
            tio_sleep_ms(100);
        }
    }
    for (int i = 0; i < 250 && (syncs = count_in(trace, "fdatasync(")) < 2; i++)
        tio_sleep_ms(10);
    kill(tracer, SIGINT); /* stopped before any check, so a failure leaves no tracer */
    waitpid(tracer, NULL, 0);
    assert_true(ok[0] && ok[1]);
    assert_int_equal(first, 1); /* within 500 ms of the first record, and only one */
    assert_int_equal(syncs, 2); /* the second within 2.5 s of the first, not at exit */
    assert_int_equal(count_lines(path), 2);
    assert_true(testenv_stop_proxy(t->env));
}

/*
 * With the trail open, the trail is the record: -q quietens the access lines too, and
 * the trail still has every request.  Without -q both have it.  A trail that cannot be
 * written (/dev/full) with --audit-fail-open on is no record: -q keeps the access lines
 * then.  (Without a trail, -q keeps them: it_bypass's test_quiet_keeps_access_lines.)
 */
static void test_quiet_with_trail(void **state)
{
    struct itcase *t = *state;
    char path[400], url[128];
    /* Twice: the test environment starts sluice with -v. */
    const char *const quiet[] = {"-q", "-q", "--audit-log", path, NULL};
    const char *const plain[] = {"--audit-log", path, NULL};

    snprintf(path, sizeof(path), "%s/audit.jsonl", t->env->dir);
    it_start_origin(t, origin_handler_simple, NULL);
    for (unsigned round = 0; round < 2; round++) {
        struct itcurl *c;
        unsigned records = 0;

        it_start_proxy(t, round == 0 ? quiet : plain);
        c = itcurl_new(t->proxy_port);
        assert_int_equal(
            itcurl_perform(c, it_url(t, round == 0 ? "/quiet" : "/loud", url, sizeof(url))),
            CURLE_OK);
        itcurl_free(c);
        for (int i = 0; i < 500 && (records = count_lines(path)) < round + 1; i++)
            tio_sleep_ms(10);
        assert_int_equal(records, round + 1);
        tio_sleep_ms(300); /* held access lines go out within 50 ms */
        if (round == 0) {
            assert_false(sluiceproc_log_contains(t->env->proxy, "access client="));
        } else {
            char *line = it_access_line(t, "target=\"http://", NULL);
            assert_non_null(strstr(line, "/loud\""));
            free(line);
        }
        assert_true(testenv_stop_proxy(t->env));
    }
    {
        const char *const files[] = {path, NULL};
        assert_verifies(t, files, 2);
    }
    {
        const char *const failing[] = {"-q", "-q", "--audit-log", "/dev/full", "--audit-fail-open",
                                       "on", NULL};
        struct itcurl *c;
        char *line;

        it_start_proxy(t, failing);
        for (int k = 0; k < 2; k++) { /* the second comes after the first batch failed */
            c = itcurl_new(t->proxy_port);
            assert_int_equal(
                itcurl_perform(c, it_url(t, k == 0 ? "/full" : "/full-again", url, sizeof(url))),
                CURLE_OK);
            itcurl_free(c);
            if (k == 0)
                for (int i = 0; i < 100 && !sluiceproc_log_contains(t->env->proxy,
                                                                    "cannot write the audit trail");
                     i++)
                    tio_sleep_ms(10);
        }
        line = it_access_line(t, "target=\"http://", "/full-again\"", NULL);
        free(line);
        assert_true(testenv_stop_proxy(t->env));
    }
}

/*
 * What verify can tell from the files alone: record_id goes up by one from line to line,
 * across the files given, so a record removed at the start of a later file, one appended
 * with the right prev_hash, or files given in the wrong order break the chain where they
 * show; record 1 has a prev_hash of zeros; a trail that starts past record 1 (its head
 * removed, or a file emptied while sluice ran) holds, but verify says where it starts and
 * exits 3, not 0.  What no chain shows, its end, the log anchors: it names the last record
 * and its line's hash when sluice opens the trail and when it stops, as verify does.
 */
static void test_verify_gaps(void **state)
{
    struct itcase *t = *state;
    char path[400], bad[420], a[420], b[420], head[65], says[200];
    const char *const args[] = {"--audit-log", path, NULL};
    const char *const one[] = {bad, NULL};

    snprintf(path, sizeof(path), "%s/audit.jsonl", t->env->dir);
    snprintf(bad, sizeof(bad), "%s/bad.jsonl", t->env->dir);
    snprintf(a, sizeof(a), "%s/a.jsonl", t->env->dir);
    snprintf(b, sizeof(b), "%s/b.jsonl", t->env->dir);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    assert_true(sluiceproc_log_contains(t->env->proxy, "a new chain, from record 1"));
    for (int i = 1; i <= 4; i++) {
        char p[16];
        snprintf(p, sizeof(p), "/r%d", i);
        get_ok(t, p);
    }
    /* The log names the last record and its line's hash, as verify does. */
    (void)sluiceproc_stop(t->env->proxy, 10000);
    last_line_hash(path, head);
    snprintf(says, sizeof(says),
             "audit trail closed: the last record is 4, whose line's SHA-256 is %s", head);
    assert_true(sluiceproc_log_contains(t->env->proxy, says));
    assert_true(testenv_stop_proxy(t->env));
    {
        const char *const files[] = {path, NULL};
        assert_verifies(t, files, 4);
        snprintf(says, sizeof(says), "(the last line's SHA-256: %s)", head);
        expect_verify(t, files, 0, says);
    }

    /* The first two removed: what is left holds, from record 3, and verify says so. */
    shell("tail -n +3 '%s' > '%s'", path, bad);
    expect_verify(t, one, 3, "2 records, the chain holds from record 3 to record 4");
    expect_verify(t, one, 3, "but it starts at record 3 (prev_hash ");
    expect_verify(t, one, 3, "give the earlier files too");
    /* A forged record appended, its prev_hash the hash of the last line. */
    shell("python3 -c 'import hashlib, re, sys\n"
          "lines = open(sys.argv[1]).read().splitlines()\n"
          "h = hashlib.sha256(lines[-1].encode()).hexdigest()\n"
          "f = re.sub(\"\\\"prev_hash\\\":\\\"[0-9a-f]{64}\", \"\\\"prev_hash\\\":\\\"\" + h, "
          "lines[-1].replace(\"/r4\", \"/forged\"))\n"
          "f = re.sub(\"\\\"record_id\\\":[0-9]+\", \"\\\"record_id\\\":42\", f)\n"
          "open(sys.argv[2], \"w\").write(\"\\n\".join(lines + [f]) + \"\\n\")' '%s' '%s'",
          path, bad);
    expect_verify(t, one, 1,
                  "bad.jsonl:5: the chain breaks here: its record_id is 42 and the one before it "
                  "is 4");
    /* Record 1 edited to name a line before it. */
    shell("sed '1s/\"prev_hash\":\"0000/\"prev_hash\":\"abcd/' '%s' > '%s'", path, bad);
    expect_verify(t, one, 1, "bad.jsonl:1: the chain breaks here: record 1 has a prev_hash");
    /* Two files: in order they hold as one chain; the other way round they do not. */
    shell("head -n 2 '%s' > '%s' && tail -n +3 '%s' > '%s'", path, a, path, b);
    {
        const char *const in_order[] = {a, b, NULL}, *const reversed[] = {b, a, NULL};
        assert_verifies(t, in_order, 4);
        expect_verify(t, reversed, 1,
                      "a.jsonl:1: the chain breaks here: its record_id is 1 and the one before it "
                      "is 4");
    }

    /* The trail emptied while sluice runs: the next record holds alone, from record 6. */
    it_start_proxy(t, args);
    snprintf(says, sizeof(says), "the chain goes on after record 4, whose line's SHA-256 is %s",
             head);
    assert_true(sluiceproc_log_contains(t->env->proxy, says));
    get_ok(t, "/r5");
    for (int i = 0; i < 250 && count_lines(path) < 5; i++)
        tio_sleep_ms(20);
    assert_int_equal(count_lines(path), 5);
    assert_int_equal(truncate(path, 0), 0);
    get_ok(t, "/r6");
    assert_true(testenv_stop_proxy(t->env));
    {
        const char *const files[] = {path, NULL};
        expect_verify(t, files, 3, "1 record, the chain holds from record 6 to record 6");
    }
}

/*
 * One sluice per trail: a second one given the same --audit-log (or a symbolic link to it)
 * while the first runs exits 1 at start, naming the trail, the first one's pid and the
 * lock, and saying what to do; the lock stays with the first across a logrotate move and SIGUSR1.
 * Once the first has stopped (systemd's restart: stop, then start), a new one takes the trail and
 * goes on with the chain.
 */
static void test_one_writer_per_trail(void **state)
{
    struct itcase *t = *state;
    char path[400], moved[420], says[1400], lock[420];
    const char *const args[] = {"--audit-log", path, NULL};
    const char *const second[] = {"--listen", "127.0.0.1:0", "--audit-log", path, NULL};

    snprintf(path, sizeof(path), "%s/audit.jsonl", t->env->dir);
    snprintf(moved, sizeof(moved), "%s.1", path);
    snprintf(lock, sizeof(lock), "%s/.audit.jsonl.lock", t->env->dir);
    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
    get_ok(t, "/first");
    snprintf(says, sizeof(says),
             "the audit trail %s is being written by another sluice (pid %d), which holds %s: "
             "stop that sluice first",
             path, (int)sluiceproc_pid(t->env->proxy), lock);
    {
        /* The same trail under another name, a symbolic link to it: the same lock. */
        char alias[420], names[1400];
        const char *const aliased[] = {"--listen", "127.0.0.1:0", "--audit-log", alias, NULL};
        struct it_run r;

        snprintf(alias, sizeof(alias), "%s/alias.jsonl", t->env->dir);
        assert_int_equal(symlink(path, alias), 0);
        r = it_run_sluice(t, aliased);
        assert_int_equal(r.status, 1);
        snprintf(names, sizeof(names), "which holds %s: stop that sluice first", lock);
        if (strstr(r.output, names) == NULL)
            fail_msg("a second sluice on a link to the trail said: %s; wanted: %s", r.output,
                     names);
        free(r.output);
    }
    for (int round = 0; round < 2; round++) {
        struct it_run r = it_run_sluice(t, second);

        assert_int_equal(r.status, 1);
        if (strstr(r.output, says) == NULL)
            fail_msg("the second sluice said: %s; wanted: %s", r.output, says);
        free(r.output);
        if (round == 1)
            break;
        /* logrotate moves the trail and sends SIGUSR1: the first keeps the lock. */
        for (int i = 0; i < 250 && count_lines(path) < 1; i++)
            tio_sleep_ms(20);
        assert_int_equal(rename(path, moved), 0);
        assert_int_equal(sluiceproc_signal(t->env->proxy, SIGUSR1), 0);
        assert_true(sluiceproc_log_wait(t->env->proxy, "reopened the audit trail", 5000));
    }
    get_ok(t, "/second");
    assert_true(testenv_stop_proxy(t->env));
    it_start_proxy(t, args);
    get_ok(t, "/third");
    assert_true(testenv_stop_proxy(t->env));
    {
        const char *const files[] = {moved, path, NULL};
        assert_verifies(t, files, 3);
    }
}

/*
 * The chain survives a restart that finds the trail new: logrotate moved it and sent
 * SIGUSR1 (an empty file reopened) and sluice restarted before the next record; logrotate
 * moved it (dateext) and sluice restarted before any SIGUSR1 (no file at all).  Each time
 * the next record goes on from the last one, in the older file, and verify holds across
 * the files, from record 1.
 */
static void test_chain_across_rotation_and_restart(void **state)
{
    struct itcase *t = *state;
    char path[400], moved1[420], moved2[420];
    const char *const args[] = {"--audit-log", path, NULL};

    snprintf(path, sizeof(path), "%s/audit.jsonl", t->env->dir);
    snprintf(moved1, sizeof(moved1), "%s.1", path);
    snprintf(moved2, sizeof(moved2), "%s-20261206", path);
    it_start_origin(t, origin_handler_simple, NULL);

    /* Moved, SIGUSR1, restarted before the next record. */
    it_start_proxy(t, args);
    get_ok(t, "/a");
    get_ok(t, "/b");
    for (int i = 0; i < 250 && count_lines(path) < 2; i++)
        tio_sleep_ms(20);
    assert_int_equal(rename(path, moved1), 0);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGUSR1), 0);
    assert_true(sluiceproc_log_wait(t->env->proxy, "reopened the audit trail", 5000));
    assert_true(testenv_stop_proxy(t->env));
    it_start_proxy(t, args);
    assert_true(sluiceproc_log_contains(t->env->proxy, "the chain goes on after record 2"));
    get_ok(t, "/c");
    assert_true(testenv_stop_proxy(t->env));
    {
        const char *const files[] = {moved1, path, NULL};
        assert_verifies(t, files, 3);
    }

    /* Moved with a date, restarted before any SIGUSR1: the old sluice wrote on to the
     * moved file, and the new one finds none. */
    it_start_proxy(t, args);
    assert_int_equal(rename(path, moved2), 0);
    get_ok(t, "/d");
    assert_true(testenv_stop_proxy(t->env));
    assert_int_equal(access(path, F_OK), -1);
    it_start_proxy(t, args);
    get_ok(t, "/e");
    assert_true(testenv_stop_proxy(t->env));
    {
        const char *const files[] = {moved1, moved2, path, NULL};
        assert_verifies(t, files, 5);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rotation_under_load, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_kill9_under_load, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_interim_records, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_record, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_record_paths, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_fsync_within_a_second, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_quiet_with_trail, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_verify_gaps, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_one_writer_per_trail, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_chain_across_rotation_and_restart, it_setup,
                                        it_teardown),
    };

    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests_name("integration_audit", tests, NULL, NULL);
}
