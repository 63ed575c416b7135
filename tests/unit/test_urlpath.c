/*
 * Unit tests for the URL path normaliser: a table of spellings someone could use to get
 * past a path rule, each with the normal form and the ambiguity flags it must give; the
 * fixed-point property over the whole table; buffer sizes; and the flag names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/urlpath.h"

/* One case: an input, its normal form and the flags it raises (lengths allow NUL bytes). */
struct path_case {
    const char *in;
    size_t in_len;
    const char *want;
    size_t want_len;
    unsigned flags;
};

/* A table row from two string literals, which may hold NUL bytes. */
#define ROW(in, want, flags)                                                                       \
    {                                                                                              \
        in, sizeof(in) - 1, want, sizeof(want) - 1, flags                                          \
    }

#define F_ESLASH URLPATH_F_ENCODED_SLASH
#define F_BSLASH URLPATH_F_BACKSLASH
#define F_NUL    URLPATH_F_NUL
#define F_ABOVE  URLPATH_F_ABOVE_ROOT
#define F_PARAM  URLPATH_F_DOT_PARAM
#define F_BADPCT URLPATH_F_BAD_PERCENT
#define F_EMPTY  URLPATH_F_EMPTY_DOTDOT
#define F_OVER   URLPATH_F_OVERLONG
#define F_LEAD   URLPATH_F_LEADING_SLASHES

