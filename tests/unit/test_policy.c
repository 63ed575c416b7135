/*
 * Unit tests for policies: loading a directory (and every kind of error, with its
 * position), each step of the order of evaluation, and each kind of decision.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sluice/identity.h"
#include "sluice/netguard.h"
#include "sluice/policy.h"
#include "sluice/toolhash.h"
#include "sluice/urlpath.h"

/* A temporary policy directory. */
struct fixture {
    char dir[64];
    struct sluice_settings settings;
    struct yamldoc_errors errs;
    struct policy_snapshot *p;
};

/* Loads dir (NULL: no directory) as a local-mode policy with no GeoIP. */
static struct policy_snapshot *load_dir(const char *dir, struct yamldoc_errors *errs)
{
    struct policy_source src = {.dir = dir};

    return policy_load(&src, errs);
}

/* Writes text to dir/name. */
static void put(struct fixture *f, const char *name, const char *text)
{
    char path[256];
    FILE *out;

    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    out = fopen(path, "w");
    assert_non_null(out);
    fputs(text, out);
    assert_int_equal(fclose(out), 0);
}

static const char tool_a[] = "id: alpha\n"
                             "name: Alpha\n"
                             "identify:\n"
                             "  proxy_users: [alpha, al]\n"
                             "default: block\n"
                             "endpoints:\n"
                             "  - group: api\n"
                             "    purpose: api\n"
                             "    hosts: [api.alpha.test, \"*.cdn.alpha.test\"]\n"
                             "  - group: metrics\n"
                             "    purpose: telemetry\n"
                             "    hosts: [metrics.alpha.test]\n"
                             "  - group: events\n"
                             "    purpose: telemetry\n"
                             "    hosts: [api.alpha.test]\n"
                             "    methods: [POST]\n"
                             "    paths: [/v1/events]\n";

static const char tool_b[] = "id: beta\n"
                             "default: report\n"
                             "endpoints:\n"
                             "  - group: api\n"
                             "    purpose: api\n"
                             "    hosts: [api.beta.test]\n"
                             "    ports: [443]\n";

/* Makes the directory with two tools and an organisation policy. */
static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char tools[96];

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/sluice-policy-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(tools, sizeof(tools), "%s/tools", f->dir);
    if (mkdir(tools, 0700) != 0)
        return -1;
    settings_init(&f->settings);
    *state = f;
    return 0;
}

/* Removes the directory. */
static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    policy_unref(f->p);
    yamldoc_errors_clear(&f->errs);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* Writes the standard tools and org, then loads. */
static void load_standard(struct fixture *f, const char *org)
{
    put(f, "tools/alpha.yaml", tool_a);
    put(f, "tools/beta.yaml", tool_b);
    put(f, "organisation.yaml", org);
    f->p = load_dir(f->dir, &f->errs);
    if (f->p == NULL)
        yamldoc_errors_print(&f->errs, stderr);
    assert_non_null(f->p);
}

/* Decides one request and checks verdict and rule. */
static void expect(struct fixture *f, const char *tool, bool is_connect, const char *method,
                   const char *host, uint16_t port, const char *path, enum policy_verdict v,
                   const char *rule)
{
    struct policy_query q = {.settings = &f->settings,
                             .tool = tool != NULL ? policy_find_tool(f->p, tool) : NULL,
                             .is_connect = is_connect,
                             .method = method,
                             .host = host,
                             .port = port,
                             .path = path};
    struct policy_decision d;

    policy_decide(f->p, &q, &d);
    if (d.verdict != v || strcmp(d.rule, rule) != 0)
        fail_msg("%s %s %s:%u%s: got %s by %s, expected %s by %s", tool ? tool : "-", method, host,
                 port, path ? path : "", policy_verdict_str(d.verdict), d.rule,
                 policy_verdict_str(v), rule);
    assert_non_null(d.file);
    assert_non_null(d.reason);
}

/* 1. A banned tool is refused even on its own API, before every other rule. */
static void test_ban_first(void **state)
{
    struct fixture *f = *state;

    load_standard(f, "banned_tools: [alpha]\ndeny_hosts: [api.alpha.test]\n");
    expect(f, "alpha", false, "GET", "api.alpha.test", 80, "/", POLICY_BLOCK, "ban:alpha");
    expect(f, "al", true, "CONNECT", "api.alpha.test", 443, NULL, POLICY_BLOCK, "ban:alpha");
    /* Other tools are not affected. */
    expect(f, "beta", false, "GET", "api.beta.test", 443, "/", POLICY_ALLOW, "allow:api");
    expect(f, "beta", false, "GET", "api.beta.test", 80, "/", POLICY_REPORT, "default");
}

/* A ban that names a tool by one of its proxy user names bans the tool. */
static void test_ban_by_proxy_user(void **state)
{
    struct fixture *f = *state;

    load_standard(f, "banned_tools: [al]\n");
    expect(f, "alpha", false, "GET", "api.alpha.test", 443, "/", POLICY_BLOCK, "ban:alpha");
    expect(f, "beta", false, "GET", "api.beta.test", 443, "/", POLICY_ALLOW, "allow:api");
}

/* 2. Global deny comes before the tool's allowlist; allow_hosts makes exceptions. */
static void test_global_deny(void **state)
{
    struct fixture *f = *state;

    load_standard(f, "deny_hosts: [\"*.alpha.test\"]\nallow_hosts: [api.alpha.test]\n");
    expect(f, "alpha", false, "GET", "x.cdn.alpha.test", 80, "/", POLICY_BLOCK, "deny-host");
    expect(f, "alpha", false, "GET", "api.alpha.test", 80, "/", POLICY_ALLOW, "allow:api");
    expect(f, NULL, false, "GET", "x.cdn.alpha.test", 80, "/", POLICY_BLOCK, "deny-host");
}

/* 2. CONNECT ports: the organisation's list, else the configuration's. */
static void test_connect_ports(void **state)
{
    struct fixture *f = *state;

    load_standard(f, "");
    expect(f, "alpha", true, "CONNECT", "api.alpha.test", 443, NULL, POLICY_ALLOW, "allow:api");
    expect(f, "alpha", true, "CONNECT", "api.alpha.test", 22, NULL, POLICY_BLOCK, "connect-ports");
    policy_unref(f->p);
    f->p = NULL;
    put(f, "organisation.yaml", "connect_ports: [22]\n");
    f->p = load_dir(f->dir, &f->errs);
    assert_non_null(f->p);
    expect(f, "alpha", true, "CONNECT", "api.alpha.test", 22, NULL, POLICY_ALLOW, "allow:api");
    expect(f, "alpha", true, "CONNECT", "api.alpha.test", 443, NULL, POLICY_BLOCK, "connect-ports");
}

/* 3. Telemetry groups are blocked when the organisation says so, before the allowlist. */
static void test_telemetry_blocked(void **state)
{
    struct fixture *f = *state;

    load_standard(f, "block_telemetry: true\n");
    expect(f, "alpha", false, "GET", "metrics.alpha.test", 80, "/", POLICY_BLOCK,
           "telemetry:metrics");
    /* A shared host: only the telemetry path is blocked, the API goes through. */
    expect(f, "alpha", false, "POST", "api.alpha.test", 80, "/v1/events/batch", POLICY_BLOCK,
           "telemetry:events");
    expect(f, "alpha", false, "POST", "api.alpha.test", 80, "/v1/messages", POLICY_ALLOW,
           "allow:api");
    /* In a tunnel the path is not visible: the shared host is not blocked whole. */
    expect(f, "alpha", true, "CONNECT", "api.alpha.test", 443, NULL, POLICY_ALLOW, "allow:api");
}

/* 4. Without the block, telemetry groups are part of the allowlist. */
static void test_telemetry_allowed(void **state)
{
    struct fixture *f = *state;

    load_standard(f, "block_telemetry: false\n");
    expect(f, "alpha", false, "GET", "metrics.alpha.test", 80, "/", POLICY_ALLOW, "allow:metrics");
}

/* 4. Wildcards cover names below the suffix only. */
static void test_allowlist_wildcard(void **state)
{
    struct fixture *f = *state;

    load_standard(f, "");
    expect(f, "alpha", false, "GET", "a.b.cdn.alpha.test", 80, "/", POLICY_ALLOW, "allow:api");
    expect(f, "alpha", false, "GET", "cdn.alpha.test", 80, "/", POLICY_BLOCK, "default");
    expect(f, "alpha", false, "GET", "badcdn.alpha.test", 80, "/", POLICY_BLOCK, "default");
}

/* 4. A group's ports restrict it. */
static void test_allowlist_port(void **state)
{
    struct fixture *f = *state;

    load_standard(f, "");
    expect(f, "beta", true, "CONNECT", "api.beta.test", 443, NULL, POLICY_ALLOW, "allow:api");
    expect(f, "beta", false, "GET", "api.beta.test", 8080, "/", POLICY_REPORT, "default");
}

/* 5. and 6. Defaults: the tool's, then the organisation's for unidentified clients. */
static void test_defaults(void **state)
{
    struct fixture *f = *state;

    load_standard(f, "unidentified: block\n");
    expect(f, "alpha", false, "GET", "elsewhere.test", 80, "/", POLICY_BLOCK, "default");
    expect(f, "beta", false, "GET", "elsewhere.test", 80, "/", POLICY_REPORT, "default");
    expect(f, NULL, false, "GET", "elsewhere.test", 80, "/", POLICY_BLOCK, "unidentified");
    expect(f, "nobody", false, "GET", "elsewhere.test", 80, "/", POLICY_BLOCK, "unidentified");
}

/* No policy directory: everything allowed, CONNECT ports still apply. */
static void test_no_directory(void **state)
{
    struct fixture *f = *state;

    f->p = load_dir(NULL, &f->errs);
    assert_non_null(f->p);
    expect(f, NULL, false, "GET", "anything.test", 80, "/", POLICY_ALLOW, "unidentified");
    expect(f, NULL, true, "CONNECT", "anything.test", 25, NULL, POLICY_BLOCK, "connect-ports");
}

/* Resolves an identity from the given sources (any may be NULL). */
static void resolve(struct fixture *f, const char *listener, const char *process, const char *auth,
                    const char *ua, struct identity *id)
{
    struct identity_input in = {.listener_tool = listener,
                                .process_tool = process,
                                .proxy_auth = auth,
                                .proxy_auth_len = auth != NULL ? strlen(auth) : 0,
                                .user_agent = ua,
                                .user_agent_len = ua != NULL ? strlen(ua) : 0};

    identity_resolve(f->p, &in, id);
}

/*
 * Identity: listener, then process, then proxy user, then User-Agent; a weaker source that
 * names another tool is recorded as a mismatch; Basic credentials decoded.
 */
static void test_identity(void **state)
{
    struct fixture *f = *state;
    struct identity id;
    static const char alpha_basic[] = "Basic YWxwaGE6c2VjcmV0"; /* alpha:secret */
    static const char beta_basic[] = "basic YmV0YTo=";          /* beta: */
    static const char bad[] = "Basic !!!!";
    static const char *const ua_matches[] = {"UATOOL/3", "my WILD/2", "bracket-x", "BRACKET-7"};
    static const char *const ua_misses[] = {"uatool", "uatoo", "wil/d", "racket-x", "bracket-xy"};

    put(f, "tools/ua.yaml",
        "id: ua\nidentify: {user_agents: [\"uatool/*\", \"*Wild/*\", \"[Bb]racket-?\"], "
        "executables: [\"*/uatool\"]}\n");
    load_standard(f, "");
    resolve(f, "beta", NULL, alpha_basic, NULL, &id);
    assert_string_equal(id.tool->id, "beta");
    assert_int_equal(id.source, IDENTITY_LISTENER);
    assert_string_equal(id.mismatch, "proxy-user:alpha");
    resolve(f, NULL, NULL, alpha_basic, NULL, &id);
    assert_string_equal(id.tool->id, "alpha");
    assert_int_equal(id.source, IDENTITY_PROXY_USER);
    assert_string_equal(id.mismatch, "");
    resolve(f, NULL, NULL, beta_basic, NULL, &id);
    assert_string_equal(id.tool->id, "beta");
    resolve(f, NULL, NULL, bad, NULL, &id);
    assert_null(id.tool);
    assert_int_equal(id.source, IDENTITY_NONE);
    /* The process outranks what the client says of itself. */
    resolve(f, NULL, "ua", alpha_basic, "UAtool/2.1 (linux)", &id);
    assert_string_equal(id.tool->id, "ua");
    assert_int_equal(id.source, IDENTITY_PROCESS);
    assert_string_equal(id.mismatch, "proxy-user:alpha");
    /* The User-Agent alone, case-insensitive; it never outranks the proxy user. */
    resolve(f, NULL, NULL, NULL, "UAtool/2.1 (linux)", &id);
    assert_string_equal(id.tool->id, "ua");
    assert_int_equal(id.source, IDENTITY_USER_AGENT);
    resolve(f, NULL, NULL, beta_basic, "uatool/1", &id);
    assert_string_equal(id.tool->id, "beta");
    assert_string_equal(id.mismatch, "user-agent:ua");
    resolve(f, NULL, NULL, NULL, "curl/8.0", &id);
    assert_null(id.tool);
    /* Every kind of pattern, in either case; a text cut short, or one character over, not. */
    for (size_t i = 0; i < sizeof(ua_matches) / sizeof(ua_matches[0]); i++) {
        resolve(f, NULL, NULL, NULL, ua_matches[i], &id);
        assert_non_null(id.tool);
        assert_string_equal(id.tool->id, "ua");
    }
    for (size_t i = 0; i < sizeof(ua_misses) / sizeof(ua_misses[0]); i++) {
        resolve(f, NULL, NULL, NULL, ua_misses[i], &id);
        assert_null(id.tool);
    }
}

