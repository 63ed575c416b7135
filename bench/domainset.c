/*
 * Benchmark of the domain set: builds a set of N generated names (about 10% wildcards),
 * then times lookups from a precomputed, shuffled list that is half hits and half misses.
 * Prints the build time, the mean time per lookup, a latency distribution of single
 * lookups (clock overhead included), bytes held per entry and the peak RSS.
 *
 *   bench_domainset [N [LOOKUPS]]      (defaults 1000000 and 10000000)
 */
#include "sluice/domainset.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define NAME_SLOT      64      /* bytes per generated name */
#define MAX_QUERIES    1000000 /* distinct queries; the timed loop cycles through them */
#define LATENCY_SAMPLE 100000  /* single lookups timed one by one */
#define ID_SPACE       10000000U

/* Generated names, NAME_SLOT bytes each, with their lengths. */
struct names {
    char *text;
    size_t *len;
    size_t n;
};

static const char *const prefixes[] = {"api", "www", "cdn", "auth", "static", "img", "mail", "git"};
static const char *const tlds[] = {"com", "net", "org", "io", "dev", "co.uk"};

/* A small deterministic generator (splitmix64). */
static uint64_t next_random(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Seconds on the monotonic clock. */
static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Allocates room for n names; exits when out of memory. */
static void names_init(struct names *v, size_t n)
{
    v->text = malloc(n * NAME_SLOT);
    v->len = malloc(n * sizeof(*v->len));
    v->n = n;
    if (v->text == NULL || v->len == NULL) {
        fprintf(stderr, "bench_domainset: out of memory\n");
        exit(1);
    }
}

/* Frees what names_init() allocated. */
static void names_free(struct names *v)
{
    free(v->text);
    free(v->len);
}

/* Writes name i as formatted, recording its length. */
static void names_set(struct names *v, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes name i as formatted, recording its length. */
static void names_set(struct names *v, size_t i, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(v->text + i * NAME_SLOT, NAME_SLOT, fmt, ap);
    va_end(ap);
    v->len[i] = n < 0 ? 0 : (size_t)n;
}

/* A unique 7-digit number for id (multiplication by a unit modulo 10^7 is a bijection). */
static unsigned scramble(size_t id)
{
    return (unsigned)((uint64_t)id * 2654435761ULL % ID_SPACE);
}

/*
 * Pattern i of the set: every tenth a wildcard "*.edge-NNNNNNN.example-K.tld", the others
 * exact names "api-NNNNNNN.service-S.example-K.tld".  Both are unique because NNNNNNN is.
 */
static void make_pattern(struct names *v, size_t i, uint64_t *seed)
{
    uint64_t r = next_random(seed);
    unsigned example = (unsigned)(r % 10000), service = (unsigned)((r >> 16) % 1000);
    const char *tld = tlds[(r >> 32) % 6], *prefix = prefixes[(r >> 40) % 8];

    if (i % 10 == 9)
        names_set(v, i, "*.edge-%07u.example-%u.%s", scramble(i), example, tld);
    else
        names_set(v, i, "%s-%07u.service-%u.example-%u.%s", prefix, scramble(i), service, example,
                  tld);
}

/* A host that matches pattern i: the name itself, or one below the wildcard. */
static void make_hit(struct names *q, size_t j, const struct names *pats, size_t i, uint64_t *seed)
{
    const char *p = pats->text + i * NAME_SLOT;

    if (p[0] == '*')
        names_set(q, j, "n%u%s", (unsigned)(next_random(seed) % 1000), p + 1);
    else
        names_set(q, j, "%s", p);
}

/* A host of the same shape that matches nothing: an id beyond the set, or a lookalike. */
static void make_miss(struct names *q, size_t j, size_t n, uint64_t *seed)
{
    uint64_t r = next_random(seed);
    size_t id = n + (size_t)(r % n);
    unsigned example = (unsigned)((r >> 20) % 10000);
    const char *tld = tlds[(r >> 40) % 6];

    if (r % 10 == 0) /* below a suffix no wildcard has */
        names_set(q, j, "x.edge-%07u.example-%u.%s", scramble(id), example, tld);
    else
        names_set(q, j, "%s-%07u.service-%u.example-%u.%s", prefixes[(r >> 48) % 8], scramble(id),
                  (unsigned)((r >> 8) % 1000), example, tld);
}

/* Orders doubles for qsort(). */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Parses a count argument between 1 and max, or exits. */
static size_t parse_count(const char *arg, unsigned long long max)
{
    char *end;
    unsigned long long v = strtoull(arg, &end, 10);

    if (*end != '\0' || v == 0 || v > max) {
        fprintf(stderr, "usage: bench_domainset [N [LOOKUPS]] (N at most %u)\n", ID_SPACE / 2);
        exit(2);
    }
    return (size_t)v;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? parse_count(argv[1], ID_SPACE / 2) : 1000000;
    size_t lookups = argc > 2 ? parse_count(argv[2], 1ULL << 40) : 10000000;
    size_t nq = n * 2 < MAX_QUERIES ? n * 2 : MAX_QUERIES, hits = 0, pool_hits = 0;
    struct names pats, qs;
    struct domainset *set;
    struct rusage ru;
    double t0, t_add, build, look, *lat;
    uint64_t seed = 42, sum = 0;

    names_init(&pats, n);
    names_init(&qs, nq);
    lat = malloc(LATENCY_SAMPLE * sizeof(*lat));
    set = domainset_new();
    if (lat == NULL || set == NULL) {
        fprintf(stderr, "bench_domainset: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        make_pattern(&pats, i, &seed);
    /* Queries: even ones hit a random pattern, odd ones miss; then shuffled. */
    for (size_t j = 0; j < nq; j++) {
        if (j % 2 == 0)
            make_hit(&qs, j, &pats, (size_t)(next_random(&seed) % n), &seed);
        else
            make_miss(&qs, j, n, &seed);
    }
    for (size_t j = nq - 1; j > 0; j--) {
        size_t k = (size_t)(next_random(&seed) % (j + 1));
        char tmp[NAME_SLOT];
        size_t tlen = qs.len[j];
        memcpy(tmp, qs.text + j * NAME_SLOT, NAME_SLOT);
        memcpy(qs.text + j * NAME_SLOT, qs.text + k * NAME_SLOT, NAME_SLOT);
        memcpy(qs.text + k * NAME_SLOT, tmp, NAME_SLOT);
        qs.len[j] = qs.len[k];
        qs.len[k] = tlen;
    }

    t0 = now();
    for (size_t i = 0; i < n; i++) {
        const char *errstr = NULL;
        if (domainset_add(set, pats.text + i * NAME_SLOT, (uint32_t)i + 1, &errstr) < 0) {
            fprintf(stderr, "bench_domainset: %s: %s\n", pats.text + i * NAME_SLOT, errstr);
            return 1;
        }
    }
    t_add = now() - t0;
    if (domainset_freeze(set) < 0) {
        fprintf(stderr, "bench_domainset: freeze failed\n");
        return 1;
    }
    build = now() - t0;

    /* Every hit query must be found and every miss not, or the figures mean nothing. */
    for (size_t j = 0; j < nq; j++)
        pool_hits += domainset_lookup(set, qs.text + j * NAME_SLOT, qs.len[j], NULL);
    if (pool_hits != (nq + 1) / 2) {
        fprintf(stderr, "bench_domainset: %zu of %zu queries hit, expected %zu\n", pool_hits, nq,
                (nq + 1) / 2);
        return 1;
    }

    t0 = now();
    for (size_t i = 0, j = 0; i < lookups; i++) {
        uint32_t value = 0;
        if (domainset_lookup(set, qs.text + j * NAME_SLOT, qs.len[j], &value)) {
            hits++;
            sum += value;
        }
        if (++j == nq)
            j = 0;
    }
    look = now() - t0;
    for (size_t i = 0; i < LATENCY_SAMPLE; i++) {
        size_t j = (size_t)(next_random(&seed) % nq);
        double a = now();
        sum += domainset_lookup(set, qs.text + j * NAME_SLOT, qs.len[j], NULL);
        lat[i] = now() - a;
    }
    qsort(lat, LATENCY_SAMPLE, sizeof(*lat), cmp_double);
    getrusage(RUSAGE_SELF, &ru);

    printf("entries         %zu added, %zu distinct (%zu wildcards)\n", n, domainset_count(set),
           n / 10);
    printf("build           %.3f s (add all %.3f s + freeze %.3f s), %.0f ns/entry\n", build, t_add,
           build - t_add, build * 1e9 / (double)n);
    printf("lookup          %.1f ns/lookup mean over %zu (%.1f%% hits, %zu distinct queries)\n",
           look * 1e9 / (double)lookups, lookups, 100.0 * (double)hits / (double)lookups, nq);
    printf("single lookup   p50 %.0f ns, p99 %.0f ns, p99.9 %.0f ns, max %.0f ns (%d timed, "
           "clock included)\n",
           lat[LATENCY_SAMPLE / 2] * 1e9, lat[LATENCY_SAMPLE * 99 / 100] * 1e9,
           lat[LATENCY_SAMPLE * 999 / 1000] * 1e9, lat[LATENCY_SAMPLE - 1] * 1e9, LATENCY_SAMPLE);
    printf("memory          %zu bytes, %.1f bytes/entry\n", domainset_memory(set),
           (double)domainset_memory(set) / (double)domainset_count(set));
    printf("peak RSS        %.1f MiB (benchmark's name lists included)\n",
           (double)ru.ru_maxrss / 1024.0);
    printf("checksum        %llu\n", (unsigned long long)sum);

    domainset_free(set);
    names_free(&pats);
    names_free(&qs);
    free(lat);
    return 0;
}
