/*
 * Body capture, read back as a reader of the audit trail would (capture_check.py): the
 * request bodies policy's capture asks for, and the response bodies for
 * requests-and-responses, each in the capture store under its SHA-256 and named by the
 * record; Content-Length and chunked bodies on one keep-alive connection; the bound per
 * message ("truncated"); a gzip body kept as sent and marked; the endpoint group's path
 * in another spelling; the store's total bound with the oldest bodies removed first; a
 * reload that starts capturing on a kept connection; and a policy that captures with no
 * store refused by `sluice check` and at start.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "itcommon.h"
#include "sluiceproc.h"

/* Proxy-Authorization naming the tool alpha ("alpha:pw"). */
#define ALPHA_AUTH "Proxy-Authorization: Basic YWxwaGE6cHc=\r\n"

/* {"reply": "hello from the model"}, gzip-compressed (mtime 0). */
static const unsigned char reply_gz[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xab, 0x56, 0x2a, 0x4a,
    0x2d, 0xc8, 0xa9, 0x54, 0xb2, 0x52, 0x50, 0xca, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0x48,
    0x2b, 0xca, 0xcf, 0x55, 0x28, 0xc9, 0x48, 0x55, 0xc8, 0xcd, 0x4f, 0x49, 0xcd, 0x51,
    0xaa, 0x05, 0x00, 0xe3, 0xc1, 0xe5, 0x6f, 0x21, 0x00, 0x00, 0x00};
static const char reply_text[] = "{\"reply\": \"hello from the model\"}";

/*
 * Answers every request on the connection after reading its body: paths under /gz with
 * reply_gz, chunked in two pieces and labelled gzip; others with "ok".
 */
static void capture_origin(struct origin_conn *c)
{
    while (oconn_read_head(c, 5000) > 0) {
        struct tbuf body = {0};
        bool gz = strstr(tbuf_str(&c->head), " /gz") != NULL;

        if (oconn_read_body(c, &body, 5000) < 0) {
            tbuf_free(&body);
            return;
        }
        tbuf_free(&body);
        if (gz) {
            char chunk[32];
            size_t half = sizeof(reply_gz) / 2;
            oconn_writes(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            "Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n");
            snprintf(chunk, sizeof(chunk), "%zx\r\n", half);
            oconn_writes(c, chunk);
            oconn_write(c, reply_gz, half);
            snprintf(chunk, sizeof(chunk), "\r\n%zx\r\n", sizeof(reply_gz) - half);
            oconn_writes(c, chunk);
            oconn_write(c, reply_gz + half, sizeof(reply_gz) - half);
            oconn_writes(c, "\r\n0\r\n\r\n");
        } else if (oconn_respond(c, 200, "Content-Type: text/plain\r\n", "ok", 2) < 0) {
            return;
        }
    }
}

/* Paths of one case's files. */
struct capture_paths {
    char audit[600];
    char store[600];
    char policy[600];
    char http_port[8]; /* the origin's, as --connect-http-port */
};

/* Writes len bytes of data to the file name in the case's directory; returns its path. */
static const char *write_bytes(struct itcase *t, const char *name, const void *data, size_t len,
                               char *path, size_t cap)
{
    FILE *f;

    snprintf(path, cap, "%s/%s", t->env->dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* Fills buf with len letters, a different sequence for each seed (xorshift32). */
static void fill(char *buf, size_t len, unsigned seed)
{
    uint32_t x = 2463534242u ^ (seed * 2654435761u);

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (char)('a' + x % 26);
    }
}

/*
 * Starts sluice with an audit trail and a capture store in the case's directory, the
 * organisation policy org and alpha's profile, and more arguments (NULL-terminated).  A
 * CONNECT to the origin's port is read as plain HTTP (--connect-http-port, as node's
 * undici sends http://), so that the origin can be reached through such a tunnel too.
 */
static void start_capture_with(struct itcase *t, struct capture_paths *p, const char *org,
                               const char *profile, const char *const *more,
                               origin_handler_fn origin)
{
    const char *args[24] = {"--audit-log",  p->audit,  "--capture-dir",       p->store,
                            "--policy-dir", p->policy, "--connect-http-port", p->http_port};
    size_t n = 8;

    snprintf(p->audit, sizeof(p->audit), "%s/audit.jsonl", t->env->dir);
    snprintf(p->store, sizeof(p->store), "%s/captures", t->env->dir);
    snprintf(p->policy, sizeof(p->policy), "%s", it_write_policy(t, org, "alpha", profile));
    for (size_t i = 0; more != NULL && more[i] != NULL && n < 23; i++)
        args[n++] = more[i];
    args[n] = NULL;
    it_start_origin(t, origin, NULL);
    snprintf(p->http_port, sizeof(p->http_port), "%u", (unsigned)origin_port(t->origin));
    it_start_proxy(t, args);
}

/* start_capture_with() the origin capture_origin. */
static void start_capture(struct itcase *t, struct capture_paths *p, const char *org,
                          const char *profile, const char *const *more)
{
    start_capture_with(t, p, org, profile, more, capture_origin);
}

/*
 * Sends one request as tool alpha on rc: method, path on the origin at port, the head's
 * other fields (CRLF-ended; with Transfer-Encoding the body is sent as it is, else it
 * gets a Content-Length when it has any byte), then len bytes of body; expects a 200.
 */
static void send_ok(struct rawclient *rc, unsigned port, const char *method, const char *path,
                    const char *fields, const void *body, size_t len)
{
    struct rawresp r = {0};
    char head[1200], framing[64] = "";

    if (len > 0 && strstr(fields, "Transfer-Encoding") == NULL)
        snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", len);
    snprintf(head, sizeof(head),
             "%s http://origin.test:%u%s HTTP/1.1\r\nHost: origin.test\r\n" ALPHA_AUTH "%s%s\r\n",
             method, port, path, fields, framing);
    assert_int_equal(rawclient_sends(rc, head), 0);
    if (len > 0)
        assert_int_equal(rawclient_send(rc, body, len), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 8000), 200);
    rawresp_free(&r);
}

