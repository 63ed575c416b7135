/* Unit tests for src/request.c: one normalised form for every spelling of a host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/request.h"

/* One host as it may appear in a target, and what it must become (NULL: refused). */
struct host_case {
    const char *in;
    bool bracketed;
    const char *out;
    bool is_ipv6;
};

static const struct host_case host_cases[] = {
    {"origin.test", false, "origin.test", false},
    {"ORIGIN.Test", false, "origin.test", false},
    {"origin.test.", false, "origin.test", false},
    {"a_b-c.example", false, "a_b-c.example", false},
    {"127.0.0.1", false, "127.0.0.1", false},
    {"127.0.0.1.", false, "127.0.0.1", false},
    {"2130706433", false, "127.0.0.1", false},
    {"0x7f000001", false, "127.0.0.1", false},
    {"0177.0.0.1", false, "127.0.0.1", false},
    {"127.1", false, "127.0.0.1", false},
    {"0x7f.1", false, "127.0.0.1", false},
    {"::ffff:127.0.0.1", true, "127.0.0.1", false},
    {"::ffff:7f00:1", true, "127.0.0.1", false},
    {"0:0:0:0:0:ffff:7f00:1", true, "127.0.0.1", false},
    {"::1", true, "::1", true},
    {"0::0:1", true, "::1", true},
    {"2001:DB8:0:0:0:0:0:1", true, "2001:db8::1", true},
    {"origin..test", false, NULL, false},
    {".origin.test", false, NULL, false},
    {"origin.test..", false, NULL, false},
    {"..", false, NULL, false},
    {".", false, NULL, false},
    {"a.b", true, NULL, false},
    {"::1", false, NULL, false},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test", false, NULL, false},
};

/* Every case of the table gives its one form, or is refused with a reason. */
static void test_normalize_host_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(host_cases) / sizeof(host_cases[0]); i++) {
        const struct host_case *hc = &host_cases[i];
        char out[REQUEST_HOST_MAX];
        const char *errstr = NULL;
        bool v6 = true;
        int n = request_normalize_host(hc->in, strlen(hc->in), hc->bracketed, out, sizeof(out), &v6,
                                       &errstr);

        if (hc->out == NULL) {
            if (n >= 0)
                fail_msg("'%s' should be refused, got '%s'", hc->in, out);
            assert_non_null(errstr);
            continue;
        }
        if (n < 0)
            fail_msg("'%s' refused: %s", hc->in, errstr);
        assert_string_equal(out, hc->out);
        assert_int_equal((size_t)n, strlen(hc->out));
        assert_int_equal(v6, hc->is_ipv6);
    }
}

/* A name of 253 bytes fits; 254 does not. */
static void test_normalize_host_length(void **state)
{
    char name[300], out[REQUEST_HOST_MAX];
    const char *errstr = NULL;
    bool v6;

    (void)state;
    memset(name, 'a', sizeof(name));
    for (size_t i = 63; i < sizeof(name); i += 64)
        name[i] = '.';
    assert_int_equal(request_normalize_host(name, 253, false, out, sizeof(out), &v6, &errstr), 253);
    assert_int_equal(request_normalize_host(name, 254, false, out, sizeof(out), &v6, &errstr), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_host_table),
        cmocka_unit_test(test_normalize_host_length),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
