/* Process lookups off the worker's loop; see include/sluice/proclookup.h. */
#include "sluice/proclookup.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "sluice/identity.h"
#include "sluice/metrics.h"
#include "sluice/toolhash.h"

/* Bytes of a command line or chain kept for the record. */
#define PROCLOOKUP_TEXT (PROCID_MAX_ARGS + 64)

/* Frees a record's strings; see the header. */
void proclookup_record_clear(struct proclookup_record *r)
{
    free(r->tool);
    free(r->exe);
    free(r->cmd);
    free(r->chain);
    free(r->parent_exe);
    memset(r, 0, sizeof(*r));
}

static uint64_t proclookup_now_ms(void);

/* Takes from a user's budget; see the header. */
bool proclookup_budget_take(struct proclookup_budget *b, uint32_t uid, uint64_t bytes,
                            uint64_t now_ms)
{
    size_t i = 0;

    while (i < PROCLOOKUP_BUDGET_USERS && !(b->users[i].used && b->users[i].uid == uid))
        i++;
    if (i == PROCLOOKUP_BUDGET_USERS) {
        i = b->next;
        b->next = (b->next + 1) % PROCLOOKUP_BUDGET_USERS;
        b->users[i].used = true;
        b->users[i].uid = uid;
        b->users[i].bytes = 0;
        b->users[i].since_ms = now_ms;
    }
    if (now_ms - b->users[i].since_ms >= 60000) {
        b->users[i].bytes = 0;
        b->users[i].since_ms = now_ms;
    }
    if (b->users[i].bytes + bytes > PROCLOOKUP_HASH_BUDGET)
        return false;
    b->users[i].bytes += bytes;
    return true;
}

/*
 * The digest of the file path names, into hex ("" when not filled), when it could name a
 * tool for uid under p (identity_wants_hash(): a profile lists digests, or a file of that
 * size was learned): made now when may_wait and uid's budget allows, else the kept one
 * (queued for the hashing thread when queue or may_wait).  Returns the file's size when
 * filled, or 0.
 */
static uint64_t proclookup_hash_file(const struct policy_snapshot *p, uint32_t uid,
                                     const char *path, bool may_wait, bool queue,
                                     char hex[EXEHASH_HEX])
{
    struct exehash_key key;
    bool known = false;

    /* The lookup thread's budgets: only that thread may wait. */
    static _Thread_local struct proclookup_budget budget;

    if (exehash_key_of_path(path, &key) && identity_wants_hash(p, uid, key.size)) {
        known = exehash_known(&key, hex);
        if (!known && may_wait &&
            proclookup_budget_take(&budget, uid, key.size, proclookup_now_ms()))
            known = exehash_of_path_now(path, &key, hex);
        else if (!known && (queue || may_wait))
            known = exehash_of_path(path, &key, hex);
    }
    if (!known)
        hex[0] = '\0';
    return known ? key.size : 0;
}

/* The path of proc's script as the process sees it: from its own root, or its working
 * directory. */
static void proclookup_script_path(const struct procid_proc *proc, const char *script, char *out,
                                   size_t cap)
{
    if (script[0] == '/')
        snprintf(out, cap, "/proc/%ld/root%s", (long)proc->pid, script);
    else
        snprintf(out, cap, "/proc/%ld/cwd/%s", (long)proc->pid, script);
}

/*
 * How a match hashes: under which policy, whether content can name a tool at all for the
 * chain's user (identity_uses_content(); when not, nothing is looked at), whether it may
 * wait for a digest, and whether a file not hashed yet is queued for the hashing thread.
 */
struct proclookup_hashing {
    const struct policy_snapshot *p;
    bool content, may_wait, queue;
};

/* Fills the digests of proc's executable and script, as proclookup_record_match() says
 * (an identity_hash_fn: arg is a struct proclookup_hashing). */