/* Stops sluice (so every record and body is written) and runs capture_check.py on specs. */
static void check_captures(struct itcase *t, const struct capture_paths *p,
                           const char *const *specs)
{
    const char *argv[16] = {"python3", SLUICE_SOURCE_DIR "/tests/integration/capture_check.py",
                            SLUICE_SOURCE_DIR "/dist/audit-record.schema.json", p->audit, p->store};
    size_t n = 5;

    assert_true(testenv_stop_proxy(t->env));
    for (size_t i = 0; specs[i] != NULL && n < 15; i++)
        argv[n++] = specs[i];
    argv[n] = NULL;
    if (it_run_command(argv) != 0)
        fail_msg("capture_check.py found the records and the store disagree (above)");
}

static const char alpha_requests[] = "id: alpha\n"
                                     "identify: {proxy_users: [alpha]}\n"
                                     "default: allow\n"
                                     "capture: requests\n";

/*
 * capture: requests on a tool: on one keep-alive connection, a Content-Length body and a
 * chunked one are kept whole, a body past the bound (1 KiB here) is kept to it and marked
 * truncated, a gzip body is kept as sent and named gzip, a GET has nothing to keep, and
 * no response body is kept.  The same body sent twice is one file.
 */
static void test_capture_request_bodies(void **state)
{
    struct itcase *t = *state;
    const char *const more[] = {"--capture-message-kib", "1", NULL};
    struct capture_paths p;
    char body[1500], f_a[700], f_b[700], f_big[700], f_gz[700], s[6][800];
    struct rawclient *rc;
    unsigned port;

    start_capture(t, &p, "unidentified: allow\n", alpha_requests, more);
    port = origin_port(t->origin);
    rc = it_raw(t);

    fill(body, 300, 1);
    send_ok(rc, port, "POST", "/a", "Content-Type: application/json\r\n", body, 300);
    write_bytes(t, "a.body", body, 300, f_a, sizeof(f_a));

    send_ok(rc, port, "POST", "/b", "Transfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n", 27);
    write_bytes(t, "b.body", "hello, world", 12, f_b, sizeof(f_b));

    fill(body, sizeof(body), 2);
    send_ok(rc, port, "POST", "/big", "", body, sizeof(body));
    write_bytes(t, "big.body", body, sizeof(body), f_big, sizeof(f_big));

    send_ok(rc, port, "POST", "/gzipped", "Content-Encoding: gzip\r\n", reply_gz, sizeof(reply_gz));
    write_bytes(t, "gz.text", reply_text, strlen(reply_text), f_gz, sizeof(f_gz));

    send_ok(rc, port, "GET", "/get", "", NULL, 0);

    /* The first body again, on a new connection: the store keeps one file of it. */
    rawclient_close(rc);
    rc = it_raw(t);
    fill(body, 300, 1);
    send_ok(rc, port, "POST", "/again", "", body, 300);
    rawclient_close(rc);

    snprintf(s[0], sizeof(s[0]), "/a|%s|-|-|-", f_a);
    snprintf(s[1], sizeof(s[1]), "/b|%s|-|-|-", f_b);
    snprintf(s[2], sizeof(s[2]), "/big|%s|-|-|-", f_big);
    snprintf(s[3], sizeof(s[3]), "/gzipped|%s|-|gzip|-", f_gz);
    snprintf(s[4], sizeof(s[4]), "/get|-|-|-|-");
    snprintf(s[5], sizeof(s[5]), "/again|%s|-|-|-", f_a);
    {
        const char *const specs[] = {s[0], s[1], s[2], s[3], s[4], s[5], NULL};
        check_captures(t, &p, specs);
    }
    {
        /* a, b, big (its first KiB) and gz: four files, /again being /a's. */
        char cmd[1600];
        const char *const argv[] = {"sh", "-c", cmd, NULL};
        snprintf(cmd, sizeof(cmd),
                 "test \"$(find '%s' -mindepth 2 -type f ! -path '%s/tmp/*' | "
                 "wc -l)\" -eq 4",
                 p.store, p.store);
        assert_int_equal(it_run_command(argv), 0);
    }
}

