/*
 * Sets of host names and wildcard suffixes; see include/sluice/domainset.h.
 *
 * Normalised names live back to back in an arena (no terminators).  Two open-addressing
 * tables with linear probing index it: one for exact names, one for wildcard suffixes
 * ("example.com" for "*.example.com").  A slot is 12 bytes: a tag (24 hash bits and the
 * name length, never 0 in a used slot), the arena offset and the value; the tag spares the
 * arena almost every comparison that would fail.
 *
 * Building costs memory traffic, not hashing, so it is done in two steps.  domainset_add()
 * appends the name to the arena and (key, offset, value) to a pending list, both written in
 * order into 2 MiB chunks that never move (nothing is copied as they grow, and each chunk
 * can be one huge page).  domainset_freeze() sizes each table once (a power of two, load at
 * most 0.7) and fills it in the order of the adds with the slots of later entries
 * prefetched, dropping duplicates so that the first value stays.
 *
 * A lookup probes the exact table once, then the wildcard table with each proper suffix
 * that starts after a '.', longest first, skipping suffix lengths and label counts that no
 * wildcard has.  It reads the set and writes only its own stack.
 */
#include "sluice/domainset.h"

#include <idn2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sluice/netguard.h"

#define DS_HUGE_PAGE   ((size_t)2 << 20)
#define DS_CHUNK_SHIFT 21 /* a store chunk is 2 MiB, one huge page */
#define DS_CHUNK       ((size_t)1 << DS_CHUNK_SHIFT)
#define DS_MAX_CHUNKS  2048 /* 4 GiB of store, so that offsets fit in 32 bits */
#define DS_FIRST_CHUNK 4096 /* the first chunk starts this small and doubles */
#define DS_MIN_SLOTS   8
#define DS_MAX_SLOTS   ((size_t)1 << 31)
#define DS_MAX_LABELS  ((DOMAINSET_NAME_MAX + 1) / 2) /* "a.a.a..." */
#define DS_UTF8_MAX    1024                           /* longest UTF-8 input handed to libidn2 */
#define DS_PREFETCH    16 /* how many insertions ahead freeze prefetches a slot */

/* One table entry; tag == 0 marks an empty slot. */
struct ds_slot {
    uint32_t tag;   /* key bits 40..63 in the top 24 bits, name length in the low 8 */
    uint32_t off;   /* offset of the name in the arena */
    uint32_t value; /* the value given to domainset_add() */
};

/* A name added but not yet in a table. */
struct ds_entry {
    uint64_t key;   /* ds_key(): hash with the name length in the low 8 bits */
    uint32_t off;   /* offset of the name in the arena */
    uint32_t value; /* the value given to domainset_add() */
};

/* Append-only storage in chunks that never move, addressed by 32-bit offsets. */
struct ds_store {
    char **chunks;     /* owned, with each chunk; chunk i holds offsets i * DS_CHUNK onwards */
    size_t nchunks;    /* chunks in use */
    size_t chunks_cap; /* pointers allocated in chunks */
    size_t last_cap;   /* bytes allocated for the last chunk (DS_CHUNK once past the first) */
    size_t last_len;   /* bytes used in the last chunk */
    size_t bytes;      /* bytes allocated for all chunks */
};

/* An open-addressing table of names in the arena, and the entries waiting to go in. */
struct ds_table {
    struct ds_slot *slots; /* owned; NULL until frozen */
    size_t cap;            /* slots, a power of two (0 when slots is NULL) */
    size_t bytes;          /* bytes allocated for slots */
    size_t count;          /* used slots */
    struct ds_store queue; /* struct ds_entry, in the order of the adds; empty once frozen */
    size_t npending;       /* entries in queue */
};

/* The set; owned by the caller of domainset_new(). */
struct domainset {
    struct ds_table exact;   /* exact names */
    struct ds_table wild;    /* wildcard suffixes, without the "*." */
    struct ds_store arena;   /* every normalised name, back to back */
    uint64_t wild_lens[4];   /* bit n set: some wildcard suffix is n bytes long */
    uint64_t wild_labels[2]; /* bit n set: some wildcard suffix has n labels */
    bool frozen;             /* domainset_freeze() succeeded */
};