/* The tool the chain names under p, and at which depth (identity_match_process()). */
static const struct policy_tool *match_process(const struct policy_snapshot *p,
                                               struct procid *chain, size_t *depth)
{
    struct identity_process_match m;

    identity_match_process(p, chain, NULL, NULL, &m);
    *depth = m.depth;
    return m.tool;
}

/* Adds a process to chain: its executable and its arguments. */
static void chain_add(struct procid *chain, const char *exe, const char *const *args)
{
    struct procid_proc *p = &chain->chain[chain->nchain++];

    memset(p, 0, sizeof(*p));
    p->pid = (pid_t)(1000 + chain->nchain);
    snprintf(p->exe, sizeof(p->exe), "%s", exe);
    for (size_t i = 0; args != NULL && args[i] != NULL; i++) {
        size_t n = strlen(args[i]) + 1;
        memcpy(p->args + p->args_len, args[i], n);
        p->args_len += n;
    }
}

/*
 * A process chain matches a profile by the executable, by a command-line argument (a
 * script run by an interpreter), or by an ancestor; the nearest match wins.
 */
static void test_identity_process(void **state)
{
    struct fixture *f = *state;
    static const char *const node_args[] = {"node", "/opt/tool/lib/cli.js", "--x", NULL};
    static const char *const sh_args[] = {"/bin/sh", "/home/u/bin/wrapped.sh", NULL};
    struct procid chain = {0};
    const struct policy_tool *t;
    size_t depth = 99;

    put(f, "tools/cli.yaml", "id: cli\nidentify: {executables: [\"*/tool/lib/cli.js\"]}\n");
    put(f, "tools/wrap.yaml", "id: wrap\nidentify: {executables: [\"*/wrapped.sh\"]}\n");
    put(f, "tools/native.yaml", "id: native\nidentify: {executables: [\"*/native-bin\"]}\n");
    load_standard(f, "");
    chain_add(&chain, "/usr/bin/curl", NULL);
    chain_add(&chain, "/usr/bin/dash", sh_args);
    chain_add(&chain, "/usr/bin/bash", NULL);
    t = match_process(f->p, &chain, &depth);
    assert_non_null(t);
    assert_string_equal(t->id, "wrap"); /* curl started by the wrapped script */
    assert_int_equal(depth, 1);

    memset(&chain, 0, sizeof(chain));
    chain_add(&chain, "/usr/bin/node", node_args);
    chain_add(&chain, "/usr/local/bin/native-bin", NULL);
    t = match_process(f->p, &chain, &depth);
    assert_string_equal(t->id, "cli"); /* the nearest: the script node runs */
    assert_int_equal(depth, 0);

    memset(&chain, 0, sizeof(chain));
    chain_add(&chain, "/usr/bin/curl", NULL);
    chain_add(&chain, "/usr/bin/bash", NULL);
    assert_null(match_process(f->p, &chain, &depth));

    /* An option's value before the script is not taken for it (node -r X cli.js), per
     * interpreter: python's -O and bash's -x take none. */
    {
        static const char *const node_r[] = {"node", "-r", "/tmp/preload.js",
                                             "/opt/tool/lib/cli.js", NULL};
        static const char *const node_req[] = {
            "node", "--require", "/tmp/p.js", "--title", "x", "/opt/tool/lib/cli.js", NULL};
        static const char *const py_w[] = {
            "python3", "-O", "-W", "ignore", "/home/u/bin/wrapped.sh", NULL};
        static const char *const sh_o[] = {"bash", "-x", "-o", "pipefail", "/home/u/bin/wrapped.sh",
                                           NULL};
        static const char *const node_r_last[] = {"node", "-r", NULL};
        const char *const *cases[] = {node_r, node_req, py_w, sh_o};
        const char *exes[] = {"/usr/bin/node", "/usr/bin/node", "/usr/bin/python3.11",
                              "/usr/bin/bash"};
        const char *want[] = {"cli", "cli", "wrap", "wrap"};

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            memset(&chain, 0, sizeof(chain));
            chain_add(&chain, exes[i], cases[i]);
            t = match_process(f->p, &chain, &depth);
            assert_non_null(t);
            assert_string_equal(t->id, want[i]);
        }
        memset(&chain, 0, sizeof(chain));
        chain_add(&chain, "/usr/bin/node", node_r_last);
        assert_null(match_process(f->p, &chain, &depth));
    }
    /* Clusters of short options, and code that comes inline or on standard input
     * whatever file name follows it. */
    {
        static const char *const py_cluster[] = {"python3", "-sW", "ignore",
                                                 "/home/u/bin/wrapped.sh", NULL};
        static const char *const sh_cluster[] = {"bash", "-eo", "pipefail",
                                                 "/home/u/bin/wrapped.sh", NULL};
        static const char *const py_stdin[] = {"python3", "-", "/home/u/bin/wrapped.sh", NULL};
        static const char *const sh_stdin[] = {"bash", "-s", "/home/u/bin/wrapped.sh", NULL};
        static const char *const node_pe[] = {"node", "-pe", "1", "/opt/tool/lib/cli.js", NULL};
        static const char *const sh_rc[] = {"bash", "--rcfile", "/home/u/bin/wrapped.sh",
                                            "/tmp/other.sh", NULL};

        memset(&chain, 0, sizeof(chain));
        chain_add(&chain, "/usr/bin/python3", py_cluster);
        assert_non_null(t = match_process(f->p, &chain, &depth));
        assert_string_equal(t->id, "wrap");
        memset(&chain, 0, sizeof(chain));
        chain_add(&chain, "/usr/bin/bash", sh_cluster);
        assert_non_null(t = match_process(f->p, &chain, &depth));
        assert_string_equal(t->id, "wrap");
        memset(&chain, 0, sizeof(chain));
        chain_add(&chain, "/usr/bin/python3", py_stdin);
        assert_null(match_process(f->p, &chain, &depth));
        memset(&chain, 0, sizeof(chain));
        chain_add(&chain, "/usr/bin/bash", sh_stdin);
        assert_null(match_process(f->p, &chain, &depth));
        memset(&chain, 0, sizeof(chain));
        chain_add(&chain, "/usr/bin/node", node_pe);
        assert_null(match_process(f->p, &chain, &depth));
        memset(&chain, 0, sizeof(chain));
        chain_add(&chain, "/usr/bin/bash", sh_rc);
        assert_null(match_process(f->p, &chain, &depth));
    }
    /* More of the same, per interpreter: values of long options, code given with '=',
     * a shell's '+' options. */
    {
        static const char *const node_redirect[] = {"node", "--redirect-warnings", "/tmp/w",
                                                    "/opt/tool/lib/cli.js", NULL};
        static const char *const sh_plus[] = {"bash", "+O", "extglob", "/home/u/bin/wrapped.sh",
                                              NULL};
        static const char *const perl_i[] = {"perl", "-I", "/tmp/lib", "/home/u/bin/wrapped.sh",
                                             NULL};
        static const char *const node_eval[] = {"node", "--eval=1", "/opt/tool/lib/cli.js", NULL};
        static const char *const bun_p[] = {"bun", "-p", "0//opt/tool/lib/cli.js", NULL};
        const char *const *named[] = {node_redirect, sh_plus, perl_i};
        const char *named_exe[] = {"/usr/bin/node", "/usr/bin/bash", "/usr/bin/perl"};
        const char *named_id[] = {"cli", "wrap", "wrap"};

        for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
            memset(&chain, 0, sizeof(chain));
            chain_add(&chain, named_exe[i], named[i]);
            assert_non_null(t = match_process(f->p, &chain, &depth));
            assert_string_equal(t->id, named_id[i]);
        }
        memset(&chain, 0, sizeof(chain));
        chain_add(&chain, "/usr/bin/node", node_eval);
        assert_null(match_process(f->p, &chain, &depth));
        memset(&chain, 0, sizeof(chain));
        chain_add(&chain, "/usr/local/bin/bun", bun_p);
        assert_null(match_process(f->p, &chain, &depth));
    }
    /* The dynamic loader run by hand is an interpreter whose script is the program. */
    {
        static const char *const ld[] = {"/lib64/ld-linux-x86-64.so.2", "--library-path",
                                         "/tmp/native-bin", "/usr/local/bin/native-bin", NULL};
        static const char *const ld_argv0[] = {"ld.so", "--argv0", "curl",
                                               "/usr/local/bin/native-bin", NULL};

        memset(&chain, 0, sizeof(chain));
        chain_add(&chain, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", ld);
        assert_non_null(t = match_process(f->p, &chain, &depth));
        assert_string_equal(t->id, "native");
        memset(&chain, 0, sizeof(chain));
        chain_add(&chain, "/usr/lib/ld.so", ld_argv0);
        assert_non_null(t = match_process(f->p, &chain, &depth));
        assert_string_equal(t->id, "native");
    }
    /* No profile lists digests: content counts only for a user something was learned
     * for, so a lookup for anyone else reads no file. */
    toolhash_reset();
    assert_false(identity_uses_content(f->p, 1000));
    toolhash_learn(1000, "27125f0331490b7fbf4da11f2bd913ce1b94e071367b2fa8e535ce8c5526e29c", 10,
                   "native");
    assert_true(identity_uses_content(f->p, 1000));
    assert_false(identity_uses_content(f->p, 1001));
    assert_false(identity_uses_content(f->p, UINT32_MAX));
    assert_true(identity_wants_hash(f->p, 1000, 10));
    assert_false(identity_wants_hash(f->p, 1000, 11));
    toolhash_reset();
}

/* A digest of 64 hex digits; a copy of curl, as a profile would list it. */
#define SHA_A "27125f0331490b7fbf4da11f2bd913ce1b94e071367b2fa8e535ce8c5526e29c"
#define SHA_B "4d3b7807ab261652ae6ae4340e5331c8ce2c6d27a58bbed69e90c175e436adc3"

/*
 * A process is known by its executable's content when the lookup got its hash: a digest
 * a profile lists (in any case), or one learned for the chain's user only.  The path
 * still comes first; the content before a script; a process whose hash is not known
 * matches by path and script alone.
 */
