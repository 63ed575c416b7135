/* Who is calling; see include/sluice/identity.h. */
#include "sluice/identity.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "sluice/toolhash.h"

/* Longest Proxy-Authorization value looked at. */
#define IDENTITY_MAX_AUTH 512

/* "listener", "process", "proxy-user", "user-agent" or "none". */
const char *identity_source_str(enum identity_source s)
{
    switch (s) {
    case IDENTITY_LISTENER:
        return "listener";
    case IDENTITY_PROCESS:
        return "process";
    case IDENTITY_ISOLATE:
        return "isolate";
    case IDENTITY_PROXY_USER:
        return "proxy-user";
    case IDENTITY_USER_AGENT:
        return "user-agent";
    case IDENTITY_NONE:
        break;
    }
    return "none";
}

/* Decodes a Basic credential; see the header. */
bool identity_basic_decode(const char *v, size_t len, char *user, size_t ucap, char *pass,
                           size_t pcap)
{
    unsigned char decoded[IDENTITY_MAX_AUTH];
    size_t i = 0, b64len, pad = 0, ulen;
    int n;
    const unsigned char *colon;
    bool ok;

    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    if (len - i < 6 || strncasecmp(v + i, "Basic", 5) != 0 || v[i + 5] != ' ')
        return false;
    i += 6;
    while (i < len && v[i] == ' ')
        i++;
    b64len = len - i;
    if (b64len == 0 || b64len % 4 != 0 || b64len > sizeof(decoded))
        return false;
    n = EVP_DecodeBlock(decoded, (const unsigned char *)v + i, (int)b64len);
    if (n < 0)
        return false;
    if (v[i + b64len - 1] == '=')
        pad++;
    if (v[i + b64len - 2] == '=')
        pad++;
    n -= (int)pad;
    colon = n > 0 ? memchr(decoded, ':', (size_t)n) : NULL;
    ulen = colon != NULL ? (size_t)(colon - decoded) : 0;
    ok = colon != NULL && ulen > 0 && ulen < ucap;
    /* A control byte (NUL above all, which would cut the name short and name another
     * tool) makes the credential malformed: a name is taken whole or not at all. */
    for (size_t k = 0; ok && k < (size_t)n; k++)
        ok = decoded[k] >= 0x20 && decoded[k] != 0x7f;
    if (ok && pass != NULL) {
        size_t plen = (size_t)n - ulen - 1;
        ok = plen < pcap;
        if (ok) {
            memcpy(pass, colon + 1, plen);
            pass[plen] = '\0';
        }
    }
    if (ok) {
        memcpy(user, decoded, ulen);
        user[ulen] = '\0';
    }
    OPENSSL_cleanse(decoded, sizeof(decoded)); /* the password was in there */
    return ok;
}

/* The first tool whose user_agents patterns match ua[0..len) (case-insensitive), or NULL. */
static const struct policy_tool *identity_match_user_agent(const struct policy_snapshot *p,
                                                           const char *ua, size_t len)
{
    char text[512];

    if (ua == NULL || len == 0)
        return NULL;
    if (len >= sizeof(text))
        len = sizeof(text) - 1;
    memcpy(text, ua, len);
    text[len] = '\0';
    for (size_t i = 0; i < p->ntools; i++)
        for (size_t k = 0; k < p->tools[i].nuser_agents; k++)
            if (fnmatch(p->tools[i].user_agents[k], text, FNM_CASEFOLD) == 0)
                return &p->tools[i];
    return NULL;
}

/* Interpreters whose script, not themselves, is the program (node running a CLI's .js). */
static const char *const identity_interpreters[] = {
    "node", "nodejs", "deno", "bun", "python", "python2*", "python3*", "pypy*", "ruby*", "perl*",
    "sh", "bash", "dash", "zsh", "ksh", "fish",
    /* The dynamic loader runs the program named after its options: `ld-linux-x86-64.so.2
     * /opt/tool/bin/tool` shows the loader as the executable. */
    "ld-*.so*", "ld.so"};

/*
 * How an interpreter reads its options, as far as finding the script goes: the options
 * whose value is the next argument (node -r X, python -W X), and in a cluster of short
 * options ("-sW X", "-eo pipefail") the letters that take a value and those that give the
 * code inline (python -c, node -e, sh -c) or on standard input (sh -s).  Per interpreter,
 * since one's option with a value is another's flag (python -O, bash -O).
 */
