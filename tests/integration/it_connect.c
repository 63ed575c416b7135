/*
 * Tunnels through sluice: CONNECT to an HTTPS origin with the certificate verified end to
 * end by libcurl, the ClientHello's SNI in the access log (also when the ClientHello
 * arrives in pieces), CONNECT to a port not allowed (403), an idle tunnel's timeout, and
 * a WebSocket-style upgrade (101, then bytes both ways).
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
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>

#include "httpmsg.h"
#include "itcommon.h"

/* Echoes bytes until the peer closes (bounded in count and time). */
static void echo_handler(struct origin_conn *c)
{
    char buf[16384];
    int i;

    for (i = 0; i < 100000 && !origin_stopping(c->origin); i++) {
        ssize_t n = oconn_read(c, buf, sizeof(buf), 10000);

        if (n <= 0 || oconn_write(c, buf, (size_t)n) != 0)
            return;
    }
}

/* Formats the --connect-ports value for the main origin. */
static const char *origin_port_arg(struct itcase *t, char *buf, size_t cap)
{
    snprintf(buf, cap, "%u", origin_port(t->origin));
    return buf;
}

/* libcurl reaches https://origin.test:PORT/ through CONNECT and verifies the certificate. */
static void test_connect_tls_verified(void **state)
{
    struct itcase *t = *state;
    struct itcurl *c;
    char ports[16];
    char url[128];
    long connect_code = 0;
    long verify = -1;
    CURLcode rc;

    it_start_tls_origin(t, origin_handler_simple, NULL);
    {
        const char *const args[] = {"--connect-ports", origin_port_arg(t, ports, sizeof(ports)),
                                    NULL};

        it_start_proxy(t, args);
    }
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    curl_easy_setopt(c->h, CURLOPT_CAINFO, testca_ca_path(t->ca));
    curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c->h, CURLOPT_SSL_VERIFYHOST, 2L);
    snprintf(url, sizeof(url), "https://origin.test:%u/secure", origin_port(t->origin));
    rc = itcurl_perform(c, url);
    if (rc != CURLE_OK)
        fprintf(stderr, "curl: %s\n", c->errbuf);
    assert_int_equal(rc, CURLE_OK);
    curl_easy_getinfo(c->h, CURLINFO_HTTP_CONNECTCODE, &connect_code);
    curl_easy_getinfo(c->h, CURLINFO_SSL_VERIFYRESULT, &verify);
    assert_int_equal(connect_code, 200);
    assert_int_equal(verify, 0);
    assert_int_equal(itcurl_status(c), 200);
    assert_string_equal(tbuf_str(&c->body), "target=/secure\n");
    itcurl_free(c); /* closes the tunnel, so the access line gets written */
    it_expect_access(t, "method=CONNECT", "sni=origin.test", NULL);
}

/* Sends pending TLS output to fd in pieces of at most piece bytes, 20 ms apart. */
static int flush_pieces(BIO *wbio, int fd, size_t piece)
{
    char buf[4096];
    int i;

    for (i = 0; i < 1000 && BIO_pending(wbio) > 0; i++) {
        int n = BIO_read(wbio, buf, (int)(piece < sizeof(buf) ? piece : sizeof(buf)));

        if (n <= 0 || tio_write_all(fd, buf, (size_t)n, 5000) != 0)
            return -1;
        if (BIO_pending(wbio) > 0)
            tio_sleep_ms(20);
    }
    return 0;
}

/*
 * A TLS client over the tunnel on fd whose records go out in pieces of piece bytes; it
 * verifies the origin against ca_path, sends one request and checks the answer.
 * Returns 0 or -1.
 */
