/*
 * libFuzzer target for the URL path normaliser.  The input is a request target.  The
 * output must fit in len + 2 bytes, start with '/', carry the input's query unchanged,
 * have no "//", no "." or ".." segment and no %XX that is lower-case or of a character it
 * decodes before the query, and be a fixed point whose second-pass flags are a subset
 * of the first without the resolved ones.  It must also equal what a plain left-to-right
 * implementation with a segment stack (written here, allocating freely) produces, and the
 * flags whose spelling is easy to see must be raised whenever that spelling is present.
 * Any broken invariant abort()s.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/urlpath.h"
#include "fuzzcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The value of hex digit c, or -1. */
static int hexv(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* True for ALPHA DIGIT - . _ ~, the sub-delimiters but ';', ':' and '@': decoded. */
static bool decoded(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '!' || c == '$' || c == '&' || c == '\'' ||
           c == '(' || c == ')' || c == '*' || c == '+' || c == ',' || c == '=' || c == ':' ||
           c == '@';
}

/* One decoded unit of the reference: kind 0 literal byte, 1 kept %XX, 2 bare '%'. */
struct ref_item {
    int kind;
    unsigned char byte;
};

/*
 * Writes the output of segment in[0..n) to out and returns its length; sets *dots to 1 or
 * 2 for a dot segment, 0 otherwise.  Decodes into an array first, then writes.
 */
static size_t ref_segment(const char *in, size_t n, char *out, int *dots)
{
    static const char hex[] = "0123456789ABCDEF";
    struct ref_item *v = malloc((n + 1) * sizeof(*v));
    size_t k = 0, o = 0;
    bool all_dots = true;

    CHECK(v != NULL);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%' && i + 2 < n && hexv((unsigned char)in[i + 1]) >= 0 &&
            hexv((unsigned char)in[i + 2]) >= 0) {
            unsigned char b = (unsigned char)(hexv((unsigned char)in[i + 1]) * 16 +
                                              hexv((unsigned char)in[i + 2]));
            v[k].kind = decoded(b) ? 0 : 1;
            v[k++].byte = b;
            i += 3;
        } else {
            v[k].kind = c == '%' ? 2 : 0;
            v[k++].byte = c;
            i++;
        }
    }
    for (size_t j = 0; j < k; j++) {
        if (!(v[j].kind == 0 && v[j].byte == '.'))
            all_dots = false;
        if (v[j].kind == 0) {
            out[o++] = (char)v[j].byte;
        } else if (v[j].kind == 2 &&
                   !(j + 2 < k && v[j + 1].kind == 0 && hexv(v[j + 1].byte) >= 0 &&
                     v[j + 2].kind == 0 && hexv(v[j + 2].byte) >= 0)) {
            out[o++] = '%';
        } else {
            out[o++] = '%';
            out[o++] = hex[v[j].byte >> 4];
            out[o++] = hex[v[j].byte & 15];
        }
    }
    *dots = all_dots && (k == 1 || k == 2) ? (int)k : 0;
    free(v);
    return o;
}

/*
 * The reference normaliser: a stack of kept segments, left to right, empty segments
 * dropped first.  Writes into a buffer it allocates (*out, owned by the caller) and
 * returns the length.
 */
static size_t ref_normalize(const char *in, size_t len, char **out)
{
    const char *q = len > 0 ? memchr(in, '?', len) : NULL;
    size_t qpos = q != NULL ? (size_t)(q - in) : len;
    size_t start = qpos > 0 && in[0] == '/' ? 1 : 0;
    size_t *stack = malloc((len + 2) * sizeof(*stack)); /* offsets in buf where segments end */
    char *buf = malloc(3 * len + 8), *seg = malloc(3 * len + 8);
    size_t depth = 0, o = 1, s = start;
    bool last_normal = false;

    CHECK(stack != NULL && buf != NULL && seg != NULL);
    buf[0] = '/';
    for (;;) {
        const char *slash = memchr(in + s, '/', qpos - s);
        size_t e = slash != NULL ? (size_t)(slash - in) : qpos;
        int dots;
        size_t n = ref_segment(in + s, e - s, seg, &dots);
        last_normal = false;
        if (dots == 2) {
            if (depth > 0)
                depth--;
        } else if (dots == 0 && n > 0) {
            size_t at = depth > 0 ? stack[depth - 1] : 1;
            memcpy(buf + at, seg, n);
            buf[at + n] = '/';
            stack[depth++] = at + n + 1;
            last_normal = true;
        }
        if (slash == NULL)
            break;
        s = e + 1;
    }
    o = depth > 0 ? stack[depth - 1] : 1;
    if (last_normal)
        o--;
    memcpy(buf + o, in + qpos, len - qpos);
    o += len - qpos;
    free(stack);
    free(seg);
    *out = buf;
    return o;
}

