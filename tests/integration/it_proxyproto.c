/*
 * Gateways behind a load balancer: HAProxy from Debian in front of sluice, sending the
 * PROXY protocol (send-proxy and send-proxy-v2) to a listener that takes it from
 * 127.0.0.1 only.  The client address the header carries is the one the access line
 * shows; a client elsewhere that forges a header is not believed (400, its own address
 * logged); a connection from the balancer without a header is closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "itcommon.h"

#define HAPROXY_BIN "/usr/sbin/haproxy"

/* HAProxy as the case started it. */
struct balancer {
    pid_t pid;
    uint16_t port_v1; /* its frontend whose backend sends version 1 */
    uint16_t port_v2; /* and version 2 */
};

/* The case's HAProxy: stopped by the teardown, so a failing case leaves none behind. */
static struct balancer the_balancer;

/* A port on 127.0.0.1 free right now (bound, read and closed). */
static uint16_t free_port(void)
{
    uint16_t port = 0;
    int fd = tio_listen("127.0.0.1", 1, &port);

    assert_true(fd >= 0);
    close(fd);
    return port;
}

/*
 * Starts HAProxy in the foreground with two TCP frontends relaying to sluice on
 * sluice_port, one with send-proxy, one with send-proxy-v2, and waits (bounded) until
 * both accept.
 */
static void balancer_start(struct itcase *t, uint16_t sluice_port, struct balancer *b)
{
    char cfg[600], text[1200];
    const char *argv[] = {HAPROXY_BIN, "-db", "-f", cfg, NULL};
    posix_spawn_file_actions_t fa;
    char log[600];

    b->port_v1 = free_port();
    b->port_v2 = free_port();
    snprintf(cfg, sizeof(cfg), "%s/haproxy.cfg", t->env->dir);
    snprintf(log, sizeof(log), "%s/haproxy.log", t->env->dir);
    snprintf(text, sizeof(text),
             "global\n  maxconn 200\n"
             "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n"
             "  timeout server 30s\n"
             "frontend v1\n  bind 127.0.0.1:%u\n  default_backend to_sluice_v1\n"
             "frontend v2\n  bind 127.0.0.1:%u\n  default_backend to_sluice_v2\n"
             "backend to_sluice_v1\n  server s 127.0.0.1:%u send-proxy\n"
             "backend to_sluice_v2\n  server s 127.0.0.1:%u send-proxy-v2\n",
             b->port_v1, b->port_v2, sluice_port, sluice_port);
    assert_int_equal(tio_write_file(cfg, text), 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    assert_int_equal(
        posix_spawn(&b->pid, HAPROXY_BIN, &fa, NULL, (char *const *)(uintptr_t)argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 250; i++) {
        int fd1 = tio_connect("127.0.0.1", b->port_v1, 200);
        int fd2 = fd1 >= 0 ? tio_connect("127.0.0.1", b->port_v2, 200) : -1;

        if (fd1 >= 0)
            close(fd1);
        if (fd2 >= 0) {
            close(fd2);
            return;
        }
        if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
            b->pid = 0;
            fail_msg("haproxy exited at start; see %s", log);
        }
        tio_sleep_ms(20);
    }
    fail_msg("haproxy did not accept within 5 s; see %s", log);
}

/* Stops HAProxy by its pid: SIGTERM, a bounded wait, then SIGKILL. */
static void balancer_stop(struct balancer *b)
{
    if (b->pid <= 0)
        return;
    (void)kill(b->pid, SIGTERM);
    for (int i = 0; i < 250; i++) {
        if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
            b->pid = 0;
            return;
        }
        tio_sleep_ms(20);
    }
    (void)kill(b->pid, SIGKILL);
    (void)waitpid(b->pid, NULL, 0);
    b->pid = 0;
}

/* The "ip:port" a connected socket has on its side. */
static void local_addr(int fd, char *out, size_t cap)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    char ip[INET_ADDRSTRLEN];

    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    inet_ntop(AF_INET, &sin.sin_addr, ip, sizeof(ip));
    snprintf(out, cap, "%s:%u", ip, ntohs(sin.sin_port));
}