static int tls_get_in_pieces_sni(int fd, struct tbuf *pending, const char *ca_path, size_t piece,
                                 const char *server_name)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    BIO *rbio = BIO_new(BIO_s_mem());
    BIO *wbio = BIO_new(BIO_s_mem());
    uint64_t end = tio_now_ms() + 10000;
    struct tbuf resp = {0};
    char buf[16384];
    const char *sni = "origin.test"; /* what the certificate is checked against */
    char name[256];
    int rc = -1;
    int i;

    if (ctx == NULL || rbio == NULL || wbio == NULL)
        goto out;
    if (SSL_CTX_load_verify_locations(ctx, ca_path, NULL) != 1)
        goto out;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ssl = SSL_new(ctx);
    if (ssl == NULL)
        goto out;
    SSL_set_bio(ssl, rbio, wbio);
    rbio = NULL; /* owned by ssl now */
    wbio = SSL_get_wbio(ssl);
    snprintf(name, sizeof(name), "%s", server_name); /* the macro takes it without const */
    if (SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, sni) != 1)
        goto out;
    SSL_set_connect_state(ssl);
    if (pending->len > 0)
        BIO_write(SSL_get_rbio(ssl), pending->data, (int)pending->len);
    for (i = 0; i < 200 && tio_now_ms() < end; i++) {
        int r = SSL_do_handshake(ssl);
        ssize_t n;

        if (flush_pieces(wbio, fd, piece) != 0)
            goto out;
        if (r == 1)
            break;
        if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ)
            goto out;
        n = tio_read_some(fd, buf, sizeof(buf), 5000);
        if (n <= 0)
            goto out;
        BIO_write(SSL_get_rbio(ssl), buf, (int)n);
    }
    if (SSL_is_init_finished(ssl) != 1 || SSL_get_verify_result(ssl) != X509_V_OK)
        goto out;
    if (SSL_write(ssl, "GET /pieces HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n",
                  63) != 63 ||
        flush_pieces(wbio, fd, 1 << 20) != 0)
        goto out;
    for (i = 0; i < 200 && tio_now_ms() < end && strstr(tbuf_str(&resp), "target=/pieces") == NULL;
         i++) {
        int r = SSL_read(ssl, buf, sizeof(buf));
        ssize_t n;

        if (r > 0) {
            tbuf_append(&resp, buf, (size_t)r);
            continue;
        }
        if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ)
            break;
        (void)flush_pieces(wbio, fd, 1 << 20);
        n = tio_read_some(fd, buf, sizeof(buf), 5000);
        if (n <= 0)
            break;
        BIO_write(SSL_get_rbio(ssl), buf, (int)n);
    }
    if (strstr(tbuf_str(&resp), "target=/pieces") != NULL)
        rc = 0;
out:
    if (rc != 0)
        ERR_print_errors_fp(stderr);
    tbuf_free(&resp);
    SSL_free(ssl);
    BIO_free(rbio);
    if (ssl == NULL)
        BIO_free(wbio);
    SSL_CTX_free(ctx);
    return rc;
}

/* Sends a ClientHello naming sni on fd, and nothing more (the handshake is left there). */
static int send_client_hello(int fd, const char *sni)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    char *data = NULL, name[256];
    long n;
    int rc = -1;

    if (ssl == NULL || rbio == NULL || wbio == NULL) {
        BIO_free(rbio);
        BIO_free(wbio);
        goto out;
    }
    SSL_set_bio(ssl, rbio, wbio);
    snprintf(name, sizeof(name), "%s", sni); /* the macro takes it without const */
    if (SSL_set_tlsext_host_name(ssl, name) != 1)
        goto out;
    SSL_set_connect_state(ssl);
    (void)SSL_do_handshake(ssl); /* wants to read: the ClientHello is in wbio */
    n = BIO_get_mem_data(wbio, &data);
    if (n > 0 && tio_write_all(fd, data, (size_t)n, 5000) == 0)
        rc = 0;
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return rc;
}

/* tls_get_in_pieces_sni() naming origin.test, the name the origin's certificate has. */
static int tls_get_in_pieces(int fd, struct tbuf *pending, const char *ca_path, size_t piece)
{
    return tls_get_in_pieces_sni(fd, pending, ca_path, piece, "origin.test");
}

/* The CONNECT head raw_connect_tunnel() sends for port, into buf; returns its length. */
static int connect_head(uint16_t port, char *buf, size_t cap)
{
    return snprintf(buf, cap, "CONNECT origin.test:%u HTTP/1.1\r\nHost: origin.test:%u\r\n\r\n",
                    port, port);
}

/* Opens a tunnel with a raw CONNECT and checks the 200; returns the client. */
static struct rawclient *raw_connect_tunnel(struct itcase *t, uint16_t port)
{
    struct rawclient *rc = it_raw(t);
    struct rawresp r = {0};
    char req[256];

    connect_head(port, req, sizeof(req));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, true, 10000), 200);
    assert_true(strncmp(r.head.data, "HTTP/1.1 200", 12) == 0);
    rawresp_free(&r);
    return rc;
}

/* The SNI is logged even when the ClientHello reaches the proxy 7 bytes at a time. */
static void test_connect_sni_logged_split_hello(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    char ports[16];

    it_start_tls_origin(t, origin_handler_simple, NULL);
    {
        const char *const args[] = {"--connect-ports", origin_port_arg(t, ports, sizeof(ports)),
                                    NULL};

        it_start_proxy(t, args);
    }
    rc = raw_connect_tunnel(t, origin_port(t->origin));
    assert_int_equal(tls_get_in_pieces(rc->fd, &rc->in, testca_ca_path(t->ca), 7), 0);
    rawclient_close(rc);
    it_expect_access(t, "method=CONNECT", "sni=origin.test", NULL);
}

/*
 * The server name in a tunnel's ClientHello is decided too when it is not the CONNECT's
 * host: a tunnel to origin.test carrying a handshake for a denied host is closed before
 * the ClientHello leaves (rule sni:deny-host); one for a host policy allows goes through,
 * and so does the CONNECT's own name.  A reload holds open tunnels' names to the new
 * policy, a name sent with its port ("third.test:443") too.
 */
