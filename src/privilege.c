/* Dropping root and checking private files; see include/sluice/privilege.h. */
#include "sluice/privilege.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Looks the user up; see the header. */
int privilege_lookup(const char *name, struct privilege_user *out, char *err, size_t cap)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    int rc;

    if (strlen(name) >= sizeof(out->name)) {
        snprintf(err, cap, "user '%.64s...' is too long a name", name);
        return -1;
    }
    rc = getpwnam_r(name, &pw, buf, sizeof(buf), &found);
    if (found == NULL) {
        snprintf(err, cap,
                 "user '%s' %s; create it (adduser --system --group --no-create-home %s) or "
                 "name another",
                 name, rc != 0 ? strerror(rc) : "does not exist on this system", name);
        return -1;
    }
    if (found->pw_uid == 0 || found->pw_gid == 0) {
        snprintf(err, cap, "user '%s' is root or in root's group; name an unprivileged user", name);
        return -1;
    }
    snprintf(out->name, sizeof(out->name), "%s", name);
    out->uid = found->pw_uid;
    out->gid = found->pw_gid;
    return 0;
}

/* Becomes u for good; see the header. */
int privilege_drop(const struct privilege_user *u, char *err, size_t cap)
{
    /* Groups first, while root may still change them; the user last. */
    if (initgroups(u->name, u->gid) < 0) {
        snprintf(err, cap, "cannot take the groups of user '%s': %s", u->name, strerror(errno));
        return -1;
    }
    if (setresgid(u->gid, u->gid, u->gid) < 0) {
        snprintf(err, cap, "cannot become group %u of user '%s': %s", (unsigned)u->gid, u->name,
                 strerror(errno));
        return -1;
    }
    if (setresuid(u->uid, u->uid, u->uid) < 0) {
        snprintf(err, cap, "cannot become user '%s' (uid %u): %s", u->name, (unsigned)u->uid,
                 strerror(errno));
        return -1;
    }
    /* The saved IDs changed too, so this must fail; if it does not, nothing was dropped. */
    if (setuid(0) == 0 || geteuid() != u->uid || getegid() != u->gid) {
        snprintf(err, cap, "root could be taken back after becoming user '%s'; refusing to run",
                 u->name);
        return -1;
    }
    return 0;
}

/* Checks a secret file's owner and mode; see the header. */
int privilege_check_private_file(const char *path, const char *what, uid_t owner,
                                 const char *owner_name, char *err, size_t cap)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        snprintf(err, cap, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, cap, "%s %s is not a regular file", what, path);
        return -1;
    }
    if ((st.st_mode & 077) != 0) {
        snprintf(err, cap,
                 "%s %s is open to others (mode %04o); make it the owner's alone: chmod 600 %s",
                 what, path, (unsigned)(st.st_mode & 07777), path);
        return -1;
    }
    if (st.st_uid != owner) {
        snprintf(err, cap, "%s %s belongs to uid %u, but sluice runs as %s (uid %u): chown %s %s",
                 what, path, (unsigned)st.st_uid, owner_name, (unsigned)owner, owner_name, path);
        return -1;
    }
    return 0;
}

/* Who sluice runs as; see the header. */
int privilege_runs_as(const char *configured_user, uid_t *uid, char *name, size_t name_cap,
                      char *err, size_t cap)
{
    struct passwd pw, *found = NULL;
    struct privilege_user u;
    char buf[4096];

    if (configured_user != NULL && geteuid() == 0) {
        if (privilege_lookup(configured_user, &u, err, cap) < 0)
            return -1;
        *uid = u.uid;
        snprintf(name, name_cap, "%s", u.name);
        return 0;
    }
    *uid = geteuid();
    (void)getpwuid_r(*uid, &pw, buf, sizeof(buf), &found);
    if (found != NULL)
        snprintf(name, name_cap, "%s", found->pw_name);
    else
        snprintf(name, name_cap, "uid %u", (unsigned)*uid);
    return 0;
}
