/*
 * `sluice run --isolate`: a command run in a network namespace of its own, whose only
 * way out is sluice.  Inside, loopback carries one listener (the proxy address the
 * command is given); each connection to it is relayed to sluice's Unix socket, which a
 * file path reaches from any namespace.  sluice knows the command's tool from that
 * socket's peer (SO_PEERCRED: this launcher, see procid_isolate_tool()), not from anything
 * the command sends.  No other packet leaves: there is no route, and no name server
 * answers, so a program that ignores the proxy settings gets an error, not a way around
 * the policy.  The command runs in a PID namespace too, so that all it starts stays among
 * the launcher's descendants, where sluice looks for banned tools.  Files and Unix sockets
 * stay shared: this isolates the network, not the machine.
 */
#ifndef SLUICE_ISOLATE_H
#define SLUICE_ISOLATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Connections relayed at once; more wait in the listener's backlog. */
#define ISOLATE_MAX_PAIRS 256
/* Bytes buffered each way per connection: the relay's memory is bounded by both. */
#define ISOLATE_BUFFER 16384

/*
 * Moves this process into a new network namespace with loopback up: in a new user
 * namespace that maps the caller's own uid and gid (so that no capability reaches past
 * it), else, for root where the kernel refuses that, in a network namespace alone.
 * Returns 0, or -1 with a sentence in err.
 */
int isolate_enter(char *err, size_t cap);

/*
 * In the namespace: listens on 127.0.0.1:port, starts argv (with the environment as it
 * is), and relays every connection to the listener to sluice at (a Unix socket address
 * of len bytes) until the command ends.  Returns the command's exit status (128 + the
 * signal that ended it), or 126/127 when it could not be started, or -1 with a sentence
 * in err when the relay could not run.
 */
int isolate_run(uint16_t port, const struct sockaddr *to, socklen_t len, char **argv, char *err,
                size_t cap);

#endif /* SLUICE_ISOLATE_H */
