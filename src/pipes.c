/* A worker's pool of pipes for splice(2); see include/sluice/pipes.h. */
#include "sluice/pipes.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* Empty pipes kept for reuse; at most this many, whatever max says. */
#define PIPES_KEEP 64
/* Capacity asked for each pipe: one splice moves at most this, like the relay watermark. */
#define PIPES_SIZE (256 * 1024)

/* The pool: empty pipes ready for reuse, and how many exist in all. */
struct pipes {
    size_t max;   /* pipes that may exist at once */
    size_t count; /* pipes that exist: kept here and lent out */
    size_t nfree;
    int free_fds[PIPES_KEEP][2];
};

/* Makes an empty pool. */
struct pipes *pipes_new(size_t max)
{
    struct pipes *p = calloc(1, sizeof(*p));

    if (p != NULL)
        p->max = max;
    return p;
}

/* Closes every kept pipe and frees the pool. */
void pipes_free(struct pipes *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nfree; i++) {
        close(p->free_fds[i][0]);
        close(p->free_fds[i][1]);
    }
    free(p);
}

/* Takes a kept pipe or makes one. */
bool pipes_get(struct pipes *p, int fds[2])
{
    if (p->nfree > 0) {
        p->nfree--;
        fds[0] = p->free_fds[p->nfree][0];
        fds[1] = p->free_fds[p->nfree][1];
        return true;
    }
    if (p->count >= p->max || pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        fds[0] = fds[1] = -1;
        return false;
    }
    /* A bigger pipe takes a bulk transfer in fewer calls; the default (64 KiB) still works. */
    (void)fcntl(fds[1], F_SETPIPE_SZ, PIPES_SIZE);
    p->count++;
    return true;
}

/* Keeps an empty pipe, closes any other. */
void pipes_put(struct pipes *p, int fds[2], bool empty)
{
    if (fds[0] < 0)
        return;
    if (empty && p->nfree < PIPES_KEEP) {
        p->free_fds[p->nfree][0] = fds[0];
        p->free_fds[p->nfree][1] = fds[1];
        p->nfree++;
    } else {
        close(fds[0]);
        close(fds[1]);
        p->count--;
    }
    fds[0] = fds[1] = -1;
}
