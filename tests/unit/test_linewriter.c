/*
 * The line writer's queue: items copied into blocks come out whole and in order, from
 * several threads at once; a writer that cannot write (a FIFO nobody reads) lets the
 * queue fill to its bounds, by count and by bytes, and no further: what does not fit is
 * counted lost, and once the reader comes back every item queued is in the file, in order.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/linewriter.h"

/* A directory of its own under /tmp, made per case. */
static int setup_dir(void **state)
{
    char *dir = strdup("/tmp/sluice-linewriter-XXXXXX");

    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    *state = dir;
    return 0;
}

static int teardown_dir(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", (char *)*state);
    assert_int_equal(system(cmd), 0);
    free(*state);
    return 0;
}

/* The whole file at path, NUL-terminated; its length in *len. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0, got;

    assert_non_null(f);
    do {
        if (cap - n < 65536) {
            cap = cap * 2 + 65536;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

struct producer {
    struct linewriter *w;
    unsigned id, lines;
};

/* Queues "T<id> <i> <padding>\n" for i in 0..lines, the padding growing with i. */
static void *produce(void *arg)
{
    struct producer *p = arg;
    char line[2048];

    for (unsigned i = 0; i < p->lines; i++) {
        int n =
            snprintf(line, sizeof(line), "T%u %u %.*s\n", p->id, i, (int)(i % 150),
                     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        linewriter_queue(p->w, line, (size_t)n);
    }
    return NULL;
}

/*
 * Four threads queue 20,000 lines each, of 5 to 160 bytes, into a queue of 100,000: the
 * file has all 80,000, each whole, each thread's in its order; nothing is lost.
 */
static void test_lines_in_order(void **state)
{
    static struct linewriter w = LINEWRITER_INIT;
    char path[256], err[256];
    struct producer p[4];
    pthread_t th[4];
    unsigned next[4] = {0}, total = 0;
    size_t len;
    char *text, *line, *save = NULL;
    const struct linewriter_options opt = {.path = path, .what = "test file", .queue = 100000};

    snprintf(path, sizeof(path), "%s/lines", (char *)*state);
    assert_int_equal(linewriter_open(&w, &opt, "test-writer", err, sizeof(err)), 0);
    for (unsigned i = 0; i < 4; i++) {
        p[i] = (struct producer){.w = &w, .id = i, .lines = 20000};
        assert_int_equal(pthread_create(&th[i], NULL, produce, &p[i]), 0);
    }
    for (unsigned i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    linewriter_close(&w);
    assert_int_equal(linewriter_lost(&w), 0);
    text = read_all(path, &len);
    assert_true(len > 0 && text[len - 1] == '\n');
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        unsigned id, i;
        char *pad;

        assert_int_equal(sscanf(line, "T%u %u", &id, &i), 2);
        assert_true(id < 4);
        assert_int_equal(i, next[id]); /* in order, none missing */
        next[id]++;
        pad = strchr(strchr(line, ' ') + 1, ' ') + 1;
        assert_int_equal(strlen(pad), i % 150);
        total++;
    }
    assert_int_equal(total, 80000);
    free(text);
}

struct reader {
    int in; /* the FIFO, opened for reading */
    const char *out;
};

/* Copies the FIFO to the file out until every writer has closed it. */
static void *drain(void *arg)
{
    struct reader *r = arg;
    int in = r->in, out = open(r->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char buf[65536];
    ssize_t n;

    while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n)
            break;
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return NULL;
}

/*
 * The writer is stuck writing to a FIFO nobody reads.  Items of item_len bytes are queued
 * until many are lost: the queue fills to its bound and no further, so that between
 * bound and max items are kept.  (The writer may have taken a queue's worth before it
 * stuck, and the pipe and its batch hold some: max allows for those.)  Then a reader
 * comes: the file has every item that was not counted lost, whole, in order, once.
 */
static void fill_stuck_queue(const char *dir, size_t queue, size_t item_len, size_t tries,
                             size_t bound)
{
    static struct linewriter w;
    char fifo[256], out[256], err[256], *item = malloc(item_len), *text;
    struct reader r = {-1, out};
    pthread_t th;
    size_t len, kept, lines = 0, max;
    int pipe_size;
    const struct linewriter_options opt = {.path = fifo, .what = "test FIFO", .queue = queue};

    assert_non_null(item);
    w = (struct linewriter)LINEWRITER_INIT;
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    snprintf(out, sizeof(out), "%s/out", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    /* The writer opens it for reading too: its open does not wait for a reader, and its
     * writes wait once the pipe is full rather than fail. */
    assert_int_equal(linewriter_open(&w, &opt, "test-writer", err, sizeof(err)), 0);
    /* Opened while the writer holds the FIFO open (so this does not wait); read later. */
    r.in = open(fifo, O_RDONLY | O_NONBLOCK);
    assert_true(r.in >= 0);
    pipe_size = fcntl(r.in, F_GETPIPE_SZ);
    assert_true(pipe_size > 0);
    max = 2 * bound + ((size_t)pipe_size + LINEWRITER_BATCH_BYTES) / item_len + 2;
    for (size_t i = 0; i < tries; i++) {
        char num[24];
        size_t n = (size_t)snprintf(num, sizeof(num), "%zu ", i);

        memcpy(item, num, n);
        memset(item + n, 'y', item_len - n - 1);
        item[item_len - 1] = '\n';
        linewriter_queue(&w, item, item_len);
    }
    kept = tries - (size_t)linewriter_lost(&w);
    assert_true(kept >= bound);
    assert_true(kept <= max);
    assert_int_equal(fcntl(r.in, F_SETFL, 0), 0); /* the reader's reads wait */
    assert_int_equal(pthread_create(&th, NULL, drain, &r), 0);
    linewriter_close(&w);
    pthread_join(th, NULL);
    text = read_all(out, &len);
    for (size_t at = 0, last = 0; at < len; lines++) {
        char *nl = memchr(text + at, '\n', len - at);
        size_t number = strtoul(text + at, NULL, 10);

        assert_non_null(nl);
        assert_int_equal((size_t)(nl - (text + at)) + 1, item_len);
        /* In order, none twice (those refused are missing: the queue takes items again
         * once the writer has taken what it held). */
        assert_true(lines == 0 || number > last);
        last = number;
        at = (size_t)(nl - text) + 1;
    }
    assert_int_equal(lines, kept);
    free(text);
    free(item);
}

/* Bounded by count: a queue of 500 items of 100 bytes. */
static void test_bound_by_count(void **state)
{
    fill_stuck_queue(*state, 500, 100, 10000, 500);
}

/* Bounded by bytes: items of 32 KiB, one per block, hold LINEWRITER_QUEUE_BYTES at most. */
static void test_bound_by_bytes(void **state)
{
    size_t per_queue = LINEWRITER_QUEUE_BYTES / LINEWRITER_BLOCK_BYTES;

    fill_stuck_queue(*state, 100000, LINEWRITER_ITEM_MAX, 3 * per_queue, per_queue);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lines_in_order, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_bound_by_count, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_bound_by_bytes, setup_dir, teardown_dir),
    };

    return cmocka_run_group_tests_name("unit_linewriter", tests, NULL, NULL);
}
