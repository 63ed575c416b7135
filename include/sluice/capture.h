/*
 * The capture store: the request bodies (what leaves) and, when asked, the response
 * bodies that policy's capture setting keeps, for traffic sluice reads (plain HTTP and
 * inspected TLS).  Each body is one file named by the SHA-256 of its bytes, DIR/ab/abcd...,
 * so the audit record refers to it by that hash, `sha256sum` checks it, and the same body
 * sent twice is kept once.  A body is stored as it was sent: a compressed one stays
 * compressed, and the record names its codings.
 *
 * Bounded everywhere: a body is kept up to a bound per message (the rest is counted, and
 * the record says "truncated"); the bodies held in memory by every session and the queue
 * together are at most CAPTURE_MEMORY_MAX, those one client's sessions hold at most its
 * share when clients are counted (gateway mode), and a body goes to the writer as soon
 * as it ends or reaches its bound, not when its exchange ends; the store's files are at
 * most max_bytes in all, the files written or referenced longest ago removed first.  Files are
 * written by one thread of the store's own, in batches (temporary files, one syncfs for
 * the batch, then a rename each), so the event loops never wait on the disk and a crash
 * never leaves half a body under a hash's name.  A body that finds no memory is short
 * (capture_body_short()): the caller does not send a request body's later bytes on, so
 * that what leaves is kept or does not leave.  A body that cannot be queued (memory or the queue
 * full) is counted lost and its record says "lost"; one whose write fails (after one more try,
 * directories made again and, on a full disk, the oldest bodies removed) is counted lost and
 * logged, and its record names a hash with no file.  One sluice at a time keeps a store
 * (DIR/.lock).
 */
#ifndef SLUICE_CAPTURE_H
#define SLUICE_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct clientcap;
struct evbuffer;
struct evp_md_ctx_st;
struct sockaddr;

/* Bytes of bodies held in memory at once, by all sessions and the queue together. */
#define CAPTURE_MEMORY_MAX (64u * 1024 * 1024)
/*
 * Bytes of that one client's sessions hold at most while their bodies are captured, when
 * clients are counted with a cap of max_conns connections each, so that a client that
 * sends many bodies and stops half way through each cannot take the memory the others'
 * bodies need: a quarter (16 MiB) at the default cap of 256, growing with the cap to half
 * (32 MiB) at 512, for an address that many users share (a NAT) and was given more; never
 * more, so that one address leaves room for the others.
 */
uint64_t capture_client_share(uint32_t max_conns);
/* Bodies waiting for the writer at most, whatever their size (CAPTURE_MEMORY_MAX bounds
 * their bytes): a burst of small bodies waits rather than being lost. */
#define CAPTURE_QUEUE 65536
/* Characters of a SHA-256 in hex, and its NUL. */
#define CAPTURE_HASH_HEX 65
/* Bytes of the codings named for a body ("gzip, br"), NUL included. */
#define CAPTURE_CODINGS_MAX 64

/* How the store is kept. */
struct capture_options {
    const char *dir;    /* the store's directory, made (0700) when absent; copied */
    uint64_t max_bytes; /* the files' sizes in all at most; past it the oldest go */
};

/* Whom a body's memory is charged to besides the global bound: its client. */
struct capture_share {
    struct clientcap *clients;     /* borrowed: the count of what each client holds */
    const struct sockaddr *client; /* borrowed: the client's address */
    uint64_t max;                  /* the client's share: capture_client_share() */
};

/* One message body being captured, embedded in the exchange; zero is "not capturing". */
struct capture_body {
    bool active;                       /* capture_body_begin() was called */
    unsigned char *data;               /* the bytes kept so far; owned, counted in memory */
    size_t len;                        /* of them */
    size_t cap;                        /* data's allocation */
    size_t limit;                      /* bytes kept at most */
    uint64_t seen;                     /* body bytes that went past */
    bool short_of_memory;              /* kept less than limit: a memory bound was reached */
    bool short_of_share;               /* that bound was its client's share */
    const struct capture_share *share; /* borrowed, or NULL: outlives b */
    size_t share_held;                 /* bytes of cap charged to the share */
    bool sealed;                       /* what was kept went to the writer (or was lost) */
    bool lost;                         /* sealed, and it could not be queued */
    char sha256[CAPTURE_HASH_HEX];     /* sealed and queued: the hash of what was kept */
    struct evp_md_ctx_st *md;          /* the SHA-256 of data, so far; owned until sealed */
    char codings[CAPTURE_CODINGS_MAX]; /* content (then transfer) codings applied, or "" */
};