static void test_identity_by_content(void **state)
{
    struct fixture *f = *state;
    static const char *const node_args[] = {"node", "/opt/tool/lib/cli.js", NULL};
    struct procid chain = {0};
    const struct policy_tool *t;
    size_t depth = 99;

    put(f, "tools/cli.yaml", "id: cli\nidentify: {executables: [\"*/tool/lib/cli.js\"]}\n");
    put(f, "tools/pinned.yaml", "id: pinned\nidentify: {sha256: [\"" SHA_A "\"]}\n");
    put(f, "tools/native.yaml", "id: native\nidentify: {executables: [\"*/native-bin\"]}\n");
    /* SHA_B in capitals, as some tools print digests. */
    put(f, "tools/caps.yaml",
        "id: caps\nidentify: {sha256: "
        "[\"4D3B7807AB261652AE6AE4340E5331C8CE2C6D27A58BBED69E90C175E436ADC3\"]}\n");
    load_standard(f, "");
    toolhash_reset();
    chain.uid = 1000;
    chain_add(&chain, "/tmp/renamed", NULL);
    assert_null(match_process(f->p, &chain, &depth)); /* no hash known: nothing */
    snprintf(chain.chain[0].sha256, sizeof(chain.chain[0].sha256), "%s", SHA_A);
    assert_non_null(t = match_process(f->p, &chain, &depth));
    assert_string_equal(t->id, "pinned");
    /* The path first: a native-bin whose content is pinned for another tool. */
    memset(&chain, 0, sizeof(chain));
    chain_add(&chain, "/usr/local/bin/native-bin", NULL);
    snprintf(chain.chain[0].sha256, sizeof(chain.chain[0].sha256), "%s", SHA_A);
    assert_non_null(t = match_process(f->p, &chain, &depth));
    assert_string_equal(t->id, "native");
    /* The content before the script an interpreter runs. */
    memset(&chain, 0, sizeof(chain));
    chain_add(&chain, "/usr/bin/node", node_args);
    snprintf(chain.chain[0].sha256, sizeof(chain.chain[0].sha256), "%s", SHA_B);
    assert_non_null(t = match_process(f->p, &chain, &depth));
    assert_string_equal(t->id, "caps");
    /* Learned for user 1000: a copy of native-bin is native for that user alone. */
    toolhash_learn(1000, SHA_B "", 4096, "native");
    memset(&chain, 0, sizeof(chain));
    chain.uid = 1000;
    chain_add(&chain, "/tmp/copy", NULL);
    snprintf(chain.chain[0].sha256, sizeof(chain.chain[0].sha256), "%s", SHA_B);
    assert_non_null(t = match_process(f->p, &chain, &depth));
    assert_string_equal(t->id, "caps"); /* a profile's own list wins: it is the same tier */
    toolhash_learn(1000, "0000000000000000000000000000000000000000000000000000000000000001", 4096,
                   "native");
    snprintf(chain.chain[0].sha256, sizeof(chain.chain[0].sha256), "%s",
             "0000000000000000000000000000000000000000000000000000000000000001");
    assert_non_null(t = match_process(f->p, &chain, &depth));
    assert_string_equal(t->id, "native");
    chain.uid = 1001;
    assert_null(match_process(f->p, &chain, &depth));
    assert_true(identity_wants_hash(f->p, 1001, 1)); /* profiles list digests */
    /* The script an interpreter runs, by its content: after its path. */
    {
        static const char *const copied[] = {"node", "/tmp/x/renamed.js", NULL};
        memset(&chain, 0, sizeof(chain));
        chain.uid = 1000;
        chain_add(&chain, "/usr/bin/node", copied);
        snprintf(chain.chain[0].script_sha256, sizeof(chain.chain[0].script_sha256), "%s", SHA_A);
        assert_non_null(t = match_process(f->p, &chain, &depth));
        assert_string_equal(t->id, "pinned");
        memset(&chain, 0, sizeof(chain));
        chain_add(&chain, "/usr/bin/node", node_args); /* cli.js by path */
        snprintf(chain.chain[0].script_sha256, sizeof(chain.chain[0].script_sha256), "%s", SHA_A);
        assert_non_null(t = match_process(f->p, &chain, &depth));
        assert_string_equal(t->id, "cli");
        /* A digest of a process that runs no script says nothing. */
        memset(&chain, 0, sizeof(chain));
        chain_add(&chain, "/usr/bin/curl", NULL);
        snprintf(chain.chain[0].script_sha256, sizeof(chain.chain[0].script_sha256), "%s", SHA_A);
        assert_null(match_process(f->p, &chain, &depth));
    }
    toolhash_reset();
}

/*
 * The ways a client could try to pass for another tool by what it runs: an argument of a
 * program that is no interpreter, inline code, an executable path cut short or deleted,
 * the profiles' order; and a banned tool's child may not carry its traffic as another.
 */
static void test_identity_process_spoofing(void **state)
{
    struct fixture *f = *state;
    static const char *const curl_args[] = {"curl", "-o", "/tmp/x/native-bin", "http://x/", NULL};
    static const char *const sh_c[] = {"sh", "-c", "/tmp/wrapped.sh", NULL};
    static const char *const node_e[] = {"node", "-e", "1", "/opt/tool/lib/cli.js", NULL};
    static const char *const sh_script[] = {"sh", "/home/u/bin/wrapped.sh", NULL};
    struct procid chain = {0};
    const struct policy_tool *t;
    size_t depth;
    char longpath[PROCID_MAX_EXE];

    put(f, "tools/cli.yaml", "id: cli\nidentify: {executables: [\"*/tool/lib/cli.js\"]}\n");
    put(f, "tools/wrap.yaml",
        "id: wrap\nidentify: {executables: [\"*/wrapped.sh\", \"*/dash\"]}\n");
    put(f, "tools/native.yaml", "id: native\nidentify: {executables: [\"*/native-bin\"]}\n");
    put(f, "tools/banned.yaml", "id: banned\nidentify: {executables: [\"*/banned-agent\"]}\n");
    load_standard(f, "banned_tools: [banned]\n");

    chain_add(&chain, "/usr/bin/curl", curl_args); /* a file name as an argument of curl */
    assert_null(match_process(f->p, &chain, &depth));

    memset(&chain, 0, sizeof(chain));
    chain_add(&chain, "/usr/bin/bash", sh_c); /* inline code, not a script */
    assert_null(match_process(f->p, &chain, &depth));
    memset(&chain, 0, sizeof(chain));
    chain_add(&chain, "/usr/bin/node", node_e);
    assert_null(match_process(f->p, &chain, &depth));

    memset(&chain, 0, sizeof(chain)); /* a path cut at the buffer's end could end in anything */
    memset(longpath, 'a', sizeof(longpath) - 1);
    memcpy(longpath + sizeof(longpath) - 12, "/native-bin", 12);
    chain_add(&chain, longpath, NULL);
    assert_null(match_process(f->p, &chain, &depth));
    memset(&chain, 0, sizeof(chain));
    chain_add(&chain, "/usr/local/bin/native-bin (deleted)", NULL);
    assert_null(match_process(f->p, &chain, &depth));

    /* The executable wins over the script at the same depth, whatever the profiles' order:
     * dash running wrapped.sh is tool wrap by its executable here, not by a script of cli. */
    memset(&chain, 0, sizeof(chain));
    chain_add(&chain, "/usr/bin/dash", sh_script);
    t = match_process(f->p, &chain, &depth);
    assert_string_equal(t->id, "wrap");

    /* A banned tool anywhere in the chain wins over a nearer match. */
    memset(&chain, 0, sizeof(chain));
    chain_add(&chain, "/usr/local/bin/native-bin", NULL);
    chain_add(&chain, "/usr/bin/bash", NULL);
    chain_add(&chain, "/opt/x/banned-agent", NULL);
    t = match_process(f->p, &chain, &depth);
    assert_string_equal(t->id, "banned");
    assert_int_equal(depth, 2);
}

/* Writes the start of an error line for file:line:col (line 0: about the whole file). */
static void error_prefix(const struct fixture *f, const char *file, unsigned line, unsigned col,
                         char *out, size_t cap)
{
    if (line == 0)
        snprintf(out, cap, "%s/%s: ", f->dir, file);
    else
        snprintf(out, cap, "%s/%s:%u:%u: ", f->dir, file, line, col);
}

/* Loads the directory expecting n errors, the first at file:line:col containing needle. */
static void expect_load_error(struct fixture *f, size_t n, const char *file, unsigned line,
                              unsigned col, const char *needle)
{
    char prefix[192];

    f->p = load_dir(f->dir, &f->errs);
    assert_null(f->p);
    if (f->errs.count != n)
        yamldoc_errors_print(&f->errs, stderr);
    assert_int_equal(f->errs.count, n);
    error_prefix(f, file, line, col, prefix, sizeof(prefix));
    if (strncmp(f->errs.lines[0], prefix, strlen(prefix)) != 0 ||
        strstr(f->errs.lines[0], needle) == NULL)
        fail_msg("got \"%s\", expected \"%s...%s...\"", f->errs.lines[0], prefix, needle);
}

/* Unknown keys are errors with their position. */
static void test_error_unknown_key(void **state)
{
    struct fixture *f = *state;

    put(f, "tools/a.yaml", "id: a\ndefualt: block\n");
    expect_load_error(f, 1, "tools/a.yaml", 2, 1, "unknown key 'defualt' in a tool profile");
}

/* A decision that is not allow, block or report. */
static void test_error_bad_verdict(void **state)
{
    struct fixture *f = *state;

    put(f, "tools/a.yaml", "id: a\ndefault: deny\n");
    expect_load_error(f, 1, "tools/a.yaml", 2, 10, "expected allow, block or report");
}

/* A host pattern the domain set refuses. */
static void test_error_bad_host(void **state)
{
    struct fixture *f = *state;

    put(f, "tools/a.yaml", "id: a\nendpoints:\n  - group: g\n    hosts: [\"bad host\"]\n");
    expect_load_error(f, 1, "tools/a.yaml", 4, 13, "is not a host name");
}

/* A digest that is not 64 hex digits. */
static void test_error_bad_sha256(void **state)
{
    struct fixture *f = *state;

    put(f, "tools/a.yaml", "id: a\nidentify:\n  sha256: [" SHA_A "0]\n");
    expect_load_error(f, 1, "tools/a.yaml", 3, 11, "is not a SHA-256 digest (64 hex digits");
}

/* A banned tool must have a profile. */
static void test_error_banned_unknown(void **state)
{
    struct fixture *f = *state;

    put(f, "tools/a.yaml", "id: a\n");
    put(f, "organisation.yaml", "banned_tools: [zeta]\n");
    expect_load_error(f, 1, "organisation.yaml", 0, 0, "no tool profile has the id 'zeta'");
}

/* Two profiles may not share an id. */
static void test_error_duplicate_id(void **state)
{
    struct fixture *f = *state;

    put(f, "tools/a.yaml", "id: same\n");
    put(f, "tools/b.yaml", "id: same\n");
    expect_load_error(f, 1, "tools/b.yaml", 0, 0, "tool id 'same' is also used by");
}

/* A policy directory that is not there is an error, not an empty policy. */
static void test_error_missing_directory(void **state)
{
    struct fixture *f = *state;
    char missing[128];

    snprintf(missing, sizeof(missing), "%s/nope", f->dir);
    f->p = load_dir(missing, &f->errs);
    assert_null(f->p);
    assert_int_equal(f->errs.count, 1);
    assert_non_null(strstr(f->errs.lines[0], "nope: cannot read the policy directory"));
}

/* A key given twice is an error at its second place, not a silent override. */
static void test_error_repeated_key(void **state)
{
    struct fixture *f = *state;

    put(f, "organisation.yaml",
        "unidentified: block\nblock_telemetry: true\nunidentified: allow\n");
    expect_load_error(f, 1, "organisation.yaml", 3, 1, "unidentified: given twice; keep one");
}

/* Every error of every file is reported. */
static void test_error_all_reported(void **state)
{
    struct fixture *f = *state;

    put(f, "tools/a.yaml", "id: A\ndefault: maybe\n");
    put(f, "organisation.yaml", "unidentified: sometimes\ncolour: red\n");
    expect_load_error(f, 4, "tools/a.yaml", 1, 5, "id 'A' is not a tool id");
}

/* A file that must not load, alone in the policy directory, and the errors it gives. */
struct bad_file {
    const char *file; /* "tools/a.yaml" or "organisation.yaml" */
    const char *text;
    size_t count;        /* errors in all */
    unsigned line, col;  /* of the first error; line 0 for one about the whole file */
    const char *message; /* the first error, exactly, after its position */
    const char *then;    /* NULL, or part of the second error */
};

