/*
 * Plain HTTP forwarding: the rewritten request head (absolute-form to origin-form, Host
 * from the target, hop-by-hop fields removed, Via added), request and response bodies
 * streamed with back-pressure and re-framed, interim responses, and upgrades.
 */
#ifndef SLUICE_FORWARD_H
#define SLUICE_FORWARD_H

#include "sluice/conn.h"

/*
 * Serialises the request head that c->head describes (parsed from buf, a request of
 * c->head.head_len bytes, whose target was split into *t) into c->pending, rewritten for the
 * origin.  Sets c->req_body and friends from the framing.  Returns 0, or -1 with *errstr when the
 * request cannot be forwarded (the caller answers 400).
 */
int forward_build_request(struct conn *c, const char *buf, const struct http1_target *t,
                          const char **errstr);

/* The upstream of c is connected: sends the pending head and starts relaying. */
void forward_start(struct conn *c);

/* Client-side events while forwarding (wired by conn.c). */
void forward_client_readable(struct conn *c);
void forward_client_drained(struct conn *c);
void forward_client_event(struct conn *c, short what);

#endif /* SLUICE_FORWARD_H */