static const struct path_case cases[] = {
    /* Plain paths, and what is not a path at all. */
    ROW("", "/", 0),
    ROW("/", "/", 0),
    ROW("/a", "/a", 0),
    ROW("/a/", "/a/", 0),
    ROW("/a/b/c", "/a/b/c", 0),
    ROW("a/b", "/a/b", 0),
    ROW("*", "/*", 0),
    ROW("/a%20b", "/a%20b", 0),
    /* Percent-encoded unreserved characters are decoded, the rest upper-cased. */
    ROW("/%74elemetry", "/telemetry", 0),
    ROW("/%74%65%6C%65%6d%65%74%72%79", "/telemetry", 0),
    ROW("/%41%5a%61%7A%30%39%2D%2E%5F%7E", "/AZaz09-._~", 0),
    ROW("/a%3b%3F%23%25%20%2b", "/a%3B%3F%23%25%20+", 0),
    /* ... and so are the sub-delimiters but ';', ':' and '@': servers route on them decoded. */
    ROW("/logs%3Awrite", "/logs:write", 0),
    ROW("/%40me/%21%24%26%27%28%29%2A%2c%3d", "/@me/!$&'()*,=", 0),
    ROW("/%c3%a9", "/%C3%A9", 0),
    ROW("/%252e%252e/x", "/%252e%252e/x", 0),
    /* Encoded slashes and backslashes. */
    ROW("/%2f", "/%2F", F_ESLASH),
    ROW("/a%2Fb", "/a%2Fb", F_ESLASH),
    ROW("/a%5cb", "/a%5Cb", F_ESLASH),
    ROW("/a/%2e%2e%2fb", "/a/..%2Fb", F_ESLASH),
    ROW("/a/%2e%2e%2f/b", "/a/..%2F/b", F_ESLASH),
    ROW("/a/..%5c..%5cb", "/a/..%5C..%5Cb", F_ESLASH),
    ROW("/v1/%2e%2e%2fadmin", "/v1/..%2Fadmin", F_ESLASH),
    ROW("/a%2Fb/../c", "/c", F_ESLASH),
    /* A raw backslash. */
    ROW("/a\\b", "/a\\b", F_BSLASH),
    ROW("/\\telemetry", "/\\telemetry", F_BSLASH),
    ROW("/a/..\\telemetry", "/a/..\\telemetry", F_BSLASH),
    /* NUL, encoded or raw. */
    ROW("/%00", "/%00", F_NUL),
    ROW("/a%00.html", "/a%00.html", F_NUL),
    ROW("/a/%2e%2e%00/b", "/a/..%00/b", F_NUL),
    ROW("/a\0b", "/a\0b", F_NUL),
    /* Malformed percent-encoding. */
    ROW("/%", "/%", F_BADPCT),
    ROW("/a%", "/a%", F_BADPCT),
    ROW("/%4", "/%4", F_BADPCT),
    ROW("/%G0", "/%G0", F_BADPCT),
    ROW("/%0G", "/%0G", F_BADPCT),
    ROW("/a%/b", "/a%/b", F_BADPCT),
    ROW("/a%?b", "/a%?b", F_BADPCT),
    ROW("/%u002e%u002e/x", "/%u002e%u002e/x", F_BADPCT),
    ROW("/%%34", "/%4", F_BADPCT),
    ROW("/%%34%31", "/%2541", F_BADPCT),
    ROW("/%%32%65", "/%252e", F_BADPCT),
    ROW("/%a%62", "/%25ab", F_BADPCT),
    ROW("/%%%34%31", "/%%2541", F_BADPCT),
    ROW("/%%2F", "/%%2F", F_BADPCT | F_ESLASH),
    /* Dot segments, every spelling. */
    ROW("/.", "/", 0),
    ROW("/a/.", "/a/", 0),
    ROW("/a/..", "/", 0),
    ROW("/a/b/..", "/a/", 0),
    ROW("/a/./b", "/a/b", 0),
    ROW("/a/../b", "/b", 0),
    ROW("/./telemetry", "/telemetry", 0),
    ROW("/x/../telemetry", "/telemetry", 0),
    ROW("/v1/../admin", "/admin", 0),
    ROW("/v1/%2e%2e/admin", "/admin", 0),
    ROW("/v1/%2E%2e/admin", "/admin", 0),
    ROW("/v1/.%2e/admin", "/admin", 0),
    ROW("/v1/%2e./admin", "/admin", 0),
    ROW("/a/%2e/b", "/a/b", 0),
    ROW("/%2E", "/", 0),
    ROW("/a/%2E%2E", "/", 0),
    ROW("/./././a", "/a", 0),
    ROW("/a/b/c/../../d", "/a/d", 0),
    ROW("/a/./../b/./c/.", "/b/c/", 0),
    ROW("/a/b/%2e%2E/%2E./c", "/c", 0),
    ROW("/a/../b?x=1", "/b?x=1", 0),
    ROW(".", "/", 0),
    ROW("a/..", "/", 0),
    /* Climbing above the root stays at the root. */
    ROW("/..", "/", F_ABOVE),
    ROW("/../", "/", F_ABOVE),
    ROW("/../a", "/a", F_ABOVE),
    ROW("/a/../../b", "/b", F_ABOVE),
    ROW("/%2e%2e/%2e%2e/x", "/x", F_ABOVE),
    ROW("/v1/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", F_ABOVE),
    ROW("..", "/", F_ABOVE),
    /* Not dot segments. */
    ROW("/.../a", "/.../a", 0),
    ROW("/a/...", "/a/...", 0),
    ROW("/.hidden", "/.hidden", 0),
    ROW("/a/..b/c", "/a/..b/c", 0),
    ROW("/a/b../c", "/a/b../c", 0),
    ROW("/a/.%2e%2e", "/a/...", 0),
    /* Repeated slashes. */
    ROW("/a//", "/a/", 0),
    ROW("/x//telemetry", "/x/telemetry", 0),
    ROW("/a/..//b", "/b", F_LEAD), /* "//b" once resolved: see below */
    ROW("/a//./b", "/a/b", 0),
    ROW("/a//../b", "/b", F_EMPTY),
    ROW("/telemetry//../x", "/x", F_EMPTY),
    ROW("/a//b/../../c", "/c", F_EMPTY),
    ROW("//../a", "/a", F_EMPTY | F_ABOVE | F_LEAD),
    /* A path that starts with "//": a URL parser reads "//v1/admin" as host v1, path /admin. */
    ROW("//telemetry", "/telemetry", F_LEAD),
    ROW("//v1/admin", "/v1/admin", F_LEAD),
    ROW("//x/telemetry", "/x/telemetry", F_LEAD),
    ROW("///telemetry", "/telemetry", F_LEAD),
    ROW("//a///b", "/a/b", F_LEAD),
    ROW("///", "/", F_LEAD),
    ROW("//", "/", F_LEAD),
    ROW("//?q", "/?q", F_LEAD),
    ROW("//%2e%2e/x", "/x", F_EMPTY | F_ABOVE | F_LEAD),
    ROW("/%2F/x", "/%2F/x", F_ESLASH),
    ROW("/?//x", "/?//x", 0),
    /* ... or comes to it once its dot segments are resolved (RFC 3986 5.2.4). */
    ROW("/.//x", "/x", F_LEAD),
    ROW("/a/..//v1/admin", "/v1/admin", F_LEAD),
    ROW("/%2e//telemetry", "/telemetry", F_LEAD),
    ROW("/a/%2E%2e//x", "/x", F_LEAD),
    ROW("/a/..//", "/", F_LEAD),
    ROW("/./x", "/x", 0),
    ROW("/v1/.//x", "/v1/x", 0),
    ROW("/a/../b//c", "/b/c", 0),
    /* Path parameters on dot or empty segments. */
    ROW("/v1/..;/admin", "/v1/..;/admin", F_PARAM),
    ROW("/v1/..;jsessionid=1/admin", "/v1/..;jsessionid=1/admin", F_PARAM),
    ROW("/a/.;x/b", "/a/.;x/b", F_PARAM),
    ROW("/;x/telemetry", "/;x/telemetry", F_PARAM),
    ROW("/a/%2e%2e;/b", "/a/..;/b", F_PARAM),
    ROW("/a/..%3b/b", "/a/..%3B/b", F_PARAM),
    ROW("/a/..;x/../b", "/a/b", F_PARAM),
    ROW("/a;x/b", "/a;x/b", 0),
    ROW("/...;x", "/...;x", 0),
    ROW("/a/b;jsessionid=1", "/a/b;jsessionid=1", 0),
    /* The query is copied unchanged. */
    ROW("?q", "/?q", 0),
    ROW("/?", "/?", 0),
    ROW("?a/../b", "/?a/../b", 0),
    ROW("/a/../b?x=/../y", "/b?x=/../y", 0),
    ROW("/a?%2e%2e%2f%00%", "/a?%2e%2e%2f%00%", 0),
    ROW("/a/./?../.", "/a/?../.", 0),
    ROW("/a%2fb?c%2fd", "/a%2Fb?c%2fd", F_ESLASH),
    /* Bytes >= 0x80 are kept; overlong UTF-8 is flagged. */
    ROW("/caf\xc3\xa9", "/caf\xc3\xa9", 0),
    ROW("/\xff\xfe", "/\xff\xfe", 0),
    ROW("/%c0%ae%c0%ae/x", "/%C0%AE%C0%AE/x", F_OVER),
    ROW("/%e0%80%ae", "/%E0%80%AE", F_OVER),
    ROW("/a%c0%afb", "/a%C0%AFb", F_OVER),
    ROW("/%f0%80%80%ae", "/%F0%80%80%AE", F_OVER),
    ROW("/\xc0\xae\xc0\xae/x", "/\xc0\xae\xc0\xae/x", F_OVER),
    ROW("/%e0%a4%85", "/%E0%A4%85", 0),
    ROW("/%c0%ae%c0%ae/../x", "/x", F_OVER),
};

