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
    char text[80];               /* as the user wrote it, for messages */
    int lock_fd;                 /* a Unix socket's lock, held while it listens; -1: none */
    uint64_t sock_dev, sock_ino; /* the socket file it made, removed at exit only if still it */
};

/*
 * Parses "127.0.0.1:3128", "[::1]:3128" or "unix:PATH" into *out.  A Unix PATH that is a
 * bare name is taken from the runtime directory (listener_runtime_dir()).  Returns 0 or
 * -1 with *errstr.
 */
int listener_parse(const char *text, struct listener_addr *out, const char **errstr);

/*
 * The directory for a Unix socket given by name alone: $XDG_RUNTIME_DIR, else /run for
 * root, else $XDG_CACHE_HOME/sluice or ~/.cache/sluice.  sluice and `sluice run` find the
 * same socket this way when they run as the same user.  Returns 0, or -1 when there is none.
 */
int listener_runtime_dir(char *out, size_t cap);

/* The backlog of each listening socket. */
#define LISTENER_BACKLOG 4096

/*
 * Opens a listening socket for each of the n addresses for each worker (fds[k * n + i]
 * for worker k, address i), one SO_REUSEPORT group per address so the kernel spreads
 * clients over the workers (a Unix socket is one, shared); port 0 becomes the kernel's pick,
 * written back to addrs.  An address where another process listens (or where a connection for it
 * would reach one) is refused: returns -1 with err naming the address and, where it can be seen,
 * the process. Returns 0.
 */
int listener_open_all(struct listener_addr *addrs, size_t n, unsigned workers, int *fds, char *err,
                      size_t cap);

/*
 * Removes the socket files of the Unix listeners among addrs[0..n) that
 * listener_open_all() made, and releases their locks: at exit.
 */
void listener_close_unix(struct listener_addr *addrs, size_t n);

/* True when a and b are the same address and the same port, port 0 (any free one) aside. */
bool listener_same(const struct listener_addr *a, const struct listener_addr *b);

/* Formats a as "ip:port", "[ip]:port" or "unix:PATH" into out. */
void listener_format(const struct listener_addr *a, char *out, size_t cap);

#endif /* SLUICE_LISTENER_H */