static void test_connect_sni_other_host(void **state)
{
    struct itcase *t = *state;
    char ports[16], dir[400], file[500];
    struct rawclient *rc;

    snprintf(dir, sizeof(dir), "%s/policies", t->env->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(file, sizeof(file), "%s/tools", dir);
    assert_int_equal(mkdir(file, 0700), 0);
    snprintf(file, sizeof(file), "%s/organisation.yaml", dir);
    assert_int_equal(tio_write_file(file, "deny_hosts: [denied.test]\nunidentified: allow\n"), 0);
    it_start_tls_origin(t, origin_handler_simple, NULL);
    {
        const char *const args[] = {"--connect-ports", origin_port_arg(t, ports, sizeof(ports)),
                                    "--policy-dir", dir, NULL};
        it_start_proxy(t, args);
    }
    rc = raw_connect_tunnel(t, origin_port(t->origin));
    assert_int_not_equal(
        tls_get_in_pieces_sni(rc->fd, &rc->in, testca_ca_path(t->ca), 4096, "Denied.Test."), 0);
    assert_true(rawclient_wait_closed(rc, 5000));
    rawclient_close(rc);
    /* The name as the ClientHello gave it, lower-cased. */
    it_expect_access(t, "method=CONNECT", "sni=denied.test.", "decision=block",
                     "rule=sni:deny-host", "term=PT", NULL);
    assert_int_equal(origin_requests(t->origin), 0);

    rc = raw_connect_tunnel(t, origin_port(t->origin));
    assert_int_equal(
        tls_get_in_pieces_sni(rc->fd, &rc->in, testca_ca_path(t->ca), 4096, "other.test"), 0);
    rawclient_close(rc);
    it_expect_access(t, "method=CONNECT", "sni=other.test", "decision=allow", NULL);

    /* A tunnel held open (its ClientHello sent, nothing more) over a reload that denies
     * other.test: the tunnel is closed, by its server name. */
    rc = raw_connect_tunnel(t, origin_port(t->origin));
    assert_int_equal(send_client_hello(rc->fd, "other.test"), 0);
    for (int i = 0; i < 250 && !sluiceproc_log_contains(t->env->proxy, "for other.test, which "
                                                                       "policy allows too");
         i++)
        tio_sleep_ms(20);
    assert_int_equal(
        tio_write_file(file, "deny_hosts: [denied.test, other.test]\nunidentified: allow\n"), 0);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    assert_true(rawclient_wait_closed(rc, 5000));
    rawclient_close(rc);
    it_expect_access(t, "method=CONNECT", "sni=other.test", "decision=block", "rule=sni:deny-host",
                     NULL);
    assert_int_equal(tio_write_file(file, "deny_hosts: [denied.test]\nunidentified: allow\n"), 0);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    for (int i = 0;
         i < 250 && !sluiceproc_log_contains(t->env->proxy, "reloaded: policy generation 3"); i++)
        tio_sleep_ms(20);
    assert_true(sluiceproc_log_wait(t->env->proxy, "reloaded: policy generation 3", 2000));

    rc = raw_connect_tunnel(t, origin_port(t->origin));
    assert_int_equal(tls_get_in_pieces(rc->fd, &rc->in, testca_ca_path(t->ca), 4096), 0);
    rawclient_close(rc);
    it_expect_access(t, "method=CONNECT", "sni=origin.test", "decision=allow", NULL);

    /* The same over a reload for a name sent with its port: decided on its host. */
    rc = raw_connect_tunnel(t, origin_port(t->origin));
    assert_int_equal(send_client_hello(rc->fd, "third.test:443"), 0);
    assert_true(
        sluiceproc_log_wait(t->env->proxy, "for third.test, which policy allows too", 5000));
    assert_int_equal(
        tio_write_file(file, "deny_hosts: [denied.test, third.test]\nunidentified: allow\n"), 0);
    assert_int_equal(sluiceproc_signal(t->env->proxy, SIGHUP), 0);
    assert_true(rawclient_wait_closed(rc, 5000));
    rawclient_close(rc);
    it_expect_access(t, "method=CONNECT", "sni=third.test:443", "decision=block",
                     "rule=sni:deny-host", NULL);
}

/*
 * A ClientHello whose server name is there but is not a host name (a trailing space, a
 * '/') is not taken for "no server name", which would leave the tunnel unchecked while the
 * server reads some name from it: the tunnel is closed before the ClientHello leaves (the
 * origin never answers a request), term=PT, and the record shows the name as sent,
 * escaped.  A name with a port ("host:443", as Go programs like hey send) is decided on
 * its host, as a server that matches names reads it: closed for a denied host, relayed
 * for an allowed one, the record keeping the name as sent.
 */
static void test_connect_sni_not_a_host_name(void **state)
{
    static const struct {
        const char *sent, *shown;
    } names[] = {
        {"denied.test ", "denied.test%20"},
        {"origin.test/x", "origin.test%2Fx"},
        {"denied.test:443x", "denied.test:443x"},
    };
    struct itcase *t = *state;
    const char *dir =
        it_write_policy(t, "deny_hosts: [denied.test]\nunidentified: allow\n", NULL, NULL);
    char ports[16], log_text[200], token[100], sent[16];
    struct rawclient *rc;
    char *line;

    it_start_tls_origin(t, origin_handler_simple, NULL);
    {
        const char *const args[] = {"--connect-ports", origin_port_arg(t, ports, sizeof(ports)),
                                    "--policy-dir", dir, NULL};
        it_start_proxy(t, args);
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        rc = raw_connect_tunnel(t, origin_port(t->origin));
        if (tls_get_in_pieces_sni(rc->fd, &rc->in, testca_ca_path(t->ca), 4096, names[i].sent) == 0)
            fail_msg("'%s': the handshake went through to the origin", names[i].shown);
        assert_true(rawclient_wait_closed(rc, 5000));
        rawclient_close(rc);
        snprintf(token, sizeof(token), "sni=%s ", names[i].shown);
        line = it_access_line(t, "method=CONNECT", token, NULL);
        it_assert_access_field(line, "term", "PT");
        it_assert_access_field(line, "error", "tls_protocol_error");
        /* The CONNECT's head, which counts as passed once the tunnel opens; the ClientHello
         * sluice held does not count. */
        snprintf(sent, sizeof(sent), "%d",
                 connect_head(origin_port(t->origin), log_text, sizeof(log_text)));
        it_assert_access_field(line, "sent", sent);
        free(line);
        snprintf(log_text, sizeof(log_text),
                 "the ClientHello names a server that is not a host name (%s: ", names[i].shown);
        assert_true(sluiceproc_log_wait(t->env->proxy, log_text, 5000));
    }
    assert_int_equal(origin_requests(t->origin), 0);
    /* A denied host with a port: decided on the host, and closed. */
    rc = raw_connect_tunnel(t, origin_port(t->origin));
    if (tls_get_in_pieces_sni(rc->fd, &rc->in, testca_ca_path(t->ca), 4096, "denied.test:443") == 0)
        fail_msg("denied.test:443: the handshake went through to the origin");
    rawclient_close(rc);
    line = it_access_line(t, "method=CONNECT", "sni=denied.test:443 ", NULL);
    it_assert_access_field(line, "term", "PT");
    it_assert_access_field(line, "rule", "sni:deny-host");
    free(line);
    assert_int_equal(origin_requests(t->origin), 0);
    /* An allowed one with a port goes through, spliced, its name recorded as sent. */
    rc = raw_connect_tunnel(t, origin_port(t->origin));
    assert_int_equal(
        tls_get_in_pieces_sni(rc->fd, &rc->in, testca_ca_path(t->ca), 4096, "Origin.Test:1"), 0);
    rawclient_close(rc);
    assert_int_equal(origin_requests(t->origin), 1);
    line = it_access_line(t, "method=CONNECT", "sni=Origin.Test:1 ", NULL);
    it_assert_access_field(line, "tls", "splice");
    it_assert_access_field(line, "decision", "allow");
    free(line);
    /* The CONNECT's own name still goes through. */
    rc = raw_connect_tunnel(t, origin_port(t->origin));
    assert_int_equal(tls_get_in_pieces(rc->fd, &rc->in, testca_ca_path(t->ca), 4096), 0);
    rawclient_close(rc);
    assert_int_equal(origin_requests(t->origin), 2);
}

/* Appends a server_name extension for name to b. */
static void hello_sni_ext(struct tbuf *b, const char *name)
{
    size_t n = strlen(name);
    unsigned char h[9] = {0x00,
                          0x00,
                          (unsigned char)((n + 5) >> 8),
                          (unsigned char)(n + 5),
                          (unsigned char)((n + 3) >> 8),
                          (unsigned char)(n + 3),
                          0x00,
                          (unsigned char)(n >> 8),
                          (unsigned char)n};
    tbuf_append(b, (const char *)h, sizeof(h));
    tbuf_append(b, name, n);
}

/*
 * A ClientHello with two server_name extensions, one for the CONNECT's host and one for a
 * denied host: sluice cannot tell which one a server reads, so the tunnel is closed before
 * the hello leaves (term=PT), rather than relayed with neither name decided.
 */
static void test_connect_hello_two_names(void **state)
{
    struct itcase *t = *state;
    const char *dir =
        it_write_policy(t, "deny_hosts: [denied.test]\nunidentified: allow\n", NULL, NULL);
    char ports[16], sent[16], head[200];
    struct tbuf exts = {0}, hello = {0};
    struct rawclient *rc;
    char *line;

    hello_sni_ext(&exts, "origin.test");
    hello_sni_ext(&exts, "denied.test");
    {
        /* ClientHello body: version, random, no session id, one suite, null compression. */
        unsigned char body[2 + 32 + 1 + 4 + 2] = {0x03, 0x03};
        size_t blen = sizeof(body) + 2 + exts.len, rlen = 4 + blen;
        unsigned char rec[9] = {0x16,
                                0x03,
                                0x01,
                                (unsigned char)(rlen >> 8),
                                (unsigned char)rlen,
                                0x01,
                                0x00,
                                (unsigned char)(blen >> 8),
                                (unsigned char)blen};
        unsigned char elen[2] = {(unsigned char)(exts.len >> 8), (unsigned char)exts.len};

        body[34] = 0;    /* session id */
        body[35] = 0x00; /* cipher suites: 2 bytes */
        body[36] = 0x02;
        body[37] = 0x13; /* TLS_AES_128_GCM_SHA256 */
        body[38] = 0x01;
        body[39] = 0x01; /* one compression method: null */
        body[40] = 0x00;
        tbuf_append(&hello, (const char *)rec, sizeof(rec));
        tbuf_append(&hello, (const char *)body, sizeof(body));
        tbuf_append(&hello, (const char *)elen, sizeof(elen));
        tbuf_append(&hello, exts.data, exts.len);
    }
    it_start_tls_origin(t, origin_handler_simple, NULL);
    {
        const char *const args[] = {"--connect-ports", origin_port_arg(t, ports, sizeof(ports)),
                                    "--policy-dir", dir, NULL};
        it_start_proxy(t, args);
    }
    rc = raw_connect_tunnel(t, origin_port(t->origin));
    assert_int_equal(write(rc->fd, hello.data, hello.len), (ssize_t)hello.len);
    assert_true(rawclient_wait_closed(rc, 5000));
    rawclient_close(rc);
    line = it_access_line(t, "method=CONNECT", NULL);
    it_assert_access_field(line, "term", "PT");
    it_assert_access_field(line, "error", "tls_protocol_error");
    snprintf(sent, sizeof(sent), "%d", connect_head(origin_port(t->origin), head, sizeof(head)));
    it_assert_access_field(line, "sent", sent); /* the hello was held, not relayed */
    free(line);
    assert_true(sluiceproc_log_wait(t->env->proxy, "does not read as one ClientHello", 5000));
    tbuf_free(&exts);
    tbuf_free(&hello);
}

/* CONNECT to a port outside --connect-ports is refused with 403 and never connected. */
static void test_connect_port_denied(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct rawresp r = {0};
    char req[256];

    it_start_origin(t, echo_handler, NULL);
    it_start_proxy(t, NULL); /* default list: 443 only */
    rc = it_raw(t);
    connect_head(origin_port(t->origin), req, sizeof(req));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 403);
    it_assert_sluice_error(&r, 403, NULL, 0);
    assert_true(rawclient_wait_closed(rc, 5000));
    assert_int_equal(origin_accepted(t->origin), 0);
    it_expect_access(t, "method=CONNECT", "status=403", NULL);
    rawresp_free(&r);
    rawclient_close(rc);
}

