/*
 * Policies: tool profiles and the organisation policy, loaded from a directory of YAML
 * files into an immutable, reference-counted snapshot, and the one function that decides a
 * request against it.  The order of evaluation lives in policy_decide() and nowhere else:
 *
 *   1. the tool is banned by the organisation           -> block
 *   2. global deny: hosts and CONNECT ports here; the dialled address (its class, CIDR,
 *      country and ASN) in policy_check_address(), once it is resolved  -> block
 *   3. the tool's telemetry groups, when blocked        -> block
 *      (a path a path rule of the tool would judge, spelt so that servers differ on
 *      what it means, any URLPATH_AMBIGUOUS flag: encoded '/' or '\', NUL, dot
 *      segments above the root, "..;", a bad escape, overlong UTF-8...  -> 400)
 *   4. the tool's allowlist (its endpoint groups)       -> allow
 *   5. the tool's default                               -> allow, block or report
 *   6. no tool identified: the organisation's default   -> allow, block or report
 *
 * "report" lets the request through and logs it as "would block".
 */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "sluice/settings.h"
#include "sluice/yamldoc.h"

struct domainset;
struct geoip;
struct netguard_cidrs;
struct netguard_self;

/* What to do with a request. */
enum policy_verdict {
    POLICY_ALLOW = 0, /* forward it */
    POLICY_BLOCK,     /* refuse it with 403 */
    POLICY_REPORT,    /* forward it, and log that it would have been blocked */
};

/* What an endpoint group is for; telemetry-like purposes can be blocked as a class. */
enum policy_purpose {
    POLICY_PURPOSE_API = 0,
    POLICY_PURPOSE_AUTH,
    POLICY_PURPOSE_UPDATE,
    POLICY_PURPOSE_TELEMETRY,
    POLICY_PURPOSE_CRASH_REPORTING,
    POLICY_PURPOSE_FEATURE_FLAGS,
    POLICY_PURPOSE_OTHER,
};

/* What happens to the TLS inside a CONNECT tunnel. */
enum policy_tls {
    POLICY_TLS_UNSET = 0, /* not said here: the wider scope decides (splice at the top) */
    POLICY_TLS_SPLICE,    /* relay the bytes untouched after checking the server name */
    POLICY_TLS_INSPECT,   /* terminate it with a certificate from the local CA, read the
                             requests inside, and open a verified TLS connection upstream */
    POLICY_TLS_BLOCK,     /* refuse the tunnel */
};

/* Which bodies of the requests sluice reads (plain HTTP, inspected TLS) are kept (capture.h). */
enum policy_capture {
    POLICY_CAPTURE_UNSET = 0, /* not said here: the wider scope decides (none at the top) */
    POLICY_CAPTURE_NONE,      /* no body */
    POLICY_CAPTURE_REQUESTS,  /* request bodies: what leaves the machine */
    POLICY_CAPTURE_BOTH,      /* request and response bodies */
};

#define POLICY_MAX_LIST  32
#define POLICY_MAX_CODES 256 /* countries or ASNs in one list */

/* One endpoint group of a tool: hosts with optional ports, methods and path prefixes. */
struct policy_endpoint {
    char *group; /* the group's name, part of the rule id */
    enum policy_purpose purpose;
    struct domainset *hosts; /* exact names and *.suffix wildcards; owned */
    uint16_t ports[POLICY_MAX_LIST];
    size_t nports; /* 0 = any port */
    char *methods[POLICY_MAX_LIST];
    size_t nmethods; /* 0 = any method */
    char *paths[POLICY_MAX_LIST];
    size_t npaths;               /* 0 = any path; prefixes otherwise */
    enum policy_tls tls;         /* for tunnels to its hosts, or UNSET: the tool's */
    enum policy_capture capture; /* for requests it covers, or UNSET: the tool's */
};

