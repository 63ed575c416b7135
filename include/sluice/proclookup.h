/*
 * Finding the local process behind a new connection, off the worker's loop.  The lookup
 * (a netlink round trip, a walk of /proc bounded to 10 ms, the chain of ancestors, an
 * isolating launcher's descendants, a stat of the executable) runs in a thread of the
 * worker's own; the worker's loop goes on serving other clients, and learns the result
 * through an event on its own base.  A connection whose first request head is complete
 * before its lookup waits for it (session.c).
 */
#ifndef SLUICE_PROCLOOKUP_H
#define SLUICE_PROCLOOKUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <event2/event.h>

#include "sluice/exehash.h"
#include "sluice/policy.h"
#include "sluice/procid.h"

/* What is known of the local process behind a connection; strings owned. */
struct proclookup_record {
    pid_t pid;           /* 0 when not known */
    uint64_t start;      /* its start time: the pid alone may name another later */
    uint32_t uid;        /* its owner; UINT32_MAX when not known */
    char *tool;          /* the tool its process chain matched (an id), or NULL */
    char *exe;           /* the executable that matched (or the process's own), or NULL */
    char *cmd;           /* its command line, secrets redacted, or NULL */
    char *chain;         /* its chain by executable name ("curl<bash<sshd"), or NULL */
    pid_t parent_pid;    /* its parent, or 0 when not known */
    char *parent_exe;    /* the parent's executable, or NULL */
    bool isolated;       /* it came through a `sluice run --isolate` launcher (identity.h) */
    bool unverified;     /* ... whose started processes could not all be looked at: refused */
    uint64_t checked_ms; /* when the chain was last matched (monotonic ms) */
    uint32_t generation; /* of the policy it was matched under */
    struct exehash_key exe_key; /* exe's file, for its hash */
    char sha256[EXEHASH_HEX];   /* exe's hash, or "" while not (yet) known */
};

/* Frees r's strings and zeroes it. */
void proclookup_record_clear(struct proclookup_record *r);

/*
 * Fills r (cleared first) from chain, the process behind a connection as found, matched
 * under p (proclookup_record_match(), in a thread that may wait); now_ms is the monotonic
 * time in ms.
 */
void proclookup_record_fill(struct proclookup_record *r, const struct policy_snapshot *p,
                            struct procid *chain, uint64_t now_ms);

/*
 * Matches chain (the same process, read again) under p into r's tool fields.  First the
 * SHA-256 of each process's executable goes into chain: a kept one, or, when may_wait
 * (the lookup thread, not a worker's loop) and the match may depend on it
 * (identity_wants_hash()), one made now.  A process that a profile's executables pattern
 * named by its path teaches its executable's hash to toolhash, for its user.
 */
void proclookup_record_match(struct proclookup_record *r, const struct policy_snapshot *p,
                             struct procid *chain, uint64_t now_ms, bool may_wait);

/* Lookups waiting at once in one worker's queue; past that, a new connection's first
 * request is refused with 503 rather than let out unidentified. */
#define PROCLOOKUP_MAX_QUEUED 512

/*
 * Bytes of files one user's lookups may hash while they wait, per minute, in one lookup
 * thread: past that, that user's files go to the hashing thread (exehash.h), so a user
 * who runs large files cannot keep the thread from other users' lookups for long.
 */
#define PROCLOOKUP_HASH_BUDGET (512ull * 1024 * 1024)
/* Users a lookup thread keeps a budget for; a new one takes the oldest's place. */
#define PROCLOOKUP_BUDGET_USERS 16

/* What the users of one lookup thread hashed in their current minute. */
struct proclookup_budget {
    struct {
        bool used;
        uint32_t uid;
        uint64_t bytes;    /* hashed since since_ms */
        uint64_t since_ms; /* the start of its minute */
    } users[PROCLOOKUP_BUDGET_USERS];
    size_t next; /* the slot a new user takes */
};

/*
 * True, counting them, when uid may have bytes more hashed now (monotonic time now_ms)
 * within PROCLOOKUP_HASH_BUDGET a minute; false when that would pass it.
 */
bool proclookup_budget_take(struct proclookup_budget *b, uint32_t uid, uint64_t bytes,
                            uint64_t now_ms);

struct proclookup;     /* one worker's lookup thread and its queue */
struct proclookup_job; /* one connection's lookup */

/*
 * Called on the worker's loop with the result: *r is the caller's to take (move its
 * strings out, or leave them to be freed).  r->pid is 0 when no process was found.
 */
typedef void (*proclookup_done_fn)(struct proclookup_record *r, void *arg);

/* Starts a lookup thread whose results arrive on base.  NULL on failure. */
struct proclookup *proclookup_new(struct event_base *base);

/*
 * Stops the thread and frees every job left, before base is freed: their callbacks are
 * not called (the connections they were for are gone).
 */
void proclookup_free(struct proclookup *pl);

/*
 * Queues a lookup for a connection under policy p (a reference is taken): by the TCP
 * peer and local addresses on loopback, or, when unix_pid is positive, by that pid (a
 * Unix socket's SO_PEERCRED).  done(arg) is called on the loop, unless the job is
 * cancelled first.  Returns the job, or NULL when it cannot be queued (out of memory, or
 * PROCLOOKUP_MAX_QUEUED waiting).
 */
struct proclookup_job *proclookup_submit(struct proclookup *pl, struct policy_snapshot *p,
                                         const struct sockaddr *peer, const struct sockaddr *local,
                                         pid_t unix_pid, proclookup_done_fn done, void *arg);

/* The connection is gone: done will not be called.  The job frees itself. */
void proclookup_cancel(struct proclookup_job *job);

#endif /* SLUICE_PROCLOOKUP_H */
