/*
 * The capture store on its own: files named by their SHA-256 holding the bytes kept, a
 * body sent twice kept once, the bound per body, the bound on memory over every body at
 * once and one client's share of it, eviction oldest first (a body sent again counting
 * as new), leftovers of a crash
 * removed, a store that cannot be made refused with its path, and nothing kept while
 * the store is closed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <event2/buffer.h>

#include "sluice/capture.h"
#include "sluice/clientcap.h"

/* A scratch directory per case. */
struct fixture {
    char dir[64];
    char store[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/sluice-capture-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[200];

    capture_close();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* Opens the store of f with max_bytes; asserts it opened. */
static void open_store(struct fixture *f, uint64_t max_bytes)
{
    const struct capture_options opt = {.dir = f->store, .max_bytes = max_bytes};
    char err[300];

    if (capture_open(&opt, err, sizeof(err)) != 0)
        fail_msg("capture_open: %s", err);
}

/* Captures the len bytes at p as one body (limit bytes kept) into *ref. */
static void capture(const void *p, size_t len, size_t limit, struct capture_ref *ref)
{
    struct capture_body b = {0};

    capture_body_begin(&b, limit, "gzip", CAPTURE_LENGTH_UNKNOWN, NULL);
    capture_body_add(&b, p, len);
    capture_body_finish(&b, ref);
}

/* The path of the file of hash in f's store. */
static const char *file_of(const struct fixture *f, const char *hash, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%.2s/%s", f->store, hash, hash);
    return out;
}

/* True when the file of hash is there. */
static bool stored(const struct fixture *f, const char *hash)
{
    char path[300];
    struct stat st;

    return stat(file_of(f, hash, path, sizeof(path)), &st) == 0;
}

/* The file of a body is named by its hash and holds its bytes; the record names both. */
static void test_capture_file_named_by_hash(void **state)
{
    struct fixture *f = *state;
    struct capture_ref ref, again;
    char path[300], buf[16];
    FILE *in;

    open_store(f, 1 << 20);
    capture("hello", 5, 1024, &ref);
    assert_true(ref.present);
    assert_false(ref.lost);
    assert_false(ref.truncated);
    assert_int_equal(ref.bytes, 5);
    assert_string_equal(ref.codings, "gzip");
    assert_string_equal(ref.sha256,
                        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    capture("hello", 5, 1024, &again);
    assert_string_equal(again.sha256, ref.sha256);
    capture_close(); /* writes what is queued */
    in = fopen(file_of(f, ref.sha256, path, sizeof(path)), "rb");
    assert_non_null(in);
    assert_int_equal(fread(buf, 1, sizeof(buf), in), 5);
    fclose(in);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(capture_store_bytes(), 5); /* kept once */
    assert_int_equal(capture_memory_bytes(), 0);
}

/*
 * A body past the bound is kept to it and marked truncated, its hash that of what was
 * kept; bytes added from an evbuffer are copied, not taken; an empty body is nothing.
 */
static void test_capture_bound_per_body(void **state)
{
    struct fixture *f = *state;
    struct capture_body b = {0};
    struct capture_ref ref, whole;
    struct evbuffer *buf = evbuffer_new();
    char data[3000];

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)('a' + i % 26);
    open_store(f, 1 << 20);
    capture_body_begin(&b, 1000, NULL, CAPTURE_LENGTH_UNKNOWN, NULL);
    evbuffer_add(buf, data, 1500);
    capture_body_add_evbuffer(&b, buf, 1500);
    assert_int_equal(evbuffer_get_length(buf), 1500);
    /* Kept to its bound, the body went to the writer at once: no memory held after. */
    assert_true(b.sealed);
    assert_null(b.data);
    capture_body_add(&b, data + 1500, 1500);
    capture_body_finish(&b, &ref);
    assert_true(ref.present && ref.truncated && !ref.lost);
    assert_int_equal(ref.bytes, 1000);
    assert_string_equal(ref.codings, "");
    capture(data, 1000, 1000, &whole);
    assert_false(whole.truncated);
    assert_string_equal(whole.sha256, ref.sha256);

    capture_body_begin(&b, 1000, NULL, CAPTURE_LENGTH_UNKNOWN, NULL);
    capture_body_finish(&b, &ref);
    assert_false(ref.present);
    evbuffer_free(buf);
}

/*
 * Many bodies at once never hold more than CAPTURE_MEMORY_MAX: past it a body is kept
 * cut short, and the memory comes back when they end.
 */
static void test_capture_memory_bound(void **state)
{
    struct fixture *f = *state;
    enum { N = 80, MIB = 1 << 20, STEP = 64 * 1024 };
    struct capture_body *b = calloc(N, sizeof(*b));
    char *chunk = malloc(STEP);
    unsigned whole = 0;

    assert_non_null(b);
    assert_non_null(chunk);
    memset(chunk, 'x', STEP);
    open_store(f, 1ull << 30);
    for (int i = 0; i < N; i++)
        capture_body_begin(&b[i], MIB, NULL, CAPTURE_LENGTH_UNKNOWN, NULL);
    for (int step = 0; step < MIB / STEP; step++)
        for (int i = 0; i < N; i++) {
            capture_body_add(&b[i], chunk, STEP);
            assert_true(capture_memory_bytes() <= CAPTURE_MEMORY_MAX);
        }
    for (int i = 0; i < N; i++) {
        assert_int_equal(b[i].seen, MIB);
        whole += b[i].len == MIB;
        assert_true(b[i].len == MIB || b[i].short_of_memory);
    }
    assert_true(whole >= 32 && whole < N);
    {
        struct capture_ref ref;
        int cut = 0;
        while (cut < N && b[cut].len == MIB)
            cut++;
        if (cut == N)
            fail_msg("no body was cut short");
        capture_body_finish(&b[cut], &ref);
        assert_true(ref.present && ref.truncated);
    }
    for (int i = 0; i < N; i++)
        capture_body_reset(&b[i]);
    capture_close();
    assert_int_equal(capture_memory_bytes(), 0);
    free(chunk);
    free(b);
}

/*
 * Memory follows the bytes that come, never the bytes a head promises: 64 bodies that
 * announce 1 MiB take nothing until their bytes come; with 600 KiB each they hold all of
 * CAPTURE_MEMORY_MAX, and the next body is short of memory at its first byte (nothing
 * kept, its record "lost") while those go on to their end whole.  Once one ends, there is
 * room again.  A known length bounds the room: "hello" of 5 bytes is sealed at 5, whole.
 */
static void test_capture_memory_follows_bytes(void **state)
{
    struct fixture *f = *state;
    enum { N = CAPTURE_MEMORY_MAX >> 20, MIB = 1 << 20, SENT = 600 * 1024 };
    struct capture_body *b = calloc(N + 2, sizeof(*b));
    char *mib = malloc(MIB);
    struct capture_ref ref;

    assert_non_null(b);
    assert_non_null(mib);
    memset(mib, 'm', MIB);
    open_store(f, 1ull << 30);
    for (int i = 0; i < N; i++)
        assert_true(capture_body_begin(&b[i], MIB, NULL, i == 0 ? 2u * MIB : MIB, NULL));
    assert_int_equal(capture_memory_bytes(), 0);
    for (int i = 0; i < N; i++) {
        capture_body_add(&b[i], mib, SENT);
        assert_false(capture_body_short(&b[i]));
    }
    assert_int_equal(capture_memory_bytes(), CAPTURE_MEMORY_MAX);
    assert_true(capture_body_begin(&b[N], MIB, NULL, 5, NULL));
    capture_body_add(&b[N], "hello", 5);
    assert_true(capture_body_short(&b[N]));
    assert_int_equal(b[N].len, 0);
    capture_body_finish(&b[N], &ref);
    assert_true(ref.present && ref.lost);
    /* Those under way have their room: each goes on to its bound. */
    capture_body_add(&b[1], mib, MIB - SENT);
    assert_false(capture_body_short(&b[1]));
    capture_body_finish(&b[1], &ref); /* its bytes go to the writer, and their memory */
    assert_true(ref.present && !ref.lost && !ref.truncated && ref.bytes == MIB);
    for (int i = 0; i < 400 && capture_memory_bytes() > CAPTURE_MEMORY_MAX - MIB; i++) {
        const struct timespec ms = {0, 5 * 1000 * 1000};
        nanosleep(&ms, NULL); /* the writer frees the memory of what it wrote */
    }
    assert_true(capture_body_begin(&b[N + 1], MIB, NULL, 5, NULL));
    capture_body_add(&b[N + 1], "hello", 5);
    assert_false(capture_body_short(&b[N + 1]));
    assert_true(b[N + 1].sealed); /* its length reached: sealed at once */
    capture_body_finish(&b[N + 1], &ref);
    assert_true(ref.present && !ref.lost && !ref.truncated && ref.bytes == 5);
    assert_false(capture_body_short(NULL));
    for (int i = 0; i < N + 2; i++)
        capture_body_reset(&b[i]);
    capture_close();
    assert_int_equal(capture_memory_bytes(), 0);
    free(mib);
    free(b);
}

/* Sleeps a few milliseconds, so that the next file is newer than the last. */
static void tick(void)
{
    const struct timespec ms = {0, 5 * 1000 * 1000};
    nanosleep(&ms, NULL);
}

/*
 * Past the store's bound the oldest bodies go first, down to 90% of it; a body sent
 * again counts as new; a start counts what is there and removes a crash's temporary files.
 */
/* Fills *sin with 192.0.2.last. */
static const struct sockaddr *client_of(struct sockaddr_in *sin, unsigned last)
{
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(0xc0000200u | last);
    return (const struct sockaddr *)sin;
}

/*
 * A client's share: 16 bodies of client A that stop after 600 KiB of 1 MiB hold its
 * share (16 MiB, a quarter of the memory); its next body is short at its first byte
 * (nothing kept, "lost", the 503 names the share), while client B's body is kept whole
 * and a body with no share is kept too.  Once one of A's bodies ends, A has room again;
 * when all end, the share and the memory are back to 0.
 */
static void test_capture_client_share(void **state)
{
    struct fixture *f = *state;
    enum { N = 16, MIB = 1 << 20, SENT = 600 * 1024, SHARE = N * MIB };
    struct clientcap *clients = clientcap_new(256);
    struct sockaddr_in a_sin, b_sin;
    const struct capture_share a = {clients, client_of(&a_sin, 1), capture_client_share(256)};
    const struct capture_share b_share = {clients, client_of(&b_sin, 2), SHARE};
    struct capture_body *b = calloc(N + 3, sizeof(*b));
    char *mib = malloc(MIB);
    struct capture_ref ref;

    assert_non_null(clients);
    assert_non_null(b);
    assert_non_null(mib);
    memset(mib, 's', MIB);
    open_store(f, 1ull << 30);
    for (int i = 0; i < N; i++) {
        assert_true(capture_body_begin(&b[i], MIB, NULL, MIB, &a));
        capture_body_add(&b[i], mib, SENT);
        assert_false(capture_body_short(&b[i]));
    }
    assert_int_equal(a.max, SHARE); /* a quarter, at the default cap */
    assert_int_equal(clientcap_bytes(clients, a.client), SHARE);
    assert_true(capture_body_begin(&b[N], MIB, NULL, 5, &a));
    capture_body_add(&b[N], "hello", 5);
    assert_true(capture_body_short(&b[N]));
    assert_string_equal(capture_body_short_why(&b[N]), CAPTURE_SHARE_WHY);
    capture_body_finish(&b[N], &ref);
    assert_true(ref.present && ref.lost);
    /* Another client, and a body charged to no client, are not held back. */
    assert_true(capture_body_begin(&b[N + 1], MIB, NULL, MIB, &b_share));
    capture_body_add(&b[N + 1], mib, MIB);
    assert_false(capture_body_short(&b[N + 1]));
    capture_body_finish(&b[N + 1], &ref);
    assert_true(ref.present && !ref.lost && !ref.truncated && ref.bytes == MIB);
    assert_int_equal(clientcap_bytes(clients, b_share.client), 0); /* the writer's now */
    assert_true(capture_body_begin(&b[N + 2], MIB, NULL, 5, NULL));
    capture_body_add(&b[N + 2], "world", 5);
    assert_false(capture_body_short(&b[N + 2]));
    assert_string_equal(capture_body_short_why(&b[N + 2]), CAPTURE_FULL_WHY);
    /* One of A's ends: its share has room for a body again. */
    capture_body_finish(&b[0], &ref);
    assert_true(ref.present && !ref.lost && ref.bytes == SENT); /* it ended there */
    assert_int_equal(clientcap_bytes(clients, a.client), SHARE - MIB);
    capture_body_reset(&b[N]);
    assert_true(capture_body_begin(&b[N], MIB, NULL, 5, &a));
    capture_body_add(&b[N], "again", 5);
    assert_false(capture_body_short(&b[N]));
    for (int i = 0; i < N + 3; i++)
        capture_body_reset(&b[i]);
    assert_int_equal(clientcap_bytes(clients, a.client), 0);
    capture_close();
    assert_int_equal(capture_memory_bytes(), 0);
    clientcap_free(clients);
    free(mib);
    free(b);
    /* The share grows with the cap on connections per client, within the whole. */
    assert_int_equal(capture_client_share(1), CAPTURE_MEMORY_MAX / 4);
    assert_int_equal(capture_client_share(384), CAPTURE_MEMORY_MAX / 8 * 3);
    assert_int_equal(capture_client_share(512), CAPTURE_MEMORY_MAX / 2);
    assert_int_equal(capture_client_share(1024), CAPTURE_MEMORY_MAX / 2);
    assert_int_equal(capture_client_share(1000000), CAPTURE_MEMORY_MAX / 2);
}

static void test_capture_eviction_oldest_first(void **state)
{
    struct fixture *f = *state;
    enum { N = 8, SIZE = 20 * 1024 };
    struct capture_ref ref[N];
    char data[SIZE], path[300];

    open_store(f, 100 * 1024);
    for (int i = 0; i < 3; i++) {
        memset(data, 'a' + i, SIZE);
        capture(data, SIZE, SIZE, &ref[i]);
        capture_close(); /* written now, and in order */
        tick();
        open_store(f, 100 * 1024);
    }
    assert_int_equal(capture_store_bytes(), 3 * SIZE);
    /* Body 0 again: it is used now, so 1 and 2 are the oldest. */
    memset(data, 'a', SIZE);
    capture(data, SIZE, SIZE, &ref[0]);
    capture_close();
    tick();
    /* A crash's temporary file goes at the next start. */
    snprintf(path, sizeof(path), "%s/tmp/leftover.1", f->store);
    {
        FILE *t = fopen(path, "w");
        assert_non_null(t);
        fclose(t);
    }
    open_store(f, 100 * 1024);
    assert_int_equal(access(path, F_OK), -1);
    for (int i = 3; i < N; i++) {
        memset(data, 'a' + i, SIZE);
        capture(data, SIZE, SIZE, &ref[i]);
        capture_close();
        tick();
        open_store(f, 100 * 1024);
    }
    /* 8 bodies of 20 KiB against 100 KiB: evicted down to 90 KiB as they came. */
    assert_true(capture_store_bytes() <= 100 * 1024);
    assert_false(stored(f, ref[1].sha256));
    assert_false(stored(f, ref[2].sha256));
    assert_true(stored(f, ref[N - 1].sha256));
    assert_true(stored(f, ref[N - 2].sha256));
    for (int i = 3; i < N; i++)
        if (!stored(f, ref[i].sha256) && stored(f, ref[0].sha256))
            fail_msg("body %d went before body 0, which was sent again later", i);
}

/*
 * A body whose write fails after it was queued: the store's directory removed while sluice
 * runs is made again and the body written; a second sluice on the same store is refused,
 * and so is a directory others may read.
 */
static void test_capture_mends_and_locks(void **state)
{
    struct fixture *f = *state;
    const struct capture_options opt = {.dir = f->store, .max_bytes = 1 << 20};
    struct capture_ref ref;
    char cmd[300], err[400];
    int pipefd[2];
    pid_t child;
    const uint64_t lost_before = capture_lost(); /* an earlier case loses one on purpose */

    open_store(f, 1 << 20);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'/*", f->store);
    assert_int_equal(system(cmd), 0);
    capture("mended", 6, 100, &ref);
    assert_true(ref.present && !ref.lost);
    capture_close();
    assert_true(stored(f, ref.sha256));
    assert_int_equal(capture_lost(), lost_before);

    /* Another process holding the store's lock: this one is refused. */
    open_store(f, 1 << 20);
    assert_int_equal(pipe(pipefd), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char c;
        close(pipefd[1]);
        /* The child inherited the locked descriptor; it keeps the lock while the parent
         * closes its own copy, until the pipe closes. */
        (void)!read(pipefd[0], &c, 1);
        _exit(0);
    }
    close(pipefd[0]);
    capture_close(); /* the child's copy of the descriptor still holds the lock */
    assert_int_equal(capture_open(&opt, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "another sluice keeps its bodies there"));
    close(pipefd[1]);
    assert_int_equal(waitpid(child, NULL, 0), child);
    open_store(f, 1 << 20); /* free again */
    capture_close();

    assert_int_equal(chmod(f->store, 0755), 0);
    assert_int_equal(capture_open(&opt, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "chmod 700"));
}

/* A store that cannot be made is refused, naming the path; closed, nothing is kept. */
static void test_capture_refused_and_closed(void **state)
{
    struct fixture *f = *state;
    const struct capture_options opt = {.dir = f->store, .max_bytes = 1 << 20};
    struct capture_body b = {0};
    struct capture_ref ref;
    char err[300];
    FILE *file = fopen(f->store, "w"); /* a file where the directory should be */

    assert_non_null(file);
    fclose(file);
    assert_int_equal(capture_open(&opt, err, sizeof(err)), -1);
    assert_non_null(strstr(err, f->store));
    assert_false(capture_enabled());
    capture_body_begin(&b, 100, NULL, CAPTURE_LENGTH_UNKNOWN, NULL);
    assert_false(b.active);
    capture_body_add(&b, "x", 1);
    capture_body_finish(&b, &ref);
    assert_false(ref.present);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_capture_file_named_by_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_bound_per_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_memory_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_memory_follows_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_client_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_eviction_oldest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_mends_and_locks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_refused_and_closed, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