/* GETs path from the origin through port (from src_ip); checks 200; returns the client. */
static void get_through(struct itcase *t, const char *src_ip, uint16_t port, const char *path,
                        char *client, size_t cap)
{
    struct rawclient *rc = it_raw_from(src_ip, port);
    struct rawresp r = {0};
    char req[200];

    local_addr(rc->fd, client, cap);
    snprintf(req, sizeof(req), "GET http://origin.test:%u%s HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin), path);
    assert_int_equal(rawclient_sends(rc, req), 0);
    assert_int_equal(rawclient_response(rc, &r, false, 10000), 200);
    rawresp_free(&r);
    rawclient_close(rc);
}

/* Starts the origin, and sluice with one listener taking the PROXY protocol from 127.0.0.1. */
static void start_behind_balancer(struct itcase *t)
{
    const char *const args[] = {"--listen", "127.0.0.1:0,proxy-from=127.0.0.1/32", NULL};

    it_start_origin(t, origin_handler_simple, NULL);
    it_start_proxy(t, args);
}

/*
 * Through HAProxy with send-proxy and send-proxy-v2, from 127.0.0.3 and 127.0.0.4: the
 * access line names each client by the address and port it connected to HAProxy from,
 * not HAProxy's own, and requests reach the origin.
 */
static void test_through_haproxy(void **state)
{
    struct itcase *t = *state;
    struct balancer *b = &the_balancer;
    char client[64], *line;

    if (access(HAPROXY_BIN, X_OK) != 0) {
        print_message("haproxy is not installed (%s): skipped\n", HAPROXY_BIN);
        skip();
    }
    start_behind_balancer(t);
    balancer_start(t, t->proxy_port, b);
    get_through(t, "127.0.0.3", b->port_v1, "/v1", client, sizeof(client));
    line = it_access_line(t, "/v1\"", NULL);
    it_assert_access_field(line, "client", client);
    it_assert_access_field(line, "status", "200");
    free(line);
    get_through(t, "127.0.0.4", b->port_v2, "/v2", client, sizeof(client));
    line = it_access_line(t, "/v2\"", NULL);
    it_assert_access_field(line, "client", client);
    free(line);
    balancer_stop(b);
    assert_int_equal(origin_requests(t->origin), 2);
}

/*
 * A client the listener does not take the PROXY protocol from (127.0.0.5) sends a forged
 * header: it is read as HTTP and refused with 400, and the log shows its real address;
 * the same client's plain request is served as coming from itself.
 */
static void test_forged_header_not_believed(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    struct rawresp r = {0};
    char req[300], client[64], *line;

    start_behind_balancer(t);
    rc = it_raw_from("127.0.0.5", t->proxy_port);
    local_addr(rc->fd, client, sizeof(client));
    snprintf(req, sizeof(req),
             "PROXY TCP4 203.0.113.9 127.0.0.1 4444 %u\r\n"
             "GET http://origin.test:%u/forged HTTP/1.1\r\nHost: x\r\n\r\n",
             t->proxy_port, origin_port(t->origin));
    (void)rawclient_sends(rc, req);
    assert_int_equal(rawclient_response(rc, &r, false, 5000), 400);
    rawresp_free(&r);
    rawclient_close(rc);
    line = it_access_line(t, "status=400", NULL);
    it_assert_access_field(line, "client", client);
    free(line);
    assert_false(sluiceproc_log_contains(t->env->proxy, "203.0.113.9"));
    get_through(t, "127.0.0.5", t->proxy_port, "/plain", client, sizeof(client));
    line = it_access_line(t, "/plain\"", NULL);
    it_assert_access_field(line, "client", client);
    free(line);
    assert_int_equal(origin_requests(t->origin), 1);
}

/*
 * From the balancer's address, a connection without a header is closed unanswered: no
 * request is taken on the balancer's own authority.
 */
static void test_balancer_without_header_closed(void **state)
{
    struct itcase *t = *state;
    struct rawclient *rc;
    char req[200];

    start_behind_balancer(t);
    rc = it_raw_from("127.0.0.1", t->proxy_port);
    snprintf(req, sizeof(req), "GET http://origin.test:%u/nohdr HTTP/1.1\r\nHost: x\r\n\r\n",
             origin_port(t->origin));
    (void)rawclient_sends(rc, req);
    assert_true(rawclient_wait_closed(rc, 5000));
    assert_int_equal(rc->in.len, 0);
    rawclient_close(rc);
    for (int i = 0; i < 100 && !sluiceproc_log_contains(t->env->proxy, "PROXY protocol header "
                                                                       "must come first");
         i++)
        tio_sleep_ms(20);
    assert_true(sluiceproc_log_wait(t->env->proxy, "PROXY protocol header must come first", 2000));
    assert_int_equal(origin_requests(t->origin), 0);
}

/* Stops the case's HAProxy, if it runs, then the rest. */
static int balancer_teardown(void **state)
{
    balancer_stop(&the_balancer);
    return it_teardown(state);
}

/* Runs the cases, each with its own environment. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_through_haproxy, it_setup, balancer_teardown),
        cmocka_unit_test_setup_teardown(test_forged_header_not_believed, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_balancer_without_header_closed, it_setup, it_teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    it_select_cases(); /* SLUICE_CASE=name runs one case */
    return cmocka_run_group_tests_name("integration_proxyproto", tests, NULL, NULL);
}
