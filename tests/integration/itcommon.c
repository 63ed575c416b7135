/* Fixture and assertions shared by the integration test executables. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
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

/* RFC 9209 section 2.3 proxy error types. */
static const char *const it_rfc9209_types[] = {
    "dns_timeout",
    "dns_error",
    "destination_not_found",
    "destination_unavailable",
    "destination_ip_prohibited",
    "destination_ip_unroutable",
    "connection_refused",
    "connection_terminated",
    "connection_timeout",
    "connection_read_timeout",
    "connection_write_timeout",
    "connection_limit_reached",
    "tls_protocol_error",
    "tls_certificate_error",
    "tls_alert_received",
    "http_request_error",
    "http_request_denied",
    "http_response_incomplete",
    "http_response_header_section_size",
    "http_response_header_size",
    "http_response_body_size",
    "http_response_trailer_section_size",
    "http_response_trailer_size",
    "http_response_transfer_coding",
    "http_response_content_coding",
    "http_response_timeout",
    "http_upgrade_failed",
    "http_protocol_error",
    "proxy_internal_response",
    "proxy_internal_error",
    "proxy_configuration_error",
    "proxy_loop_detected",
};

/* Makes the per-case environment. */
int it_setup(void **state)
{
    struct itcase *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return -1;
    t->param = *state;
    t->env = testenv_new();
    if (t->env == NULL) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

/* Tears the case down; a proxy that did not exit 0 cleanly fails the case. */
int it_teardown(void **state)
{
    struct itcase *t = *state;
    bool ok;

    if (t == NULL)
        return 0;
    ok = testenv_stop_proxy(t->env);
    origin_stop(t->origin);
    origin_stop(t->origin2);
    SSL_CTX_free(t->tls);
    testca_free(t->ca);
    testenv_free(t->env);
    free(t);
    *state = NULL;
    if (!ok)
        fprintf(stderr, "teardown: sluice did not exit cleanly (status 0, no sanitizer "
                        "report)\n");
    return ok ? 0 : -1;
}

/* Starts the proxy. */
void it_start_proxy(struct itcase *t, const char *const args[])
{
    struct sluiceproc *p = testenv_start_proxy(t->env, args);

    if (p == NULL)
        fail_msg("sluice (%s) did not start", sluiceproc_bin());
    t->proxy_port = t->env->proxy_port;
}

/* Starts the main origin. */
void it_start_origin(struct itcase *t, origin_handler_fn handler, void *arg)
{
    struct origin_opts o = {.handler = handler, .arg = arg};

    t->origin = origin_start(&o);
    assert_non_null(t->origin);
}

/* Starts the main origin with TLS. */
void it_start_tls_origin(struct itcase *t, origin_handler_fn handler, void *arg)
{
    struct origin_opts o = {.handler = handler, .arg = arg};

    t->ca = testca_new(t->env->dir, "origin.test", "127.0.0.1");
    assert_non_null(t->ca);
    t->tls = testca_server_ctx(t->ca);
    assert_non_null(t->tls);
    o.tls = t->tls;
    t->origin = origin_start(&o);
    assert_non_null(t->origin);
}

/* Builds a URL to the main origin by name. */
const char *it_url(struct itcase *t, const char *path, char *buf, size_t cap)
{
    snprintf(buf, cap, "http://origin.test:%u%s", origin_port(t->origin), path);
    return buf;
}

/* Prints the log and fails. */
void it_fail_with_log(struct itcase *t, const char *what)
{
    if (t->env->proxy != NULL)
        sluiceproc_dump_log(t->env->proxy, 6000);
    fail_msg("%s", what);
}

/* Waits for an access line. */
void it_expect_access(struct itcase *t, ...)
{
    va_list ap;
    char *line;
    struct tbuf what = {0};
    const char *tok;

    va_start(ap, t);
    line = sluiceproc_access_waitv(t->env->proxy, 5000, ap);
    va_end(ap);
    if (line != NULL) {
        free(line);
        return;
    }
    va_start(ap, t);
    tbuf_append_str(&what, "no access line with");
    while ((tok = va_arg(ap, const char *)) != NULL)
        tbuf_printf(&what, " '%s'", tok);
    va_end(ap);
    fprintf(stderr, "%s\n", tbuf_str(&what));
    tbuf_free(&what);
    it_fail_with_log(t, "expected access line missing");
}

/* Waits for an access line and hands it over. */
char *it_access_line(struct itcase *t, ...)
{
    va_list ap;
    char *line;

    va_start(ap, t);
    line = sluiceproc_access_waitv(t->env->proxy, 5000, ap);
    va_end(ap);
    if (line == NULL)
        it_fail_with_log(t, "expected access line missing");
    return line;
}

/* Finds " key=" in an access line and copies its value, which may be quoted. */
const char *it_access_field(const char *line, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key), n;
    const char *p = line, *v, *end;

    for (;;) {
        p = strstr(p, key);
        if (p == NULL)
            fail_msg("no field '%s' in access line: %s", key, line);
        if (p > line && p[-1] == ' ' && p[klen] == '=')
            break;
        p += klen;
    }
    v = p + klen + 1;
    if (*v == '"') {
        v++;
        for (end = v; *end != '\0' && *end != '"'; end++)
            if (*end == '\\' && end[1] != '\0')
                end++;
    } else {
        end = v + strcspn(v, " ");
    }
    n = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    return out;
}