/* A tool profile: who the tool is, what it may reach, and what happens to the rest. */
struct policy_tool {
    char *id;                           /* "claude-code" */
    char *name;                         /* display name */
    char *file;                         /* the profile's path, for messages */
    char *proxy_users[POLICY_MAX_LIST]; /* Proxy-Authorization user names that mean it */
    size_t nproxy_users;
    char *user_agents[POLICY_MAX_LIST]; /* User-Agent patterns (the identity issue) */
    size_t nuser_agents;
    char *executables[POLICY_MAX_LIST]; /* executable path patterns (the identity issue) */
    size_t nexecutables;
    char *sha256[POLICY_MAX_LIST]; /* executables by content: SHA-256, lower-case hex */
    size_t nsha256;
    enum policy_verdict default_verdict;
    bool block_telemetry; /* block this tool's telemetry groups even if the org does not */
    char *telemetry_env[POLICY_MAX_LIST]; /* "NAME=VALUE": the tool's own telemetry off */
    size_t ntelemetry_env;
    struct policy_endpoint *endpoints;
    size_t nendpoints;
    enum policy_tls tls;         /* for its tunnels, or UNSET: the organisation's */
    enum policy_capture capture; /* for its requests, or UNSET: the organisation's */
    bool splice_pinned;          /* splice its tunnels to a host whose certificate it refused */
    bool refuse_uninspectable;   /* refuse, not splice, an inspected tunnel whose client
                                    offers HTTP/2 only */
};

/*
 * Request fields the organisation sets on every request to some hosts (tenant
 * restriction): a field of the same name the client sent is dropped.  Hosts so named are
 * always inspected, so the fields reach HTTPS requests too.
 */
struct policy_header_rule {
    struct domainset *hosts;    /* owned */
    char *set[POLICY_MAX_LIST]; /* "Name: value", owned */
    size_t nset;
};

/* The organisation policy. */
struct policy_org {
    char *file; /* its path, or "(built-in)" */
    char *banned[POLICY_MAX_LIST];
    size_t nbanned;
    bool block_telemetry; /* telemetry, crash-reporting and feature-flag groups, all tools */
    bool block_identity_mismatch; /* a weaker source naming another tool blocks the request */
    enum policy_verdict unidentified;
    enum policy_tls tls;         /* for tunnels no tool or group says more of; UNSET means splice */
    enum policy_capture capture; /* for requests no tool or group says more of; UNSET: none */
    bool splice_pinned;          /* every tool: splice a host whose certificate the tool refused */
    bool refuse_uninspectable;   /* every tool: refuse an h2-only client of an inspected tunnel */
    struct policy_header_rule *header_rules; /* request_headers; owned */
    size_t nheader_rules;
    struct domainset *deny_hosts;  /* owned; may be NULL */
    struct domainset *allow_hosts; /* exceptions to deny_hosts; owned; may be NULL */
    uint16_t connect_ports[POLICY_MAX_LIST];
    size_t nconnect_ports;                    /* 0 = the configuration's connect_ports */
    uint32_t deny_classes;                    /* NETGUARD_* address classes never dialled */
    struct netguard_cidrs *deny_cidrs;        /* addresses never dialled; owned; may be NULL */
    struct netguard_cidrs *allow_cidrs;       /* exceptions to the two above; owned; may be NULL */
    char deny_countries[POLICY_MAX_CODES][3]; /* ISO 3166 codes never dialled */
    size_t ndeny_countries;
    char allow_countries[POLICY_MAX_CODES][3]; /* when any: only these are dialled */
    size_t nallow_countries;
    uint32_t deny_asns[POLICY_MAX_CODES]; /* autonomous systems never dialled */
    size_t ndeny_asns;
    uint32_t allow_asns[POLICY_MAX_CODES]; /* when any: only these are dialled */
    size_t nallow_asns;
};