/* Number of rows in the table. */
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* Prints a byte string with escapes, for failure messages. */
static const char *show(const char *s, size_t n, char *buf, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    }
    buf[o] = '\0';
    return buf;
}

/* Normalises one row and compares output and flags with what the row wants. */
static void check_case(const struct path_case *c)
{
    char out[256], a[512], b[512], w[512], fa[128], fb[128];
    unsigned flags = 0;
    int n = urlpath_normalize(c->in, c->in_len, out, sizeof(out), &flags);

    if (n < 0 || (size_t)n != c->want_len || memcmp(out, c->want, c->want_len) != 0 ||
        out[n] != '\0')
        fail_msg("\"%s\" normalised to \"%s\" (%d), expected \"%s\"",
                 show(c->in, c->in_len, a, sizeof(a)),
                 n < 0 ? "(error)" : show(out, (size_t)n, b, sizeof(b)), n,
                 show(c->want, c->want_len, w, sizeof(w)));
    if (flags != c->flags) {
        urlpath_flags_format(flags, fa, sizeof(fa));
        urlpath_flags_format(c->flags, fb, sizeof(fb));
        fail_msg("\"%s\" gave flags %s, expected %s", show(c->in, c->in_len, a, sizeof(a)), fa, fb);
    }
    if ((size_t)n > c->in_len + 1)
        fail_msg("\"%s\" grew by more than one byte", show(c->in, c->in_len, a, sizeof(a)));
}