/* True when s[0..n) holds a case-insensitive "%2f" or "%5c". */
static bool has_encoded_slash(const char *s, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++)
        if (s[i] == '%' && ((s[i + 1] == '2' && (s[i + 2] | 0x20) == 'f') ||
                            (s[i + 1] == '5' && (s[i + 2] | 0x20) == 'c')))
            return true;
    return false;
}

/* Checks the path part out[0..plen) of an output for what normal form rules out. */
static void check_path_form(const char *out, size_t plen, unsigned flags)
{
    CHECK(plen >= 1 && out[0] == '/');
    for (size_t i = 0; i < plen; i++) {
        CHECK(out[i] != '?');
        if (out[i] == '/') {
            size_t e = i + 1;
            while (e < plen && out[e] != '/')
                e++;
            /* No empty segment but a final one, no "." or ".." segment anywhere. */
            CHECK(e - i - 1 > 0 || e == plen);
            CHECK(!(e - i - 1 == 1 && out[i + 1] == '.'));
            CHECK(!(e - i - 1 == 2 && out[i + 1] == '.' && out[i + 2] == '.'));
        }
        if (out[i] == '%' && i + 2 < plen && hexv((unsigned char)out[i + 1]) >= 0 &&
            hexv((unsigned char)out[i + 2]) >= 0) {
            int b = hexv((unsigned char)out[i + 1]) * 16 + hexv((unsigned char)out[i + 2]);
            CHECK(!decoded((unsigned char)b));
            CHECK(!(out[i + 1] >= 'a' && out[i + 1] <= 'f'));
            CHECK(!(out[i + 2] >= 'a' && out[i + 2] <= 'f'));
        } else if (out[i] == '%') {
            CHECK(flags & URLPATH_F_BAD_PERCENT);
        }
    }
}

/* Flags whose spelling in the input's path is plain to see must be raised. */
static void check_flags_seen(const char *in, size_t plen, unsigned flags)
{
    if (has_encoded_slash(in, plen))
        CHECK(flags & URLPATH_F_ENCODED_SLASH);
    if (memchr(in, '\\', plen) != NULL)
        CHECK(flags & URLPATH_F_BACKSLASH);
    if (memchr(in, '\0', plen) != NULL)
        CHECK(flags & URLPATH_F_NUL);
    for (size_t i = 0; i < plen; i++)
        if (in[i] == '%' && (i + 2 >= plen || hexv((unsigned char)in[i + 1]) < 0 ||
                             hexv((unsigned char)in[i + 2]) < 0))
            CHECK(flags & URLPATH_F_BAD_PERCENT);
    if (plen >= 3 && in[0] == '/' && in[1] == '.' && in[2] == '.' && (plen == 3 || in[3] == '/'))
        CHECK(flags & URLPATH_F_ABOVE_ROOT);
    if (plen >= 2 && in[0] == '/' && in[1] == '/')
        CHECK(flags & URLPATH_F_LEADING_SLASHES);
}

/*
 * The reading without segment parameters of the normalised path out[0..n) (query at qout):
 * no ';' before its query, the same query, the same segments by count, and -- unless a
 * dot-parameter segment was reported -- none of them empty, "." or "..".
 */