static const struct {
    const char *interpreter; /* a pattern of identity_interpreters */
    const char *options;     /* long or short options with a value, space-separated */
    const char *value_letters, *code_letters;
} identity_option_rules[] = {
    {"node",
     "-r --require --import --loader --experimental-loader -C --conditions --title --env-file "
     "--redirect-warnings --disable-warning --report-dir --diagnostic-dir --icu-data-dir "
     "--openssl-config --input-type",
     "rC", "ep"},
    {"nodejs",
     "-r --require --import --loader --experimental-loader -C --conditions --title --env-file "
     "--redirect-warnings --disable-warning --report-dir --diagnostic-dir --icu-data-dir "
     "--openssl-config --input-type",
     "rC", "ep"},
    {"bun", "-r --preload --env-file --cwd", "r", "ep"},
    {"deno", "", "", ""},
    {"python*", "-W -X --check-hash-based-pycs", "WX", "cm"},
    {"pypy*", "-W -X --check-hash-based-pycs", "WX", "cm"},
    {"ruby*", "-I -r -C -E --enable --disable --encoding", "IrCE", "e"},
    {"perl*", "-I", "I", "eE"},
    {"fish", "-C --init-command", "C", "c"},
    {"*sh", "-o -O --rcfile --init-file", "oO", "cs"},
    {"ld-*.so*",
     "--library-path --preload --audit --argv0 --inhibit-rpath --glibc-hwcaps-prepend "
     "--glibc-hwcaps-mask",
     "", ""},
    {"ld.so",
     "--library-path --preload --audit --argv0 --inhibit-rpath --glibc-hwcaps-prepend "
     "--glibc-hwcaps-mask",
     "", ""},
};

/* What arg (an option) means for finding the script. */
enum identity_option {
    IDENTITY_OPT_FLAG,  /* nothing: the script comes later */
    IDENTITY_OPT_VALUE, /* the next argument is its value, not the script */
    IDENTITY_OPT_CODE,  /* the code is inline or on standard input: no script file */
};

/* What option arg of the interpreter named base means (identity_option_rules). */
static enum identity_option identity_option_of(const char *base, const char *arg)
{
    size_t len = strlen(arg);

    /* Code on standard input, or given inline; node --run runs a package.json script. */
    if (strcmp(arg, "-") == 0 || strcmp(arg, "--eval") == 0 || strcmp(arg, "--print") == 0 ||
        strncmp(arg, "--eval=", 7) == 0 || strncmp(arg, "--print=", 8) == 0 ||
        strcmp(arg, "--run") == 0 || strncmp(arg, "--run=", 6) == 0)
        return IDENTITY_OPT_CODE;
    for (size_t i = 0; i < sizeof(identity_option_rules) / sizeof(identity_option_rules[0]); i++) {
        const char *o = identity_option_rules[i].options;

        if (fnmatch(identity_option_rules[i].interpreter, base, 0) != 0)
            continue;
        while ((o = strstr(o, arg)) != NULL) {
            bool starts = o == identity_option_rules[i].options || o[-1] == ' ';
            if (starts && (o[len] == ' ' || o[len] == '\0'))
                return IDENTITY_OPT_VALUE;
            o += len;
        }
        /* A cluster of short options: the first letter with a value takes the rest, or
         * the next argument when it is the last. */
        if (arg[1] != '-') {
            for (size_t k = 1; k < len; k++) {
                if (strchr(identity_option_rules[i].code_letters, arg[k]) != NULL)
                    return IDENTITY_OPT_CODE;
                if (strchr(identity_option_rules[i].value_letters, arg[k]) != NULL)
                    return k == len - 1 ? IDENTITY_OPT_VALUE : IDENTITY_OPT_FLAG;
            }
        }
        return IDENTITY_OPT_FLAG;
    }
    /* An interpreter without rules: python's and node's inline code letters alone. */
    return strcmp(arg, "-c") == 0 || strcmp(arg, "-e") == 0 || strcmp(arg, "-m") == 0 ||
                   strcmp(arg, "-p") == 0
               ? IDENTITY_OPT_CODE
               : IDENTITY_OPT_FLAG;
}