/* Sets *errstr (when the caller gave one) and returns -1. */
static int ds_fail(const char **errstr, const char *msg)
{
    if (errstr != NULL)
        *errstr = msg;
    return -1;
}

/*
 * Asks for transparent huge pages on the whole pages of p[0..n) when it spans at least
 * one: the tables and the arena are read at random, and with 4 KiB pages each read risks a
 * TLB miss and each first touch a page fault.  Only advice; without THP nothing changes.
 */
static void ds_advise_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    uintptr_t start = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t end = ((uintptr_t)p + n) & ~(uintptr_t)4095;

    if (n >= DS_HUGE_PAGE && end > start)
        (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

/* Allocates *n bytes aligned to a huge page, rounding *n up to whole huge pages; or NULL. */
static void *ds_alloc_huge(size_t *n)
{
    void *p;

    *n = (*n + DS_HUGE_PAGE - 1) & ~(DS_HUGE_PAGE - 1);
    p = aligned_alloc(DS_HUGE_PAGE, *n);
    if (p != NULL)
        ds_advise_huge(p, *n);
    return p;
}

/* The bytes at offset off of st. */
static char *ds_store_at(const struct ds_store *st, uint32_t off)
{
    return st->chunks[off >> DS_CHUNK_SHIFT] + (off & (DS_CHUNK - 1));
}

/* Reserves n (at most a few hundred) contiguous bytes at the end of st; *off gets their offset. */
static char *ds_store_take(struct ds_store *st, size_t n, uint32_t *off)
{
    if (st->nchunks == 0 || st->last_len + n > st->last_cap) {
        char *chunk;
        size_t cap;
        if (st->nchunks == 1 && st->last_cap < DS_CHUNK) {
            /* Small sets stay small: the first chunk doubles up to a whole chunk. */
            cap = st->last_cap * 2;
            chunk = realloc(st->chunks[0], cap);
            if (chunk == NULL)
                return NULL;
            st->chunks[0] = chunk;
        } else {
            if (st->nchunks == DS_MAX_CHUNKS)
                return NULL;
            if (st->nchunks == st->chunks_cap) {
                size_t ncap = st->chunks_cap == 0 ? 8 : st->chunks_cap * 2;
                char **chunks = realloc(st->chunks, ncap * sizeof(*chunks));
                if (chunks == NULL)
                    return NULL;
                st->chunks = chunks;
                st->chunks_cap = ncap;
            }
            cap = st->nchunks == 0 ? DS_FIRST_CHUNK : DS_CHUNK;
            chunk = st->nchunks == 0 ? malloc(cap) : ds_alloc_huge(&cap);
            if (chunk == NULL)
                return NULL;
            st->chunks[st->nchunks++] = chunk;
            st->last_len = 0;
            st->last_cap = 0;
        }
        st->bytes += cap - st->last_cap;
        st->last_cap = cap;
    }
    *off = (uint32_t)(((st->nchunks - 1) << DS_CHUNK_SHIFT) | st->last_len);
    st->last_len += n;
    return st->chunks[st->nchunks - 1] + (*off & (DS_CHUNK - 1));
}

/* Gives back the unused end of the last chunk of st; failing to is harmless. */
static void ds_store_trim(struct ds_store *st)
{
    char *chunk;

    if (st->nchunks == 0 || st->last_len == st->last_cap)
        return;
    chunk = realloc(st->chunks[st->nchunks - 1], st->last_len);
    if (chunk == NULL)
        return;
    st->chunks[st->nchunks - 1] = chunk;
    st->bytes -= st->last_cap - st->last_len;
    st->last_cap = st->last_len;
}

/* Frees every chunk of st and empties it. */
static void ds_store_clear(struct ds_store *st)
{
    for (size_t i = 0; i < st->nchunks; i++)
        free(st->chunks[i]);
    free(st->chunks);
    memset(st, 0, sizeof(*st));
}

/* Final avalanche step (MurmurHash3's fmix64), so that every bit depends on every input bit. */
static uint64_t ds_fmix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/*
 * The key of the name p[0..n) (n at most 253): a 64-bit hash, eight bytes at a time with a
 * multiply and an xor-shift per word, with n in the low 8 bits.  Bits 8..38 pick the home
 * slot, bits 40..63 go into the tag.
 */
static uint64_t ds_key(const char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)n * 0xbf58476d1ce4e5b9ULL);
    uint64_t w, len = n;

    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x94d049bb133111ebULL;
        h ^= h >> 31;
    }
    if (n > 0) {
        w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0x94d049bb133111ebULL;
        h ^= h >> 31;
    }
    return (ds_fmix(h) & ~(uint64_t)0xff) | len;
}

