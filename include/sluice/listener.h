/*
 * Listening sockets: parsing "ADDR:PORT" (IPv4, or IPv6 in brackets) and opening a
 * non-blocking SO_REUSEPORT socket per worker, so the kernel spreads connections, on a
 * port no other process holds.
 */
#ifndef SLUICE_LISTENER_H
#define SLUICE_LISTENER_H

#include <stdbool.h>
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

/* The backlog of each listening socket. */
#define LISTENER_BACKLOG 4096

/*
 * Opens a listening socket for each of the n addresses for each worker (fds[k * n + i]
 * for worker k, address i), one SO_REUSEPORT group per address so the kernel spreads
 * clients over the workers; port 0 becomes the kernel's pick, written back to addrs.  An
 * address where another process listens (or where a connection for it would reach one) is
 * refused: returns -1 with err naming the address and, where it can be seen, the process.
 * Returns 0.
 */
int listener_open_all(struct listener_addr *addrs, size_t n, unsigned workers, int *fds, char *err,
                      size_t cap);

/* True when a and b are the same address and the same port, port 0 (any free one) aside. */
bool listener_same(const struct listener_addr *a, const struct listener_addr *b);

/* Formats a as "ip:port" or "[ip]:port" into out. */
void listener_format(const struct listener_addr *a, char *out, size_t cap);

#endif /* SLUICE_LISTENER_H */