/* Loads each bad file alone and checks its errors, then removes it for the next. */
static void expect_bad_files(struct fixture *f, const struct bad_file *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct bad_file *c = &cases[i];
        char path[256], want[512];

        put(f, c->file, c->text);
        expect_load_error(f, c->count, c->file, c->line, c->col, c->message);
        error_prefix(f, c->file, c->line, c->col, want, sizeof(want));
        strncat(want, c->message, sizeof(want) - strlen(want) - 1);
        assert_string_equal(f->errs.lines[0], want);
        if (c->then != NULL && strstr(f->errs.lines[1], c->then) == NULL)
            fail_msg("got \"%s\" second, expected \"...%s...\"", f->errs.lines[1], c->then);
        snprintf(path, sizeof(path), "%s/%s", f->dir, c->file);
        assert_int_equal(unlink(path), 0);
        yamldoc_errors_clear(&f->errs);
    }
}

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

/* An unknown key in each kind of mapping lists that kind's keys, in the order of the table. */
static void test_table_unknown_keys(void **state)
{
    static const struct bad_file cases[] = {
        {"tools/a.yaml", "id: a\ncolour: red\n", 1, 2, 1,
         "unknown key 'colour' in a tool profile; expected one of: id, name, identify, default, "
         "block_telemetry, tls, capture, splice_pinned, refuse_uninspectable, telemetry_env, "
         "endpoints",
         NULL},
        {"tools/a.yaml", "id: a\nidentify:\n  colour: red\n", 1, 3, 3,
         "unknown key 'colour' in identify; expected one of: proxy_users, user_agents, "
         "executables, sha256",
         NULL},
        {"tools/a.yaml", "id: a\nendpoints:\n  - group: g\n    hosts: [h.test]\n    colour: red\n",
         1, 5, 5,
         "unknown key 'colour' in an endpoint group; expected one of: group, purpose, hosts, "
         "ports, methods, tls, capture, paths",
         NULL},
        {"organisation.yaml", "block_telemetry: true\ncolour: red\n", 1, 2, 1,
         "unknown key 'colour' in the organisation policy; expected one of: banned_tools, "
         "block_telemetry, block_identity_mismatch, unidentified, tls, capture, splice_pinned, "
         "refuse_uninspectable, request_headers, deny_hosts, allow_hosts, "
         "connect_ports, deny_addresses, deny_cidrs, allow_cidrs, deny_countries, "
         "allow_countries, deny_asns, allow_asns",
         NULL},
        {"tools/a.yaml", "id: a\n[x]: 1\n", 1, 2, 1,
         "unknown key 'a list' in a tool profile; expected one of: id, name, identify, default, "
         "block_telemetry, tls, capture, splice_pinned, refuse_uninspectable, telemetry_env, "
         "endpoints",
         NULL},
    };

    expect_bad_files(*state, cases, NCASES(cases));
}

/* Decides a CONNECT by tool to host:443 into d. */
static void decide_connect(struct fixture *f, const char *tool, const char *host,
                           struct policy_decision *d)
{
    struct policy_query q = {.settings = &f->settings,
                             .method = "CONNECT",
                             .host = host,
                             .port = 443,
                             .is_connect = true,
                             .tool = tool != NULL ? policy_find_tool(f->p, tool) : NULL};

    policy_decide(f->p, &q, d);
}

/*
 * The TLS mode of a tunnel: the strictest mode among the tool's groups that reach the
 * host, else the tool's, else the organisation's, else splice; block refuses the CONNECT
 * and names the scope.  A plain request gets no mode.
 */
static void test_tls_modes(void **state)
{
    struct fixture *f = *state;
    struct policy_decision d;
    struct policy_query plain = {
        .settings = &f->settings, .method = "GET", .host = "other.test", .port = 80, .path = "/"};

    put(f, "tools/alpha.yaml",
        "id: alpha\n"
        "tls: inspect\n"
        "splice_pinned: true\n"
        "endpoints:\n"
        "  - {group: api, hosts: [api.alpha.test]}\n"
        "  - {group: pinned, hosts: [pin.alpha.test], tls: splice}\n"
        "  - {group: cdn, hosts: [\"*.cdn.alpha.test\"], tls: splice}\n"
        "  - {group: secret, hosts: [pin.alpha.test, vault.alpha.test], tls: block}\n");
    put(f, "tools/beta.yaml", "id: beta\n");
    put(f, "organisation.yaml", "unidentified: allow\ndeny_hosts: [denied.test]\n");
    f->p = load_dir(f->dir, &f->errs);
    assert_non_null(f->p);
    assert_true(policy_wants_inspection(f->p));

    decide_connect(f, "alpha", "api.alpha.test", &d);
    assert_int_equal(d.verdict, POLICY_ALLOW);
    assert_int_equal(d.tls, POLICY_TLS_INSPECT);
    assert_string_equal(d.tls_rule, "tls:inspect:alpha");
    assert_true(d.splice_pinned);
    assert_false(d.refuse_uninspectable);
    decide_connect(f, "alpha", "x.cdn.alpha.test", &d);
    assert_int_equal(d.tls, POLICY_TLS_SPLICE);
    assert_string_equal(d.tls_rule, "tls:splice:alpha/cdn");
    /* Two groups reach the host: the stricter wins, whatever their order. */
    decide_connect(f, "alpha", "pin.alpha.test", &d);
    assert_int_equal(d.verdict, POLICY_BLOCK);
    assert_int_equal(d.tls, POLICY_TLS_UNSET);
    assert_string_equal(d.rule, "tls:block:alpha/secret");
    assert_non_null(strstr(d.file, "tools/alpha.yaml"));
    decide_connect(f, "alpha", "vault.alpha.test", &d);
    assert_int_equal(d.verdict, POLICY_BLOCK);
    /* Another tool, and no tool at all: the organisation says nothing, so splice. */
    decide_connect(f, "beta", "api.alpha.test", &d);
    assert_int_equal(d.tls, POLICY_TLS_SPLICE);
    assert_string_equal(d.tls_rule, "tls:splice");
    assert_false(d.splice_pinned);
    decide_connect(f, NULL, "api.alpha.test", &d);
    assert_int_equal(d.tls, POLICY_TLS_SPLICE);
    /* A tunnel the request rules refuse gets no TLS mode. */
    decide_connect(f, "alpha", "denied.test", &d);
    assert_int_equal(d.verdict, POLICY_BLOCK);
    assert_string_equal(d.rule, "deny-host");
    assert_int_equal(d.tls, POLICY_TLS_UNSET);
    policy_decide(f->p, &plain, &d);
    assert_int_equal(d.tls, POLICY_TLS_UNSET);
    policy_unref(f->p);

    /* The organisation's mode reaches every tool that says nothing of its own. */
    put(f, "organisation.yaml",
        "unidentified: allow\ntls: inspect\nsplice_pinned: true\nrefuse_uninspectable: true\n");
    f->p = load_dir(f->dir, &f->errs);
    assert_non_null(f->p);
    decide_connect(f, "beta", "api.alpha.test", &d);
    assert_int_equal(d.tls, POLICY_TLS_INSPECT);
    assert_string_equal(d.tls_rule, "tls:inspect");
    assert_true(d.splice_pinned); /* the organisation's, for every tool */
    assert_true(d.refuse_uninspectable);
    decide_connect(f, NULL, "api.alpha.test", &d);
    assert_int_equal(d.tls, POLICY_TLS_INSPECT);
    policy_unref(f->p);

    put(f, "organisation.yaml", "unidentified: allow\ntls: block\n");
    put(f, "tools/alpha.yaml", "id: alpha\n");
    f->p = load_dir(f->dir, &f->errs);
    assert_non_null(f->p);
    assert_false(policy_wants_inspection(f->p));
    decide_connect(f, NULL, "api.alpha.test", &d);
    assert_int_equal(d.verdict, POLICY_BLOCK);
    assert_string_equal(d.rule, "tls:block");
    assert_non_null(strstr(d.file, "organisation.yaml"));
}

/*
 * A group's tls holds for every tunnel to its hosts and ports, whatever methods and paths
 * it lists (a CONNECT shows neither): a telemetry group on POST /telemetry inspects, a
 * group limited to GET blocks, and capture on such a group keeps the tunnel inspected.
 * A group's ports still count.
 */
static void test_tls_modes_group_methods(void **state)
{
    struct fixture *f = *state;
    struct policy_decision d;

    put(f, "tools/alpha.yaml",
        "id: alpha\n"
        "default: allow\n"
        "block_telemetry: true\n"
        "endpoints:\n"
        "  - {group: events, purpose: telemetry, hosts: [ev.alpha.test], methods: [POST],\n"
        "     paths: [/telemetry], tls: inspect, capture: requests}\n"
        "  - {group: nope, hosts: [gone.alpha.test], methods: [GET], tls: block}\n"
        "  - {group: other, hosts: [port.alpha.test], ports: [8443], methods: [GET],\n"
        "     tls: block}\n");
    put(f, "organisation.yaml", "unidentified: allow\n");
    f->p = load_dir(f->dir, &f->errs);
    assert_non_null(f->p);
    decide_connect(f, "alpha", "ev.alpha.test", &d);
    assert_int_equal(d.verdict, POLICY_ALLOW);
    assert_string_equal(d.rule, "default");
    assert_int_equal(d.tls, POLICY_TLS_INSPECT);
    assert_string_equal(d.tls_rule, "tls:inspect:alpha/events");
    assert_true(d.must_capture);
    decide_connect(f, "alpha", "gone.alpha.test", &d);
    assert_int_equal(d.verdict, POLICY_BLOCK);
    assert_string_equal(d.rule, "tls:block:alpha/nope");
    decide_connect(f, "alpha", "port.alpha.test", &d); /* port 443, the group's is 8443 */
    assert_int_equal(d.verdict, POLICY_ALLOW);
    assert_int_equal(d.tls, POLICY_TLS_SPLICE);
    /* Inside, the group's methods and paths decide as before. */
    expect(f, "alpha", false, "POST", "ev.alpha.test", 443, "/telemetry", POLICY_BLOCK,
           "telemetry:events");
    expect(f, "alpha", false, "GET", "ev.alpha.test", 443, "/telemetry", POLICY_ALLOW, "default");
}

/*
 * request_headers: the fields for a host, in any spelling of it, the first rule's where
 * two set one name; its hosts are always inspected (over a group's splice and pinning),
 * other hosts are not touched; the entries are checked with file, line and column.
 */
static void test_request_headers(void **state)
{
    struct fixture *f = *state;
    struct policy_decision d;
    const char *fields[POLICY_MAX_SET_FIELDS];

    put(f, "tools/alpha.yaml",
        "id: alpha\n"
        "splice_pinned: true\n"
        "endpoints:\n"
        "  - {group: pinned, hosts: [api.vendor.test], tls: splice}\n"
        "  - {group: gone, hosts: [banned.vendor.test], tls: block}\n");
    put(f, "organisation.yaml",
        "unidentified: allow\n"
        "request_headers:\n"
        "  - hosts: [api.vendor.test, \"*.vendor.test\"]\n"
        "    set: [\"Vendor-Allowed-Org:   org-1  \", \"x-second:two\"]\n"
        "  - hosts: [api.vendor.test]\n"
        "    set: [\"VENDOR-allowed-org: org-2\", \"x-third: 3\"]\n");
    f->p = load_dir(f->dir, &f->errs);
    assert_non_null(f->p);
    assert_true(policy_wants_inspection(f->p));
    assert_int_equal(policy_request_fields(f->p, "api.vendor.test", fields, POLICY_MAX_SET_FIELDS),
                     3);
    assert_string_equal(fields[0], "Vendor-Allowed-Org: org-1");
    assert_string_equal(fields[1], "x-second: two");
    assert_string_equal(fields[2], "x-third: 3");
    assert_int_equal(policy_request_fields(f->p, "eu.vendor.test", fields, POLICY_MAX_SET_FIELDS),
                     2);
    assert_int_equal(policy_request_fields(f->p, "vendor.test", fields, POLICY_MAX_SET_FIELDS), 0);
    assert_int_equal(policy_request_fields(f->p, "api.vendor.test", fields, 1), 1);

    /* The group says splice and the tool splices pinned hosts: inspected all the same. */
    decide_connect(f, "alpha", "api.vendor.test", &d);
    assert_int_equal(d.tls, POLICY_TLS_INSPECT);
    assert_true(d.must_inspect);
    assert_false(d.splice_pinned);
    assert_string_equal(d.tls_rule, "tls:inspect:request_headers");
    decide_connect(f, NULL, "eu.vendor.test", &d);
    assert_int_equal(d.tls, POLICY_TLS_INSPECT);
    /* block stays block. */
    decide_connect(f, "alpha", "banned.vendor.test", &d);
    assert_int_equal(d.verdict, POLICY_BLOCK);
    decide_connect(f, "alpha", "other.test", &d);
    assert_int_equal(d.tls, POLICY_TLS_SPLICE);
    assert_false(d.must_inspect);
    assert_true(d.splice_pinned);
}

