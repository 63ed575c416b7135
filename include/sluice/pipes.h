/*
 * A worker's pipes for splice(2): a tunnel that only relays moves its bytes socket ->
 * pipe -> socket inside the kernel.  A tunnel holds a pipe only while bytes sit in it and
 * gives it back empty, so idle tunnels hold none; the pool keeps empty pipes for reuse and
 * caps how many exist, which bounds the descriptors they take.
 */
#ifndef SLUICE_PIPES_H
#define SLUICE_PIPES_H

#include <stdbool.h>
#include <stddef.h>

struct pipes;

/* Makes an empty pool that lets at most max pipes exist at once; NULL when out of memory. */
struct pipes *pipes_new(size_t max);

/* Closes every pipe in the pool and frees it.  NULL is a no-op. */
void pipes_free(struct pipes *p);

/*
 * Takes an empty pipe (fds[0] read end, fds[1] write end, both non-blocking): one kept in
 * the pool, else a new one while fewer than max exist.  False when none can be had (the
 * caller then copies through a buffer instead).
 */
bool pipes_get(struct pipes *p, int fds[2]);

/*
 * Gives a pipe back: kept for reuse when empty is true, else closed (bytes still in it
 * would reach the next user).  fds are set to -1.
 */
void pipes_put(struct pipes *p, int fds[2], bool empty);

#endif /* SLUICE_PIPES_H */
