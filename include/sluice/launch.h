/*
 * Starting a tool so that it goes through sluice (`sluice run --tool ID -- CMD`), or
 * printing what that takes (`sluice env --tool ID`): the proxy variables every common
 * runtime reads, pointing at sluice with the tool id as user name and a password part
 * (python's urllib, wget and node's undici drop a user name without one), NO_PROXY
 * cleared, node told to use them, git told to send the credentials unasked, and, when a
 * CA is configured, a bundle of the system's CAs and sluice's named for each runtime.
 */
#ifndef SLUICE_LAUNCH_H
#define SLUICE_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/listener.h"

#define LAUNCH_MAX_VARS  32
#define LAUNCH_VALUE_MAX 600

/* One environment variable to set. */
struct launch_var {
    char name[64];
    char value[LAUNCH_VALUE_MAX];
};

/*
 * The client's view of listener a: the address a client dials ("0.0.0.0" and "::" become
 * loopback), as "host:port" with IPv6 in brackets, into out.
 */
void launch_client_address(const struct listener_addr *a, char *out, size_t cap);

/*
 * Fills out with the variables for tool (an id) and token going through the proxy at
 * address ("host:port"), with ca_bundle (a path, or NULL: none), then the tool's own
 * settings extra[0..nextra) ("NAME=VALUE", its telemetry switched off).  Returns how many.
 */
size_t launch_vars(const char *tool, const char *token, const char *address, const char *ca_bundle,
                   char *const *extra, size_t nextra, struct launch_var *out, size_t cap);

/* True when something accepts a connection (TCP or Unix) at a within timeout_ms. */
bool launch_listening(const struct listener_addr *a, int timeout_ms);

/*
 * Writes the system's CA bundle followed by ca_cert into a file under the user's cache
 * directory ($XDG_CACHE_HOME/sluice, else ~/.cache/sluice), path into out.  Returns 0, or
 * -1 with a sentence in err.
 */
int launch_ca_bundle(const char *ca_cert, char *out, size_t cap, char *err, size_t errcap);

#endif /* SLUICE_LAUNCH_H */
