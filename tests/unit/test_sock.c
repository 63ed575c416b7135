/* Unit tests for src/sock.c: the bound on what one read takes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "sluice/sock.h"

/*
 * sock_read_now() never takes more than max, also when the input's free space comes in
 * two pieces that hold more than max between them (a partly filled last chunk, then a
 * new one): the caller's bound on the input holds whatever the peer has queued.
 */
static void test_read_now_bound(void **state)
{
    static char data[64 * 1024];
    static const size_t maxes[] = {1, 100, 1000, 4096, 5000, 20000};
    struct event_base *base = event_base_new();
    int sv[2];

    (void)state;
    assert_non_null(base);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    memset(data, 'x', sizeof(data));
    for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
        struct sock *so = sock_new(base, sv[1]);
        size_t before, n;

        assert_non_null(so);
        assert_true(write(sv[0], data, sizeof(data)) > (ssize_t)(2 * maxes[i]));
        /* 100 bytes leave part of a chunk free: the reservation gets two pieces. */
        assert_int_equal(evbuffer_add(sock_in(so), data, 100), 0);
        before = evbuffer_get_length(sock_in(so));
        n = sock_read_now(so, maxes[i]);
        if (n == 0 || n > maxes[i])
            fail_msg("max %zu: read %zu", maxes[i], n);
        assert_int_equal(evbuffer_get_length(sock_in(so)), before + n);
        /* Take the rest out of the socket, so the next round starts empty. */
        for (int k = 0; k < 100 && sock_read_now(so, sizeof(data)) > 0; k++)
            ;
        evbuffer_drain(sock_in(so), (size_t)-1);
        /* sock_free closes the fd: give it a duplicate to keep the pair's end. */
        sv[1] = dup(sv[1]);
        assert_true(sv[1] >= 0);
        sock_free(so);
    }
    close(sv[0]);
    close(sv[1]);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_now_bound),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