/* Bytes flow both ways through a plain CONNECT tunnel and are counted in the log. */
static void test_connect_tunnel_bytes(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct tbuf got = {0};
    char ports[16], *line;
    char data[100000];
    size_t i;

    for (i = 0; i < sizeof(data); i++)
        data[i] = (char)('A' + i % 23);
    it_start_origin(t, echo_handler, NULL);
    {
        const char *const args[] = {"--connect-ports", origin_port_arg(t, ports, sizeof(ports)),
                                    NULL};

        it_start_proxy(t, args);
    }
    rc = raw_connect_tunnel(t, origin_port(t->origin));
    assert_int_equal(rawclient_send(rc, data, sizeof(data)), 0);
    assert_int_equal(rawclient_read_exact(rc, &got, sizeof(data), 10000), sizeof(data));
    assert_memory_equal(got.data, data, sizeof(data));
    rawclient_close(rc);
    /* Both sides ended in order: the code of a complete exchange, and no error. */
    line = it_access_line(t, "method=CONNECT", NULL);
    it_assert_access_field(line, "status", "200");
    it_assert_access_field(line, "term", "--");
    /* The CONNECT head (two 5-digit ports make it 63 bytes) and the data. */
    it_assert_access_field(line, "sent", "100063");
    it_assert_access_field(line, "received", "100039"); /* the 200 head and the echo */
    assert_null(strstr(line, " error="));
    free(line);
    tbuf_free(&got);
}