/*
 * True when proc's executable path is whole and its own: not cut at the buffer's end (a
 * long path could then end in anything) nor a deleted file's leftover name.
 */
static bool identity_exe_known(const struct procid_proc *proc)
{
    size_t n = strlen(proc->exe);
    static const char deleted[] = " (deleted)";

    return n > 0 && n < sizeof(proc->exe) - 1 &&
           !(n >= sizeof(deleted) - 1 &&
             strcmp(proc->exe + n - (sizeof(deleted) - 1), deleted) == 0);
}

/*
 * The script an interpreter runs: for an executable whose name is an interpreter's, its
 * first argument after the program that is not an option, whole (not cut at the end of
 * what /proc gave); NULL otherwise.  Any other argument says nothing of the program: a
 * file name such as /tmp/next must not make curl a tool.
 */
static const char *identity_script_of(const struct procid_proc *proc)
{
    const char *base = strrchr(proc->exe, '/');
    bool interpreter = false;
    size_t off;

    if (!identity_exe_known(proc) || base == NULL)
        return NULL;
    base++;
    for (size_t i = 0; i < sizeof(identity_interpreters) / sizeof(identity_interpreters[0]); i++)
        interpreter = interpreter || fnmatch(identity_interpreters[i], base, 0) == 0;
    if (!interpreter || proc->args_len == 0)
        return NULL;
    for (off = strlen(proc->args) + 1; off < proc->args_len; off += strlen(proc->args + off) + 1) {
        const char *arg = proc->args + off;
        size_t len = strlen(arg);

        /* A shell's options also start with '+' (+o NAME, +x). */
        if (arg[0] == '-' || (arg[0] == '+' && arg[1] != '\0' && fnmatch("*sh", base, 0) == 0)) {
            switch (identity_option_of(base, arg)) {
            case IDENTITY_OPT_CODE: /* sh -c, node -e, python -, sh -s: no script file */
                return NULL;
            case IDENTITY_OPT_VALUE: /* node -r X, python -sW X: X is not the script */
                off += len + 1;
                if (off >= proc->args_len)
                    return NULL;
                continue;
            case IDENTITY_OPT_FLAG:
                continue;
            }
        }
        /* /proc's answer was cut at the buffer's end: an argument reaching it may be too. */
        if (proc->args_len >= sizeof(proc->args) - 1 && off + len >= proc->args_len)
            return NULL;
        /* A file name, not a line of code: no blank or control byte in it. */
        for (size_t k = 0; k < len; k++)
            if ((unsigned char)arg[k] <= ' ')
                return NULL;
        return arg;
    }
    return NULL;
}

/* The first of t's executables patterns that path matches, or NULL (path NULL too). */
static const char *identity_pattern_of(const struct policy_tool *t, const char *path)
{
    for (size_t k = 0; path != NULL && k < t->nexecutables; k++)
        if (fnmatch(t->executables[k], path, 0) == 0)
            return t->executables[k];
    return NULL;
}

/* The first of t's executables patterns that matches proc's executable, or NULL. */
static const char *identity_exe_pattern(const struct policy_tool *t, const struct procid_proc *proc)
{
    return identity_exe_known(proc) ? identity_pattern_of(t, proc->exe) : NULL;
}

/* What identity_process_pattern() returns for a match by the executable's content. */
const char identity_by_sha256[] = "its SHA-256 (identify: sha256)";
const char identity_by_learned_sha256[] = "its SHA-256 (learned: a copy of a file that "
                                          "matched by its path)";

/* The script process proc runs; see the header. */
const char *identity_process_script(const struct procid_proc *proc)
{
    return identity_script_of(proc);
}

/*
 * What a process offers to be matched by, worked out once per process by the callers
 * that try every tool: the script an interpreter runs (identity_script_of()), and the
 * tools its executable's and its script's contents were learned as for the chain's user
 * (toolhash.h), if any.
 */
struct identity_offer {
    const char *script;
    char learned[TOOLHASH_TOOL_MAX];        /* by the executable's digest; "" when none */
    char learned_script[TOOLHASH_TOOL_MAX]; /* by the script's digest; "" when none */
};