/* The home slot of key in a table of mask + 1 slots. */
static size_t ds_home(uint64_t key, size_t mask)
{
    return (size_t)(key >> 8) & mask;
}

/* The tag stored for key; never 0, since a name is never empty. */
static uint32_t ds_tag(uint64_t key)
{
    return ((uint32_t)(key >> 32) & 0xffffff00U) | (uint32_t)(key & 0xff);
}

/* Finds the name p[0..len) of the given key in t; returns its slot or NULL. */
static const struct ds_slot *ds_find(const struct ds_table *t, const struct ds_store *arena,
                                     const char *p, size_t len, uint64_t key)
{
    uint32_t tag = ds_tag(key);
    size_t mask = t->cap - 1;

    if (t->count == 0)
        return NULL;
    for (size_t i = ds_home(key, mask);; i = (i + 1) & mask) {
        const struct ds_slot *slot = &t->slots[i];
        if (slot->tag == 0)
            return NULL;
        if (slot->tag == tag && memcmp(ds_store_at(arena, slot->off), p, len) == 0)
            return slot;
    }
}

/* The pending entry i of t. */
static const struct ds_entry *ds_pending(const struct ds_table *t, size_t i)
{
    return (const struct ds_entry *)(const void *)ds_store_at(
        &t->queue, (uint32_t)(i * sizeof(struct ds_entry)));
}

/*
 * Fills a new table, sized for the pending entries of t, in the order they were added; a
 * name already there keeps its first value.  Returns the slots (with *cap, *bytes and
 * *count set), or NULL when out of memory.  t itself is left alone.
 */
static struct ds_slot *ds_build(const struct ds_table *t, const struct ds_store *arena, size_t *cap,
                                size_t *bytes, size_t *count)
{
    size_t n = t->npending, mask;
    struct ds_slot *slots;

    *cap = DS_MIN_SLOTS;
    while (*cap * 7 < n * 10) {
        if (*cap >= DS_MAX_SLOTS)
            return NULL;
        *cap *= 2;
    }
    *bytes = *cap * sizeof(*slots);
    if (*bytes >= 2 * DS_HUGE_PAGE) {
        slots = ds_alloc_huge(bytes);
        if (slots != NULL)
            memset(slots, 0, *bytes);
    } else {
        slots = calloc(*cap, sizeof(*slots));
    }
    if (slots == NULL)
        return NULL;
    mask = *cap - 1;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ds_entry *e = ds_pending(t, i);
        uint32_t tag = ds_tag(e->key), len = tag & 0xffU;
        const char *name = ds_store_at(arena, e->off);
        size_t j = ds_home(e->key, mask);
        /* Fetch the slot a later insertion wants while this one waits for its own. */
        if (i + DS_PREFETCH < n)
            __builtin_prefetch(&slots[ds_home(ds_pending(t, i + DS_PREFETCH)->key, mask)], 1);
        while (slots[j].tag != 0 &&
               !(slots[j].tag == tag && memcmp(ds_store_at(arena, slots[j].off), name, len) == 0))
            j = (j + 1) & mask;
        if (slots[j].tag != 0)
            continue; /* a duplicate: the first value stays */
        slots[j].tag = tag;
        slots[j].off = e->off;
        slots[j].value = e->value;
        (*count)++;
    }
    return slots;
}

