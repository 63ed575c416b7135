/* Unit tests for src/clientcap.c: connections and shared memory counted per client address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "sluice/clientcap.h"

/* Fills *ss with ip (IPv4 or IPv6 text) and port. */
static const struct sockaddr *addr_of(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(ip, ':') == NULL) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
    }
    return (const struct sockaddr *)ss;
}

/* A client gets max connections, not one more; others are counted apart; release frees. */
static void test_cap_per_address(void **state)
{
    struct clientcap *c = clientcap_new(2);
    struct sockaddr_storage a, b;

    (void)state;
    assert_non_null(c);
    assert_true(clientcap_take(c, addr_of(&a, "192.0.2.1", 1000)));
    assert_true(clientcap_take(c, addr_of(&a, "192.0.2.1", 1001)));
    assert_false(clientcap_take(c, addr_of(&a, "192.0.2.1", 1002)));
    assert_int_equal(clientcap_count(c, addr_of(&a, "192.0.2.1", 0)), 2);
    assert_true(clientcap_take(c, addr_of(&b, "192.0.2.2", 1000)));
    clientcap_release(c, addr_of(&a, "192.0.2.1", 1000));
    assert_true(clientcap_take(c, addr_of(&a, "192.0.2.1", 1003)));
    clientcap_release(c, addr_of(&a, "192.0.2.1", 0));
    clientcap_release(c, addr_of(&a, "192.0.2.1", 0));
    clientcap_release(c, addr_of(&b, "192.0.2.2", 0));
    assert_int_equal(clientcap_count(c, addr_of(&a, "192.0.2.1", 0)), 0);
    clientcap_release(c, addr_of(&a, "192.0.2.1", 0)); /* one too many: no underflow */
    assert_int_equal(clientcap_count(c, addr_of(&a, "192.0.2.1", 0)), 0);
    clientcap_free(c);
}

/*
 * An IPv6 client is its /64: other addresses in it share the count; the IPv4-mapped form
 * of an IPv4 client is that client.
 */
static void test_ipv6_by_prefix(void **state)
{
    struct clientcap *c = clientcap_new(2);
    struct sockaddr_storage a;

    (void)state;
    assert_true(clientcap_take(c, addr_of(&a, "2001:db8:1:2::1", 1)));
    assert_true(clientcap_take(c, addr_of(&a, "2001:db8:1:2:ffff::9", 1)));
    assert_false(clientcap_take(c, addr_of(&a, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", 1)));
    assert_true(clientcap_take(c, addr_of(&a, "2001:db8:1:3::1", 1)));
    assert_true(clientcap_take(c, addr_of(&a, "198.51.100.7", 1)));
    assert_true(clientcap_take(c, addr_of(&a, "::ffff:198.51.100.7", 1)));
    assert_false(clientcap_take(c, addr_of(&a, "198.51.100.7", 2)));
    clientcap_free(c);
}

/* A cap of 0 lets nothing through and keeps nothing for it. */
static void test_cap_zero(void **state)
{
    struct clientcap *c = clientcap_new(0);
    struct sockaddr_storage a;

    (void)state;
    assert_false(clientcap_take(c, addr_of(&a, "192.0.2.1", 1)));
    assert_int_equal(clientcap_count(c, addr_of(&a, "192.0.2.1", 1)), 0);
    clientcap_free(c);
}

/*
 * Shared memory: a client is charged up to max, not a byte more, apart from its
 * connections and from other clients; an IPv6 /64 is one client; a refund gives room
 * back; what a client holds outlives its connections and is gone once refunded.
 */
static void test_bytes_per_address(void **state)
{
    struct clientcap *c = clientcap_new(1);
    struct sockaddr_storage a, b;
    const struct sockaddr *a1 = addr_of(&a, "192.0.2.1", 1000);

    (void)state;
    assert_true(clientcap_take(c, a1));
    assert_true(clientcap_charge(c, a1, 10, 16));
    assert_true(clientcap_charge(c, a1, 6, 16));
    assert_false(clientcap_charge(c, a1, 1, 16));
    assert_int_equal(clientcap_bytes(c, a1), 16);
    assert_true(clientcap_charge(c, addr_of(&b, "192.0.2.2", 1), 16, 16));
    assert_false(clientcap_charge(c, addr_of(&b, "192.0.2.2", 1), 1, 16));
    assert_false(clientcap_charge(c, addr_of(&b, "192.0.2.3", 1), 17, 16)); /* alone too big */
    assert_int_equal(clientcap_bytes(c, &(struct sockaddr){.sa_family = AF_INET}), 0);
    assert_false(clientcap_charge(c, addr_of(&b, "192.0.2.3", 1), UINT64_MAX, UINT64_MAX - 1));
    assert_false(clientcap_take(c, a1)); /* bytes take no connection slot, nor give one */
    clientcap_release(c, a1);
    assert_int_equal(clientcap_bytes(c, a1), 16); /* still held after its connections */
    clientcap_refund(c, a1, 10);
    assert_true(clientcap_charge(c, a1, 10, 16));
    clientcap_refund(c, a1, 20); /* one too many: no underflow */
    assert_int_equal(clientcap_bytes(c, a1), 0);
    assert_true(clientcap_charge(c, addr_of(&a, "2001:db8:1:2::1", 1), 8, 16));
    assert_false(clientcap_charge(c, addr_of(&a, "2001:db8:1:2:ffff::9", 1), 9, 16));
    assert_true(clientcap_charge(c, addr_of(&a, "2001:db8:1:3::1", 1), 9, 16));
    clientcap_refund(c, addr_of(&a, "2001:db8:1:2::7", 1), 8);
    assert_int_equal(clientcap_bytes(c, addr_of(&a, "2001:db8:1:2::1", 1)), 0);
    clientcap_refund(c, addr_of(&a, "2001:db8:1:3::1", 1), 9);
    clientcap_refund(c, addr_of(&b, "192.0.2.2", 1), 16);
    assert_int_equal(clientcap_bytes(c, addr_of(&b, "192.0.2.2", 1)), 0);
    clientcap_free(c); /* LeakSanitizer: every entry went when it held nothing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_per_address),
        cmocka_unit_test(test_ipv6_by_prefix),
        cmocka_unit_test(test_cap_zero),
        cmocka_unit_test(test_bytes_per_address),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