/* What the half-close origin saw, and the size of its answer. */
struct halfclose_state {
    atomic_size_t answer; /* bytes the origin sends once the client's side ended */
    atomic_size_t got;    /* bytes the origin read before the end */
    atomic_bool in_order; /* every byte read was the pattern's */
    atomic_bool ended;    /* the origin read the end of the client's side */
};

/* The byte at offset i of the test pattern (one that shows a lost or reordered chunk). */
static char halfclose_byte(size_t i)
{
    return (char)('a' + (i * 7 + i / 4096) % 26);
}

/* Reads the client's bytes to their end, then answers and closes at once. */
static void halfclose_handler(struct origin_conn *c)
{
    struct halfclose_state *s = c->arg;
    char buf[16384];
    size_t got = 0, size;
    char *answer;
    ssize_t n;

    for (int i = 0; i < 10000 && (n = oconn_read(c, buf, sizeof(buf), 10000)) > 0; i++) {
        for (ssize_t j = 0; j < n; j++)
            if (buf[j] != halfclose_byte(got + (size_t)j))
                atomic_store(&s->in_order, false);
        got += (size_t)n;
    }
    atomic_store(&s->got, got);
    if (n != 0)
        return;
    atomic_store(&s->ended, true);
    size = atomic_load(&s->answer);
    if ((answer = malloc(size)) == NULL)
        return;
    for (size_t i = 0; i < size; i++)
        answer[i] = halfclose_byte(i);
    (void)oconn_write(c, answer, size); /* then the handler returns: the origin closes */
    free(answer);
}

