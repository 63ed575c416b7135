/* Unit tests for src/request.c: one normalised form for every spelling of a host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/http1.h"
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

/* Parses one request head into *r; returns request_from_head's result. */
static int request_of(const char *msg, struct request *r, struct request_error *err)
{
    struct http1_limits lim;
    struct http1_parser p;
    struct http1_head h;
    struct http1_field f[16];

    http1_limits_default(&lim);
    http1_parser_init(&p, HTTP1_REQUEST, &lim, &h, f, 16);
    assert_true(http1_parse_head(&p, msg, strlen(msg)) > 0);
    return request_from_head(msg, &h, r, err);
}

/* "head" in lower case is not HEAD: a standard method in another case is refused, so
 * sluice and an origin that folds the case never frame the same response differently. */
static void test_method_case(void **state)
{
    static const char *const refused[] = {"head", "Head", "get", "Post", "cOnnect", "patch"};
    struct request r;
    struct request_error err;
    char msg[256];

    (void)state;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        snprintf(msg, sizeof(msg), "%s http://origin.test/ HTTP/1.1\r\nHost: origin.test\r\n\r\n",
                 refused[i]);
        memset(&err, 0, sizeof(err));
        if (request_of(msg, &r, &err) != -1)
            fail_msg("method '%s' should be refused", refused[i]);
        assert_int_equal(err.status, 400);
    }
    assert_int_equal(
        request_of("HEAD http://origin.test/ HTTP/1.1\r\nHost: origin.test\r\n\r\n", &r, &err), 0);
    assert_true(r.is_head);
    assert_false(r.is_connect);
    /* An extension method keeps its own case and is neither HEAD nor CONNECT. */
    assert_int_equal(
        request_of("Purge http://origin.test/ HTTP/1.1\r\nHost: origin.test\r\n\r\n", &r, &err), 0);
    assert_false(r.is_head);
    assert_string_equal(r.method, "Purge");
    assert_int_equal(
        request_of("CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test\r\n\r\n", &r, &err), 0);
    assert_true(r.is_connect);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_host_table),
        cmocka_unit_test(test_normalize_host_length),
        cmocka_unit_test(test_method_case),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
