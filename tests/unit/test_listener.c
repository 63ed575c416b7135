/* Unit tests for src/listener.c: parsing listening addresses, Unix sockets among them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/un.h>
#include <unistd.h>

#include "sluice/listener.h"

/* The path of a parsed Unix listener. */
static const char *unix_path(const struct listener_addr *a)
{
    assert_int_equal(a->ss.ss_family, AF_UNIX);
    return ((const struct sockaddr_un *)(const void *)&a->ss)->sun_path;
}

/* A full path is taken as it is; a bare name goes in the runtime directory. */
static void test_unix_paths(void **state)
{
    struct listener_addr a, b;
    const char *errstr = NULL;
    char text[160];

    (void)state;
    assert_int_equal(listener_parse("unix:/run/x/sluice.sock", &a, &errstr), 0);
    assert_string_equal(unix_path(&a), "/run/x/sluice.sock");
    listener_format(&a, text, sizeof(text));
    assert_string_equal(text, "unix:/run/x/sluice.sock");

    assert_int_equal(setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1), 0);
    assert_int_equal(listener_parse("unix:sluice.sock", &b, &errstr), 0);
    assert_string_equal(unix_path(&b), "/run/user/1000/sluice.sock");
    /* The same socket however it is spelled is the same listener. */
    assert_int_equal(listener_parse("unix:/run/user/1000/sluice.sock", &a, &errstr), 0);
    assert_true(listener_same(&a, &b));
    assert_int_equal(listener_parse("unix:/run/user/1000/other.sock", &a, &errstr), 0);
    assert_false(listener_same(&a, &b));

    /* Without XDG_RUNTIME_DIR, a user who is not root gets a directory of their own. */
    assert_int_equal(unsetenv("XDG_RUNTIME_DIR"), 0);
    assert_int_equal(setenv("XDG_CACHE_HOME", "/home/u/.cache", 1), 0);
    assert_int_equal(listener_parse("unix:sluice.sock", &b, &errstr), 0);
    assert_string_equal(unix_path(&b),
                        geteuid() == 0 ? "/run/sluice.sock" : "/home/u/.cache/sluice/sluice.sock");
    assert_int_equal(unsetenv("XDG_CACHE_HOME"), 0);
}

/* What is not a Unix socket path is refused, never cut short. */
static void test_unix_refused(void **state)
{
    static const char *const bad[] = {
        "unix:",          /* no path */
        "unix:a/b.sock",  /* a relative path with a directory */
        "unix:..",        /* not a file name */
        "unix:/a b",      /* a blank, which the command line's ,options could not carry */
        "unix:/a,tool=x", /* an option glued on */
        "unix:/a\tb",     /* a control byte */
    };
    struct listener_addr a;
    const char *errstr;
    char dir[120];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errstr = NULL;
        assert_int_equal(listener_parse(bad[i], &a, &errstr), -1);
        assert_non_null(errstr);
    }
    /* A runtime directory long enough that the name would pass the kernel's 107 bytes. */
    memset(dir, 'd', sizeof(dir) - 1);
    dir[0] = '/';
    dir[sizeof(dir) - 1] = '\0';
    assert_int_equal(setenv("XDG_RUNTIME_DIR", dir, 1), 0);
    errstr = NULL;
    assert_int_equal(listener_parse("unix:sluice.sock", &a, &errstr), -1);
    assert_non_null(strstr(errstr, "107 bytes"));
    assert_int_equal(unsetenv("XDG_RUNTIME_DIR"), 0);
}

/* TCP listeners parse as before, and a Unix one is never the same as one. */
static void test_tcp_unchanged(void **state)
{
    struct listener_addr a, b;
    const char *errstr = NULL;

    (void)state;
    assert_int_equal(listener_parse("127.0.0.1:3128", &a, &errstr), 0);
    assert_int_equal(a.ss.ss_family, AF_INET);
    assert_int_equal(listener_parse("[::1]:3128", &b, &errstr), 0);
    assert_int_equal(b.ss.ss_family, AF_INET6);
    assert_int_equal(listener_parse("unix:/tmp/3128", &b, &errstr), 0);
    assert_false(listener_same(&a, &b));
    assert_int_equal(listener_parse("localhost:3128", &a, &errstr), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unix_paths),
        cmocka_unit_test(test_unix_refused),
        cmocka_unit_test(test_tcp_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