/* Every malformed request_headers entry is named where it is. */
static void test_request_headers_errors(void **state)
{
    static const struct bad_file cases[] = {
        {"organisation.yaml", "request_headers:\n  - {hosts: [a.test], set: [\"Host: x\"]}\n", 1, 2,
         29, "set: 'Host: x': sluice writes Host itself; set another field", NULL},
        {"organisation.yaml", "request_headers:\n  - {hosts: [a.test], set: [\"a b: x\"]}\n", 1, 2,
         29, "set: 'a b: x' is not a 'Name: value' field (the name an HTTP token)", NULL},
        {"organisation.yaml", "request_headers:\n  - {hosts: [a.test], set: [\"x-a:  \"]}\n", 1, 2,
         29, "set: 'x-a:  ' has an empty value; expected visible characters, spaces or tabs", NULL},
        {"organisation.yaml", "request_headers:\n  - {hosts: [a.test], set: [\"x-a: \\x01\"]}\n", 1,
         2, 29,
         "set: 'x-a: ?' has a control byte in its value; expected visible characters, spaces "
         "or tabs",
         NULL},
        {"organisation.yaml", "request_headers:\n  - {hosts: [a.test]}\n", 1, 2, 5,
         "a request_headers entry needs fields to set", NULL},
        {"organisation.yaml", "request_headers:\n  - {set: [\"x-a: 1\"]}\n", 1, 2, 5,
         "a request_headers entry needs hosts", NULL},
    };
    struct fixture *f = *state;
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof(text), "request_headers:\n");

    expect_bad_files(f, cases, NCASES(cases));
    /* 33 fields over three entries (each within its own bound): one request could get
     * more than it may carry. */
    for (int r = 0; r < 3; r++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "  - hosts: [a.test]\n    set: [");
        for (int i = 0; i < 11; i++)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"x-%d-%d: v\"", i > 0 ? ", " : "",
                                  r, i);
        n += (size_t)snprintf(text + n, sizeof(text) - n, "]\n");
    }
    put(f, "organisation.yaml", text);
    expect_load_error(f, 1, "organisation.yaml", 1, 1,
                      "request_headers: 33 fields in all; at most 32 (one request could get them "
                      "all)");
}

/* A TLS mode that is not one of the three names the file, line and choices. */
static void test_tls_mode_errors(void **state)
{
    static const struct bad_file cases[] = {
        {"tools/a.yaml", "id: a\ntls: bump\n", 1, 2, 6,
         "tls: 'bump' is not a TLS mode; expected inspect, splice or block", NULL},
        {"organisation.yaml", "tls: [inspect]\n", 1, 1, 6, "tls: expected inspect, splice or block",
         NULL},
    };

    expect_bad_files(*state, cases, NCASES(cases));
}

/* Decides a request by tool (NULL: none) for method host path into d. */
static void decide_request_for(struct fixture *f, const char *tool, const char *method,
                               const char *host, const char *path, struct policy_decision *d)
{
    struct policy_query q = {.settings = &f->settings,
                             .method = method,
                             .host = host,
                             .port = 443,
                             .path = path,
                             .tool = tool != NULL ? policy_find_tool(f->p, tool) : NULL};

    policy_decide(f->p, &q, d);
}

/*
 * Which bodies are captured: the most any of the tool's groups covering the request asks
 * (its methods and paths counted), else the tool's setting, else the organisation's, else
 * none; a request refused or a CONNECT gets none to keep.
 */
static void test_capture_scopes(void **state)
{
    struct fixture *f = *state;
    struct policy_decision d;

    put(f, "tools/alpha.yaml",
        "id: alpha\n"
        "capture: none\n"
        "endpoints:\n"
        "  - {group: api, hosts: [api.alpha.test]}\n"
        "  - {group: chat, hosts: [api.alpha.test], paths: [/v1/messages], "
        "capture: requests-and-responses}\n"
        "  - {group: upload, hosts: [api.alpha.test], methods: [PUT], capture: requests}\n");
    put(f, "tools/beta.yaml", "id: beta\n");
    put(f, "organisation.yaml",
        "unidentified: allow\ncapture: requests\n"
        "deny_hosts: [denied.test]\n");
    f->p = load_dir(f->dir, &f->errs);
    assert_non_null(f->p);
    assert_true(policy_wants_capture(f->p));

    decide_request_for(f, "alpha", "POST", "api.alpha.test", "/v1/messages", &d);
    assert_int_equal(d.verdict, POLICY_ALLOW);
    assert_int_equal(d.capture, POLICY_CAPTURE_BOTH);
    decide_request_for(f, "alpha", "POST", "api.alpha.test", "/v1/messages/batches", &d);
    assert_int_equal(d.capture, POLICY_CAPTURE_BOTH);
    decide_request_for(f, "alpha", "PUT", "api.alpha.test", "/files/a", &d);
    assert_int_equal(d.capture, POLICY_CAPTURE_REQUESTS);
    /* The tool's own "none" stands against the organisation's "requests". */
    decide_request_for(f, "alpha", "POST", "api.alpha.test", "/v1/models", &d);
    assert_int_equal(d.capture, POLICY_CAPTURE_NONE);
    decide_request_for(f, "alpha", "POST", "api.alpha.test", "/v2/messages", &d);
    assert_int_equal(d.capture, POLICY_CAPTURE_NONE);
    /* A tunnel that is inspected where capture may apply is never spliced instead. */
    decide_connect(f, "beta", "api.alpha.test", &d);
    assert_false(d.must_capture); /* splice: nothing is read, nothing to keep */
    /* A tool that says nothing, and no tool at all: the organisation's. */
    decide_request_for(f, "beta", "POST", "api.alpha.test", "/v1/messages", &d);
    assert_int_equal(d.capture, POLICY_CAPTURE_REQUESTS);
    decide_request_for(f, NULL, "POST", "other.test", "/", &d);
    assert_int_equal(d.capture, POLICY_CAPTURE_REQUESTS);
    /* Nothing to keep of a refused request or of a tunnel. */
    decide_request_for(f, "beta", "POST", "denied.test", "/", &d);
    assert_int_equal(d.verdict, POLICY_BLOCK);
    assert_int_equal(d.capture, POLICY_CAPTURE_UNSET);
    decide_connect(f, "alpha", "api.alpha.test", &d);
    assert_int_equal(d.capture, POLICY_CAPTURE_UNSET);
    policy_unref(f->p);

    /* A group that keeps less than the tool matches paths the strict way: a dot segment
     * through its path does not take a body out of capture. */
    put(f, "organisation.yaml", "unidentified: allow\ntls: inspect\nsplice_pinned: true\n");
    put(f, "tools/alpha.yaml",
        "id: alpha\n"
        "capture: requests\n"
        "endpoints:\n"
        "  - {group: health, hosts: [api.alpha.test], paths: [/v1/health], capture: none}\n");
    f->p = load_dir(f->dir, &f->errs);
    assert_non_null(f->p);
    decide_request_for(f, "alpha", "GET", "api.alpha.test", "/v1/health", &d);
    assert_int_equal(d.capture, POLICY_CAPTURE_NONE);
    {
        struct policy_query q = {.settings = &f->settings,
                                 .method = "POST",
                                 .host = "api.alpha.test",
                                 .port = 443,
                                 .path = "/v1/messages",
                                 .raw_path = "/v1/health/../messages",
                                 .literal_path = "/v1/health/../messages",
                                 .tool = policy_find_tool(f->p, "alpha")};
        policy_decide(f->p, &q, &d);
        assert_int_equal(d.capture, POLICY_CAPTURE_REQUESTS);
    }
    /* Inspected where the tool captures: never spliced, whatever splice_pinned says. */
    decide_connect(f, "alpha", "api.alpha.test", &d);
    assert_int_equal(d.tls, POLICY_TLS_INSPECT);
    assert_true(d.must_capture);
    assert_false(d.splice_pinned);
    decide_connect(f, "beta", "api.alpha.test", &d);
    assert_false(d.must_capture);
    assert_true(d.splice_pinned);
    policy_unref(f->p);

    put(f, "organisation.yaml", "unidentified: allow\n");
    put(f, "tools/alpha.yaml", "id: alpha\n");
    f->p = load_dir(f->dir, &f->errs);
    assert_non_null(f->p);
    assert_false(policy_wants_capture(f->p));
    decide_request_for(f, "alpha", "POST", "api.alpha.test", "/v1/messages", &d);
    assert_int_equal(d.capture, POLICY_CAPTURE_NONE);
}

/* A capture setting is one of its three names; anything else points at the value. */
static void test_capture_errors(void **state)
{
    static const struct bad_file cases[] = {
        {"tools/a.yaml", "id: a\ncapture: everything\n", 1, 2, 10,
         "capture: 'everything' is not a capture setting; expected none, requests or "
         "requests-and-responses",
         NULL},
        {"organisation.yaml", "capture: [requests]\n", 1, 1, 10,
         "capture: expected none, requests or requests-and-responses", NULL},
    };

    expect_bad_files(*state, cases, NCASES(cases));
}

/*
 * A path rule must be a plain path: no dot segment above the root, encoded '/', NUL,
 * missing '/' or "//" at the start; the error points at the entry.
 */
static void test_path_rules_plain(void **state)
{
    static const struct bad_file cases[] = {
        {"tools/a.yaml", "id: a\nendpoints:\n  - {group: g, hosts: [h.test], paths: [v1/]}\n", 1, 3,
         41,
         "paths: 'v1/' is not a plain path prefix (no leading '/'); expected a path that starts "
         "with one '/', without dot segments above the root, encoded '/' or '\\', or '%00'",
         NULL},
        {"tools/a.yaml", "id: a\nendpoints:\n  - {group: g, hosts: [h.test], paths: [/v1/%2fx]}\n",
         1, 3, 41,
         "paths: '/v1/%2fx' is not a plain path prefix (encoded-slash); expected a path that "
         "starts with one '/', without dot segments above the root, encoded '/' or '\\', or '%00'",
         NULL},
        {"tools/a.yaml", "id: a\nendpoints:\n  - {group: g, hosts: [h.test], paths: [/../v1]}\n", 1,
         3, 41,
         "paths: '/../v1' is not a plain path prefix (above-root); expected a path that starts "
         "with one '/', without dot segments above the root, encoded '/' or '\\', or '%00'",
         NULL},
        {"tools/a.yaml", "id: a\nendpoints:\n  - {group: g, hosts: [h.test], paths: [//v1/]}\n", 1,
         3, 41,
         "paths: '//v1/' is not a plain path prefix (leading-slashes); expected a path that starts "
         "with one '/', without dot segments above the root, encoded '/' or '\\', or '%00'",
         NULL},
    };

    expect_bad_files(*state, cases, NCASES(cases));
}

/*
 * Path rules are kept normalised and decide on the normalised path; a block rule matches
 * in any case and on the path as received too; an ambiguous path is refused (400) where a
 * path rule applies, and only there.
 */