/*
 * requests-and-responses on one endpoint group's path: a POST to it keeps both bodies, the
 * response's (chunked and gzip) de-chunked but still gzip and named so; the path in
 * another spelling (%6D for m, a dot segment) is the same group's; a POST to a path of no
 * capturing group keeps nothing, the tool itself saying none although the organisation
 * says requests.
 */
static void test_capture_group_responses(void **state)
{
    struct itcase *t = *state;
    static const char profile[] = "id: alpha\n"
                                  "identify: {proxy_users: [alpha]}\n"
                                  "default: allow\n"
                                  "capture: none\n"
                                  "endpoints:\n"
                                  "  - group: chat\n"
                                  "    hosts: [origin.test]\n"
                                  "    paths: [/gz/messages]\n"
                                  "    capture: requests-and-responses\n";
    struct capture_paths p;
    char f_req[700], f_resp[700], s[3][800];
    struct rawclient *rc;
    unsigned port;
    static const char prompt[] = "{\"prompt\": \"what leaves the machine\"}";

    start_capture(t, &p, "unidentified: allow\ncapture: requests\n", profile, NULL);
    port = origin_port(t->origin);
    rc = it_raw(t);
    send_ok(rc, port, "POST", "/gz/messages", "", prompt, strlen(prompt));
    send_ok(rc, port, "POST", "/gz/./%6Dessages?x=1", "", prompt, strlen(prompt));
    send_ok(rc, port, "POST", "/other", "", prompt, strlen(prompt));
    rawclient_close(rc);

    write_bytes(t, "req.body", prompt, strlen(prompt), f_req, sizeof(f_req));
    write_bytes(t, "resp.text", reply_text, strlen(reply_text), f_resp, sizeof(f_resp));
    /* Both spellings have the normalised path /gz/messages; the check finds two records of
     * it, so the second is told apart by the query it kept in url.full: see below. */
    snprintf(s[0], sizeof(s[0]), "/other|-|-|-|-");
    {
        const char *const specs[] = {s[0], NULL};
        check_captures(t, &p, specs);
    }
    {
        /* Both records of /gz/messages name the same two bodies. */
        char cmd[1200];
        const char *const argv[] = {"python3", "-c", cmd, p.audit, p.store, f_req, NULL};
        snprintf(cmd, sizeof(cmd),
                 "import json, sys, gzip, os\n"
                 "recs = [json.loads(l) for l in open(sys.argv[1])]\n"
                 "m = [r for r in recs if r['url']['path'] == '/gz/messages']\n"
                 "assert len(m) == 2, recs\n"
                 "def body(ref):\n"
                 "    h = ref['sha256']\n"
                 "    return open(os.path.join(sys.argv[2], h[:2], h), 'rb').read()\n"
                 "for r in m:\n"
                 "    c = r['sluice']['capture']\n"
                 "    assert body(c['request']) == open(sys.argv[3], 'rb').read(), c\n"
                 "    assert c['response']['codings'] == 'gzip', c\n"
                 "    assert gzip.decompress(body(c['response'])) == b'%s', c\n",
                 "{\"reply\": \"hello from the model\"}");
        if (it_run_command(argv) != 0)
            fail_msg("the records of /gz/messages do not name both bodies (above)");
    }
}

/*
 * The value of the series name in the /metrics page of the admin listener (whose port
 * sluice logs when it starts), or -1 when the page has no such line.
 */