static void check_plain_reading(const char *out, size_t n, size_t qout, unsigned flags)
{
    char *plain = malloc(n + 1);
    size_t slashes_in = 0, slashes_out = 0, pq, seg = 1;
    const char *q;
    int m;

    CHECK(plain != NULL);
    m = urlpath_strip_params(out, n, plain, n + 1);
    CHECK(m >= 1 && (size_t)m <= n && plain[m] == '\0');
    q = memchr(plain, '?', (size_t)m);
    pq = q != NULL ? (size_t)(q - plain) : (size_t)m;
    CHECK((size_t)m - pq == n - qout && memcmp(plain + pq, out + qout, n - qout) == 0);
    CHECK(memchr(plain, ';', pq) == NULL);
    for (size_t i = 0; i < qout; i++)
        slashes_in += out[i] == '/';
    for (size_t i = 0; i < pq; i++)
        slashes_out += plain[i] == '/';
    CHECK(slashes_in == slashes_out);
    for (size_t i = 1; i <= pq && !(flags & URLPATH_F_DOT_PARAM); i++) {
        if (i < pq && plain[i] != '/')
            continue;
        /* plain[seg..i) is a segment; only the last one may be empty (a trailing slash). */
        CHECK(i > seg || i == pq);
        CHECK(!(i - seg == 1 && plain[seg] == '.'));
        CHECK(!(i - seg == 2 && plain[seg] == '.' && plain[seg + 1] == '.'));
        seg = i + 1;
    }
    free(plain);
}

/*
 * The reading with dot segments kept: it fits in size + 2 bytes, starts with '/', has no
 * "//" before its query, and normalises to the normal form out[0..n) of the same input.
 */
static void check_literal_reading(const char *in, size_t size, const char *out, size_t n)
{
    char *lit = malloc(size + 2), *again = malloc(size + 3);
    const char *q;
    size_t lq;
    int m, k;

    CHECK(lit != NULL && again != NULL);
    m = urlpath_literal(in, size, lit, size + 2);
    CHECK(m >= 1 && (size_t)m <= size + 1 && lit[0] == '/' && lit[m] == '\0');
    q = memchr(lit, '?', (size_t)m);
    lq = q != NULL ? (size_t)(q - lit) : (size_t)m;
    for (size_t i = 1; i < lq; i++)
        CHECK(!(lit[i] == '/' && lit[i - 1] == '/'));
    k = urlpath_normalize(lit, (size_t)m, again, size + 3, NULL);
    CHECK(k >= 0 && (size_t)k == n && memcmp(again, out, n) == 0);
    free(lit);
    free(again);
}

/* The whole input is a request target. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t cap = size + 2, qin, qout;
    char *out = malloc(cap), *again = malloc(cap), *ref = NULL, names[160];
    const char *q;
    unsigned f1 = 0, f2 = 0, f3 = 0;
    int n, n2;
    size_t rn;

    CHECK(out != NULL && again != NULL);
    n = urlpath_normalize(in, size, out, cap, &f1);
    CHECK(n >= 1 && (size_t)n <= size + 1 && out[n] == '\0');
    CHECK((f1 & ~URLPATH_AMBIGUOUS) == 0);
    /* The query is the input's, byte for byte. */
    q = size > 0 ? memchr(in, '?', size) : NULL;
    qin = q != NULL ? (size_t)(q - in) : size;
    q = memchr(out, '?', (size_t)n);
    qout = q != NULL ? (size_t)(q - out) : (size_t)n;
    CHECK((size_t)n - qout == size - qin && memcmp(out + qout, in + qin, size - qin) == 0);
    check_path_form(out, qout, f1);
    check_flags_seen(in, qin, f1);
    /* The plain implementation agrees. */
    rn = ref_normalize(in, size, &ref);
    CHECK(rn == (size_t)n && memcmp(ref, out, rn) == 0);
    free(ref);
    /* Fixed point. */
    n2 = urlpath_normalize(out, (size_t)n, again, cap, &f2);
    CHECK(n2 == n && memcmp(out, again, (size_t)n) == 0);
    CHECK((f2 & ~f1) == 0 && (f2 & URLPATH_RESOLVED) == 0);
    /* The exact size fits, one byte less does not, and the flags come either way. */
    CHECK(urlpath_normalize(in, size, again, (size_t)n + 1, NULL) == n);
    CHECK(urlpath_normalize(in, size, again, (size_t)n, &f3) == -1 && f3 == f1);
    CHECK(urlpath_flags_format(f1, names, sizeof(names)) < sizeof(names));
    check_plain_reading(out, (size_t)n, qout, f1);
    check_literal_reading(in, size, out, (size_t)n);
    free(out);
    free(again);
    return 0;
}
