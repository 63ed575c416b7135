/*
 * Large bodies streamed through sluice each way (256 MiB by default, generated on the
 * fly, never held in memory), compared by SHA-256 computed on both ends.
 * $SLUICE_IT_BIG_MIB sets the size in MiB.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <signal.h>
#include <stdatomic.h>

#include <openssl/evp.h>

#include "httpmsg.h"
#include "itcommon.h"

#define BIG_BLOCK 65536

/* A stream of pseudo-random bytes with a running SHA-256 of what was taken from it. */
struct pattern {
    uint64_t x;                     /* xorshift64 state */
    unsigned char block[BIG_BLOCK]; /* current block */
    size_t pos;                     /* bytes of block already taken */
    uint64_t left;                  /* bytes still to produce */
    EVP_MD_CTX *md;                 /* hash of the bytes taken */
};

/* A running SHA-256. */
static EVP_MD_CTX *sha_new(void)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    if (md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        md = NULL;
    }
    return md;
}

/* Finishes md into hex (65 bytes) and frees it. */
static void sha_done(EVP_MD_CTX *md, char hex[65])
{
    unsigned char d[32];
    unsigned int n = 0;
    unsigned i;

    hex[0] = '\0';
    if (EVP_DigestFinal_ex(md, d, &n) == 1 && n == 32) {
        for (i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
    }
    EVP_MD_CTX_free(md);
}

/* Prepares a stream of size bytes. */
static bool pattern_init(struct pattern *p, uint64_t seed, uint64_t size)
{
    p->x = seed | 1;
    p->pos = BIG_BLOCK;
    p->left = size;
    p->md = sha_new();
    return p->md != NULL;
}

/* Takes up to cap bytes into out; returns how many (0 at the end). */
static size_t pattern_take(struct pattern *p, unsigned char *out, size_t cap)
{
    size_t n;

    if (p->pos == BIG_BLOCK) {
        size_t i;

        for (i = 0; i < BIG_BLOCK; i += 8) {
            p->x ^= p->x << 13;
            p->x ^= p->x >> 7;
            p->x ^= p->x << 17;
            memcpy(p->block + i, &p->x, 8);
        }
        p->pos = 0;
    }
    n = BIG_BLOCK - p->pos;
    if (n > cap)
        n = cap;
    if (n > p->left)
        n = (size_t)p->left;
    memcpy(out, p->block + p->pos, n);
    EVP_DigestUpdate(p->md, out, n);
    p->pos += n;
    p->left -= n;
    return n;
}

/* Size of the transfers in bytes. */
static uint64_t big_size(void)
{
    const char *env = getenv("SLUICE_IT_BIG_MIB");
    unsigned long mib = env != NULL ? strtoul(env, NULL, 10) : 256;

    return (uint64_t)(mib > 0 ? mib : 256) << 20;
}

/* What the origin sent or received, for the test thread to compare. */
struct big_state {
    uint64_t size;
    char origin_hex[65];     /* hash of what the origin sent (download) */
    atomic_bool origin_done; /* origin_hex is final */
};

/* Streams size bytes as one Content-Length response. */
static void download_handler(struct origin_conn *c)
{
    struct big_state *s = c->arg;
    struct pattern *p = malloc(sizeof(*p));
    unsigned char buf[BIG_BLOCK];
    char head[128];

    if (p == NULL || !pattern_init(p, 0x9e3779b97f4a7c15ull, s->size)) {
        free(p);
        return;
    }
    if (oconn_read_head(c, 10000) == 0)
        goto out;
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n\r\n",
             (unsigned long long)s->size);
    if (oconn_writes(c, head) != 0)
        goto out;
    while (p->left > 0 && !origin_stopping(c->origin)) {
        size_t n = pattern_take(p, buf, sizeof(buf));

        if (oconn_write(c, buf, n) != 0)
            goto out;
    }
out:
    sha_done(p->md, s->origin_hex);
    atomic_store(&s->origin_done, p->left == 0);
    free(p);
}

/* The client side of the download: hash and count. */
struct sink {
    EVP_MD_CTX *md;
    uint64_t bytes;
};

/* CURLOPT_WRITEFUNCTION feeding the hash. */
static size_t sink_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct sink *k = arg;
    size_t n = size * nmemb;

    EVP_DigestUpdate(k->md, ptr, n);
    k->bytes += n;
    return n;
}