static void proclookup_hash_proc(struct procid_proc *proc, uint32_t uid, void *arg)
{
    const struct proclookup_hashing *h = arg;
    const char *script;
    char path[PROCID_MAX_ARGS + 64];

    proc->sha256[0] = proc->script_sha256[0] = '\0';
    proc->script_size = 0;
    if (!h->content)
        return;
    snprintf(path, sizeof(path), "/proc/%ld/exe", (long)proc->pid);
    (void)proclookup_hash_file(h->p, uid, path, h->may_wait, h->queue, proc->sha256);
    if ((script = identity_process_script(proc)) == NULL)
        return;
    proclookup_script_path(proc, script, path, sizeof(path));
    proc->script_size =
        proclookup_hash_file(h->p, uid, path, h->may_wait, h->queue, proc->script_sha256);
}

/*
 * After a match by path (the executable's, or the script's): that file's digest, once
 * the hashing thread had it, names the same tool for the same user from now on (a copy
 * under another name).  Never from an isolating launcher (sluice itself) nor from a
 * match by content.
 */
static void proclookup_learn(const struct procid *chain, const struct identity_process_match *m,
                             const struct proclookup_record *r)
{
    const struct procid_proc *who;
    const char *what = NULL, *pattern;
    char path[PROCID_MAX_ARGS + 64], hex[EXEHASH_HEX];
    struct exehash_key key;

    if (m->tool == NULL || m->isolated || m->depth >= chain->nchain || chain->uid == UINT32_MAX)
        return;
    who = &chain->chain[m->depth];
    pattern = identity_process_pattern(m->tool, who, chain->uid, &what);
    if (pattern == NULL || pattern == identity_by_sha256 || pattern == identity_by_learned_sha256)
        return;
    if (what == who->exe) {
        if (r->sha256[0] != '\0')
            toolhash_learn(chain->uid, r->sha256, r->exe_key.size, m->tool->id);
        return;
    }
    proclookup_script_path(who, what, path, sizeof(path));
    if (exehash_of_path(path, &key, hex))
        toolhash_learn(chain->uid, hex, key.size, m->tool->id);
}

/* Matches a chain into a record; see the header. */
void proclookup_record_match(struct proclookup_record *r, const struct policy_snapshot *p,
                             struct procid *chain, uint64_t now_ms, bool may_wait)
{
    struct identity_process_match m;
    const struct procid_proc *who;

    /* Files are looked at only when content can name a tool for this user.  An isolating
     * launcher's descendants are never waited for, since their walk has a budget of its
     * own (PROCID_TREE_BUDGET_NS): a banned copy among them is known once the hashing
     * thread had it, at the next lookup or recheck. */
    bool content = identity_uses_content(p, chain->uid);
    struct proclookup_hashing hashing = {
        .p = p, .content = content, .may_wait = may_wait, .queue = may_wait};
    struct proclookup_hashing walking = {
        .p = p, .content = content, .may_wait = false, .queue = may_wait};

    for (size_t i = 0; i < chain->nchain; i++)
        proclookup_hash_proc(&chain->chain[i], chain->uid, &hashing);
    identity_match_process(p, chain, proclookup_hash_proc, &walking, &m);
    who = procid_nth(chain, m.tool != NULL ? m.depth : 0);
    free(r->tool);
    r->tool = m.tool != NULL ? strdup(m.tool->id) : NULL;
    free(r->exe);
    r->exe = strdup(who->exe);
    r->isolated = m.isolated;
    r->unverified = m.unverified;
    r->checked_ms = now_ms;
    r->generation = p->generation;
    if (!exehash_of_pid(who->pid, &r->exe_key, r->sha256))
        r->sha256[0] = '\0';
    proclookup_learn(chain, &m, r);
}

/* Fills a record from a chain; see the header. */
void proclookup_record_fill(struct proclookup_record *r, const struct policy_snapshot *p,
                            struct procid *chain, uint64_t now_ms)
{
    char text[PROCLOOKUP_TEXT];