/* What a policy load needs besides the directory; strings are not owned. */
struct policy_source {
    const char *dir;                  /* the policy directory, or NULL: allow everything */
    bool gateway;                     /* gateway mode: every address class denied by default */
    const char *geoip_country_db;     /* MMDB file, or NULL: country rules are an error */
    const char *geoip_asn_db;         /* MMDB file, or NULL: ASN rules are an error */
    const struct netguard_self *self; /* the proxy's own listening addresses; may be NULL */
    const char *const *bound_tools;   /* tool each listener is bound to (NULL: none) ... */
    const char *const *bound_names;   /* ... and that listener as the user wrote it */
    size_t nbound;
    const char *bound_file; /* where the listeners were given, for messages */
};

/* Everything loaded from one policy directory; immutable once built. */
struct policy_snapshot {
    atomic_uint refs;    /* one per holder: the current pointer, each connection */
    unsigned generation; /* 1 for the first snapshot, +1 per reload */
    char *dir;
    struct geoip *geoip;              /* opened databases, or NULL; owned */
    const struct netguard_self *self; /* not owned: lives as long as the program */
    struct policy_tool *tools;
    size_t ntools;
    /* Why this policy lets every request through unidentified (no profile at all), said
     * as a warning at start and reload and as an error by "sluice check"; or NULL. */
    char *warning;
    struct policy_org org;
};

/* What a decision is about; strings are not owned. */
struct policy_query {
    const struct sluice_settings *settings;
    const struct policy_tool *tool; /* the identified tool, in the same snapshot, or NULL */
    bool is_connect;                /* a CONNECT tunnel: method and path are not visible */
    const char *method;
    const char *host; /* the normalised host (request_normalize_host) */
    uint16_t port;
    const char *path;              /* normalised path and query (urlpath_normalize), or NULL */
    const char *raw_path;          /* the path and query as received, or NULL */
    const char *plain_path;        /* path without segment parameters (urlpath_strip_params), or
                                      NULL when it has none */
    const char *literal_path;      /* path with its dot segments kept (urlpath_literal), or NULL
                                      when it has none */
    unsigned path_flags;           /* URLPATH_F_* the normalisation saw */
    const char *identity_mismatch; /* "SOURCE:TOOL" a weaker source named, or NULL / "" */
    bool identity_unverified;      /* through an isolating launcher whose processes could not all
                                      be looked at for a banned tool */
    const char *process_tool;      /* the tool the client's process chain names (a banned one
                                      first), or NULL; a banned one is refused whatever named
                                      the request */
    bool process_unseen;           /* a local client whose process could not be found (gone,
                                      hidden from sluice, past the look's bound) */
    bool unix_client;              /* the client came over a Unix socket (the isolate relay) */
};

/* The decision and the rule that made it; strings point into the snapshot or are static. */
struct policy_decision {
    enum policy_verdict verdict;
    bool bad_request;            /* a block for a malformed request: answered 400, not 403 */
    const char *tool;            /* tool id, or "unidentified" */
    const char *file;            /* the policy file holding the rule */
    char rule[128];              /* "ban", "deny-host", "telemetry:<group>", "allow:<group>", ... */
    const char *reason;          /* one sentence for the client, saying what to do */
    enum policy_tls tls;         /* a CONNECT that may go on: SPLICE or INSPECT; else UNSET */
    char tls_rule[128];          /* which scope chose tls: "tls:inspect:<tool>/<group>", ... */
    bool splice_pinned;          /* inspected: splice instead where the tool refused sluice's
                                    certificate for the host before (organisation's or tool's) */
    bool must_inspect;           /* request_headers names the host: never spliced, not even for a
                                    client that offers only HTTP/2 or refused the certificate */
    bool refuse_uninspectable;   /* inspected: a client offering HTTP/2 only is refused rather
                                    than spliced (organisation's or tool's) */
    bool must_capture;           /* inspected, and policy may keep bodies of requests inside:
                                    never spliced instead (an HTTP/2-only client is refused,
                                    splice_pinned does not apply) */
    enum policy_capture capture; /* a request let through: which of its bodies are kept (NONE
                                    to BOTH); UNSET for a CONNECT or a block */
};