/* The tool learned for uid and digest (or "" for none, or an unknown digest) into out. */
static void identity_learned(uint32_t uid, const char *digest, char *out, size_t cap)
{
    if (digest[0] == '\0' || uid == UINT32_MAX || !toolhash_lookup(uid, digest, out, cap))
        out[0] = '\0';
}

/* Fills what proc offers; uid is the chain's user (UINT32_MAX: unknown). */
static void identity_offer_of(const struct procid_proc *proc, uint32_t uid,
                              struct identity_offer *o)
{
    o->script = identity_script_of(proc);
    identity_learned(uid, proc->sha256, o->learned, sizeof(o->learned));
    identity_learned(uid, o->script != NULL ? proc->script_sha256 : "", o->learned_script,
                     sizeof(o->learned_script));
}

/*
 * How t knows a file by its content (digest: "" when not known): identity_by_sha256
 * when t lists the digest, identity_by_learned_sha256 when learned names t; else NULL.
 */
static const char *identity_digest_match(const struct policy_tool *t, const char *digest,
                                         const char *learned)
{
    if (digest[0] == '\0')
        return NULL;
    for (size_t k = 0; k < t->nsha256; k++)
        if (strcmp(t->sha256[k], digest) == 0)
            return identity_by_sha256;
    return strcmp(learned, t->id) == 0 ? identity_by_learned_sha256 : NULL;
}

/*
 * Which pattern of t matches proc, by its executable's path, else its content, else the
 * script it runs by path, else by content; and what it matched (the executable path, or
 * the script).
 */
static const char *identity_match_one(const struct policy_tool *t, const struct procid_proc *proc,
                                      const struct identity_offer *o, const char **what)
{
    const char *pattern = identity_exe_pattern(t, proc);

    if (pattern == NULL)
        pattern = identity_digest_match(t, proc->sha256, o->learned);
    if (pattern != NULL) {
        *what = proc->exe;
        return pattern;
    }
    if (o->script == NULL)
        return NULL;
    pattern = identity_pattern_of(t, o->script);
    if (pattern == NULL)
        pattern = identity_digest_match(t, proc->script_sha256, o->learned_script);
    if (pattern != NULL)
        *what = o->script;
    return pattern;
}

/*
 * The tool a file's content names under p: the first profile that lists digest, else the
 * one learned; NULL when neither.
 */
static const struct policy_tool *identity_digest_tool(const struct policy_snapshot *p,
                                                      const char *digest, const char *learned)
{
    for (size_t i = 0; digest[0] != '\0' && i < p->ntools; i++)
        if (identity_digest_match(&p->tools[i], digest, "") == identity_by_sha256)
            return &p->tools[i];
    return digest[0] != '\0' && learned[0] != '\0' ? policy_find_tool(p, learned) : NULL;
}

/* Which pattern of t matches proc, and what it matched; see the header. */
const char *identity_process_pattern(const struct policy_tool *t, const struct procid_proc *proc,
                                     uint32_t uid, const char **what)
{
    struct identity_offer o;

    identity_offer_of(proc, uid, &o);
    return identity_match_one(t, proc, &o, what);
}

/* Whether content can name a tool for uid; see the header. */
bool identity_uses_content(const struct policy_snapshot *p, uint32_t uid)
{
    for (size_t i = 0; i < p->ntools; i++)
        if (p->tools[i].nsha256 > 0)
            return true;
    return uid != UINT32_MAX && toolhash_has_user(uid);
}

/* Whether a lookup should hash an executable now; see the header. */
bool identity_wants_hash(const struct policy_snapshot *p, uint32_t uid, uint64_t size)
{
    for (size_t i = 0; i < p->ntools; i++)
        if (p->tools[i].nsha256 > 0)
            return true;
    return uid != UINT32_MAX && toolhash_size_learned(uid, size);
}

/* True when the organisation bans t. */
static bool identity_banned(const struct policy_snapshot *p, const struct policy_tool *t)
{
    for (size_t i = 0; i < p->org.nbanned; i++)
        if (strcmp(p->org.banned[i], t->id) == 0)
            return true;
    return false;
}