/* What the record says of one captured body; filled by capture_body_finish(). */
struct capture_ref {
    bool present;                      /* a body was captured (it had at least one byte) */
    bool lost;                         /* it could not be kept: memory, the queue, or an error */
    char sha256[CAPTURE_HASH_HEX];     /* the hash of the bytes kept, the file's name */
    uint64_t bytes;                    /* bytes kept */
    bool truncated;                    /* the body was longer than what was kept */
    char codings[CAPTURE_CODINGS_MAX]; /* codings to undo, in the order applied; or "" */
};

/*
 * Opens the store at opt->dir (made 0700 when absent), counts what it holds (removing the
 * oldest files when they exceed opt->max_bytes, and temporary files a crash left) and
 * starts its writer.  Returns 0, or -1 with a sentence in err.
 */
int capture_open(const struct capture_options *opt, char *err, size_t cap);

/* Writes what is queued, stops the writer.  Nothing when not open. */
void capture_close(void);

/* True when the store is open: the policy's capture setting has somewhere to go. */
bool capture_enabled(void);

/* What the 503 says of a request body refused because capture memory is full. */
#define CAPTURE_FULL_WHY                                                                           \
    "policy keeps this request's body, and the memory for bodies being captured is full "          \
    "(64 MiB); try again shortly (audit.fail_open sends such bodies on, kept cut short)"
/* What it says when the memory is the client's share. */
#define CAPTURE_SHARE_WHY                                                                          \
    "policy keeps this request's body, and this client's bodies being captured already hold "      \
    "its share of the memory for them; try again when its other uploads have ended "               \
    "(audit.fail_open sends such bodies on, kept cut short)"

/* A body whose length its head does not give (chunked, or read to the close). */
#define CAPTURE_LENGTH_UNKNOWN UINT64_MAX

/*
 * Starts capturing a body into b (which must be zero or reset): up to limit bytes kept,
 * codings the value of the message's codings as sent (cut to fit), or NULL; expect is the
 * body's length when its head gives it (its room never grows past that), else
 * CAPTURE_LENGTH_UNKNOWN; share, when not NULL, is charged what b holds, within
 * share->max.  Memory is taken as bytes come, never for bytes only promised,
 * so a head that claims a large body and sends nothing costs nothing.  Returns false when
 * b cannot keep anything (out of memory for its digest): it is then short of memory
 * (capture_body_short()).  Nothing, and true, when the store is not open or limit is 0.
 */
bool capture_body_begin(struct capture_body *b, size_t limit, const char *codings, uint64_t expect,
                        const struct capture_share *share);

/*
 * True when b keeps less of its body than its bound allows because a memory bound was
 * reached (CAPTURE_MEMORY_MAX, or its client's share): bytes after what it kept go
 * uncaptured.  False for NULL.
 */
bool capture_body_short(const struct capture_body *b);

/* What a 503 says of b when it is short: CAPTURE_SHARE_WHY or CAPTURE_FULL_WHY. */
const char *capture_body_short_why(const struct capture_body *b);

/* Adds n body bytes at p to b; counts them past the bound.  Nothing when b is NULL or not
 * active. */
void capture_body_add(struct capture_body *b, const void *p, size_t n);

/* Adds the first n bytes of buf (not removed) to b, as capture_body_add(). */
void capture_body_add_evbuffer(struct capture_body *b, struct evbuffer *buf, size_t n);

/*
 * Hands what b kept to the writer now, when its body has ended or its bound is reached
 * (b does this itself then), so that memory is not held while the exchange goes on; later
 * bytes are only counted.  Nothing when b is NULL, not active, sealed, or saw no byte.
 */
void capture_body_seal(struct capture_body *b);

/*
 * Ends capturing b: seals it, fills *ref (zero when b was not active or saw no byte) and
 * resets b.  Any thread that owns b; never blocks.
 */
void capture_body_finish(struct capture_body *b, struct capture_ref *ref);

/* Frees what b holds without keeping it, and makes it zero; safe twice. */
void capture_body_reset(struct capture_body *b);

/* Bodies that could not be kept so far (any thread). */
uint64_t capture_lost(void);

/* Bytes the store's files hold now, as the writer counts them (any thread). */
uint64_t capture_store_bytes(void);

/* Bytes of bodies held in memory now, by sessions and the queue (any thread). */
uint64_t capture_memory_bytes(void);

#endif /* SLUICE_CAPTURE_H */