/* Every row of the table. */
static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++)
        check_case(&cases[i]);
}

/*
 * A path that comes to "//" once resolved is flagged however deep it goes after: 300
 * segments past "/.//v1/admin" (more than the marks the check keeps), and 300 that ".."
 * takes back, are no way around it.
 */
static void test_leading_slashes_deep(void **state)
{
    static char in[4096], out[4096];
    size_t n = 0;
    unsigned flags = 0;

    (void)state;
    n += (size_t)snprintf(in + n, sizeof(in) - n, "/.//v1/admin");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(in + n, sizeof(in) - n, "/x");
    assert_true(urlpath_normalize(in, n, out, sizeof(out), &flags) > 0);
    assert_true((flags & URLPATH_F_LEADING_SLASHES) != 0);
    n = 0;
    flags = 0;
    n += (size_t)snprintf(in + n, sizeof(in) - n, "/.//v1");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(in + n, sizeof(in) - n, "/x");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(in + n, sizeof(in) - n, "/..");
    n += (size_t)snprintf(in + n, sizeof(in) - n, "/admin");
    assert_true(urlpath_normalize(in, n, out, sizeof(out), &flags) > 0);
    assert_true((flags & URLPATH_F_LEADING_SLASHES) != 0);
}

/* The table is as large as the contract asks and has no row twice. */
static void test_table_size(void **state)
{
    (void)state;
    assert_true(NCASES >= 60);
    for (size_t i = 0; i < NCASES; i++)
        for (size_t j = i + 1; j < NCASES; j++)
            if (cases[i].in_len == cases[j].in_len &&
                memcmp(cases[i].in, cases[j].in, cases[i].in_len) == 0)
                fail_msg("row %zu repeats row %zu", j, i);
}

/*
 * Normalising an output again gives the same bytes and a subset of the flags, without
 * the resolved ones; when no ".." removed a flagged segment, exactly the kept ones.
 */
static void test_fixed_point(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const struct path_case *c = &cases[i];
        char once[256], twice[256], a[512];
        unsigned f1 = 0, f2 = 0;
        int n1 = urlpath_normalize(c->in, c->in_len, once, sizeof(once), &f1);
        int n2;

        assert_true(n1 >= 0);
        n2 = urlpath_normalize(once, (size_t)n1, twice, sizeof(twice), &f2);
        if (n2 != n1 || memcmp(once, twice, (size_t)n1) != 0)
            fail_msg("\"%s\" is not a fixed point", show(once, (size_t)n1, a, sizeof(a)));
        if ((f2 & ~f1) != 0 || (f2 & URLPATH_RESOLVED) != 0)
            fail_msg("\"%s\" gained flags %#x on a second pass (first %#x)",
                     show(c->in, c->in_len, a, sizeof(a)), f2, f1);
    }
}

/* Flags that a second pass keeps, for rows where nothing flagged was removed. */
static void test_fixed_point_kept_flags(void **state)
{
    static const struct {
        const char *in;
        unsigned kept;
    } rows[] = {
        {"/a%2Fb", F_ESLASH},
        {"/a\\b", F_BSLASH},
        {"/%00", F_NUL},
        {"/../a", 0},
        {"/v1/..;/admin", F_PARAM},
        {"/%G0", F_BADPCT},
        {"/%%34%31", 0},
        {"/a//../b", 0},
        {"//v1/admin", 0},
        {"/%c0%ae", F_OVER},
        {"/a%2Fb/../c", 0},
        {"/a/..;x/../b", 0},
        {"/a%2F%00\\/..;/%c0%ae%", F_ESLASH | F_NUL | F_BSLASH | F_PARAM | F_OVER | F_BADPCT},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char once[128], twice[128];
        unsigned f1 = 0, f2 = 0;
        int n1 = urlpath_normalize(rows[i].in, strlen(rows[i].in), once, sizeof(once), &f1);

        assert_true(n1 >= 0);
        assert_int_equal(urlpath_normalize(once, (size_t)n1, twice, sizeof(twice), &f2), n1);
        if (f2 != rows[i].kept)
            fail_msg("\"%s\" -> \"%s\": second pass flags %#x, expected %#x", rows[i].in, once, f2,
                     rows[i].kept);
    }
}

