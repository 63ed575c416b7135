/*
 * The credentials file: lines that sluice passwd makes verify their token and no other;
 * a wrong name or token fails; malformed lines are reported with their line; a file
 * others may read is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sluice/credentials.h"

/* Writes text to a fresh file with mode; returns its path (static storage). */
static const char *write_creds(const char *text, mode_t mode)
{
    static char path[64];
    FILE *f;
    int fd;

    snprintf(path, sizeof(path), "/tmp/sluice-creds-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

/* A made line verifies its own token, and nothing else. */
static void test_line_verifies(void **state)
{
    char line[512], text[1200];
    struct yamldoc_errors errs = {0};
    struct credentials *c;
    const char *path;

    (void)state;
    assert_int_equal(credentials_line("claude-code", "tok-7f3a", line, sizeof(line)), 0);
    assert_int_equal(strncmp(line, "claude-code:scrypt:1024:8:1:", 28), 0);
    assert_null(strstr(line, "tok-7f3a"));
    snprintf(text, sizeof(text), "# users\n\n%s\n", line);
    assert_int_equal(credentials_line("git", "other", line, sizeof(line)), 0);
    strcat(text, line);
    strcat(text, "\n");
    path = write_creds(text, 0600);
    c = credentials_load(path, &errs);
    unlink(path);
    assert_non_null(c);
    assert_int_equal(credentials_count(c), 2);
    assert_true(credentials_verify(c, "claude-code", 11, "tok-7f3a", 8));
    assert_true(credentials_verify(c, "claude-code", 11, "tok-7f3a", 8)); /* remembered */
    assert_false(credentials_verify(c, "claude-code", 11, "tok-7f3b", 8));
    assert_false(credentials_verify(c, "claude-code", 11, "tok-7f3", 7));
    assert_false(credentials_verify(c, "git", 3, "tok-7f3a", 8)); /* another user's token */
    assert_true(credentials_verify(c, "git", 3, "other", 5));
    assert_false(credentials_verify(c, "nobody", 6, "other", 5));
    assert_false(credentials_verify(c, "claude", 6, "tok-7f3a", 8)); /* a prefix of a name */
    credentials_free(c);
}

/* Malformed lines are each reported with their line number. */
static void test_bad_lines(void **state)
{
    static const char *const bad[] = {
        "alpha\n",
        "alpha:bcrypt:16384:8:1:00112233445566778899aabbccddeeff:"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        "alpha:scrypt:1000:8:1:00112233445566778899aabbccddeeff:"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        "alpha:scrypt:16384:8:1:0011:"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        "alpha:scrypt:16384:8:1:00112233445566778899aabbccddeeff:XYZ\n",
        "alpha:scrypt:16384:0:1:00112233445566778899aabbccddeeff:"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct yamldoc_errors errs = {0};
        char text[600];
        const char *path;

        snprintf(text, sizeof(text), "# first\n%s", bad[i]);
        path = write_creds(text, 0600);
        assert_null(credentials_load(path, &errs));
        unlink(path);
        assert_true(errs.count >= 1);
        if (strstr(errs.lines[0], ":2:1: ") == NULL)
            fail_msg("case %zu: %s", i, errs.lines[0]);
        yamldoc_errors_clear(&errs);
    }
}

/* A file others may read is refused, naming the fix. */
static void test_mode_refused(void **state)
{
    struct yamldoc_errors errs = {0};
    char line[512];
    const char *path;

    (void)state;
    assert_int_equal(credentials_line("git", "t", line, sizeof(line)), 0);
    strcat(line, "\n");
    path = write_creds(line, 0644);
    assert_null(credentials_load(path, &errs));
    unlink(path);
    assert_non_null(strstr(errs.lines[0], "readable by others (mode 0644); chmod 600"));
    yamldoc_errors_clear(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_verifies),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_mode_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
