/*
 * Byte tunnels (CONNECT, and HTTP upgrades after the origin's 101): both directions
 * relayed with watermark back-pressure, half-close propagated, and the first client bytes
 * peeked for a TLS ClientHello whose SNI is kept with the tunnel.
 */
#ifndef SLUICE_TUNNEL_H
#define SLUICE_TUNNEL_H

#include <stdbool.h>

#include "sluice/conn.h"

/*
 * Turns c into a tunnel between its client and upstream bufferevents (both connected).
 * peek_sni asks for the ClientHello peek (CONNECT); upgrades pass false.
 */
void tunnel_start(struct conn *c, bool peek_sni);

/* Client-side events while tunnelling (wired by conn.c). */
void tunnel_client_readable(struct conn *c);
void tunnel_client_drained(struct conn *c);
void tunnel_client_event(struct conn *c, short what);

#endif /* SLUICE_TUNNEL_H */
