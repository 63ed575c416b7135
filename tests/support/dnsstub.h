/*
 * A DNS stub on UDP 127.0.0.1:0 that answers every query with NXDOMAIN (RCODE 3),
 * echoing the question, so that a proxy under test never sends a query off the machine;
 * a test may give it A records to answer instead, or names to leave unanswered, and ask
 * which names were queried.
 */
#ifndef SLUICE_TEST_DNSSTUB_H
#define SLUICE_TEST_DNSSTUB_H

#include <stdbool.h>
#include <stdint.h>

struct dnsstub;

/* Binds the socket and starts the answering thread.  Returns NULL on failure. */
struct dnsstub *dnsstub_start(void);

/* The UDP port the stub listens on. */
uint16_t dnsstub_port(const struct dnsstub *d);

/* How many queries were answered so far. */
unsigned dnsstub_queries(const struct dnsstub *d);

/*
 * Answers A queries for name (exact, case-insensitive, no trailing dot) with the IPv4
 * address ipv4 too, after those it had (at most 4; AAAA queries for it get an empty
 * answer).  At most 8 names.  Returns 0 or -1.
 */
int dnsstub_add_a(struct dnsstub *d, const char *name, const char *ipv4);

/* From now on, answers A queries for name with ipv4 alone.  Returns 0 or -1. */
int dnsstub_set_a(struct dnsstub *d, const char *name, const char *ipv4);

/*
 * Answers queries for name ms milliseconds after they come (other names are answered
 * meanwhile); dnsstub_queries() counts such an answer when it is sent.  Returns 0 or -1.
 */
int dnsstub_delay(struct dnsstub *d, const char *name, unsigned ms);

/*
 * Never answers queries for name (exact, case-insensitive), as a resolver that hangs: a
 * lookup of it lasts until the client's own timeout.  Shares the 8 names.  Returns 0 or -1.
 */
int dnsstub_add_silent(struct dnsstub *d, const char *name);

/* True when some query so far asked for name (case-insensitive, no trailing dot). */
bool dnsstub_was_asked(struct dnsstub *d, const char *name);

/* Stops and joins the thread, closes the socket, frees d.  NULL is a no-op. */
void dnsstub_stop(struct dnsstub *d);

#endif /* SLUICE_TEST_DNSSTUB_H */
