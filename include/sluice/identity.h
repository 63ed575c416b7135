/*
 * Who is calling: the one seam that names the tool behind a request.  Sources, strongest
 * first: the listener the client connected to (a listener can be bound to a tool); the
 * `sluice run --isolate` launcher the connection came through (or a banned tool that
 * launcher started); the user name of Proxy-Authorization: Basic when a credentials file
 * verified it; the local process behind a loopback connection (its executable, or the script an
 * interpreter runs, or an ancestor's, against the profiles' executables patterns); the user name
 * when nothing verified it; the User-Agent against the profiles' user_agents patterns.
 * The strongest that names a tool decides; a weaker one naming another tool is recorded
 * as a mismatch.
 */
#ifndef SLUICE_IDENTITY_H
#define SLUICE_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/policy.h"
#include "sluice/procid.h"

/* Which source named the tool. */
enum identity_source {
    IDENTITY_NONE = 0,   /* nothing identified the client */
    IDENTITY_LISTENER,   /* the listener is bound to a tool */
    IDENTITY_PROXY_USER, /* the Proxy-Authorization user name */
    IDENTITY_PROCESS,    /* the local process, or one of its ancestors */
    IDENTITY_ISOLATE,    /* the `sluice run --isolate` launcher the connection came through */
    IDENTITY_USER_AGENT, /* the User-Agent field */
};

/* Room for a user name, NUL included. */
#define IDENTITY_USER_MAX 128

/* The tool of a request, the user behind it, and how the tool was found. */
struct identity {
    const struct policy_tool *tool; /* the tool's profile in the policy snapshot, or NULL */
    enum identity_source source;
    char user[IDENTITY_USER_MAX];     /* the proxy user name offered, or "" */
    char mismatch[IDENTITY_USER_MAX]; /* "proxy-user:ID": a weaker source named another tool */
    char version[32];                 /* the tool's version its User-Agent gives, or "" */
};

/* What a request offers to be known by; any member may be NULL or empty. */
struct identity_input {
    const char *listener_tool; /* the tool the listener is bound to */
    const char *process_tool;  /* the tool the connection's process chain matched */
    bool process_isolated;     /* through an isolating launcher (identity "isolate"): it
                                  outranks everything but the listener */
    const char *proxy_auth;    /* the Proxy-Authorization value, proxy_auth_len bytes */
    size_t proxy_auth_len;
    bool proxy_user_verified; /* the credentials file verified it: it outranks the process */
    const char *user_agent;   /* the User-Agent value, user_agent_len bytes */
    size_t user_agent_len;
};

/*
 * Decodes the Basic credential v[0..len): the user name into user (capacity ucap) and,
 * when pass is not NULL, the password into pass (capacity pcap).  Returns false when the
 * value is not a well-formed Basic credential, the name is empty or either part holds a
 * control byte, or a part does not fit (never cut short).
 */
bool identity_basic_decode(const char *v, size_t len, char *user, size_t ucap, char *pass,
                           size_t pcap);

/* Names the tool for a request under policy p from what in offers. */
void identity_resolve(const struct policy_snapshot *p, const struct identity_input *in,
                      struct identity *out);

/* What a process chain says of the tool behind a connection. */
struct identity_process_match {
    const struct policy_tool *tool; /* the tool named, or NULL */
    size_t depth;    /* which process named it (procid_nth(); 0: the one behind the socket) */
    bool isolated;   /* through an isolating launcher: its tool, or a banned one it started */
    bool unverified; /* through one whose started processes could not all be looked at */
};

/*
 * What the process chain names under p, into *m: a banned tool matching any process of
 * the chain; else, for the outermost `sluice run --isolate --tool ID` launcher above the
 * connection (procid_outer_launcher()), a banned tool among the processes it started
 * (written to chain->descendant; looked for only when p bans a tool; each described with
 * its digests when hash is not NULL), or else its tool
 * ID; else the nearest process that a profile's executables patterns (shell globs, '*'
 * crossing '/') match, by its executable path (whole, not deleted), then by its
 * executable's content (its SHA-256, when the lookup filled procid_proc.sha256: listed in
 * a profile's identify: sha256, or learned for chain->uid), then by the script an
 * interpreter runs (its first argument that is a file name), then by that script's
 * content (procid_proc.script_sha256, the same way).
 */
/*
 * Fills proc's digests (procid_proc.sha256 and script_sha256) as the caller can, for a
 * process found during a match rather than before it (an isolating launcher's
 * descendants); uid is the chain's user.
 */
typedef void (*identity_hash_fn)(struct procid_proc *proc, uint32_t uid, void *arg);

void identity_match_process(const struct policy_snapshot *p, struct procid *chain,
                            identity_hash_fn hash, void *hash_arg,
                            struct identity_process_match *m);

/*
 * The script an interpreter process runs (node, python, a shell, the dynamic loader run by
 * hand): its first argument that is a file name, as given (relative to the process's
 * working directory, or absolute); NULL for any other process.
 */
const char *identity_process_script(const struct procid_proc *proc);

/* What identity_process_pattern() returns for a match by the executable's content: listed
 * in the profile (identify: sha256), or learned (toolhash.h). */
extern const char identity_by_sha256[];
extern const char identity_by_learned_sha256[];

/*
 * The first of t's executables patterns that matches proc (by its executable's path,
 * else identity_by_sha256 or identity_by_learned_sha256 for its content when proc->sha256
 * is known, learned for user uid, else the script it runs), with *what pointing at the
 * executable path or the argument it matched; NULL when none does.
 */
const char *identity_process_pattern(const struct policy_tool *t, const struct procid_proc *proc,
                                     uint32_t uid, const char **what);

/*
 * True when a file's content can name a tool for user uid under p at all: some profile
 * lists digests, or something was learned for uid (toolhash.h).  When false, a lookup
 * looks at no file's content.
 */
bool identity_uses_content(const struct policy_snapshot *p, uint32_t uid);

/*
 * True when a lookup for user uid should hash an executable of size bytes before
 * matching, because the answer may depend on it: some profile of p lists digests
 * (identify: sha256), or an executable of that size was learned for uid (toolhash.h).
 */
bool identity_wants_hash(const struct policy_snapshot *p, uint32_t uid, uint64_t size);

/*
 * Writes the key of id's owner, "<tool id>\n<user>" ("" for either when unknown), into
 * out[0..cap): what an upstream connection is filed under, so that it is reused only by
 * the same tool and user.
 */
void identity_owner_key(const struct identity *id, char *out, size_t cap);

/* "listener", "process", "proxy-user", "user-agent" or "none". */
const char *identity_source_str(enum identity_source s);

#endif /* SLUICE_IDENTITY_H */