/* A 256 MiB download arrives whole: same length, same SHA-256. */
static void test_big_download(void **state)
{
    struct itcase *t = *state;
    struct big_state s = {.size = big_size()};
    struct sink k = {.md = sha_new()};
    struct itcurl *c;
    char url[128];
    char hex[65];
    uint64_t t0;
    uint64_t ms;
    CURLcode rc;

    assert_non_null(k.md);
    atomic_init(&s.origin_done, false);
    it_start_origin(t, download_handler, &s);
    it_start_proxy(t, NULL);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, sink_write_cb);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &k);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, 100000L);
    t0 = tio_now_ms();
    rc = itcurl_perform(c, it_url(t, "/big", url, sizeof(url)));
    ms = tio_now_ms() - t0;
    sha_done(k.md, hex);
    fprintf(stderr, "download: %llu bytes in %llu ms (curl %d %s)\n", (unsigned long long)k.bytes,
            (unsigned long long)ms, rc, c->errbuf);
    assert_int_equal(rc, CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    assert_int_equal(k.bytes, s.size);
    itcurl_free(c);
    /* The origin finishes hashing right after its last write. */
    origin_stop(t->origin);
    t->origin = NULL;
    assert_true(atomic_load(&s.origin_done));
    assert_string_equal(hex, s.origin_hex);
    it_expect_access(t, "status=200", "/big", NULL);
}

/* Reads a Content-Length body, hashing it, and answers with the hash. */
static void upload_handler(struct origin_conn *c)
{
    EVP_MD_CTX *md = sha_new();
    unsigned char buf[BIG_BLOCK];
    uint64_t want;
    uint64_t got = 0;
    char hex[65];
    char body[160];
    int n;

    if (md == NULL)
        return;
    if (oconn_read_head(c, 10000) == 0 ||
        httpmsg_framing(c->head.data, c->head.len, false, false, &want) != HTTPMSG_LENGTH) {
        EVP_MD_CTX_free(md);
        return;
    }
    while (got < want && !origin_stopping(c->origin)) {
        size_t cap = want - got < sizeof(buf) ? (size_t)(want - got) : sizeof(buf);
        ssize_t r = oconn_read(c, buf, cap, 10000);

        if (r <= 0)
            break;
        EVP_DigestUpdate(md, buf, (size_t)r);
        got += (uint64_t)r;
    }
    sha_done(md, hex);
    n = snprintf(body, sizeof(body), "%llu %s", (unsigned long long)got, hex);
    (void)oconn_respond(c, 200, NULL, body, (size_t)n);
}

/* CURLOPT_READFUNCTION producing the pattern. */
static size_t pattern_read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    return pattern_take(arg, (unsigned char *)buf, size * nitems);
}

/* A 256 MiB upload arrives whole: same length, same SHA-256. */
static void test_big_upload(void **state)
{
    struct itcase *t = *state;
    uint64_t size = big_size();
    struct pattern *p = malloc(sizeof(*p));
    struct itcurl *c;
    char url[128];
    char hex[65];
    char expect[160];
    uint64_t t0;
    uint64_t ms;
    CURLcode rc;

    assert_non_null(p);
    assert_true(pattern_init(p, 0x2545f4914f6cdd1dull, size));
    it_start_origin(t, upload_handler, NULL);
    it_start_proxy(t, NULL);
    c = itcurl_new(t->proxy_port);
    assert_non_null(c);
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_READFUNCTION, pattern_read_cb);
    curl_easy_setopt(c->h, CURLOPT_READDATA, p);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, 100000L);
    itcurl_add_header(c, "Expect:");
    t0 = tio_now_ms();
    rc = itcurl_perform(c, it_url(t, "/upload", url, sizeof(url)));
    ms = tio_now_ms() - t0;
    sha_done(p->md, hex);
    fprintf(stderr, "upload: %llu bytes in %llu ms (curl %d %s), origin says %s\n",
            (unsigned long long)(size - p->left), (unsigned long long)ms, rc, c->errbuf,
            tbuf_str(&c->body));
    assert_int_equal(rc, CURLE_OK);
    assert_int_equal(itcurl_status(c), 200);
    snprintf(expect, sizeof(expect), "%llu %s", (unsigned long long)size, hex);
    assert_string_equal(tbuf_str(&c->body), expect);
    itcurl_free(c);
    free(p);
    it_expect_access(t, "method=POST", "status=200", NULL);
}

/* Runs the cases, each with its own environment and proxy. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_big_download, it_setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_big_upload, it_setup, it_teardown),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    it_select_cases(); /* SLUICE_CASE=name runs one case */
    rc = cmocka_run_group_tests_name("integration_bigbody", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