/* Installs slots built by ds_build() in t and drops its pending entries. */
static void ds_commit(struct ds_table *t, struct ds_slot *slots, size_t cap, size_t bytes,
                      size_t count)
{
    t->slots = slots;
    t->cap = cap;
    t->bytes = bytes;
    t->count = count;
    ds_store_clear(&t->queue);
    t->npending = 0;
}

/* Makes an empty set. */
struct domainset *domainset_new(void)
{
    return calloc(1, sizeof(struct domainset));
}

/* Frees the set, its tables, its pending entries and its arena. */
void domainset_free(struct domainset *s)
{
    if (s == NULL)
        return;
    free(s->exact.slots);
    ds_store_clear(&s->exact.queue);
    free(s->wild.slots);
    ds_store_clear(&s->wild.queue);
    ds_store_clear(&s->arena);
    free(s);
}

/* Appends the normalised name[0..len) with value to the arena and to t's pending entries. */
static int ds_append(struct domainset *s, struct ds_table *t, const char *name, size_t len,
                     uint32_t value)
{
    struct ds_entry e = {.key = ds_key(name, len), .value = value};
    char *text, *slot;
    uint32_t off;

    if (t->npending >= DS_MAX_SLOTS / 2)
        return -1;
    text = ds_store_take(&s->arena, len, &e.off);
    if (text == NULL)
        return -1;
    slot = ds_store_take(&t->queue, sizeof(e), &off);
    if (slot == NULL) {
        s->arena.last_len -= len; /* give the name's bytes back */
        return -1;
    }
    memcpy(text, name, len);
    memcpy(slot, &e, sizeof(e));
    t->npending++;
    return 0;
}

/* Normalises and adds one exact name or "*.suffix" wildcard. */
int domainset_add(struct domainset *s, const char *pattern, uint32_t value, const char **errstr)
{
    char name[DOMAINSET_NAME_MAX + 1];
    bool wildcard = false;
    const char *p = pattern;
    struct netguard_addr addr;
    int n;

    if (s == NULL)
        return ds_fail(errstr, "no set");
    if (s->frozen)
        return ds_fail(errstr, "the set is already frozen");
    if (pattern == NULL || pattern[0] == '\0')
        return ds_fail(errstr, "empty name");
    if (pattern[0] == '*') {
        if (pattern[1] != '.')
            return ds_fail(errstr, "'*' must be the whole first label, as in *.example.com");
        if (pattern[2] == '\0' || strcmp(pattern + 2, ".") == 0)
            return ds_fail(errstr, "no suffix after '*.'");
        wildcard = true;
        p = pattern + 2;
    }
    n = domainset_normalize(p, strlen(p), name, sizeof(name), errstr);
    if (n < 0)
        return -1;
    if (wildcard && netguard_parse_literal(name, (size_t)n, &addr))
        return ds_fail(errstr, "a wildcard covers names, not an IP address");
    /* A wildcard needs room for at least "x." in front of its suffix. */
    if (wildcard && n > DOMAINSET_NAME_MAX - 2)
        return ds_fail(errstr, "name too long (more than 253 bytes)");
    if (ds_append(s, wildcard ? &s->wild : &s->exact, name, (size_t)n, value) < 0)
        return ds_fail(errstr, "out of memory");
    if (wildcard) {
        size_t labels = 1;
        for (int i = 0; i < n; i++)
            labels += name[i] == '.';
        s->wild_lens[n / 64] |= (uint64_t)1 << (n % 64);
        s->wild_labels[labels / 64] |= (uint64_t)1 << (labels % 64);
    }
    return 0;
}

/* Builds both tables from the pending entries and trims the arena; a second call does nothing. */
int domainset_freeze(struct domainset *s)
{
    struct ds_slot *exact, *wild;
    size_t ecap, ebytes, ecount, wcap, wbytes, wcount;

    if (s == NULL)
        return -1;
    if (s->frozen)
        return 0;
    exact = ds_build(&s->exact, &s->arena, &ecap, &ebytes, &ecount);
    if (exact == NULL)
        return -1;
    wild = ds_build(&s->wild, &s->arena, &wcap, &wbytes, &wcount);
    if (wild == NULL) {
        free(exact);
        return -1;
    }
    ds_commit(&s->exact, exact, ecap, ebytes, ecount);
    ds_commit(&s->wild, wild, wcap, wbytes, wcount);
    ds_store_trim(&s->arena);
    s->frozen = true;
    return 0;
}