static void test_path_decisions(void **state)
{
    struct fixture *f = *state;
    struct policy_query q = {
        .settings = &f->settings, .method = "GET", .host = "api.alpha.test", .port = 443};
    struct policy_decision d;

    put(f, "tools/alpha.yaml",
        "id: alpha\n"
        "default: block\n"
        "block_telemetry: true\n"
        "endpoints:\n"
        "  - {group: api, hosts: [api.alpha.test], paths: [\"/%761/\"]}\n"
        "  - {group: ev, purpose: telemetry, hosts: [ev.alpha.test], paths: [/events]}\n"
        "  - {group: intl, purpose: telemetry, hosts: [ev.alpha.test],\n"
        "     paths: [\"/\u00fcber\", \"/a b\"]}\n");
    put(f, "organisation.yaml", "unidentified: allow\n");
    f->p = load_dir(f->dir, &f->errs);
    assert_non_null(f->p);
    q.tool = policy_find_tool(f->p, "alpha");
    expect(f, "alpha", false, "GET", "api.alpha.test", 443, "/v1/models", POLICY_ALLOW,
           "allow:api");
    expect(f, "alpha", false, "GET", "api.alpha.test", 443, "/admin", POLICY_BLOCK, "default");
    expect(f, "alpha", false, "GET", "api.alpha.test", 443, "/V1/models", POLICY_BLOCK, "default");
    expect(f, "alpha", false, "GET", "ev.alpha.test", 443, "/EVENTS/x", POLICY_BLOCK,
           "telemetry:ev");
    /* A request carries "/über" and "/a b" escaped: the prefixes match that spelling. */
    expect(f, "alpha", false, "GET", "ev.alpha.test", 443, "/%C3%BCber/x", POLICY_BLOCK,
           "telemetry:intl");
    expect(f, "alpha", false, "GET", "ev.alpha.test", 443, "/a%20b", POLICY_BLOCK,
           "telemetry:intl");
    q.host = "ev.alpha.test";
    q.path = "/ok";
    q.raw_path = "/events/../ok";
    policy_decide(f->p, &q, &d);
    assert_string_equal(d.rule, "telemetry:ev");
    q.host = "api.alpha.test";
    q.path = "/v1/x";
    q.raw_path = "/v1/%2fx";
    q.path_flags = URLPATH_F_ENCODED_SLASH;
    policy_decide(f->p, &q, &d);
    assert_int_equal(d.verdict, POLICY_BLOCK);
    assert_true(d.bad_request);
    assert_string_equal(d.rule, "ambiguous-path:api");
    /* No path rule on the host: the same spelling is the origin's business. */
    q.host = "other.test";
    policy_decide(f->p, &q, &d);
    assert_false(d.bad_request);
    assert_string_equal(d.rule, "default");
    /* Tomcat reads "/e;x/vents" as "/e/vents", and "/events;v=1/z" as "/events/z". */
    q.host = "ev.alpha.test";
    q.path_flags = 0;
    q.path = "/events;v=1/z";
    q.raw_path = q.path;
    q.plain_path = "/events/z";
    policy_decide(f->p, &q, &d);
    assert_string_equal(d.rule, "telemetry:ev");
    q.path = "/e;x/vents";
    q.raw_path = q.path;
    q.plain_path = "/e/vents";
    policy_decide(f->p, &q, &d);
    assert_string_equal(d.rule, "default");
    /* An allow prefix must hold for both readings. */
    q.host = "api.alpha.test";
    q.path = "/v1/x";
    q.plain_path = NULL;
    policy_decide(f->p, &q, &d);
    assert_string_equal(d.rule, "allow:api");
    q.path = "/v1;x/y";
    q.plain_path = "/v1/y";
    policy_decide(f->p, &q, &d);
    assert_string_equal(d.rule, "default");
    /* "/admin/../v1/x" is /v1/x only where dot segments are resolved before routing. */
    q.path = "/v1/x";
    q.plain_path = NULL;
    q.literal_path = "/admin/../v1/x";
    policy_decide(f->p, &q, &d);
    assert_string_equal(d.rule, "default");
    q.literal_path = "/v1/a/../x";
    policy_decide(f->p, &q, &d);
    assert_string_equal(d.rule, "allow:api");
    q.host = "ev.alpha.test";
    q.path = q.raw_path = "/ok";
    q.literal_path = "/events/../ok";
    policy_decide(f->p, &q, &d);
    assert_string_equal(d.rule, "telemetry:ev");
}

/*
 * A group whose only rule is capture judges paths too: a path that servers read in
 * different ways ("//x/upload": host x, path /upload to a WHATWG parser) is refused where
 * it covers the host and method, so the body cannot leave uncaptured under another
 * reading; another method, or another host, is not its business.
 */
static void test_ambiguous_path_capture_group(void **state)
{
    struct fixture *f = *state;
    struct policy_query q = {.settings = &f->settings,
                             .method = "POST",
                             .host = "cap.alpha.test",
                             .port = 443,
                             .path = "/x/upload",
                             .raw_path = "//x/upload",
                             .path_flags = URLPATH_F_LEADING_SLASHES};
    struct policy_decision d;

    put(f, "tools/alpha.yaml",
        "id: alpha\n"
        "default: allow\n"
        "endpoints:\n"
        "  - {group: up, hosts: [cap.alpha.test], methods: [POST], paths: [/upload],\n"
        "     capture: requests}\n");
    put(f, "organisation.yaml", "unidentified: allow\n");
    f->p = load_dir(f->dir, &f->errs);
    assert_non_null(f->p);
    q.tool = policy_find_tool(f->p, "alpha");
    policy_decide(f->p, &q, &d);
    assert_int_equal(d.verdict, POLICY_BLOCK);
    assert_true(d.bad_request);
    assert_string_equal(d.rule, "ambiguous-path:up");
    q.method = "GET";
    policy_decide(f->p, &q, &d);
    assert_false(d.bad_request);
    assert_string_equal(d.rule, "default");
    q.method = "POST";
    q.host = "other.alpha.test";
    policy_decide(f->p, &q, &d);
    assert_false(d.bad_request);
}

/* A key given twice in each kind of mapping is an error at the second one. */
static void test_table_repeated_keys(void **state)
{
    static const struct bad_file cases[] = {
        {"tools/a.yaml", "id: a\nname: A\nname: B\n", 1, 3, 1, "name: given twice; keep one", NULL},
        {"tools/a.yaml", "id: a\nidentify:\n  proxy_users: [a]\n  proxy_users: [b]\n", 1, 4, 3,
         "proxy_users: given twice; keep one", NULL},
        {"tools/a.yaml", "id: a\nendpoints:\n  - group: g\n    hosts: [h.test]\n    group: h\n", 1,
         5, 5, "group: given twice; keep one", NULL},
        {"organisation.yaml", "{unidentified: block, unidentified: allow}\n", 1, 1, 23,
         "unidentified: given twice; keep one", NULL},
    };

    expect_bad_files(*state, cases, NCASES(cases));
}

/* A value of the wrong kind says what each type of value expects, at the value. */
static void test_table_wrong_types(void **state)
{
    static const struct bad_file cases[] = {
        {"tools/a.yaml", "id: a\nname: {x: 1}\n", 1, 2, 7,
         "name: found a mapping; expected a non-empty value", NULL},
        {"tools/a.yaml", "id: a\nidentify:\n  proxy_users: {a: 1}\n", 1, 3, 16,
         "proxy_users: found a mapping; expected a list of values", NULL},
        {"tools/a.yaml", "id: a\nidentify:\n  user_agents: [ok, \"\"]\n", 1, 3, 21,
         "user_agents: found a value; expected a non-empty value", NULL},
        {"tools/a.yaml", "id: a\ndefault: {}\n", 1, 2, 10,
         "default: 'a mapping' is not a decision; expected allow, block or report", NULL},
        {"organisation.yaml", "block_telemetry: maybe\n", 1, 1, 18,
         "block_telemetry: found a value; expected true or false", NULL},
        {"tools/a.yaml", "id: a\nendpoints:\n  - {group: g, hosts: [h.test], purpose: [api]}\n", 1,
         3, 42,
         "purpose: expected api, auth, update, telemetry, crash-reporting, feature-flags or other",
         NULL},
        {"tools/a.yaml", "id: a\nendpoints:\n  - {group: g, hosts: [h.test], ports: {a: 1}}\n", 1,
         3, 40, "ports: found a mapping; expected a list of values", NULL},
        {"organisation.yaml", "connect_ports: [443, 99999]\n", 1, 1, 16,
         "connect_ports: '99999': number out of range; expected ports from 1 to 65535", NULL},
        {"tools/a.yaml", "id: a\nendpoints:\n  - {group: g, hosts: h.test}\n", 1, 3, 23,
         "hosts: found a value; expected a list of host names or *.suffix wildcards", NULL},
        {"organisation.yaml", "deny_addresses: loopback\n", 1, 1, 17,
         "deny_addresses: found a value; expected a list of address classes", NULL},
        {"organisation.yaml", "allow_cidrs: 10.0.0.0/8\n", 1, 1, 14,
         "allow_cidrs: found a value; expected a list of CIDR prefixes such as 10.0.0.0/8", NULL},
        {"organisation.yaml", "deny_countries: DE\n", 2, 1, 17,
         "deny_countries: found a value; expected a list of two-letter country codes",
         "set geoip.country_db"},
        {"organisation.yaml", "allow_asns: AS1\n", 2, 1, 13,
         "allow_asns: found a value; expected a list of AS numbers such as AS64500",
         "set geoip.asn_db"},
        {"tools/a.yaml", "id: a\nidentify: [a]\n", 1, 2, 11,
         "identify: found a list; expected a mapping", NULL},
        {"tools/a.yaml", "id: a\nendpoints: {}\n", 1, 2, 12,
         "endpoints: found a mapping; expected a list of endpoint groups", NULL},
        {"tools/a.yaml", "id: a\nendpoints: [x]\n", 1, 2, 13,
         "endpoints: found a value; expected a mapping with group, purpose and hosts", NULL},
        {"tools/a.yaml", "[]\n", 1, 1, 1,
         "found a list; expected a tool profile (id, name, identify, default, endpoints)", NULL},
        {"tools/a.yaml", "", 1, 0, 0,
         "found nothing; expected a tool profile (id, name, identify, default, endpoints)", NULL},
        {"organisation.yaml", "- a\n", 1, 1, 1, "found a list; expected the organisation policy",
         NULL},
    };

    expect_bad_files(*state, cases, NCASES(cases));
}

/* A tool needs an id and an endpoint group a name and hosts; each is reported at its mapping. */
static void test_table_required_keys(void **state)
{
    static const struct bad_file cases[] = {
        {"tools/a.yaml", "name: x\n", 1, 1, 1, "a tool profile needs an id", NULL},
        {"tools/a.yaml", "id: a\nendpoints:\n  - purpose: api\n", 2, 3, 5,
         "an endpoint group needs a group name", "3:5: endpoint group '?' needs hosts"},
        {"tools/a.yaml", "id: a\nendpoints:\n  - {group: g}\n", 1, 3, 5,
         "endpoint group 'g' needs hosts", NULL},
        /* A name that is refused leaves the group without one; refused hosts are reported once. */
        {"tools/a.yaml", "id: a\nendpoints:\n  - {group: [], hosts: h.test}\n", 3, 3, 13,
         "group: found a list; expected a non-empty value", "hosts: found a value"},
    };

    expect_bad_files(*state, cases, NCASES(cases));
}

/* Loads the directory with listeners bound to tools[i] (NULL: none), given in file. */
static struct policy_snapshot *load_bound(struct fixture *f, const char *const *tools,
                                          const char *const *names, size_t n, const char *file)
{
    struct policy_source src = {
        .dir = f->dir, .bound_tools = tools, .bound_names = names, .nbound = n, .bound_file = file};

    return policy_load(&src, &f->errs);
}

/*
 * A listener bound to a tool needs that tool's profile: the error names the file that gave
 * the listener, the listener as written, the tool and the directory.  A listener bound by
 * a proxy user name of a profile, or bound to nothing, is fine.
 */
static void test_error_listener_tool_unknown(void **state)
{
    struct fixture *f = *state;
    static const char *const tools[] = {NULL, "zeta", "al"};
    static const char *const names[] = {"127.0.0.1:3128", "127.0.0.1:3129", "127.0.0.1:3130"};
    char file[128], want[512], *real;

    put(f, "tools/alpha.yaml", tool_a);
    snprintf(file, sizeof(file), "%s/sluice.yaml", f->dir);
    f->p = load_bound(f, tools, names, 3, file);
    assert_null(f->p);
    if (f->errs.count != 1)
        yamldoc_errors_print(&f->errs, stderr);
    assert_int_equal(f->errs.count, 1);
    real = realpath(f->dir, NULL);
    assert_non_null(real);
    snprintf(want, sizeof(want),
             "%s: listen: 127.0.0.1:3129 is bound to tool 'zeta', which has no profile in %s; "
             "add tools/zeta.yaml there or fix the name",
             file, real);
    free(real);
    assert_string_equal(f->errs.lines[0], want);
    yamldoc_errors_clear(&f->errs);
    f->p = load_bound(f, tools + 2, names + 2, 1, file);
    assert_non_null(f->p);
}