static double admin_metric(struct itcase *t, const char *name)
{
    const char *needle = "admin listener on 127.0.0.1:";
    char *log = tio_read_file(sluiceproc_log_path(t->env->proxy), NULL);
    const char *at = log != NULL ? strstr(log, needle) : NULL;
    unsigned long port = at != NULL ? strtoul(at + strlen(needle), NULL, 10) : 0;
    struct rawclient *c;
    struct rawresp r = {0};
    double value = -1;
    size_t n = strlen(name);

    free(log);
    if (port == 0 || port > 65535)
        it_fail_with_log(t, "sluice did not say where its admin listener is");
    c = rawclient_connect("127.0.0.1", (uint16_t)port, 5000);
    assert_non_null(c);
    assert_int_equal(rawclient_sends(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(rawclient_response(c, &r, false, 5000), 200);
    for (const char *p = tbuf_str(&r.body); p != NULL && *p != '\0';) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            value = strtod(p + n + 1, NULL);
            break;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    rawresp_free(&r);
    rawclient_close(c);
    return value;
}

/*
 * The store's bound: with 1 MiB in all and 200 KiB bodies, twelve bodies leave the store
 * under 1 MiB, the newest kept and the oldest removed, every record still naming its
 * body's hash; /metrics says how much the store holds, and that nothing was lost.
 */
static void test_capture_eviction(void **state)
{
    struct itcase *t = *state;
    const char *const more[] = {
        "--capture-mib", "1", "--capture-message-kib", "256", "--admin-listen",
        "127.0.0.1:0",   NULL};
    enum { N = 12, SIZE = 200 * 1024 };
    struct capture_paths p;
    char path[32];
    char *body = malloc(SIZE);
    struct rawclient *rc;
    unsigned port;

    assert_non_null(body);
    start_capture(t, &p, "unidentified: allow\n", alpha_requests, more);
    port = origin_port(t->origin);
    rc = it_raw(t);
    for (unsigned i = 0; i < N; i++) {
        fill(body, SIZE, 100 + i);
        snprintf(path, sizeof(path), "/upload/%u", i);
        send_ok(rc, port, "POST", path, "", body, SIZE);
    }
    rawclient_close(rc);
    free(body);
    {
        /* The writer may still be at the last bodies: the store holds some, never more than
         * its bound, and the memory they take comes back. */
        double held = 0, memory = 1;
        for (int i = 0; i < 100 && (memory != 0 || held <= 0); i++) {
            /* Memory first: once it is back, the writer's last batch (and its eviction) is
             * over, and the size read after it is settled. */
            memory = admin_metric(t, "sluice_capture_memory_bytes");
            held = admin_metric(t, "sluice_capture_store_bytes");
            if (memory != 0 || held <= 0)
                tio_sleep_ms(50);
        }
        assert_true(held > 0 && held <= 1 << 20);
        assert_true(memory == 0);
        assert_true(admin_metric(t, "sluice_capture_lost_total") == 0);
    }
    assert_true(testenv_stop_proxy(t->env));
    {
        char cmd[1600];
        const char *const argv[] = {"python3", "-c", cmd, p.audit, p.store, NULL};
        snprintf(cmd, sizeof(cmd),
                 "import json, sys, os\n"
                 "recs = [json.loads(l) for l in open(sys.argv[1])]\n"
                 "refs = [r['sluice']['capture']['request'] for r in recs]\n"
                 "assert len(refs) == %d and all(c['bytes'] == %d for c in refs), refs\n"
                 "there = [os.path.exists(os.path.join(sys.argv[2], c['sha256'][:2], "
                 "c['sha256'])) for c in refs]\n"
                 "total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in "
                 "os.walk(sys.argv[2]) for f in fs)\n"
                 "assert total <= 1 << 20, total\n"
                 "assert there[-1] and there[-2] and not there[0], there\n"
                 "kept = there.index(True)\n"
                 "assert all(there[kept:]), there\n"
                 "print('kept the newest', len(refs) - kept, 'of', len(refs), total, 'bytes')\n",
                 N, SIZE);
        if (it_run_command(argv) != 0)
            fail_msg("the store did not keep the newest bodies within its bound (above)");
    }
}

/*
 * A reload that turns capture on reaches a connection kept alive since before it: its
 * next request's body is kept.
 */
static void test_capture_reload_kept_connection(void **state)
{
    struct itcase *t = *state;
    static const char plain[] = "id: alpha\n"
                                "identify: {proxy_users: [alpha]}\n"
                                "default: allow\n";
    struct capture_paths p;
    char path[700], f_body[700], s[2][800];
    struct rawclient *rc;
    unsigned port;
    uint64_t deadline;

    start_capture(t, &p, "unidentified: allow\n", plain, NULL);
    port = origin_port(t->origin);
    rc = it_raw(t);
    send_ok(rc, port, "POST", "/before", "", "secret", 6);

    snprintf(path, sizeof(path), "%s/tools/alpha.yaml", p.policy);
    assert_int_equal(tio_write_file(path, alpha_requests), 0);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    deadline = tio_now_ms() + 5000;
    while (!sluiceproc_log_contains(t->env->proxy, "reloaded: policy generation 2")) {
        if (tio_now_ms() > deadline)
            it_fail_with_log(t, "reloaded: policy generation 2");
        tio_sleep_ms(20);
    }
    send_ok(rc, port, "POST", "/after", "", "secret", 6);
    rawclient_close(rc);
    write_bytes(t, "after.body", "secret", 6, f_body, sizeof(f_body));
    snprintf(s[0], sizeof(s[0]), "/before|-|-|-|-");
    snprintf(s[1], sizeof(s[1]), "/after|%s|-|-|-", f_body);
    {
        const char *const specs[] = {s[0], s[1], NULL};
        check_captures(t, &p, specs);
    }
}

/*
 * Another layer: a body sent inside a CONNECT that sluice reads as plain HTTP (the way
 * node's undici sends http://), on the tunnel's keep-alive connection, is kept as a
 * proxied one is.
 */
static void test_capture_inside_http_tunnel(void **state)
{
    struct itcase *t = *state;
    struct capture_paths p;
    struct rawclient *rc;
    struct rawresp r = {0};
    char head[400], f_body[700], spec[800];
    static const char body[] = "{\"prompt\": \"through the tunnel\"}";

    start_capture(t, &p, "unidentified: allow\n", alpha_requests, NULL);
    rc = it_raw(t);
    snprintf(head, sizeof(head),
             "CONNECT origin.test:%u HTTP/1.1\r\nHost: origin.test:%u\r\n" ALPHA_AUTH "\r\n",
             origin_port(t->origin), origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, head), 0);
    assert_int_equal(rawclient_response(rc, &r, true, 5000), 200);
    rawresp_free(&r);
    for (int i = 0; i < 2; i++) {
        snprintf(head, sizeof(head),
                 "POST /tunneled/%d HTTP/1.1\r\nHost: origin.test\r\nContent-Length: %zu\r\n\r\n",
                 i, strlen(body));
        assert_int_equal(rawclient_sends(rc, head), 0);
        assert_int_equal(rawclient_send(rc, body, strlen(body)), 0);
        assert_int_equal(rawclient_response(rc, &r, false, 5000), 200);
        rawresp_free(&r);
    }
    rawclient_close(rc);
    write_bytes(t, "tunneled.body", body, strlen(body), f_body, sizeof(f_body));
    snprintf(spec, sizeof(spec), "/tunneled/1|%s|-|-|-", f_body);
    {
        const char *const specs[] = {spec, NULL};
        check_captures(t, &p, specs);
    }
}

/*
 * A WebSocket upgrade where policy keeps the request's bodies is refused with a 501 that
 * says why: the frames after it could not be kept.  The same upgrade where no capture
 * applies goes on to the origin.
 */
static void test_capture_refuses_upgrade(void **state)
{
    struct itcase *t = *state;
    static const char profile[] = "id: alpha\n"
                                  "identify: {proxy_users: [alpha]}\n"
                                  "default: allow\n"
                                  "capture: requests\n"
                                  "endpoints:\n"
                                  "  - {group: feed, hosts: [origin.test], paths: [/feed], "
                                  "capture: none}\n";
    static const char upgrade[] = "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    struct capture_paths p;
    struct rawclient *rc;
    struct rawresp r = {0};
    char head[600];

    start_capture(t, &p, "unidentified: allow\n", profile, NULL);
    rc = it_raw(t);
    snprintf(head, sizeof(head),
             "GET http://origin.test:%u/chat HTTP/1.1\r\nHost: origin.test\r\n" ALPHA_AUTH "%s",
             origin_port(t->origin), upgrade);
    assert_int_equal(rawclient_sends(rc, head), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 8000), 501);
    assert_non_null(strstr(tbuf_str(&r.body), "cannot be captured"));
    rawresp_free(&r);
    rawclient_close(rc);
    assert_int_equal(origin_requests(t->origin), 0);

    /* Where the group says none, the upgrade goes on (this origin answers it 200). */
    rc = it_raw(t);
    snprintf(head, sizeof(head),
             "GET http://origin.test:%u/feed HTTP/1.1\r\nHost: origin.test\r\n" ALPHA_AUTH "%s",
             origin_port(t->origin), upgrade);
    assert_int_equal(rawclient_sends(rc, head), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 8000), 200);
    rawresp_free(&r);
    rawclient_close(rc);
    assert_int_equal(origin_requests(t->origin), 1);
}