/* Compares one field of an access line. */
void it_assert_access_field(const char *line, const char *key, const char *want)
{
    char got[1024];

    it_access_field(line, key, got, sizeof(got));
    if (strcmp(got, want) != 0)
        fail_msg("access field %s is '%s', expected '%s' in: %s", key, got, want, line);
}

/* Connects to the proxy. */
struct rawclient *it_raw(struct itcase *t)
{
    struct rawclient *c = rawclient_connect("127.0.0.1", t->proxy_port, 5000);

    if (c == NULL)
        it_fail_with_log(t, "cannot connect to the proxy");
    return c;
}

/* Writes the case's policy directory; see the header. */
const char *it_write_policy(struct itcase *t, const char *org, const char *tool,
                            const char *profile)
{
    static char dir[512];
    char path[700];

    snprintf(dir, sizeof(dir), "%s/policies", t->env->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/tools", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/organisation.yaml", dir);
    assert_int_equal(tio_write_file(path, org), 0);
    if (tool != NULL) {
        snprintf(path, sizeof(path), "%s/tools/%s.yaml", dir, tool);
        assert_int_equal(tio_write_file(path, profile), 0);
    }
    return dir;
}

/* Sends a GET for /x on authority on a new connection and reads the response. */
int it_raw_get(struct itcase *t, const char *authority, struct rawresp *r)
{
    struct rawclient *rc = it_raw(t);
    char req[600];
    int status;

    snprintf(req, sizeof(req), "GET http://%s/x HTTP/1.1\r\nHost: %s\r\n\r\n", authority,
             authority);
    assert_int_equal(rawclient_sends(rc, req), 0);
    status = rawclient_response(rc, r, false, 8000);
    rawclient_close(rc);
    return status;
}

/* One plain request on a new connection must succeed. */
void it_assert_serves(struct itcase *t)
{
    struct rawclient *c = it_raw(t);
    struct rawresp r = {0};
    char req[256];
    int st;

    snprintf(req, sizeof(req),
             "GET http://origin.test:%u/after HTTP/1.1\r\nHost: origin.test:%u\r\n"
             "Connection: close\r\n\r\n",
             origin_port(t->origin), origin_port(t->origin));
    assert_int_equal(rawclient_sends(c, req), 0);
    st = rawclient_response(c, &r, false, 10000);
    if (st != 200)
        fprintf(stderr, "follow-up request got %d:\n%s\n", st, tbuf_str(&r.head));
    assert_int_equal(st, 200);
    assert_string_equal(tbuf_str(&r.body), "target=/after\n");
    rawresp_free(&r);
    rawclient_close(c);
}