/* The output and its NUL fit exactly; one byte less is refused, and the flags still come. */
static void test_cap_exact(void **state)
{
    char out[16];
    unsigned flags = 0;

    (void)state;
    memset(out, 'x', sizeof(out));
    assert_int_equal(urlpath_normalize("/a/../bc?d", 10, out, 6, &flags), 5);
    assert_string_equal(out, "/bc?d");
    assert_int_equal(out[6], 'x');
    assert_int_equal(urlpath_normalize("/a/../bc?d", 10, out, 5, &flags), -1);
    assert_int_equal(urlpath_normalize("/../bc", 6, out, 3, &flags), -1);
    assert_int_equal(flags, URLPATH_F_ABOVE_ROOT);
    assert_int_equal(urlpath_normalize("", 0, out, 2, NULL), 1);
    assert_string_equal(out, "/");
    assert_int_equal(urlpath_normalize("", 0, out, 1, NULL), -1);
    assert_int_equal(urlpath_normalize("", 0, out, 0, NULL), -1);
    assert_int_equal(urlpath_normalize("/", 1, NULL, 0, NULL), -1);
}

/* Only the final text must fit, not the segments a ".." removes on the way. */
static void test_cap_final_text_only(void **state)
{
    static const char in[] = "/a-rather-long-segment/another-one/../../b";
    char out[3];

    (void)state;
    assert_int_equal(urlpath_normalize(in, sizeof(in) - 1, out, sizeof(out), NULL), 2);
    assert_string_equal(out, "/b");
}

/* len + 2 bytes are always enough, even for a prefixed '/' and a '%' written %25. */
static void test_cap_len_plus_two(void **state)
{
    static const char *const ins[] = {"", "?", "a", "?q=1", "%%34%31", "%a%62", "*", "\\"};
    char out[32];

    (void)state;
    for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
        size_t len = strlen(ins[i]);
        int n = urlpath_normalize(ins[i], len, out, len + 2, NULL);
        assert_true(n >= 0 && (size_t)n <= len + 1);
    }
}

/* The input is read only up to len, and in may be NULL when len is 0. */
static void test_length_respected(void **state)
{
    char out[16];

    (void)state;
    assert_int_equal(urlpath_normalize("/a/..", 3, out, sizeof(out), NULL), 3);
    assert_string_equal(out, "/a/");
    assert_int_equal(urlpath_normalize("/%2", 2, out, sizeof(out), NULL), 2);
    assert_string_equal(out, "/%");
    assert_int_equal(urlpath_normalize(NULL, 0, out, sizeof(out), NULL), 1);
    assert_string_equal(out, "/");
}

/* Flags are ORed in, never cleared. */
static void test_flags_accumulate(void **state)
{
    char out[16];
    unsigned flags = URLPATH_F_NUL;

    (void)state;
    assert_int_equal(urlpath_normalize("/%2f", 4, out, sizeof(out), &flags), 4);
    assert_int_equal(flags, URLPATH_F_NUL | URLPATH_F_ENCODED_SLASH);
    assert_int_equal(urlpath_normalize("/a", 2, out, sizeof(out), &flags), 2);
    assert_int_equal(flags, URLPATH_F_NUL | URLPATH_F_ENCODED_SLASH);
}

/* Every flag has a name; sets are comma-separated; nothing is "none"; text truncates. */
static void test_flags_format(void **state)
{
    char buf[160];

    (void)state;
    assert_int_equal(urlpath_flags_format(0, buf, sizeof(buf)), 4);
    assert_string_equal(buf, "none");
    urlpath_flags_format(URLPATH_F_ENCODED_SLASH | URLPATH_F_ABOVE_ROOT, buf, sizeof(buf));
    assert_string_equal(buf, "encoded-slash,above-root");
    urlpath_flags_format(URLPATH_AMBIGUOUS, buf, sizeof(buf));
    assert_string_equal(buf, "encoded-slash,backslash,nul,above-root,dot-param,bad-percent,"
                             "empty-dotdot,overlong,leading-slashes");
    urlpath_flags_format(1u << 20, buf, sizeof(buf));
    assert_string_equal(buf, "none");
    assert_int_equal(urlpath_flags_format(URLPATH_F_BACKSLASH, buf, 5), 9);
    assert_string_equal(buf, "back");
    assert_int_equal(urlpath_flags_format(URLPATH_F_NUL, NULL, 0), 3);
    for (unsigned bit = 1; bit & URLPATH_AMBIGUOUS; bit <<= 1) {
        urlpath_flags_format(bit, buf, sizeof(buf));
        assert_true(strcmp(buf, "none") != 0 && strchr(buf, ',') == NULL);
    }
}