/* True when some wildcard suffix is len bytes long and has labels labels. */
static bool ds_wild_shape(const struct domainset *s, size_t len, size_t labels)
{
    return (s->wild_lens[len / 64] >> (len % 64) & 1) != 0 &&
           (s->wild_labels[labels / 64] >> (labels % 64) & 1) != 0;
}

/* Starts fetching the home slot of key in t, which has slots. */
static void ds_prefetch(const struct ds_table *t, uint64_t key)
{
    __builtin_prefetch(&t->slots[ds_home(key, t->cap - 1)]);
}

/* Normalises host, then looks it up. */
bool domainset_lookup(const struct domainset *s, const char *host, size_t len, uint32_t *value)
{
    char name[DOMAINSET_NAME_MAX + 1];
    const char *errstr;
    int r;

    if (s == NULL || !s->frozen || s->exact.count + s->wild.count == 0)
        return false;
    r = domainset_normalize(host, len, name, sizeof(name), &errstr);
    return r >= 0 && domainset_lookup_normal(s, name, (size_t)r, value);
}

/*
 * Tries the exact name and each proper suffix, longest first.  The probes do not depend on
 * one another, so every home slot is prefetched before the first is read: a miss then
 * costs about one memory latency instead of one per probe.
 */
bool domainset_lookup_normal(const struct domainset *s, const char *name, size_t n, uint32_t *value)
{
    struct {
        uint32_t off; /* where the suffix starts in name */
        uint64_t key; /* its ds_key() */
    } cand[DS_MAX_LABELS];
    const struct ds_slot *slot = NULL;
    size_t labels = 1, ncand = 0;
    uint64_t key;

    if (s == NULL || !s->frozen || s->exact.count + s->wild.count == 0 || n == 0 ||
        n > DOMAINSET_NAME_MAX)
        return false;
    key = ds_key(name, n);
    if (s->exact.count > 0)
        ds_prefetch(&s->exact, key);
    if (s->wild.count > 0) {
        for (size_t i = 0; i < n; i++)
            labels += name[i] == '.';
        for (size_t i = 0; i < n; i++) {
            if (name[i] != '.')
                continue;
            labels--;
            if (!ds_wild_shape(s, n - i - 1, labels))
                continue;
            cand[ncand].off = (uint32_t)(i + 1);
            cand[ncand].key = ds_key(name + i + 1, n - i - 1);
            ds_prefetch(&s->wild, cand[ncand++].key);
        }
    }
    slot = ds_find(&s->exact, &s->arena, name, n, key);
    for (size_t i = 0; i < ncand && slot == NULL; i++)
        slot = ds_find(&s->wild, &s->arena, name + cand[i].off, n - cand[i].off, cand[i].key);
    if (slot == NULL)
        return false;
    if (value != NULL)
        *value = slot->value;
    return true;
}

/* Distinct patterns once frozen; before that, every pattern accepted, duplicates included. */
size_t domainset_count(const struct domainset *s)
{
    if (s == NULL)
        return 0;
    return s->exact.count + s->wild.count + s->exact.npending + s->wild.npending;
}

/* The set itself, its tables, its pending entries and its arena, as allocated. */
size_t domainset_memory(const struct domainset *s)
{
    size_t total;

    if (s == NULL)
        return 0;
    total = sizeof(*s) + s->exact.bytes + s->wild.bytes;
    total += s->arena.bytes + s->arena.chunks_cap * sizeof(char *);
    total += s->exact.queue.bytes + s->exact.queue.chunks_cap * sizeof(char *);
    total += s->wild.queue.bytes + s->wild.queue.chunks_cap * sizeof(char *);
    return total;
}

/* Writes the canonical text of address a into out; see domainset_normalize(). */
static int ds_format_literal(const struct netguard_addr *a, char *out, size_t cap,
                             const char **errstr)
{
    size_t n = netguard_format(a, out, cap);

    return n < cap ? (int)n : ds_fail(errstr, "output buffer too small");
}