/* Checks the shape of a response sluice generated. */
void it_assert_sluice_error(const struct rawresp *r, int status, char *type, size_t cap)
{
    char v[512];
    char *e;
    char *end;
    size_t i;
    bool known = false;

    if (r->status != status)
        fprintf(stderr, "expected %d, got head:\n%s\n", status, tbuf_str(&r->head));
    assert_int_equal(r->status, status);
    assert_true(rawresp_field(r, "Server", v, sizeof(v)));
    assert_string_equal(v, "sluice");
    assert_true(rawresp_field(r, "Content-Type", v, sizeof(v)));
    assert_non_null(strstr(v, "text/plain"));
    assert_true(rawresp_field(r, "Content-Length", v, sizeof(v)));
    assert_int_equal(strtoul(v, NULL, 10), r->body.len);
    assert_true(r->body.len > 0);
    if (status >= 400)
        assert_true(rawresp_has_token(r, "Connection", "close"));
    assert_true(rawresp_field(r, "Proxy-Status", v, sizeof(v)));
    assert_true(strncmp(v, "sluice", 6) == 0);
    e = strstr(v, "error=");
    assert_non_null(e);
    e += 6;
    end = e + strcspn(e, "; ");
    *end = '\0';
    for (i = 0; i < sizeof(it_rfc9209_types) / sizeof(it_rfc9209_types[0]); i++) {
        if (strcmp(e, it_rfc9209_types[i]) == 0)
            known = true;
    }
    if (!known)
        fprintf(stderr, "Proxy-Status error type '%s' is not an RFC 9209 type\n", e);
    assert_true(known);
    if (type != NULL && cap > 0) {
        size_t n = strlen(e) < cap - 1 ? strlen(e) : cap - 1;

        memcpy(type, e, n);
        type[n] = '\0';
    }
}

/* Runs sluice to its exit; see the header. */
struct it_run it_run_sluice(struct itcase *t, const char *const args[])
{
    struct sluiceproc *p = sluiceproc_spawn(t->env->dir, args);
    struct it_run r;
    int st;

    assert_non_null(p);
    if (!sluiceproc_wait_exit(p, 10000)) {
        sluiceproc_free(p);
        fail_msg("sluice kept running when it should have exited");
    }
    st = sluiceproc_status(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.output = tio_read_file(sluiceproc_log_path(p), NULL);
    if (r.output == NULL)
        r.output = strdup("");
    assert_non_null(r.output);
    fprintf(stderr, "exit status %d, output:\n%s", r.status, r.output);
    sluiceproc_free(p);
    return r;
}

/* Runs a command to its end; see the header. */
int it_run_command(const char *const argv[])
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int st = -1;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)(uintptr_t)argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 2000; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        tio_sleep_ms(10);
    }
    (void)kill(pid, SIGKILL);
    (void)waitpid(pid, &st, 0);
    return -1;
}

/* Narrows the run to $SLUICE_CASE; see the header. */
void it_select_cases(void)
{
    const char *pattern = getenv("SLUICE_CASE");

    if (pattern != NULL && pattern[0] != '\0')
        cmocka_set_test_filter(pattern);
}

/* Connects from src_ip to 127.0.0.1:port; see the header. */
struct rawclient *it_raw_from(const char *src_ip, uint16_t port)
{
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    struct rawclient *rc = calloc(1, sizeof(*rc));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_non_null(rc);
    assert_true(fd >= 0);
    assert_int_equal(inet_pton(AF_INET, src_ip, &src.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
    dst.sin_port = htons(port);
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), 0);
    rc->fd = fd;
    return rc;
}

/* Appends quarantine_size_mb=4 to ASAN_OPTIONS; see the header. */
char *it_asan_small_quarantine(void)
{
    const char *asan = getenv("ASAN_OPTIONS");
    char *saved = asan != NULL ? strdup(asan) : NULL;
    char opts[512];

    snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=4", asan != NULL ? asan : "",
             asan != NULL && asan[0] != '\0' ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    return saved;
}

/* Restores ASAN_OPTIONS; see the header. */
void it_asan_restore(char *saved)
{
    if (saved != NULL)
        setenv("ASAN_OPTIONS", saved, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(saved);
}
