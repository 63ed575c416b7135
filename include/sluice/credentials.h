/*
 * Proxy credentials, verified: a file of user names and salted scrypt hashes of their
 * tokens (never the tokens), one "NAME:scrypt:N:r:p:SALT:HASH" line each (hex salt and
 * hash), as `sluice passwd NAME` prints it.  A credential that verified once is
 * remembered by a keyed hash of the whole header value, so the cost of scrypt is paid
 * once per credential, not per request.
 */
#ifndef SLUICE_CREDENTIALS_H
#define SLUICE_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/yamldoc.h"

struct credentials;

/*
 * Loads the file at path.  Returns the set, or NULL with every bad line in errs as
 * "path:line:column: what is wrong".  The file must not be readable by group or others
 * unless it is owned by root and the group can read it (a service group): it holds what
 * lets a client in.
 */
struct credentials *credentials_load(const char *path, struct yamldoc_errors *errs);

/* Frees the set.  NULL is a no-op. */
void credentials_free(struct credentials *c);

/*
 * Makes c (owned from now on; NULL: none) the set every worker checks against, at start
 * and at each reload, so a revoked token goes with a SIGHUP.  A set it replaces is kept
 * until credentials_release_all(), as a worker may be checking against it right now.
 */
void credentials_install(struct credentials *c);

/* The set installed last, or NULL; valid until credentials_release_all(). */
struct credentials *credentials_current(void);

/* Frees every set installed, once the workers are gone. */
void credentials_release_all(void);

/* Number of users in the set. */
size_t credentials_count(const struct credentials *c);

/*
 * True when user[0..ulen) is in c and pass[0..plen) is its token.  Thread-safe (the
 * workers share one set); the memory of a verified credential is per set.
 */
bool credentials_verify(struct credentials *c, const char *user, size_t ulen, const char *pass,
                        size_t plen);

/*
 * Writes the file line for user and token into out[0..cap): a fresh random salt, scrypt
 * with N=1024, r=8, p=1 (the file may ask for up to N=16384 and r=8).  Returns 0, or -1
 * (out of memory, or cap too small).
 */
int credentials_line(const char *user, const char *token, char *out, size_t cap);

#endif /* SLUICE_CREDENTIALS_H */