/* Lower-cases and checks the ASCII name in[0..len) into out; see domainset_normalize(). */
static int ds_normalize_ascii(const char *in, size_t len, char *out, size_t cap,
                              const char **errstr)
{
    size_t label = 0;

    if (len > 0 && in[len - 1] == '.')
        len--;
    if (len == 0)
        return ds_fail(errstr, "empty name");
    if (len > DOMAINSET_NAME_MAX)
        return ds_fail(errstr, "name too long (more than 253 bytes)");
    if (len > cap)
        return ds_fail(errstr, "output buffer too small");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '.') {
            if (label == 0)
                return ds_fail(errstr, "empty label");
            label = 0;
            out[i] = '.';
            continue;
        }
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + ('a' - 'A'));
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return ds_fail(errstr, c == '*' ? "'*' is only allowed as the whole first label"
                                            : "bad character (not a letter, digit, '-' or '_')");
        if (++label > DOMAINSET_LABEL_MAX)
            return ds_fail(errstr, "label too long (more than 63 bytes)");
        out[i] = (char)c;
    }
    if (label == 0)
        return ds_fail(errstr, "empty label");
    if (len < cap)
        out[len] = '\0';
    return (int)len;
}

/* Converts the UTF-8 name in[0..len) to its IDNA ASCII form, then checks it as ASCII. */
static int ds_normalize_idna(const char *in, size_t len, char *out, size_t cap, const char **errstr)
{
    char utf8[DS_UTF8_MAX];
    uint8_t *ace = NULL;
    int rc, n;

    if (len >= sizeof(utf8))
        return ds_fail(errstr, "name too long (more than 253 bytes)");
    if (memchr(in, '\0', len) != NULL)
        return ds_fail(errstr, "bad character (not a letter, digit, '-' or '_')");
    memcpy(utf8, in, len);
    utf8[len] = '\0';
    rc = idn2_lookup_u8((const uint8_t *)utf8, &ace, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc == IDN2_DISALLOWED)
        rc = idn2_lookup_u8((const uint8_t *)utf8, &ace, IDN2_TRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK) {
        idn2_free(ace);
        switch (rc) {
        case IDN2_TOO_BIG_DOMAIN:
            return ds_fail(errstr, "name too long (more than 253 bytes)");
        case IDN2_TOO_BIG_LABEL:
            return ds_fail(errstr, "label too long (more than 63 bytes)");
        case IDN2_ENCODING_ERROR:
            return ds_fail(errstr, "not valid UTF-8");
        case IDN2_MALLOC:
            return ds_fail(errstr, "out of memory");
        default:
            return ds_fail(errstr, "not a valid internationalised domain name");
        }
    }
    n = ds_normalize_ascii((const char *)ace, strlen((const char *)ace), out, cap, errstr);
    idn2_free(ace);
    return n;
}

/* True when p[0..n) holds a byte with the high bit set, checked a word at a time. */
static bool ds_has_high_bit(const char *p, size_t n)
{
    uint64_t w, acc = 0;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= (unsigned char)p[i];
    return (acc & 0x8080808080808080ULL) != 0;
}

/* Normalises a host name for matching: ASCII directly, anything else through libidn2. */
int domainset_normalize(const char *host, size_t len, char *out, size_t cap, const char **errstr)
{
    struct netguard_addr a;

    int n;

    if (host == NULL || len == 0)
        return ds_fail(errstr, "empty name");
    if (netguard_parse_literal(host, len, &a))
        return ds_format_literal(&a, out, cap, errstr);
    n = ds_has_high_bit(host, len) ? ds_normalize_idna(host, len, out, cap, errstr)
                                   : ds_normalize_ascii(host, len, out, cap, errstr);
    /* IDNA can turn a name into the spelling of an address ("1" and a fullwidth full stop
     * is "1."): the normal form is then that address's, so that it is a fixed point. */
    if (n > 0 && netguard_parse_literal(out, (size_t)n, &a))
        return ds_format_literal(&a, out, cap, errstr);
    return n;
}
