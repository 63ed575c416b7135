/*
 * Listening sockets: parsing "ADDR:PORT" (IPv4, or IPv6 in brackets) and opening a
 * non-blocking SO_REUSEPORT socket per worker, so the kernel spreads connections.
 */
#ifndef SLUICE_LISTENER_H
#define SLUICE_LISTENER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A listening address as given on the command line, resolved to a socket address. */
struct listener_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[80]; /* as the user wrote it, for messages */
};

/* Parses "127.0.0.1:3128" or "[::1]:3128" into *out.  Returns 0 or -1 with *errstr. */
int listener_parse(const char *text, struct listener_addr *out, const char **errstr);

/*
 * Opens, binds and listens on a (SO_REUSEPORT, IPv6-only for IPv6).  Returns the socket,
 * or -1 with errno set.
 */
int listener_open(const struct listener_addr *a);

/* The port a bound socket ended up on (for port 0), or 0. */
uint16_t listener_bound_port(int fd);

/* Sets the port of a (after the first bind of port 0, so the other workers share it). */
void listener_set_port(struct listener_addr *a, uint16_t port);

/* Formats a as "ip:port" or "[ip]:port" into out. */
void listener_format(const struct listener_addr *a, char *out, size_t cap);

#endif /* SLUICE_LISTENER_H */