/* Answers a WebSocket upgrade with 101, then echoes what comes. */
static void ws_echo_origin(struct origin_conn *c)
{
    char buf[4096];

    if (oconn_read_head(c, 10000) == 0 ||
        oconn_writes(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n") != 0)
        return;
    for (int i = 0; i < 1000 && !origin_stopping(c->origin); i++) {
        ssize_t n = oconn_read(c, buf, sizeof(buf), 10000);
        if (n <= 0 || oconn_write(c, buf, (size_t)n) != 0)
            return;
    }
}

/*
 * Another layer, a reload: a plain WebSocket that capture did not cover when it opened
 * (its group says none) is closed when a reload makes capture cover it (KT, rule
 * capture:upgrade), as an inspected one is (it_inspect): its frames could not be kept.
 */
static void test_capture_reload_closes_websocket(void **state)
{
    struct itcase *t = *state;
    static const char feed_none[] = "id: alpha\n"
                                    "identify: {proxy_users: [alpha]}\n"
                                    "default: allow\n"
                                    "capture: requests\n"
                                    "endpoints:\n"
                                    "  - {group: feed, hosts: [origin.test], paths: [/feed], "
                                    "capture: none}\n";
    static const char feed_kept[] = "id: alpha\n"
                                    "identify: {proxy_users: [alpha]}\n"
                                    "default: allow\n"
                                    "capture: requests\n";
    struct capture_paths p;
    struct rawclient *rc;
    struct rawresp r = {0};
    struct tbuf got = {0};
    char head[600], path[700], *line;

    start_capture_with(t, &p, "unidentified: allow\n", feed_none, NULL, ws_echo_origin);
    rc = it_raw(t);
    snprintf(head, sizeof(head),
             "GET http://origin.test:%u/feed HTTP/1.1\r\nHost: origin.test\r\n" ALPHA_AUTH
             "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, head), 0);
    assert_int_equal(rawclient_response(rc, &r, true, 8000), 101);
    rawresp_free(&r);
    assert_int_equal(rawclient_sends(rc, "ping"), 0);
    assert_int_equal(rawclient_read_exact(rc, &got, 4, 5000), 4);
    assert_memory_equal(got.data, "ping", 4);
    tbuf_free(&got);

    snprintf(path, sizeof(path), "%s/tools/alpha.yaml", p.policy);
    assert_int_equal(tio_write_file(path, feed_kept), 0);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    assert_true(sluiceproc_log_wait(t->env->proxy, "reloaded: policy generation 2", 5000));
    line = it_access_line(t, "/feed\"", "status=101", NULL);
    it_assert_access_field(line, "rule", "capture:upgrade");
    it_assert_access_field(line, "term", "KT");
    free(line);
    assert_true(rawclient_wait_closed(rc, 5000));
    rawclient_close(rc);
}

/*
 * A policy that captures with nowhere to keep the bodies: `sluice check` names the setting
 * to add, and sluice does not start; nor does a store without the audit trail that
 * would name its bodies.
 */
static void test_capture_needs_store(void **state)
{
    struct itcase *t = *state;
    const char *dir = it_write_policy(t, "unidentified: allow\n", "alpha", alpha_requests);
    char store[600], audit[600];
    struct it_run r;

    {
        const char *const args[] = {"check", "--policy-dir", dir, NULL};
        r = it_run_sluice(t, args);
        assert_int_not_equal(r.status, 0);
        if (strstr(r.output, "set audit.capture_dir (--capture-dir)") == NULL)
            fail_msg("sluice check said: %s", r.output);
        free(r.output);
    }
    {
        const char *const args[] = {"--policy-dir", dir, "--listen", "127.0.0.1:0", NULL};
        r = it_run_sluice(t, args);
        assert_int_not_equal(r.status, 0);
        if (strstr(r.output, "no capture store is configured") == NULL)
            fail_msg("sluice said: %s", r.output);
        free(r.output);
    }
    snprintf(store, sizeof(store), "%s/captures", t->env->dir);
    {
        const char *const args[] = {"--policy-dir",  dir,   "--listen", "127.0.0.1:0",
                                    "--capture-dir", store, NULL};
        r = it_run_sluice(t, args);
        assert_int_not_equal(r.status, 0);
        if (strstr(r.output, "set audit.path (--audit-log) too") == NULL)
            fail_msg("sluice said: %s", r.output);
        free(r.output);
    }
    {
        /* sluice check says so too, before a start would. */
        const char *const args[] = {"check", "--policy-dir", dir, "--capture-dir", store, NULL};
        r = it_run_sluice(t, args);
        assert_int_not_equal(r.status, 0);
        if (strstr(r.output, "set audit.path (--audit-log) too") == NULL)
            fail_msg("sluice check said: %s", r.output);
        free(r.output);
    }
    snprintf(audit, sizeof(audit), "%s/audit.jsonl", t->env->dir);
    {
        const char *const args[] = {"check", "--policy-dir", dir,   "--capture-dir",
                                    store,   "--audit-log",  audit, NULL};
        r = it_run_sluice(t, args);
        if (r.status != 0 || strstr(r.output, "configuration OK") == NULL)
            fail_msg("sluice check with a store said (status %d): %s", r.status, r.output);
        free(r.output);
    }
}

/* Bodies that said "hello" that patient_origin() read whole. */
static atomic_uint hellos_heard;

/* Answers each request with "ok" once its body is in, waiting up to 30 s for it. */
static void patient_origin(struct origin_conn *c)
{
    while (oconn_read_head(c, 30000) > 0) {
        struct tbuf body = {0};
        int rc = oconn_read_body(c, &body, 30000);

        if (rc >= 0 && strcmp(tbuf_str(&body), "hello") == 0)
            atomic_fetch_add(&hellos_heard, 1);
        tbuf_free(&body);
        if (rc < 0 || oconn_respond(c, 200, "Content-Type: text/plain\r\n", "ok", 2) < 0)
            return;
    }
}

/*
 * Sends a POST of "hello" as tool alpha on a new connection from src_ip (NULL: the
 * default), with a Content-Length or chunked; returns the status (the response in *r).
 */
static int post_hello_from(struct itcase *t, const char *src_ip, bool chunked, struct rawresp *r)
{
    struct rawclient *rc = src_ip != NULL ? it_raw_from(src_ip, t->proxy_port) : it_raw(t);
    char req[512];
    int status;

    snprintf(req, sizeof(req),
             "POST http://origin.test:%u/hello HTTP/1.1\r\nHost: origin.test\r\n" ALPHA_AUTH "%s",
             origin_port(t->origin),
             chunked ? "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                     : "Content-Length: 5\r\n\r\nhello");
    assert_int_equal(rawclient_sends(rc, req), 0);
    status = rawclient_response(rc, r, false, 8000);
    rawclient_close(rc);
    return status;
}

/* post_hello_from() from the default address. */
static int post_hello(struct itcase *t, bool chunked, struct rawresp *r)
{
    return post_hello_from(t, NULL, chunked, r);
}

/*
 * Opens n uploads as tool alpha that announce 2 MiB and stop after 600 KiB (each holding
 * 1 MiB of capture memory: the room grows by doubling), and waits until /metrics says the
 * bodies being captured hold memory bytes and the origin accepted n connections.
 * Returns the origin's accepted connections.
 */
static unsigned hold_uploads(struct itcase *t, struct rawclient **held, int n, double memory)
{
    enum { SENT = 600 * 1024 };
    char *sent = malloc(SENT);
    double now = 0;
    unsigned accepted;

    assert_non_null(sent);
    memset(sent, 'u', SENT);
    for (int i = 0; i < n; i++) {
        char head[512];
        held[i] = it_raw(t);
        snprintf(head, sizeof(head),
                 "POST http://origin.test:%u/upload/%d HTTP/1.1\r\nHost: origin.test\r\n" ALPHA_AUTH
                 "Content-Length: 2097152\r\n\r\n",
                 origin_port(t->origin), i);
        assert_int_equal(rawclient_sends(held[i], head), 0);
        assert_int_equal(rawclient_send(held[i], sent, SENT), 0);
    }
    free(sent);
    for (int i = 0; i < 200 && (now = admin_metric(t, "sluice_capture_memory_bytes")) < memory; i++)
        tio_sleep_ms(25);
    assert_true(now == memory);
    for (int i = 0; i < 200 && origin_accepted(t->origin) < (unsigned)n; i++)
        tio_sleep_ms(25);
    accepted = origin_accepted(t->origin);
    assert_int_equal(accepted, n);
    return accepted;
}

/*
 * What leaves is kept, or does not leave.  64 uploads of 2 MiB that stop after 600 KiB
 * take all the memory for bodies being captured (1 MiB each: the room grows by doubling,
 * up to the bound per body).  Then a POST with a Content-Length gets 503 and its body
 * never reaches the origin, and neither does a chunked one's; their upstream connections
 * are closed, not kept for another request.  Once one upload is gone, the same POST goes
 * through and is kept.  With --audit-fail-open on, the POST goes on while memory is full,
 * its record saying its body was lost.
 */
static void test_capture_memory_full(void **state)
{
    struct itcase *t = *state;
    /* sluice's memory for bodies being captured: 64 MiB (CAPTURE_MEMORY_MAX, capture.h). */
    enum { N = 64 };
    const double full = 64.0 * 1024 * 1024;
    const char *const closed[] = {"--admin-listen", "127.0.0.1:0", NULL};
    const char *const open[] = {"--admin-listen", "127.0.0.1:0", "--audit-fail-open", "on", NULL};
    struct rawclient *held[N];
    struct capture_paths p;
    for (int round = 0; round < 2; round++) {
        struct rawresp r = {0};
        unsigned accepted;

        atomic_store(&hellos_heard, 0);
        start_capture_with(t, &p, "unidentified: allow\n", alpha_requests,
                           round == 0 ? closed : open, patient_origin);
        accepted = hold_uploads(t, held, N, full);
        if (round == 0) {
            char type[64];
            assert_int_equal(post_hello(t, false, &r), 503);
            it_assert_sluice_error(&r, 503, type, sizeof(type));
            assert_non_null(strstr(tbuf_str(&r.body), "memory for bodies being captured is full"));
            rawresp_free(&r);
            assert_int_equal(post_hello(t, true, &r), 503);
            rawresp_free(&r);
            assert_int_equal(atomic_load(&hellos_heard), 0);
            /* One upload gone: its room comes back, and the POST is kept. */
            rawclient_close(held[0]);
            held[0] = NULL;
            for (int i = 0; i < 200 && admin_metric(t, "sluice_capture_memory_bytes") >= full; i++)
                tio_sleep_ms(25);
        }
        assert_int_equal(post_hello(t, false, &r), 200);
        rawresp_free(&r);
        assert_int_equal(atomic_load(&hellos_heard), 1);
        /* Round 0: the two refused went on connections of their own, closed after them;
         * the POST kept needed a new one. */
        if (round == 0)
            assert_int_equal(origin_accepted(t->origin), accepted + 3);
        for (int i = 0; i < N; i++)
            if (held[i] != NULL)
                rawclient_close(held[i]);
        assert_true(testenv_stop_proxy(t->env));
        {
            char cmd[1200];
            const char *const argv[] = {"python3", "-c", cmd, p.audit, NULL};
            /* The last record of /hello: kept in round 0, lost in round 1; in round 0 the
             * two refused before it say 503 and name sluice's resource as the end. */
            snprintf(cmd, sizeof(cmd),
                     "import json, sys\n"
                     "recs = [json.loads(l) for l in open(sys.argv[1])]\n"
                     "hello = [r for r in recs if r.get('url', {}).get('path') == '/hello']\n"
                     "cap = hello[-1]['sluice']['capture']['request']\n"
                     "assert %d == 0 or cap.get('lost') is True, cap\n"
                     "assert %d == 1 or (cap['bytes'] == 5 and 'lost' not in cap), cap\n"
                     "refused = hello[:-1] if %d == 0 else []\n"
                     "assert len(refused) == (2 if %d == 0 else 0), hello\n"
                     "assert all(r['http']['response']['status_code'] == 503 and "
                     "r['sluice']['termination'][0] == 'R' for r in refused), refused\n"
                     "print('round', %d, 'records hold:', cap)\n",
                     round, round, round, round, round);
            if (it_run_command(argv) != 0)
                fail_msg("the records of the POSTs to /hello are not what they should be");
        }
        origin_stop(t->origin); /* the next round starts its own, and writes its policy */
        t->origin = NULL;
        {
            char from[400], to[400];
            snprintf(from, sizeof(from), "%s/policies", t->env->dir);
            snprintf(to, sizeof(to), "%s/policies-%d", t->env->dir, round);
            assert_int_equal(rename(from, to), 0);
        }
    }
}

/*
 * When clients are counted (gateway mode, or --max-connections-per-client), one client's
 * bodies being captured hold at most a quarter of the memory (16 MiB).  16 uploads from
 * 127.0.0.1 that stop after 600 KiB take its share; its next POST gets 503 saying so and
 * its body never reaches the origin, while a POST from 127.0.0.2 goes through and is
 * kept.  Once one of its uploads is gone, 127.0.0.1's POST goes through too.  (In local
 * mode nobody is counted: test_capture_memory_full's one client takes all 64 MiB.)
 */
static void test_capture_client_share(void **state)
{
    struct itcase *t = *state;
    enum { N = 16 };
    const double share = 16.0 * 1024 * 1024;
    const char *const args[] = {"--admin-listen", "127.0.0.1:0", "--max-connections-per-client",
                                "256", NULL};
    struct rawclient *held[N];
    struct capture_paths p;
    struct rawresp r = {0};

    atomic_store(&hellos_heard, 0);
    start_capture_with(t, &p, "unidentified: allow\n", alpha_requests, args, patient_origin);
    (void)hold_uploads(t, held, N, share);
    assert_int_equal(post_hello(t, false, &r), 503);
    assert_non_null(strstr(tbuf_str(&r.body), "its share of the memory"));
    rawresp_free(&r);
    assert_int_equal(post_hello(t, true, &r), 503);
    rawresp_free(&r);
    assert_int_equal(atomic_load(&hellos_heard), 0);
    /* Another client is not held back by the first one's uploads. */
    assert_int_equal(post_hello_from(t, "127.0.0.2", false, &r), 200);
    rawresp_free(&r);
    assert_int_equal(atomic_load(&hellos_heard), 1);
    /* One of its uploads gone: the first client has room again. */
    rawclient_close(held[0]);
    held[0] = NULL;
    for (int i = 0; i < 200 && admin_metric(t, "sluice_capture_memory_bytes") >= share; i++)
        tio_sleep_ms(25);
    assert_int_equal(post_hello(t, false, &r), 200);
    rawresp_free(&r);
    assert_int_equal(atomic_load(&hellos_heard), 2);
    for (int i = 1; i < N; i++)
        rawclient_close(held[i]);
    assert_true(testenv_stop_proxy(t->env));
    {
        char cmd[1000];
        const char *const argv[] = {"python3", "-c", cmd, p.audit, NULL};
        /* The records of /hello: two refused with 503 (R), then two kept. */
        snprintf(cmd, sizeof(cmd),
                 "import json, sys\n"
                 "recs = [json.loads(l) for l in open(sys.argv[1])]\n"
                 "hello = [r for r in recs if r.get('url', {}).get('path') == '/hello']\n"
                 "st = [r['http']['response']['status_code'] for r in hello]\n"
                 "assert st == [503, 503, 200, 200], st\n"
                 "assert all(r['sluice']['termination'][0] == 'R' for r in hello[:2]), hello\n"
                 "assert hello[2]['source']['ip'] == '127.0.0.2', hello[2]['source']\n"
                 "assert all(r['sluice']['capture']['request']['bytes'] == 5 for r in "
                 "hello[2:]), hello\n");
        if (it_run_command(argv) != 0)
            fail_msg("the records of the POSTs to /hello are not what they should be");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_capture_request_bodies, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_capture_group_responses, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_capture_eviction, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_capture_reload_kept_connection, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_capture_inside_http_tunnel, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_capture_refuses_upgrade, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_capture_reload_closes_websocket, it_setup,
                                        it_teardown),
        cmocka_unit_test_setup_teardown(test_capture_memory_full, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_capture_client_share, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_capture_needs_store, it_setup, it_teardown),
    };

    /* The origin, in this process, writes to sockets sluice may have closed. */
    signal(SIGPIPE, SIG_IGN);
    it_select_cases();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