/* Dot segments stay, decoded; the rest is read as urlpath_normalize reads it. */
static void test_literal(void **state)
{
    static const char *const literal_cases[][2] = {
        {"/admin/../v1/x", "/admin/../v1/x"},
        {"/admin/%2e%2E/v1/x", "/admin/../v1/x"},
        {"//admin//./v1/", "/admin/./v1/"},
        {"/a/..", "/a/.."},
        {"/a/b/", "/a/b/"},
        {"/%761/x%3Ay?q=/../", "/v1/x:y?q=/../"},
        {"a/b", "/a/b"},
        {"", "/"},
        {"?q", "/?q"},
        {"/%%34%31", "/%2541"},
    };
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof(literal_cases) / sizeof(literal_cases[0]); i++) {
        const char *in = literal_cases[i][0];
        int n = urlpath_literal(in, strlen(in), out, strlen(in) + 2);
        if (n < 0 || strcmp(out, literal_cases[i][1]) != 0)
            fail_msg("'%s': expected '%s', got '%s' (%d)", in, literal_cases[i][1],
                     n < 0 ? "" : out, n);
    }
    assert_int_equal(urlpath_literal("/a/../b", 7, out, 8), 7);
    assert_int_equal(urlpath_literal("/a/../b", 7, out, 7), -1);
    assert_int_equal(urlpath_literal("a", 1, out, 3), 2); /* the '/' it adds, and the NUL */
}

/* Segment parameters go, up to the segment's end; the query keeps its ';'. */
static void test_strip_params(void **state)
{
    static const char *const param_cases[][2] = {
        {"/api;v=1/telemetry", "/api/telemetry"},
        {"/api%3Bv/telemetry", "/api/telemetry"},
        {"/api%3bv/telemetry", "/api/telemetry"},
        {"/a;x;y/b;z", "/a/b"},
        {"/a/b?q=1;2", "/a/b?q=1;2"},
        {"/a;x?q;y", "/a?q;y"},
        {"/plain/path", "/plain/path"},
        {"/a%3/b", "/a%3/b"},
        {"/a%3", "/a%3"},
        {"", ""},
    };
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]); i++) {
        int n =
            urlpath_strip_params(param_cases[i][0], strlen(param_cases[i][0]), out, sizeof(out));
        if (n < 0 || strcmp(out, param_cases[i][1]) != 0)
            fail_msg("'%s': expected '%s', got '%s' (%d)", param_cases[i][0], param_cases[i][1],
                     n < 0 ? "" : out, n);
        assert_int_equal((size_t)n, strlen(param_cases[i][1]));
    }
    /* The output and its NUL must fit: 6 bytes of "/a/b;x" give "/a/b" (5 with NUL). */
    assert_int_equal(urlpath_strip_params("/a/b;x", 6, out, 5), 4);
    assert_int_equal(urlpath_strip_params("/a/b;x", 6, out, 4), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_leading_slashes_deep),
        cmocka_unit_test(test_table_size),
        cmocka_unit_test(test_fixed_point),
        cmocka_unit_test(test_fixed_point_kept_flags),
        cmocka_unit_test(test_cap_exact),
        cmocka_unit_test(test_cap_final_text_only),
        cmocka_unit_test(test_cap_len_plus_two),
        cmocka_unit_test(test_length_respected),
        cmocka_unit_test(test_flags_accumulate),
        cmocka_unit_test(test_flags_format),
        cmocka_unit_test(test_strip_params),
        cmocka_unit_test(test_literal),
    };
    return cmocka_run_group_tests_name("unit_urlpath", tests, NULL, NULL);
}
