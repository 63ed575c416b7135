/*
 * Unit tests for what the records say of secrets: every spelling of a secret query
 * parameter someone could use to get a credential into the trail in clear, a cut URL
 * that must not end in half a secret, the keyed hash of secret header fields (equal for
 * equal values, different under another key, whatever the name's case), the key file's
 * checks, and a command line's URL.
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

#include "sluice/http1.h"
#include "sluice/procid.h"
#include "sluice/redact.h"

static const unsigned char key_a[REDACT_KEY_BYTES] = {1, 2, 3};
static const unsigned char key_b[REDACT_KEY_BYTES] = {9, 9, 9};

static int setup(void **state)
{
    char err[200];

    (void)state;
    return redact_configure("X-Team-Secret, x-other", key_a, err, sizeof(err));
}

/* redact_url of in, as a string. */
static const char *url(const char *in)
{
    static char out[512];

    redact_url(in, strlen(in), out, sizeof(out));
    return out;
}

/* Every spelling of a secret parameter is hidden; the rest of the URL is kept. */
static void test_url_spellings(void **state)
{
    static const char *const rows[][2] = {
        {"http://h/p?api_key=S1", "http://h/p?api_key=<redacted>"},
        {"http://h/p?q=1&token=S1&x=2", "http://h/p?q=1&token=<redacted>&x=2"},
        {"http://h/p?TOKEN=S1", "http://h/p?TOKEN=<redacted>"},
        {"http://h/p?%74oken=S1", "http://h/p?%74oken=<redacted>"},
        {"http://h/p?%54%4F%4B%45%4E=S1", "http://h/p?%54%4F%4B%45%4E=<redacted>"},
        {"http://h/p?api+key=S1", "http://h/p?api+key=<redacted>"},
        {"http://h/p?a=1;password=S1", "http://h/p?a=1;password=<redacted>"},
        {"http://h/p?access_token=S1&access_token=S2",
         "http://h/p?access_token=<redacted>&access_token=<redacted>"},
        {"http://h/p#access_token=S1", "http://h/p#access_token=<redacted>"},
        {"http://h/p?x=1#id_token=S1&state=2", "http://h/p?x=1#id_token=<redacted>&state=2"},
        {"http://h/p?X-Amz-Signature=S1&X-Amz-Credential=S2",
         "http://h/p?X-Amz-Signature=<redacted>&X-Amz-Credential=<redacted>"},
        {"http://h/p?code=S1&sig=S2&pwd=S3",
         "http://h/p?code=<redacted>&sig=<redacted>&pwd=<redacted>"},
        {"http://h/p?client_secret=a=b=S1", "http://h/p?client_secret=<redacted>"},
        {"http://user:S1@h/p", "http://user:<redacted>@h/p"},
        /* A user part alone is a token as often as a name (git's https://TOKEN@host). */
        {"https://S1@github.com/o/r", "https://<redacted>@github.com/o/r"},
        /* CONNECT's authority form carries user information too. */
        {"u:S1@h:443", "u:<redacted>@h:443"},
        {"S1@h:443", "<redacted>@h:443"},
        /* A "://" later in the URL is not its scheme: the query before it is read. */
        {"/p?token=S1&u=http://a:b@h", "/p?token=<redacted>&u=http://a:b@h"},
        {"http://h/p?token=S1&u=http://a:b@h", "http://h/p?token=<redacted>&u=http://a:b@h"},
        {"http://user:S1@h:80/p?key=S2", "http://user:<redacted>@h:80/p?key=<redacted>"},
        /* Segment parameters in the path: the servlet session, say. */
        {"http://h/app;jsessionid=S1/x?y=1", "http://h/app;jsessionid=<redacted>/x?y=1"},
        {"/a;v=1;sessionid=S1;x/b", "/a;v=1;sessionid=<redacted>;x/b"},
        {"/a;token=S1", "/a;token=<redacted>"},
        {"/a;;b=1/c;", "/a;;b=1/c;"},
        /* Kept as they are: nothing secret in them. */
        {"http://h/p?q=token", "http://h/p?q=token"},
        {"http://h/token/p?page=2", "http://h/token/p?page=2"},
        {"http://h/p?barcode=1&encode=2", "http://h/p?barcode=1&encode=2"},
        {"http://h/p?token", "http://h/p?token"},
        {"http://h/p?=v&&", "http://h/p?=v&&"},
        {"h:443", "h:443"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *got = url(rows[i][0]);
        if (strcmp(got, rows[i][1]) != 0)
            fail_msg("redact_url(%s) = %s, want %s", rows[i][0], got, rows[i][1]);
        assert_null(strstr(got, "S1"));
    }
}

/* A parameter name too long to be told is taken for a secret's. */
static void test_url_long_name(void **state)
{
    char in[600], out[700];

    (void)state;
    memset(in, 0, sizeof(in));
    strcpy(in, "http://h/p?");
    memset(in + strlen(in), 'a', 300);
    strcat(in, "%74oken=S1");
    redact_url(in, strlen(in), out, sizeof(out));
    assert_null(strstr(out, "S1"));
}

/* However small the room, the output is a cut of the redacted URL: no secret byte leaks. */
static void test_url_cut(void **state)
{
    const char *in = "http://h/p?token=SECRETSECRET&a=1";
    char out[64];

    (void)state;
    for (size_t cap = 0; cap < sizeof(out); cap++) {
        size_t n;
        memset(out, 'Z', sizeof(out));
        n = redact_url(in, strlen(in), out, cap);
        if (cap == 0)
            continue;
        assert_true(n < cap);
        assert_int_equal(strlen(out), n);
        assert_null(strstr(out, "SEC"));
        if (cap >= 4 && n < strlen("http://h/p?token=<redacted>&a=1"))
            assert_string_equal(out + n - 3, "...");
    }
}

/* The record of a head's secret fields from the raw bytes of a request. */
static void scan(const char *head, struct redact_seen *seen)
{
    struct http1_field fields[32];
    struct http1_limits lim;
    struct http1_parser ps;
    struct http1_head h;

    http1_limits_default(&lim);
    http1_parser_init(&ps, HTTP1_REQUEST, &lim, &h, fields, 32);
    assert_true(http1_parse_head(&ps, head, strlen(head)) > 0);
    redact_scan(head, &h, seen);
}

static void test_scan(void **state)
{
    struct redact_seen a, b, c, d;
    char ha[17], hb[17];

    (void)state;
    scan("GET http://h/ HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer T1\r\nCookie: s=1\r\n"
         "Accept: */*\r\nX-API-KEY: K\r\nx-team-secret: Z\r\n\r\n",
         &a);
    assert_int_equal(a.n, 4);
    assert_int_equal(a.more, 0);
    assert_string_equal(redact_name(a.item[0].name), "authorization");
    assert_string_equal(redact_scheme(a.item[0].scheme), "Bearer");
    assert_string_equal(redact_name(a.item[1].name), "cookie");
    assert_string_equal(redact_scheme(a.item[1].scheme), "");
    assert_string_equal(redact_name(a.item[2].name), "x-api-key");
    assert_string_equal(redact_name(a.item[3].name), "x-team-secret");

    /* The same credential under another name's case: the same hash; another: not. */
    scan("GET http://h/ HTTP/1.1\r\nHost: h\r\nAUTHORIZATION: Bearer T1\r\n\r\n", &b);
    scan("GET http://h/ HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer T2\r\n\r\n", &c);
    redact_hash_hex(a.item[0].hash, ha);
    redact_hash_hex(b.item[0].hash, hb);
    assert_string_equal(ha, hb);
    assert_memory_not_equal(a.item[0].hash, c.item[0].hash, REDACT_HASH_BYTES);

    /* Under another key the same credential hashes otherwise. */
    {
        char err[200];
        assert_int_equal(redact_configure("X-Team-Secret, x-other", key_b, err, sizeof(err)), 0);
        scan("GET http://h/ HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer T1\r\n\r\n", &d);
        assert_memory_not_equal(a.item[0].hash, d.item[0].hash, REDACT_HASH_BYTES);
        assert_int_equal(redact_configure("X-Team-Secret, x-other", key_a, err, sizeof(err)), 0);
    }
}

/* More secret fields than the record holds are counted, not dropped silently. */
static void test_scan_more(void **state)
{
    char head[2048] = "GET http://h/ HTTP/1.1\r\nHost: h\r\n";
    struct redact_seen seen;
    size_t len = strlen(head);

    (void)state;
    for (int i = 0; i < REDACT_SEEN_MAX + 3; i++) {
        int n = snprintf(head + len, sizeof(head) - len, "Cookie: c%d=v\r\n", i);
        assert_true(n > 0 && (size_t)n < sizeof(head) - len - 2);
        len += (size_t)n;
    }
    memcpy(head + len, "\r\n", 3);
    scan(head, &seen);
    assert_int_equal(seen.n, REDACT_SEEN_MAX);
    assert_int_equal(seen.more, 3);
}

static void test_schemes(void **state)
{
    static const char *const rows[][2] = {
        {"Basic dTpw", "Basic"},        {"bearer x", "Bearer"}, {"token ghp_x", "token"},
        {"NTLM TlRM", "NTLM"},          {"Foo bar", "other"},   {"abc", ""},
        {"Negotiate YII", "Negotiate"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char head[256];
        struct redact_seen seen;
        snprintf(head, sizeof(head),
                 "GET http://h/ HTTP/1.1\r\nHost: h\r\nAuthorization: %s\r\n\r\n", rows[i][0]);
        scan(head, &seen);
        assert_int_equal(seen.n, 1);
        assert_string_equal(redact_scheme(seen.item[0].scheme), rows[i][1]);
    }
}

static void test_configure_refuses(void **state)
{
    char err[200];

    (void)state;
    assert_int_equal(redact_configure("x-ok, bad name", key_a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bad name"));
    assert_int_equal(redact_check_name("x:y", 3, err, sizeof(err)), -1);
    assert_int_equal(redact_check_name("", 0, err, sizeof(err)), -1);
    assert_int_equal(redact_check_name("x-ok", 4, err, sizeof(err)), 0);
    assert_int_equal(redact_configure("X-Team-Secret, x-other", key_a, err, sizeof(err)), 0);
}

/* The key file: made 0600 when absent, the same key read back, refused when others may read. */
static void test_key_file(void **state)
{
    char dir[] = "/tmp/sluice-redact-XXXXXX", path[64], err[300];
    unsigned char k1[REDACT_KEY_BYTES], k2[REDACT_KEY_BYTES];
    struct stat st;
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/key", dir);
    assert_int_equal(redact_load_key(path, k1, err, sizeof(err)), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, REDACT_KEY_BYTES);
    assert_int_equal(redact_load_key(path, k2, err, sizeof(err)), 0);
    assert_memory_equal(k1, k2, REDACT_KEY_BYTES);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(redact_load_key(path, k2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(path, 0600), 0);
    f = fopen(path, "a");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
    assert_int_equal(redact_load_key(path, k2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a file of 32 bytes"));
    unlink(path);
    rmdir(dir);
}

/* A command line's URLs get the same redaction as a request's. */
static void test_command_line(void **state)
{
    static const char args[] = "curl\0-H\0Authorization: Bearer S1/S1+\0"
                               "https://u:S1@h/p?q=1&%74oken=S1\0--api-key\0S1\0"
                               "-u\0me:S1\0--url=https://S1@h/\0-H\0Cookie: a=S1/b\0";
    static struct procid_proc proc;
    char out[512];

    (void)state;
    memcpy(proc.args, args, sizeof(args) - 1);
    proc.args_len = sizeof(args) - 1;
    procid_command_line(&proc, out, sizeof(out));
    assert_null(strstr(out, "S1"));
    assert_non_null(strstr(out, "https://u:<redacted>@h/p?q=1&%74oken=<redacted>"));
    assert_non_null(strstr(out, "-u me:<redacted>"));
    assert_non_null(strstr(out, "--url=https://<redacted>@h/"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_spellings),     cmocka_unit_test(test_url_cut),
        cmocka_unit_test(test_url_long_name),     cmocka_unit_test(test_scan),
        cmocka_unit_test(test_scan_more),         cmocka_unit_test(test_schemes),
        cmocka_unit_test(test_configure_refuses), cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_command_line),
    };
    return cmocka_run_group_tests_name("unit_redact", tests, setup, NULL);
}
