/*
 * A DNS stub on UDP 127.0.0.1:0 that answers every query with NXDOMAIN (RCODE 3),
 * echoing the question, so that a proxy under test never sends a query off the machine.
 */
#ifndef SLUICE_TEST_DNSSTUB_H
#define SLUICE_TEST_DNSSTUB_H

#include <stdint.h>

struct dnsstub;

/* Binds the socket and starts the answering thread.  Returns NULL on failure. */
struct dnsstub *dnsstub_start(void);

/* The UDP port the stub listens on. */
uint16_t dnsstub_port(const struct dnsstub *d);

/* How many queries were answered so far. */
unsigned dnsstub_queries(const struct dnsstub *d);

/* Stops and joins the thread, closes the socket, frees d.  NULL is a no-op. */
void dnsstub_stop(struct dnsstub *d);

#endif /* SLUICE_TEST_DNSSTUB_H */
