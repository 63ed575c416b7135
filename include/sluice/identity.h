/*
 * Who is calling: the one seam that names the tool behind a request.  Sources, strongest
 * first: the listener the client connected to (a listener can be bound to a tool), then the
 * user name of Proxy-Authorization: Basic (no password check yet).  The identity issue adds
 * the local process and the User-Agent here.
 */
#ifndef SLUICE_IDENTITY_H
#define SLUICE_IDENTITY_H

#include <stddef.h>

#include "sluice/policy.h"

/* Which source named the tool. */
enum identity_source {
    IDENTITY_NONE = 0,   /* nothing identified the client */
    IDENTITY_LISTENER,   /* the listener is bound to a tool */
    IDENTITY_PROXY_USER, /* the Proxy-Authorization user name */
};

/* Room for a user name, NUL included. */
#define IDENTITY_USER_MAX 128

/* The tool of a request, the user behind it, and how the tool was found. */
struct identity {
    const struct policy_tool *tool; /* the tool's profile in the policy snapshot, or NULL */
    enum identity_source source;
    char user[IDENTITY_USER_MAX]; /* the proxy user name offered, or "" */
};

/*
 * Names the tool for a request under policy p: listener_tool is the tool the listener is
 * bound to (or NULL); proxy_auth[0..len) is the Proxy-Authorization value (or NULL).
 */
void identity_resolve(const struct policy_snapshot *p, const char *listener_tool,
                      const char *proxy_auth, size_t len, struct identity *out);

/*
 * Writes the key of id's owner, "<tool id>\n<user>" ("" for either when unknown), into
 * out[0..cap): what an upstream connection is filed under, so that it is reused only by
 * the same tool and user.
 */
void identity_owner_key(const struct identity *id, char *out, size_t cap);

/* "listener", "proxy-user" or "none". */
const char *identity_source_str(enum identity_source s);

#endif /* SLUICE_IDENTITY_H */