    proclookup_record_clear(r);
    r->pid = chain->chain[0].pid;
    r->start = chain->start;
    r->uid = chain->uid;
    procid_command_line(&chain->chain[0], text, sizeof(text));
    r->cmd = strdup(text);
    procid_chain_names(chain, text, sizeof(text));
    r->chain = strdup(text);
    if (chain->nchain > 1) {
        r->parent_pid = chain->chain[1].pid;
        if (chain->chain[1].exe[0] != '\0')
            r->parent_exe = strdup(chain->chain[1].exe);
    }
    proclookup_record_match(r, p, chain, now_ms, true);
}

/* One connection's lookup: what to look for, and what was found. */
struct proclookup_job {
    TAILQ_ENTRY(proclookup_job) queued; /* in the thread's queue, under lock */
    TAILQ_ENTRY(proclookup_job) all;    /* among the jobs not yet freed (loop thread only) */
    struct proclookup *pl;
    struct policy_snapshot *policy; /* a reference */
    struct sockaddr_storage peer, local;
    pid_t unix_pid;
    atomic_bool cancelled;
    struct event *done; /* on the worker's base: activated by the thread when it is done */
    proclookup_done_fn fn;
    void *arg;
    uint64_t asked_ns;               /* when it was queued (monotonic), for the latency */
    struct proclookup_record result; /* written by the thread before it activates done */
};
TAILQ_HEAD(proclookup_jobs, proclookup_job);

struct proclookup {
    struct event_base *base;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;                /* under lock */
    struct proclookup_jobs queue; /* waiting for the thread; under lock */
    size_t nqueued;               /* its length; under lock */
    struct proclookup_jobs all;   /* every job not yet freed; the loop thread's alone */
    struct procid_cache cache;    /* the thread's alone */
    struct procid chain;          /* the thread's scratch: large */
};

/* The monotonic clock in ms, as session.c keeps it. */
static uint64_t proclookup_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The monotonic clock in ns, for the identification latency. */
static uint64_t proclookup_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Does one job's lookup, in the thread. */
static void proclookup_run(struct proclookup *pl, struct proclookup_job *job)
{
    bool found;

#ifdef SLUICE_FAULT_INJECTION
    /* Test builds only: a slow lookup, so that the tests can reach what happens meanwhile. */
    {
        const char *delay = getenv("SLUICE_TEST_LOOKUP_DELAY_MS");
        if (delay != NULL)
            usleep((useconds_t)strtoul(delay, NULL, 10) * 1000);
    }
#endif
    if (job->unix_pid > 0)
        found = procid_of_pid(job->unix_pid, &pl->chain) == 0;
    else
        found = procid_lookup(&pl->cache, (const struct sockaddr *)&job->peer,
                              (const struct sockaddr *)&job->local, &pl->chain) == 0;
    if (found)
        proclookup_record_fill(&job->result, job->policy, &pl->chain, proclookup_now_ms());
}

/* The thread: takes jobs in order until told to stop. */
static void *proclookup_main(void *arg)
{
    struct proclookup *pl = arg;
    struct proclookup_job *job;

    pthread_mutex_lock(&pl->lock);
    for (;;) {
        while (TAILQ_EMPTY(&pl->queue) && !pl->stopping)
            pthread_cond_wait(&pl->wake, &pl->lock);
        if (pl->stopping)
            break;
        job = TAILQ_FIRST(&pl->queue);
        TAILQ_REMOVE(&pl->queue, job, queued);
        pl->nqueued--;
        pthread_mutex_unlock(&pl->lock);
        if (!atomic_load(&job->cancelled))
            proclookup_run(pl, job);
        /* From here the job is the loop's again. */
        event_active(job->done, 0, 0);
        pthread_mutex_lock(&pl->lock);
    }
    pthread_mutex_unlock(&pl->lock);
    return NULL;
}

/* Frees a job the thread no longer holds. */
static void proclookup_job_free(struct proclookup_job *job)
{
    TAILQ_REMOVE(&job->pl->all, job, all);
    if (job->done != NULL)
        event_free(job->done);
    policy_unref(job->policy);
    proclookup_record_clear(&job->result);
    free(job);
}