/*
 * A half-close goes through a tunnel both ways with nothing lost: the client sends its
 * bytes and shuts its side in one go, the origin reads them to their end, answers and
 * closes at once.  The sizes sit around the 16 KiB a tunnel reads at once after its
 * peer's end showed, so the last bytes come with the end, just before it, and after it.
 */
static void test_connect_tunnel_half_close(void **state)
{
    static const size_t sizes[] = {1, 16383, 16384, 16385, 300000};
    struct itcase *t = *state;
    struct halfclose_state hs = {0};
    char ports[16], *line;

    it_start_origin(t, halfclose_handler, &hs);
    {
        const char *const args[] = {"--connect-ports", origin_port_arg(t, ports, sizeof(ports)),
                                    NULL};

        it_start_proxy(t, args);
    }
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t size = sizes[k], answer = sizes[sizeof(sizes) / sizeof(sizes[0]) - 1 - k];
        struct rawclient *rc;
        struct tbuf got = {0};
        char *data = malloc(size);

        assert_non_null(data);
        for (size_t i = 0; i < size; i++)
            data[i] = halfclose_byte(i);
        atomic_store(&hs.answer, answer);
        atomic_store(&hs.got, 0);
        atomic_store(&hs.in_order, true);
        atomic_store(&hs.ended, false);
        rc = raw_connect_tunnel(t, origin_port(t->origin));
        assert_int_equal(rawclient_send(rc, data, size), 0);
        assert_int_equal(shutdown(rc->fd, SHUT_WR), 0);
        assert_int_equal(rawclient_read_exact(rc, &got, answer, 10000), answer);
        for (size_t i = 0; i < answer; i++)
            if (got.data[i] != halfclose_byte(i))
                fail_msg("answer of %zu bytes differs at byte %zu", answer, i);
        assert_true(rawclient_wait_closed(rc, 5000));
        assert_true(atomic_load(&hs.ended));
        assert_int_equal(atomic_load(&hs.got), size);
        assert_true(atomic_load(&hs.in_order));
        rawclient_close(rc);
        line = it_access_line(t, "method=CONNECT", NULL);
        it_assert_access_field(line, "term", "--");
        free(line);
        tbuf_free(&got);
        free(data);
    }
}

/* An idle tunnel is closed after --timeout-tunnel. */
static void test_connect_tunnel_idle_timeout(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct tbuf got = {0};
    char ports[16], *line;
    uint64_t t0;
    uint64_t waited;

    it_start_origin(t, echo_handler, NULL);
    {
        const char *const args[] = {"--connect-ports", origin_port_arg(t, ports, sizeof(ports)),
                                    "--timeout-tunnel", "1s", NULL};

        it_start_proxy(t, args);
    }
    rc = raw_connect_tunnel(t, origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, "x"), 0);
    assert_int_equal(rawclient_read_exact(rc, &got, 1, 5000), 1);
    t0 = tio_now_ms();
    assert_true(rawclient_wait_closed(rc, 5000));
    waited = tio_now_ms() - t0;
    fprintf(stderr, "idle tunnel closed after %llu ms\n", (unsigned long long)waited);
    assert_true(waited >= 800 && waited < 3000);
    rawclient_close(rc);
    line = it_access_line(t, "method=CONNECT", NULL);
    it_assert_access_field(line, "term", "cT");
    free(line);
    tbuf_free(&got);
}

/* Reads one byte, then resets the connection. */
static void reset_after_byte_handler(struct origin_conn *c)
{
    char b;

    if (oconn_read(c, &b, 1, 10000) == 1)
        c->reset = true;
}

/*
 * An upstream that resets a tunnel cuts the client off with a reset too, and the access
 * line says so: term=ST and error=connection_terminated, at the default level.
 */