/*
 * One proxy user name may select one tool: two profiles listing it is an error at the
 * second, whose requests would otherwise go to the first without a word.
 */
static void test_error_proxy_user_two_tools(void **state)
{
    struct fixture *f = *state;
    char want[512];

    put(f, "tools/a.yaml", "id: a\nidentify: {proxy_users: [shared]}\n");
    put(f, "tools/b.yaml", "id: b\nidentify:\n  proxy_users: [b, shared]\n");
    expect_load_error(f, 1, "tools/b.yaml", 0, 0, "proxy user 'shared' also names tool 'a'");
    snprintf(want, sizeof(want), "%s/tools/b.yaml: proxy user 'shared' also names tool 'a' (%s/%s)",
             f->dir, f->dir, "tools/a.yaml");
    assert_string_equal(f->errs.lines[0], want);
}

/*
 * A proxy user name that is another tool's id is an error whichever profile comes first:
 * otherwise credentials for that tool (and a ban naming it) would select the profile that
 * lists the name.  Here the profile that lists it sorts first.
 */
static void test_error_proxy_user_is_later_id(void **state)
{
    struct fixture *f = *state;
    char want[512];

    put(f, "tools/a.yaml", "id: a\nidentify: {proxy_users: [b]}\n");
    put(f, "tools/b.yaml", "id: b\n");
    expect_load_error(f, 1, "tools/a.yaml", 0, 0, "proxy user 'b' also names tool 'b'");
    snprintf(want, sizeof(want), "%s/tools/a.yaml: proxy user 'b' also names tool 'b' (%s/%s)",
             f->dir, f->dir, "tools/b.yaml");
    assert_string_equal(f->errs.lines[0], want);
}

/*
 * An endpoint group without hosts, in block style among valid groups, is reported at its
 * mapping with its name; the valid groups around it add nothing.
 */
static void test_error_group_without_hosts(void **state)
{
    static const struct bad_file cases[] = {
        {"tools/a.yaml",
         "id: a\n"
         "endpoints:\n"
         "  - group: api\n"
         "    hosts: [api.a.test]\n"
         "  - group: events\n"
         "    purpose: telemetry\n"
         "    paths: [/events]\n"
         "  - {group: more, hosts: [more.a.test]}\n",
         1, 5, 5, "endpoint group 'events' needs hosts", NULL},
        /* "hosts:" with nothing after it is a null value, not a list. */
        {"tools/a.yaml", "id: a\nendpoints:\n  - group: g\n    hosts:\n", 1, 4, 11,
         "hosts: found a value; expected a list of host names or *.suffix wildcards", NULL},
        /* An empty list matches nothing: a telemetry group with it would block nothing. */
        {"tools/a.yaml", "id: a\nendpoints:\n  - {group: t, purpose: telemetry, hosts: []}\n", 1, 3,
         43, "hosts: the list is empty; expected a list of host names or *.suffix wildcards", NULL},
    };

    expect_bad_files(*state, cases, NCASES(cases));
}

/*
 * A profile without an id is refused at its mapping; an empty or null id is refused at
 * the value, then counted as missing.  Another profile beside it still loads its errors
 * only.
 */
static void test_error_profile_without_id(void **state)
{
    struct fixture *f = *state;
    static const struct bad_file cases[] = {
        {"tools/a.yaml",
         "name: A\nidentify: {proxy_users: [a]}\nendpoints:\n  - {group: g, hosts: [a.test]}\n", 1,
         1, 1, "a tool profile needs an id", NULL},
        {"tools/a.yaml", "id: \"\"\nname: A\n", 2, 1, 5,
         "id: found a value; expected a non-empty value", "1:1: a tool profile needs an id"},
        {"tools/a.yaml", "name: A\nid:\n", 2, 2, 4, "id: found a value; expected a non-empty value",
         "1:1: a tool profile needs an id"},
    };

    put(f, "tools/b.yaml", tool_b);
    expect_bad_files(f, cases, NCASES(cases));
}

/* A tool whose groups have each telemetry purpose, and one that shares its hosts. */
static const char tool_tele[] =
    "id: tele\n"
    "default: allow\n"
    "block_telemetry: true\n"
    "endpoints:\n"
    "  - {group: api, purpose: api, hosts: [api.t.test]}\n"
    "  - {group: metrics, purpose: telemetry, hosts: [m.t.test]}\n"
    "  - {group: crashes, purpose: crash-reporting, hosts: [c.t.test]}\n"
    "  - {group: flags, purpose: feature-flags, hosts: [f.t.test]}\n"
    "  - {group: updates, purpose: update, hosts: [u.t.test]}\n";

static const char tool_open[] =
    "id: open\n"
    "default: block\n"
    "endpoints:\n"
    "  - {group: metrics, purpose: telemetry, hosts: [m.t.test]}\n"
    "  - {group: crashes, purpose: crash-reporting, hosts: [c.t.test]}\n"
    "  - {group: flags, purpose: feature-flags, hosts: [f.t.test]}\n";

/*
 * 3. A tool's own block_telemetry blocks its telemetry, crash-reporting and feature-flag
 * groups while the organisation's is off; another tool's same groups stay allowed, and the
 * tool's other groups and default are untouched.
 */
static void test_tool_block_telemetry(void **state)
{
    struct fixture *f = *state;
    static const char *const orgs[] = {"block_telemetry: false\n", "unidentified: allow\n"};

    put(f, "tools/tele.yaml", tool_tele);
    put(f, "tools/open.yaml", tool_open);
    for (size_t i = 0; i < sizeof(orgs) / sizeof(orgs[0]); i++) {
        put(f, "organisation.yaml", orgs[i]);
        f->p = load_dir(f->dir, &f->errs);
        assert_non_null(f->p);
        expect(f, "tele", false, "GET", "m.t.test", 80, "/", POLICY_BLOCK, "telemetry:metrics");
        expect(f, "tele", true, "CONNECT", "m.t.test", 443, NULL, POLICY_BLOCK,
               "telemetry:metrics");
        expect(f, "tele", false, "POST", "c.t.test", 80, "/", POLICY_BLOCK, "telemetry:crashes");
        expect(f, "tele", true, "CONNECT", "f.t.test", 443, NULL, POLICY_BLOCK, "telemetry:flags");
        expect(f, "tele", false, "GET", "api.t.test", 80, "/", POLICY_ALLOW, "allow:api");
        expect(f, "tele", false, "GET", "u.t.test", 80, "/", POLICY_ALLOW, "allow:updates");
        expect(f, "tele", false, "GET", "else.test", 80, "/", POLICY_ALLOW, "default");
        expect(f, "open", false, "GET", "m.t.test", 80, "/", POLICY_ALLOW, "allow:metrics");
        expect(f, "open", true, "CONNECT", "c.t.test", 443, NULL, POLICY_ALLOW, "allow:crashes");
        expect(f, "open", false, "POST", "f.t.test", 80, "/", POLICY_ALLOW, "allow:flags");
        expect(f, NULL, false, "GET", "m.t.test", 80, "/", POLICY_ALLOW, "unidentified");
        policy_unref(f->p);
        f->p = NULL;
    }
}

/*
 * 3. The organisation's block_telemetry covers the crash-reporting and feature-flags
 * purposes like telemetry, for every tool; update, api and other groups stay allowed.
 */
static void test_org_block_telemetry_purposes(void **state)
{
    struct fixture *f = *state;

    put(f, "tools/open.yaml", tool_open);
    put(f, "tools/other.yaml",
        "id: other\n"
        "default: block\n"
        "endpoints:\n"
        "  - {group: misc, hosts: [m.t.test]}\n"
        "  - {group: up, purpose: update, hosts: [c.t.test]}\n"
        "  - {group: auth, purpose: auth, hosts: [f.t.test]}\n");
    put(f, "organisation.yaml", "block_telemetry: true\n");
    f->p = load_dir(f->dir, &f->errs);
    assert_non_null(f->p);
    expect(f, "open", false, "GET", "m.t.test", 80, "/", POLICY_BLOCK, "telemetry:metrics");
    expect(f, "open", false, "PUT", "c.t.test", 80, "/dump", POLICY_BLOCK, "telemetry:crashes");
    expect(f, "open", true, "CONNECT", "c.t.test", 443, NULL, POLICY_BLOCK, "telemetry:crashes");
    expect(f, "open", false, "GET", "f.t.test", 80, "/flags", POLICY_BLOCK, "telemetry:flags");
    expect(f, "open", true, "CONNECT", "f.t.test", 443, NULL, POLICY_BLOCK, "telemetry:flags");
    /* The same hosts in groups of other purposes (other is the default) are allowed. */
    expect(f, "other", false, "GET", "m.t.test", 80, "/", POLICY_ALLOW, "allow:misc");
    expect(f, "other", false, "GET", "c.t.test", 80, "/", POLICY_ALLOW, "allow:up");
    expect(f, "other", true, "CONNECT", "f.t.test", 443, NULL, POLICY_ALLOW, "allow:auth");
}

/*
 * 4. A group with methods and no paths allows those methods only, in any case, on any
 * path; other methods fall to the default, and a CONNECT (no method visible) never
 * matches it, CONNECT listed or not.
 */
static void test_method_only_group(void **state)
{
    struct fixture *f = *state;

    put(f, "tools/reader.yaml",
        "id: reader\n"
        "default: block\n"
        "endpoints:\n"
        "  - group: read\n"
        "    hosts: [data.test]\n"
        "    methods: [GET, head, CONNECT]\n"
        "  - {group: write, hosts: [data.test], methods: POST, ports: [8080]}\n");
    f->p = load_dir(f->dir, &f->errs);
    assert_non_null(f->p);
    expect(f, "reader", false, "GET", "data.test", 80, "/", POLICY_ALLOW, "allow:read");
    expect(f, "reader", false, "GET", "data.test", 443, "/any/deep/path?q=1", POLICY_ALLOW,
           "allow:read");
    expect(f, "reader", false, "HEAD", "data.test", 80, "/x", POLICY_ALLOW, "allow:read");
    expect(f, "reader", false, "POST", "data.test", 80, "/x", POLICY_BLOCK, "default");
    expect(f, "reader", false, "PUT", "data.test", 80, "/x", POLICY_BLOCK, "default");
    expect(f, "reader", false, "DELETE", "data.test", 80, "/x", POLICY_BLOCK, "default");
    expect(f, "reader", false, "PROPFIND", "data.test", 80, "/x", POLICY_BLOCK, "default");
    expect(f, "reader", true, "CONNECT", "data.test", 443, NULL, POLICY_BLOCK, "default");
    /* One value in place of the list; the group's port still applies. */
    expect(f, "reader", false, "POST", "data.test", 8080, "/x", POLICY_ALLOW, "allow:write");
    expect(f, "reader", false, "GET", "data.test", 8080, "/x", POLICY_ALLOW, "allow:read");
    expect(f, "reader", false, "GET", "other.test", 80, "/", POLICY_BLOCK, "default");
}

/* Loads the directory with the given mode and the test GeoIP databases (when geo). */
static void load_guarded(struct fixture *f, const char *org, bool gateway, bool geo)
{
    static char country[512], asn[512];
    const char *dir = getenv("SLUICE_GEOIP_DIR");
    struct policy_source src = {.dir = f->dir, .gateway = gateway};

    if (geo) {
        assert_non_null(dir);
        snprintf(country, sizeof(country), "%s/test-country.mmdb", dir);
        snprintf(asn, sizeof(asn), "%s/test-asn.mmdb", dir);
        src.geoip_country_db = country;
        src.geoip_asn_db = asn;
    }
    put(f, "tools/alpha.yaml", tool_a);
    put(f, "organisation.yaml", org);
    f->p = policy_load(&src, &f->errs);
    if (f->p == NULL)
        yamldoc_errors_print(&f->errs, stderr);
    assert_non_null(f->p);
}

