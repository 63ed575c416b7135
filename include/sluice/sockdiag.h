/*
 * Who holds a socket: the kernel's table of TCP sockets, asked through NETLINK_SOCK_DIAG
 * (which listen on a port, with their inode and owner), and the process that holds a
 * socket inode, found under /proc.
 */
#ifndef SLUICE_SOCKDIAG_H
#define SLUICE_SOCKDIAG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Listening sockets on one port beyond its own that a caller should make room for. */
#define SOCKDIAG_MAX_LISTENERS 512

/* One socket of the kernel's table. */
struct sockdiag_socket {
    struct sockaddr_storage addr; /* its local address and port */
    uint64_t inode;
    uint32_t uid;
};

/*
 * The TCP sockets of sa's family listening on sa's port at sa's address, or at the
 * wildcard address, or anywhere when sa's address is the wildcard: every socket that a
 * connection for sa could reach.  Writes up to cap to out and returns how many there are,
 * or -1 with errno (NETLINK_SOCK_DIAG refused or silent for a second).
 */
int sockdiag_tcp_listeners(const struct sockaddr *sa, struct sockdiag_socket *out, size_t cap);

/*
 * A process that holds the socket inode: its pid and name (/proc/PID/comm).  Returns 0, or
 * -1 when no visible process holds it (another user's processes are hidden from an
 * unprivileged caller).
 */
int sockdiag_holder(uint64_t inode, pid_t *pid, char *name, size_t cap);

/*
 * The TCP socket whose own address is local and whose peer is remote (both IPv4 or both
 * IPv6): on loopback, the client end of a connection sluice accepted, asked with local =
 * the client's address and remote = sluice's.  Fills out (inode and owner).  Returns 0,
 * or -1 with errno (ENOENT: no such socket).
 */
int sockdiag_tcp_socket(const struct sockaddr *local, const struct sockaddr *remote,
                        struct sockdiag_socket *out);

/*
 * Like sockdiag_holder(), but quicker for a connection's client: the processes in
 * hints[0..nhints) are looked at first (the ones that held the last sockets), then only
 * the processes of user uid, newest first, for at most 50 ms.  Returns 0 with *pid, or -1 (none
 * found in time).
 */
int sockdiag_holder_of_user(uint64_t inode, uint32_t uid, const pid_t *hints, size_t nhints,
                            pid_t *pid);

/* The inode of the socket fd, or 0. */
uint64_t sockdiag_inode(int fd);

#endif /* SLUICE_SOCKDIAG_H */