/* What the address guard learnt about a dialled address, for the log. */
struct policy_dest {
    char ip[48];     /* canonical text of the address */
    char country[3]; /* ISO 3166 code, or "" when unknown or no database */
    uint32_t asn;    /* 0 when unknown */
};

/*
 * Loads every profile under src->dir/tools/NAME.yaml and src->dir/organisation.yaml
 * (optional) and opens the GeoIP databases, into a new snapshot with one reference.
 * Returns NULL with every problem in errs (file:line:column), cross-references included.
 */
struct policy_snapshot *policy_load(const struct policy_source *src, struct yamldoc_errors *errs);

/*
 * Parses the text of one tool profile (is_org false) or organisation policy (true), named
 * path in messages, on its own: no cross-references, no GeoIP.  For tests and fuzzing.
 * Returns 0, or -1 with every problem in errs.
 */
int policy_check_text(const char *path, const char *data, size_t len, bool is_org,
                      struct yamldoc_errors *errs);

/* Takes a reference. */
struct policy_snapshot *policy_ref(struct policy_snapshot *p);

/* Drops a reference; the last one frees the snapshot.  NULL is a no-op. */
void policy_unref(struct policy_snapshot *p);

/* The tool whose id or proxy user name is name, or NULL. */
const struct policy_tool *policy_find_tool(const struct policy_snapshot *p, const char *name);

/* Decides q against p into *d, in the documented order. */
void policy_decide(const struct policy_snapshot *p, const struct policy_query *q,
                   struct policy_decision *d);

/*
 * The address guard: checks an address that a request to host is about to be dialled to
 * (after resolution, before connect) against the organisation's address classes, CIDRs,
 * countries and ASNs.  Fills *dest for the log.  Returns true when it may be dialled;
 * false with *d holding the block decision.  When GeoIP cannot tell the country or ASN
 * that an allow-only list needs, the answer is no.
 */
bool policy_check_address(const struct policy_snapshot *p, const struct policy_tool *tool,
                          const struct sockaddr *sa, struct policy_dest *dest,
                          struct policy_decision *d);

/* "allow", "block" or "report". */
const char *policy_verdict_str(enum policy_verdict v);

/* "api", "auth", "update", "telemetry", "crash-reporting", "feature-flags" or "other". */
const char *policy_purpose_str(enum policy_purpose p);

/*
 * Makes p the snapshot every request decided from now on uses, taking over the caller's
 * reference and dropping the previous one.  A request under way keeps the snapshot it
 * began with until the worker asks it to decide again (session_policy_changed).
 */
void policy_install(struct policy_snapshot *p);

/* A new reference to the current snapshot (never NULL once one is installed). */
struct policy_snapshot *policy_acquire(void);

/*
 * The generation of the current snapshot, without a lock: a connection compares it with
 * its own snapshot's when a request head is complete and takes the new one only when they
 * differ.
 */
unsigned policy_current_generation(void);

/* The most request fields one request is given (request_headers). */
#define POLICY_MAX_SET_FIELDS 32

/*
 * The fields request_headers sets on a request to host (normalised): "Name: value" each,
 * pointing into p, at most max, the first rule's where two set the same name.  Returns how
 * many.
 */
size_t policy_request_fields(const struct policy_snapshot *p, const char *host, const char **out,
                             size_t max);

/* Name of a TLS mode for logs and the record ("splice", "inspect", "block", "" for UNSET). */
const char *policy_tls_str(enum policy_tls m);

/* The name of a capture setting as policies write it ("requests"). */
const char *policy_capture_str(enum policy_capture c);

/* True when some scope of p asks for inspection (the local CA must then be configured). */
bool policy_wants_inspection(const struct policy_snapshot *p);

/* True when the organisation, a tool or an endpoint group asks for bodies to be captured. */
bool policy_wants_capture(const struct policy_snapshot *p);

#endif /* SLUICE_POLICY_H */
