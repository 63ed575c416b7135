/*
 * Running with no more privilege than needed.  Started as root (to bind a port below
 * 1024, or by an init system without User=), sluice binds its listeners and opens its
 * files first, then becomes the unprivileged user the configuration names, for good: the
 * supplementary groups, the group and the user all change, and a way back is refused.
 * Files that hold secrets (the CA key) must be the running user's alone.
 */
#ifndef SLUICE_PRIVILEGE_H
#define SLUICE_PRIVILEGE_H

#include <stddef.h>
#include <sys/types.h>

/* The user to become, looked up while the password database is still readable. */
struct privilege_user {
    char name[64];
    uid_t uid;
    gid_t gid;
};

/*
 * Looks user up.  Returns 0, or -1 with a sentence in err that says what to do (a user
 * that does not exist, or one that is root).
 */
int privilege_lookup(const char *name, struct privilege_user *out, char *err, size_t cap);

/*
 * Becomes u: its groups (initgroups), its group, its user, then checks that root cannot be
 * taken back.  Call once every privileged step is done and before any thread starts.
 * Returns 0, or -1 with a sentence in err.
 */
int privilege_drop(const struct privilege_user *u, char *err, size_t cap);

/*
 * Checks that the file at path, holding what (e.g. "the CA key"), is readable by the user
 * sluice runs as (owner, named owner_name) and by nobody else: a regular file, owned by
 * owner, without group or other permission bits.  Returns 0, or -1 with a sentence in err
 * that names the file and the command that fixes it.
 */
int privilege_check_private_file(const char *path, const char *what, uid_t owner,
                                 const char *owner_name, char *err, size_t cap);

/*
 * The user sluice runs as under configured_user (NULL: none): that user when the process
 * is root and one is configured, else the effective user.  Fills uid and name.  Returns 0,
 * or -1 with a sentence in err.
 */
int privilege_runs_as(const char *configured_user, uid_t *uid, char *name, size_t name_cap,
                      char *err, size_t cap);

#endif /* SLUICE_PRIVILEGE_H */