static void test_connect_tunnel_upstream_reset(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    char ports[16], *line, b;

    it_start_origin(t, reset_after_byte_handler, NULL);
    {
        const char *const args[] = {"--connect-ports", origin_port_arg(t, ports, sizeof(ports)),
                                    NULL};

        it_start_proxy(t, args);
    }
    rc = raw_connect_tunnel(t, origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, "x"), 0);
    assert_int_equal(tio_wait(rc->fd, POLLIN, 5000), 1);
    errno = 0;
    assert_true(recv(rc->fd, &b, 1, 0) < 0);
    assert_int_equal(errno, ECONNRESET);
    rawclient_close(rc);
    line = it_access_line(t, "method=CONNECT", NULL);
    it_assert_access_field(line, "status", "200");
    it_assert_access_field(line, "term", "ST");
    it_assert_access_field(line, "error", "connection_terminated");
    free(line);
}

/* What the upgrade origin saw. */
struct ws_state {
    atomic_bool upgrade_seen; /* Upgrade: websocket and Connection: upgrade arrived */
};

/* Answers an upgrade with 101 and a greeting, then echoes. */
static void ws_handler(struct origin_conn *c)
{
    struct ws_state *s = c->arg;

    if (oconn_read_head(c, 10000) == 0)
        return;
    if (httpmsg_field_has_token(c->head.data, c->head.len, "Upgrade", "websocket") &&
        httpmsg_field_has_token(c->head.data, c->head.len, "Connection", "upgrade"))
        atomic_store(&s->upgrade_seen, true);
    if (oconn_writes(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                        "hello-from-origin") != 0)
        return;
    echo_handler(c);
}

/* Answers a WebSocket upgrade with a switch to h2c, as a confused or hostile origin might. */
static void h2c_switch_handler(struct origin_conn *c)
{
    if (oconn_read_head(c, 10000) == 0)
        return;
    (void)oconn_writes(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
                          "Connection: Upgrade\r\n\r\n");
    (void)oconn_wait_close(c, 10000);
}

/*
 * A 101 to another protocol than the WebSocket the client asked for is a 502
 * (http_upgrade_failed), not a tunnel: what would follow is traffic sluice cannot read.
 */
static void test_upgrade_to_other_protocol_refused(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct rawresp r = {0};
    char req[512], type[64], *line;

    it_start_origin(t, h2c_switch_handler, NULL);
    it_start_proxy(t, NULL);
    rc = it_raw(t);
    snprintf(req, sizeof(req),
             "GET http://origin.test:%u/ws HTTP/1.1\r\nHost: origin.test:%u\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
             origin_port(t->origin), origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 502);
    it_assert_sluice_error(&r, 502, type, sizeof(type));
    assert_string_equal(type, "http_upgrade_failed");
    rawresp_free(&r);
    rawclient_close(rc);
    line = it_access_line(t, "/ws\"", NULL);
    it_assert_access_field(line, "status", "502");
    it_assert_access_field(line, "error", "http_upgrade_failed");
    free(line);
}

/* Upgrade: websocket gets the 101 through, then bytes flow both ways. */
static void test_websocket_upgrade(void **state)
{
    struct itcase *t = *state;
    struct ws_state s;
    struct rawclient *rc;
    struct rawresp r = {0};
    struct tbuf got = {0};
    char req[512];
    char big[65536];
    size_t i;

    atomic_init(&s.upgrade_seen, false);
    for (i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 31 + 7);
    it_start_origin(t, ws_handler, &s);
    it_start_proxy(t, NULL);
    rc = it_raw(t);
    snprintf(req, sizeof(req),
             "GET http://origin.test:%u/ws HTTP/1.1\r\nHost: origin.test:%u\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
             origin_port(t->origin), origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 101);
    assert_true(atomic_load(&s.upgrade_seen));
    assert_true(rawresp_has_token(&r, "Upgrade", "websocket"));
    assert_true(rawresp_has_token(&r, "Connection", "upgrade"));
    assert_int_equal(rawclient_read_exact(rc, &got, 17, 5000), 17);
    assert_memory_equal(got.data, "hello-from-origin", 17);
    tbuf_reset(&got);
    assert_int_equal(rawclient_sends(rc, "ping-1"), 0);
    assert_int_equal(rawclient_read_exact(rc, &got, 6, 5000), 6);
    assert_memory_equal(got.data, "ping-1", 6);
    tbuf_reset(&got);
    assert_int_equal(rawclient_send(rc, big, sizeof(big)), 0);
    assert_int_equal(rawclient_read_exact(rc, &got, sizeof(big), 10000), sizeof(big));
    assert_memory_equal(got.data, big, sizeof(big));
    rawclient_close(rc);
    it_expect_access(t, "status=101", NULL);
    rawresp_free(&r);
    tbuf_free(&got);
}