/* What a walk over an isolating launcher's descendants looks for: a banned tool. */
struct identity_walk {
    const struct policy_snapshot *p;
    uint32_t uid;          /* the chain's user */
    identity_hash_fn hash; /* fills a descendant's digests, or NULL */
    void *hash_arg;
    const struct policy_tool *banned; /* the one found */
};

/* Visits one descendant: true when a banned tool's pattern matches it. */
static bool identity_visit_descendant(const struct procid_proc *seen, void *arg)
{
    struct identity_walk *w = arg;
    static _Thread_local struct procid_proc proc; /* large: off the stack */
    struct identity_offer o;
    const char *what;

    proc = *seen;
    proc.sha256[0] = proc.script_sha256[0] = '\0';
    if (w->hash != NULL)
        w->hash(&proc, w->uid, w->hash_arg);
    identity_offer_of(&proc, w->uid, &o);
    for (size_t i = 0; i < w->p->ntools; i++)
        if (identity_banned(w->p, &w->p->tools[i]) &&
            identity_match_one(&w->p->tools[i], &proc, &o, &what) != NULL) {
            w->banned = &w->p->tools[i];
            return true;
        }
    return false;
}

/*
 * Matches the process chain; see the header.  A banned tool anywhere in the chain wins (a
 * git started by a banned tool must not carry its traffic out); then the outermost
 * `sluice run --isolate` launcher, whose tool was chosen by whoever started it, unless a
 * banned tool runs among the processes it started; otherwise the nearest process that
 * matches, by its executable before its script, across all profiles, so the profiles'
 * order decides nothing.
 */
void identity_match_process(const struct policy_snapshot *p, struct procid *chain,
                            identity_hash_fn hash, void *hash_arg, struct identity_process_match *m)
{
    struct procid_proc launcher;
    char id[64];
    int found;

    memset(m, 0, sizeof(*m));
    for (size_t d = 0; d < chain->nchain && p->org.nbanned > 0; d++) {
        struct identity_offer o;
        const char *what;

        identity_offer_of(&chain->chain[d], chain->uid, &o);
        for (size_t i = 0; i < p->ntools; i++)
            if (identity_banned(p, &p->tools[i]) &&
                identity_match_one(&p->tools[i], &chain->chain[d], &o, &what) != NULL) {
                m->tool = &p->tools[i];
                m->depth = d;
                return;
            }
    }
    /* A launcher whose way up was not seen whole may sit under another: it names nothing. */
    found = procid_outer_launcher(chain, &launcher);
    if (found == 1 && procid_isolate_tool(&launcher, id, sizeof(id)) &&
        (m->tool = policy_find_tool(p, id)) != NULL) {
        struct identity_walk w = {
            .p = p, .uid = chain->uid, .hash = hash, .hash_arg = hash_arg, .banned = NULL};

        m->isolated = true;
        m->depth = chain->nchain; /* the launcher, kept where a descendant would be */
        for (size_t d = 0; d < chain->nchain; d++)
            if (chain->chain[d].pid == launcher.pid)
                m->depth = d;
        chain->descendant = launcher;
        /* Only a ban needs the processes it started looked at. */
        if (p->org.nbanned > 0) {
            struct procid_proc seen;
            int walked =
                procid_walk_descendants(launcher.pid, identity_visit_descendant, &w, &seen);
            if (walked == 1) {
                m->tool = w.banned;
                m->depth = chain->nchain;
                chain->descendant = seen;
            } else if (walked < 0) {
                m->unverified = true; /* what was not seen may be banned: refused */
            }
        }
        return;
    }
    m->tool = NULL;
    for (size_t d = 0; d < chain->nchain && m->tool == NULL; d++) {
        const struct procid_proc *proc = &chain->chain[d];
        struct identity_offer o;

        m->depth = d;
        for (size_t i = 0; i < p->ntools && m->tool == NULL; i++)
            if (identity_exe_pattern(&p->tools[i], proc) != NULL)
                m->tool = &p->tools[i];
        identity_offer_of(proc, chain->uid, &o);
        /* By content: a digest a profile lists, before one learned (which names one tool). */
        if (m->tool == NULL)
            m->tool = identity_digest_tool(p, proc->sha256, o.learned);
        for (size_t i = 0; o.script != NULL && i < p->ntools && m->tool == NULL; i++)
            if (identity_pattern_of(&p->tools[i], o.script) != NULL)
                m->tool = &p->tools[i];
        if (m->tool == NULL && o.script != NULL)
            m->tool = identity_digest_tool(p, proc->script_sha256, o.learned_script);
    }
    if (m->tool == NULL)
        m->depth = 0;
}