/* On the loop: a job is done; its connection takes the result unless it went away. */
static void proclookup_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proclookup_job *job = arg;

    (void)fd;
    (void)what;
    if (!atomic_load(&job->cancelled)) {
        /* From asking to the answer on the loop: the queue, the lookup and the wake-up. */
        metrics_observe_identification((double)(proclookup_now_ns() - job->asked_ns) / 1e9);
        job->fn(&job->result, job->arg);
    }
    proclookup_job_free(job);
}

/* Starts the thread; see the header. */
struct proclookup *proclookup_new(struct event_base *base)
{
    struct proclookup *pl = calloc(1, sizeof(*pl));
    sigset_t all, old;
    bool started;

    if (pl == NULL)
        return NULL;
    pl->base = base;
    TAILQ_INIT(&pl->queue);
    TAILQ_INIT(&pl->all);
    pthread_mutex_init(&pl->lock, NULL);
    pthread_cond_init(&pl->wake, NULL);
    /* Signals are the main thread's to take (a recv interrupted by one would fail the
     * lookup): the thread starts with every one blocked. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    started = pthread_create(&pl->thread, NULL, proclookup_main, pl) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!started) {
        pthread_mutex_destroy(&pl->lock);
        pthread_cond_destroy(&pl->wake);
        free(pl);
        return NULL;
    }
    return pl;
}

/* Stops the thread and frees what is left; see the header. */
void proclookup_free(struct proclookup *pl)
{
    struct proclookup_job *job;

    if (pl == NULL)
        return;
    pthread_mutex_lock(&pl->lock);
    pl->stopping = true;
    pthread_cond_signal(&pl->wake);
    pthread_mutex_unlock(&pl->lock);
    pthread_join(pl->thread, NULL);
    while ((job = TAILQ_FIRST(&pl->all)) != NULL)
        proclookup_job_free(job);
    pthread_mutex_destroy(&pl->lock);
    pthread_cond_destroy(&pl->wake);
    free(pl);
}

/* Copies a socket address of its family's size into out. */
static void proclookup_copy_addr(struct sockaddr_storage *out, const struct sockaddr *sa)
{
    memset(out, 0, sizeof(*out));
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET)
        memcpy(out, sa, sizeof(struct sockaddr_in));
    else if (sa->sa_family == AF_INET6)
        memcpy(out, sa, sizeof(struct sockaddr_in6));
}

/* Queues a lookup; see the header. */
struct proclookup_job *proclookup_submit(struct proclookup *pl, struct policy_snapshot *p,
                                         const struct sockaddr *peer, const struct sockaddr *local,
                                         pid_t unix_pid, proclookup_done_fn done, void *arg)
{
    struct proclookup_job *job;
    bool full;

    pthread_mutex_lock(&pl->lock);
    full = pl->nqueued >= PROCLOOKUP_MAX_QUEUED;
    pthread_mutex_unlock(&pl->lock);
    if (full || (job = calloc(1, sizeof(*job))) == NULL)
        return NULL;
    job->done = event_new(pl->base, -1, 0, proclookup_done_cb, job);
    if (job->done == NULL) {
        free(job);
        return NULL;
    }
    job->pl = pl;
    job->policy = policy_ref(p);
    proclookup_copy_addr(&job->peer, peer);
    proclookup_copy_addr(&job->local, local);
    job->unix_pid = unix_pid;
    atomic_init(&job->cancelled, false);
    job->fn = done;
    job->arg = arg;
    job->asked_ns = proclookup_now_ns();
    TAILQ_INSERT_TAIL(&pl->all, job, all);
    pthread_mutex_lock(&pl->lock);
    TAILQ_INSERT_TAIL(&pl->queue, job, queued);
    pl->nqueued++;
    pthread_cond_signal(&pl->wake);
    pthread_mutex_unlock(&pl->lock);
    return job;
}

/* Forgets a job's connection; see the header. */
void proclookup_cancel(struct proclookup_job *job)
{
    atomic_store(&job->cancelled, true);
}