/* CONNECT to an allowed port where nothing listens, or to an unknown name: 502. */
static void test_connect_upstream_failures_502(void **state)
{
    struct itcase *t = *state;
    uint16_t port = 0;
    int lfd = tio_listen("127.0.0.1", 1, &port);
    char ports[32];
    int i;

    assert_true(lfd >= 0);
    close(lfd); /* now refused */
    snprintf(ports, sizeof(ports), "443,%u", port);
    {
        const char *const args[] = {"--connect-ports", ports, NULL};

        it_start_proxy(t, args);
    }
    for (i = 0; i < 2; i++) {
        struct rawclient *rc = it_raw(t);
        struct rawresp r = {0};
        char req[256];

        if (i == 0)
            snprintf(req, sizeof(req), "CONNECT origin.test:%u HTTP/1.1\r\nHost: x\r\n\r\n", port);
        else
            snprintf(req, sizeof(req), "CONNECT nosuch.test:443 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_int_equal(rawclient_sends(rc, req), 0);
        assert_int_equal(rawclient_response(rc, &r, false, 10000), 502);
        it_assert_sluice_error(&r, 502, NULL, 0);
        assert_true(rawclient_wait_closed(rc, 5000));
        rawresp_free(&r);
        rawclient_close(rc);
    }
    it_expect_access(t, "method=CONNECT", "status=502", "term=SC", NULL);
    it_expect_access(t, "method=CONNECT", "status=502", "term=SN", NULL);
}

/* Bytes sent right behind the CONNECT head, before the 200 arrives, are not lost. */
static void test_connect_early_data(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct rawresp r = {0};
    struct tbuf got = {0};
    char ports[16];
    char req[256];

    it_start_origin(t, echo_handler, NULL);
    {
        const char *const args[] = {"--connect-ports", origin_port_arg(t, ports, sizeof(ports)),
                                    NULL};

        it_start_proxy(t, args);
    }
    rc = it_raw(t);
    snprintf(req, sizeof(req), "CONNECT origin.test:%u HTTP/1.1\r\nHost: x\r\n\r\nearly-bytes",
             origin_port(t->origin));
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, true, 10000), 200);
    assert_int_equal(rawclient_read_exact(rc, &got, 11, 5000), 11);
    assert_memory_equal(got.data, "early-bytes", 11);
    rawresp_free(&r);
    tbuf_free(&got);
    rawclient_close(rc);
}

/* Runs the cases, each with its own environment and proxy. */
#define PIPELINED_BODY (4u * 1024 * 1024)

/* Answers the first request of a connection with PIPELINED_BODY bytes of 'b'. */
static void big_response_handler(struct origin_conn *c)
{
    static char body[PIPELINED_BODY];

    if (oconn_read_head(c, 10000) == 0)
        return;
    origin_event(c->origin); /* the GET is here; its answer is about to flow */
    memset(body, 'b', sizeof(body));
    (void)oconn_respond(c, 200, NULL, body, sizeof(body));
}

/*
 * A CONNECT pipelined behind a GET whose large response is still on its way to a client
 * that reads slowly: the 200 of the CONNECT comes after the last byte of that response,
 * never in the middle of it.
 */
static void test_connect_pipelined_after_response(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct rawresp r = {0};
    char ports[16], req[512];
    uint16_t port;

    it_start_origin(t, big_response_handler, NULL);
    {
        const char *const args[] = {"--connect-ports", origin_port_arg(t, ports, sizeof(ports)),
                                    NULL};

        it_start_proxy(t, args);
    }
    port = origin_port(t->origin);
    rc = it_raw(t);
    snprintf(req, sizeof(req),
             "GET http://origin.test:%u/big HTTP/1.1\r\nHost: origin.test\r\n\r\n"
             "CONNECT origin.test:%u HTTP/1.1\r\nHost: origin.test:%u\r\n\r\n",
             port, port, port);
    assert_int_equal(rawclient_sends(rc, req), 0);
    /* Not reading until the GET is at the origin: its answer then flows while the CONNECT
     * already waits in sluice behind it. */
    assert_true(origin_wait_events(t->origin, 1, 10000));
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
    assert_int_equal(r.body.len, PIPELINED_BODY);
    assert_null(memmem(r.body.data, r.body.len, "HTTP/1.1", 8));
    rawresp_free(&r);
    assert_int_equal(rawclient_response(rc, &r, true, 10000), 200);
    assert_true(strncmp(r.head.data, "HTTP/1.1 200 Connection established", 35) == 0);
    rawresp_free(&r);
    rawclient_close(rc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_tls_verified, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_connect_sni_logged_split_hello, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_connect_port_denied, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_connect_sni_other_host, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_connect_sni_not_a_host_name, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_connect_hello_two_names, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_connect_tunnel_bytes, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_connect_tunnel_half_close, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_connect_tunnel_upstream_reset, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_connect_tunnel_idle_timeout, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_websocket_upgrade, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_to_other_protocol_refused, it_setup,
                                        it_teardown),
        cmocka_unit_test_setup_teardown(test_connect_upstream_failures_502, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_connect_early_data, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_connect_pipelined_after_response, it_setup,
                                        it_teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    it_select_cases(); /* SLUICE_CASE=name runs one case */
    rc = cmocka_run_group_tests_name("integration_connect", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