/* Takes t from source unless a stronger source decided already; notes a disagreement. */
static void identity_offer(struct identity *out, const struct policy_tool *t,
                           enum identity_source source, const char *name)
{
    if (t == NULL)
        return;
    if (out->tool == NULL) {
        out->tool = t;
        out->source = source;
    } else if (out->tool != t && out->mismatch[0] == '\0') {
        snprintf(out->mismatch, sizeof(out->mismatch), "%s:%s", identity_source_str(source),
                 name != NULL ? name : t->id);
    }
}

/*
 * The version t's User-Agent gives: after the product that a pattern "name/ANY" of t names
 * ("claude-cli/1.0.3 (external, cli)" gives "1.0.3"), the characters of a version, into
 * out.  Leaves out empty when the User-Agent is not t's or says none.
 */
static void identity_version(const struct policy_tool *t, const char *ua, size_t len, char *out,
                             size_t cap)
{
    out[0] = '\0';
    for (size_t k = 0; k < t->nuser_agents && out[0] == '\0'; k++) {
        const char *pattern = t->user_agents[k], *star = strchr(pattern, '*');
        size_t plen = star != NULL ? (size_t)(star - pattern) : 0, n = 0;

        if (plen < 2 || pattern[plen - 1] != '/' || len < plen ||
            strncasecmp(ua, pattern, plen) != 0)
            continue;
        for (size_t i = plen; i < len && n + 1 < cap; i++) {
            char ch = ua[i];
            if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= 'A' && ch <= 'Z') || ch == '.' || ch == '-' || ch == '+' || ch == '_'))
                break;
            out[n++] = ch;
        }
        out[n] = '\0';
    }
}

/* Names the tool of a request. */
void identity_resolve(const struct policy_snapshot *p, const struct identity_input *in,
                      struct identity *out)
{
    char user[IDENTITY_USER_MAX];

    out->tool = NULL;
    out->source = IDENTITY_NONE;
    out->mismatch[0] = '\0';
    out->version[0] = '\0';
    if (in->proxy_auth == NULL ||
        !identity_basic_decode(in->proxy_auth, in->proxy_auth_len, user, sizeof(user), NULL, 0))
        user[0] = '\0';
    memcpy(out->user, user, strlen(user) + 1);
    if (in->listener_tool != NULL && in->listener_tool[0] != '\0')
        identity_offer(out, policy_find_tool(p, in->listener_tool), IDENTITY_LISTENER, NULL);
    /* An isolating launcher's tool was set by who started it, and the tool inside cannot
     * reach sluice any other way: nothing it sends outranks that. */
    if (in->process_isolated && in->process_tool != NULL && in->process_tool[0] != '\0')
        identity_offer(out, policy_find_tool(p, in->process_tool), IDENTITY_ISOLATE, NULL);
    /* A user the credentials file verified is who the client proved to be; a process can
     * be a copied or renamed binary. */
    if (user[0] != '\0' && in->proxy_user_verified)
        identity_offer(out, policy_find_tool(p, user), IDENTITY_PROXY_USER, user);
    if (!in->process_isolated && in->process_tool != NULL && in->process_tool[0] != '\0')
        identity_offer(out, policy_find_tool(p, in->process_tool), IDENTITY_PROCESS, NULL);
    if (user[0] != '\0' && !in->proxy_user_verified)
        identity_offer(out, policy_find_tool(p, user), IDENTITY_PROXY_USER, user);
    identity_offer(out, identity_match_user_agent(p, in->user_agent, in->user_agent_len),
                   IDENTITY_USER_AGENT, NULL);
    if (out->tool != NULL && in->user_agent != NULL)
        identity_version(out->tool, in->user_agent, in->user_agent_len, out->version,
                         sizeof(out->version));
}

/* The key an upstream connection is filed under: tool and user. */
void identity_owner_key(const struct identity *id, char *out, size_t cap)
{
    snprintf(out, cap, "%s\n%s", id->tool != NULL ? id->tool->id : "", id->user);
}