/* Checks ip:port against the address guard: allowed (rule NULL) or refused by rule. */
static void expect_address(struct fixture *f, const char *ip, uint16_t port, const char *rule)
{
    struct sockaddr_storage ss;
    struct policy_dest dest;
    struct policy_decision d;
    bool allowed;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
    }
    allowed = policy_check_address(f->p, policy_find_tool(f->p, "alpha"), (struct sockaddr *)&ss,
                                   &dest, &d);
    if (rule == NULL && !allowed)
        fail_msg("%s: refused by %s, expected allowed", ip, d.rule);
    if (rule != NULL && (allowed || strcmp(d.rule, rule) != 0))
        fail_msg("%s: %s%s, expected refused by %s", ip, allowed ? "allowed" : "refused by ",
                 allowed ? "" : d.rule, rule);
    if (!allowed) {
        assert_int_equal(d.verdict, POLICY_BLOCK);
        assert_string_equal(d.tool, "alpha");
        assert_non_null(strstr(d.file, "organisation.yaml"));
    }
}

/* Gateway mode refuses every inward class by default, IPv4-mapped and embedded forms too. */
static void test_guard_gateway_defaults(void **state)
{
    struct fixture *f = *state;

    load_guarded(f, "", true, false);
    expect_address(f, "127.0.0.1", 80, "deny-address:loopback");
    expect_address(f, "10.1.2.3", 80, "deny-address:private");
    expect_address(f, "192.168.0.1", 80, "deny-address:private");
    expect_address(f, "169.254.169.254", 80, "deny-address:metadata");
    expect_address(f, "169.254.1.1", 80, "deny-address:link-local");
    expect_address(f, "100.64.0.1", 80, "deny-address:cgnat");
    expect_address(f, "fd00::1", 80, "deny-address:unique-local");
    expect_address(f, "::ffff:10.0.0.1", 80, "deny-address:private");
    expect_address(f, "64:ff9b::a9fe:a9fe", 80, "deny-address:metadata");
    expect_address(f, "0.0.0.0", 80, "deny-address:unspecified");
    expect_address(f, "224.0.0.1", 80, "deny-address:multicast");
    expect_address(f, "93.184.215.14", 80, NULL);
    expect_address(f, "2606:4700::1111", 443, NULL);
}

/* Local mode reaches loopback and private services, never metadata addresses. */
static void test_guard_local_defaults(void **state)
{
    struct fixture *f = *state;

    load_guarded(f, "", false, false);
    expect_address(f, "127.0.0.1", 8080, NULL);
    expect_address(f, "10.1.2.3", 80, NULL);
    expect_address(f, "169.254.169.254", 80, "deny-address:metadata");
    expect_address(f, "::ffff:169.254.169.254", 80, "deny-address:metadata");
    expect_address(f, "100.100.100.200", 80, "deny-address:metadata");
    expect_address(f, "169.254.1.1", 80, NULL);
    expect_address(f, "0.0.0.0", 80, "deny-address:unspecified");
}

/* deny_addresses replaces the mode's default; allow_cidrs and deny_cidrs refine it. */
static void test_guard_configured(void **state)
{
    struct fixture *f = *state;

    load_guarded(f,
                 "deny_addresses: [loopback, private]\n"
                 "allow_cidrs: [10.20.0.0/16, \"::1\"]\n"
                 "deny_cidrs: [93.184.215.0/24, \"2001:db8::/32\"]\n",
                 true, false);
    expect_address(f, "127.0.0.1", 80, "deny-address:loopback");
    expect_address(f, "::1", 80, NULL);
    expect_address(f, "10.1.0.1", 80, "deny-address:private");
    expect_address(f, "10.20.3.4", 80, NULL);
    expect_address(f, "169.254.169.254", 80, NULL); /* no longer in the list */
    expect_address(f, "93.184.215.14", 80, "deny-cidr");
    expect_address(f, "2001:db8::5", 80, "deny-cidr");
    expect_address(f, "93.184.216.1", 80, NULL);
}

/* Countries and autonomous systems from the test databases. */
static void test_guard_geoip(void **state)
{
    struct fixture *f = *state;

    load_guarded(f, "deny_addresses: []\ndeny_countries: [kp]\ndeny_asns: [AS64501]\n", false,
                 true);
    expect_address(f, "127.0.0.1", 80, NULL);
    expect_address(f, "127.0.2.9", 80, "deny-country:KP");
    expect_address(f, "127.0.1.9", 80, "deny-asn:AS64501");
    policy_unref(f->p);
    f->p = NULL;
    load_guarded(f, "deny_addresses: []\nallow_countries: [US, DE]\nallow_asns: [64500]\n", false,
                 true);
    expect_address(f, "127.0.0.1", 80, NULL);
    expect_address(f, "127.0.2.9", 80, "allow-countries:KP");
    expect_address(f, "127.0.1.9", 80, "allow-asns:AS64501");
    expect_address(f, "127.9.9.9", 80, "allow-countries:unknown"); /* not in the database */
}

/* Country and AS rules with no database are errors at their key, saying what to set. */
static void test_error_country_without_db(void **state)
{
    struct fixture *f = *state;

    put(f, "organisation.yaml", "block_telemetry: true\ndeny_countries: [KP]\n");
    expect_load_error(f, 1, "organisation.yaml", 2, 1, "set geoip.country_db");
    policy_unref(f->p);
    f->p = NULL;
    yamldoc_errors_clear(&f->errs);
    put(f, "organisation.yaml", "allow_asns: [AS1]\n");
    expect_load_error(f, 1, "organisation.yaml", 1, 1, "set geoip.asn_db");
}

/* Address rules with a bad entry name the entry and what to write. */
static void test_error_address_rules(void **state)
{
    struct fixture *f = *state;

    put(f, "organisation.yaml",
        "deny_addresses: [loopback, intranet]\n"
        "deny_cidrs: [10.1.0.0/8]\n"
        "allow_cidrs: [\"::1/129\"]\n"
        "deny_asns: [ASx]\n");
    expect_load_error(f, 5, "organisation.yaml", 1, 28, "'intranet' is not an address class");
    assert_non_null(strstr(f->errs.lines[1], "organisation.yaml:2:14: "));
    assert_non_null(strstr(f->errs.lines[1], "write 10.0.0.0/8"));
    assert_non_null(strstr(f->errs.lines[2], "organisation.yaml:3:15: "));
    assert_non_null(strstr(f->errs.lines[3], "'ASx' is not an AS number"));
    assert_non_null(strstr(f->errs.lines[4], "set geoip.asn_db")); /* and no database */
}

/*
 * The profiles shipped in policies/ load, and decide as their files say: a tool's API is
 * allowed, its telemetry blocked (the shipped organisation blocks telemetry), other hosts
 * refused by its default, clients no profile names allowed.
 */
static void test_shipped_policies(void **state)
{
    struct fixture *f = *state;
    const char *dir = getenv("SLUICE_SHIPPED_POLICIES");

    assert_non_null(dir);
    f->p = load_dir(dir, &f->errs);
    if (f->p == NULL)
        yamldoc_errors_print(&f->errs, stderr);
    assert_non_null(f->p);
    assert_true(f->p->ntools >= 27);
    expect(f, "claude-code", true, "CONNECT", "api.anthropic.com", 443, NULL, POLICY_ALLOW,
           "allow:api");
    expect(f, "claude", true, "CONNECT", "statsig.anthropic.com", 443, NULL, POLICY_BLOCK,
           "telemetry:statsig");
    expect(f, "claude-code", true, "CONNECT", "example.com", 443, NULL, POLICY_BLOCK, "default");
    expect(f, "copilot", true, "CONNECT", "copilot-telemetry.githubusercontent.com", 443, NULL,
           POLICY_BLOCK, "telemetry:telemetry");
    expect(f, "github-copilot", true, "CONNECT", "api.individual.githubcopilot.com", 443, NULL,
           POLICY_ALLOW, "allow:api");
    expect(f, "go", true, "CONNECT", "telemetry.go.dev", 443, NULL, POLICY_BLOCK,
           "telemetry:telemetry");
    expect(f, "go", true, "CONNECT", "gitlab.example.org", 443, NULL, POLICY_ALLOW, "default");
    expect(f, NULL, false, "GET", "example.com", 80, "/", POLICY_ALLOW, "unidentified");
    /* Claude Code as each installer lays it out: /proc names a link's target. */
    {
        static const char *const node_cli[] = {
            "node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js", NULL};
        const char *exes[] = {"/usr/local/bin/claude",
                              "/home/u/.local/share/claude/versions/2.1.201", "/usr/bin/node"};
        const char *const *args[] = {NULL, NULL, node_cli};
        size_t depth;

        for (size_t i = 0; i < sizeof(exes) / sizeof(exes[0]); i++) {
            struct procid chain = {0};
            const struct policy_tool *t;

            chain_add(&chain, exes[i], args[i]);
            t = match_process(f->p, &chain, &depth);
            assert_non_null(t);
            assert_string_equal(t->id, "claude-code");
        }
    }
}

/*
 * policies/examples/tenant-restriction.yaml, as the organisation policy beside the shipped
 * profiles: it loads, sets each vendor's field on its hosts (Claude Code's API, a Copilot
 * host by its wildcard), inspects them, and touches no other host.
 */
static void test_tenant_restriction_example(void **state)
{
    struct fixture *f = *state;
    const char *dir = getenv("SLUICE_SHIPPED_POLICIES");
    char cmd[1400];
    const char *fields[POLICY_MAX_SET_FIELDS];
    struct policy_decision d;

    assert_non_null(dir);
    snprintf(cmd, sizeof(cmd),
             "cp -r '%s/tools/.' '%s/tools/' && cp '%s/examples/tenant-restriction.yaml' "
             "'%s/organisation.yaml'",
             dir, f->dir, dir, f->dir);
    assert_int_equal(system(cmd), 0);
    f->p = load_dir(f->dir, &f->errs);
    if (f->p == NULL)
        yamldoc_errors_print(&f->errs, stderr);
    assert_non_null(f->p);
    assert_true(f->p->ntools >= 27);
    assert_non_null(policy_find_tool(f->p, "claude-code"));
    assert_int_equal(
        policy_request_fields(f->p, "api.anthropic.com", fields, POLICY_MAX_SET_FIELDS), 1);
    assert_string_equal(fields[0],
                        "anthropic-allowed-org-ids: 00000000-0000-0000-0000-000000000000");
    assert_int_equal(policy_request_fields(f->p, "claude.ai", fields, POLICY_MAX_SET_FIELDS), 1);
    assert_int_equal(policy_request_fields(f->p, "api.individual.githubcopilot.com", fields,
                                           POLICY_MAX_SET_FIELDS),
                     1);
    assert_non_null(strstr(fields[0], "sec-GitHub-allowed-enterprise: "));
    assert_int_equal(policy_request_fields(f->p, "api.openai.com", fields, POLICY_MAX_SET_FIELDS),
                     1);
    assert_non_null(strstr(fields[0], "OpenAI-Allowed-Organization-Ids: "));
    assert_int_equal(policy_request_fields(f->p, "example.com", fields, POLICY_MAX_SET_FIELDS), 0);
    decide_connect(f, "claude-code", "api.anthropic.com", &d);
    assert_int_equal(d.verdict, POLICY_ALLOW);
    assert_int_equal(d.tls, POLICY_TLS_INSPECT);
    assert_true(d.must_inspect);
    decide_connect(f, "github-copilot", "api.individual.githubcopilot.com", &d);
    assert_int_equal(d.tls, POLICY_TLS_INSPECT);
    decide_connect(f, "claude-code", "example.com", &d);
    assert_int_not_equal(d.tls, POLICY_TLS_INSPECT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ban_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_global_deny, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_ports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_telemetry_blocked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_telemetry_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allowlist_wildcard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allowlist_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_process_spoofing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_by_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_bad_verdict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_bad_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_bad_sha256, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_banned_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ban_by_proxy_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_duplicate_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_all_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_repeated_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_missing_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shipped_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guard_gateway_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guard_local_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guard_configured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guard_geoip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_country_without_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_address_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_unknown_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_repeated_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_rules_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_decisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_wrong_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_required_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_listener_tool_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_proxy_user_two_tools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_proxy_user_is_later_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_group_without_hosts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_profile_without_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_block_telemetry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_org_block_telemetry_purposes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_only_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_modes_group_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ambiguous_path_capture_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_mode_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_scopes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_headers_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_restriction_example, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
