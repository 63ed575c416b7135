/*
 * Client connections; see include/sluice/session.h.
 *
 * Every libevent callback of a connection lands here.  A callback hands the event to the
 * module of the current phase (the head parser, the dial, the forward or tunnel relay),
 * which moves bytes and returns an outcome; session_advance() is where an outcome changes
 * the phase.  Responses sluice makes itself, the per-state deadlines, the lingering close,
 * the access line of each exchange and the one teardown live here too.
 */
#include "sluice/session.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>

#include "sluice/audit.h"
#include "sluice/auditlog.h"
#include "sluice/errpage.h"
#include "sluice/log.h"
#include "sluice/metrics.h"
#include "sluice/procid.h"
#include "sluice/proclookup.h"
#include "sluice/proxyproto.h"
#include "sluice/redact.h"
#include "sluice/tls.h"
#include "sluice/urlpath.h"

/* How long a closing connection may take to drain what the client still sends. */
#define SESSION_LINGER_MS 2000
/* How much a lingering client may still send before it is cut off. */
#define SESSION_LINGER_MAX (1024 * 1024)
/* What a CONNECT that goes on is answered, by sluice or once the upstream is there. */
static const char session_established[] = "HTTP/1.1 200 Connection established\r\n\r\n";

/* Room for the names of the fields request_headers set, for the record ("a,b"). */
#define SESSION_SET_NAMES_MAX 512

/* How often the minimum upload rate is checked. */
#define SESSION_RATE_TICK_MS 1000

/* An owner key (session_owner_key) is never cut short, so two users whose names share a
 * long prefix never share a pooled or pinned upstream connection. */
static_assert(SETTINGS_TOOL_ID_MAX + IDENTITY_USER_MAX + 4 <= POOL_OWNER_MAX,
              "a tool id, a newline, a user name and \"\\ntls\" fit in an owner key");

/* How often a request through an isolating launcher looks at the launcher's processes. */
#define SESSION_RECHECK_MS 100

static void session_rematch_process(struct session *s, const struct policy_snapshot *p);
static void session_dispatch(struct session *s, const char *buf);
static void session_stop_waiting(struct session *s);

static void session_client_cb(struct sock *so, short what, void *arg);
static void session_upstream_cb(struct sock *so, short what, void *arg);
static void session_linger_step(struct session *s);
static void session_pinned_cb(struct sock *so, short what, void *arg);
static void session_timer_cb(evutil_socket_t fd, short what, void *arg);
static void session_rate_cb(evutil_socket_t fd, short what, void *arg);
static void session_read_head(struct session *s);
static void session_query(const struct session *s, const struct policy_tool *tool,
                          struct policy_query *q);
static void session_advance(struct session *s, struct outcome o);

/* Bit i of session_transitions[from] says whether from -> i is legal. */
static const unsigned session_transitions[] = {
    [SESSION_ST_HEAD] =
        1u << SESSION_ST_RESOLVE | 1u << SESSION_ST_FORWARD | 1u << SESSION_ST_LINGER,
    [SESSION_ST_RESOLVE] = 1u << SESSION_ST_CONNECT | 1u << SESSION_ST_LINGER,
    [SESSION_ST_CONNECT] = 1u << SESSION_ST_CONNECT | 1u << SESSION_ST_FORWARD |
                           1u << SESSION_ST_TUNNEL | 1u << SESSION_ST_LINGER,
    [SESSION_ST_FORWARD] = 1u << SESSION_ST_HEAD | 1u << SESSION_ST_RESOLVE |
                           1u << SESSION_ST_TUNNEL | 1u << SESSION_ST_LINGER,
    [SESSION_ST_TUNNEL] = 0,
    [SESSION_ST_LINGER] = 0,
    [SESSION_ST_CLOSED] = 0,
};

/* Name of a state for logs. */
const char *session_state_str(enum session_state st)
{
    switch (st) {
    case SESSION_ST_HEAD:
        return "head";
    case SESSION_ST_RESOLVE:
        return "resolve";
    case SESSION_ST_CONNECT:
        return "connect";
    case SESSION_ST_FORWARD:
        return "forward";
    case SESSION_ST_TUNNEL:
        return "tunnel";
    case SESSION_ST_LINGER:
        return "linger";
    case SESSION_ST_CLOSED:
        return "closed";
    }
    return "?";
}

/* Moves s to st; any state may close, the rest follow the table. */
static void session_set_state(struct session *s, enum session_state st)
{
    if (st != SESSION_ST_CLOSED && (session_transitions[s->state] & (1u << st)) == 0) {
        log_error("bug: illegal connection state change %s -> %s", session_state_str(s->state),
                  session_state_str(st));
        assert(!"illegal connection state change");
    }
    s->state = st;
}

/*
 * Monotonic milliseconds.  Not the coarse clock, which moves a tick (4 ms) at a time and
 * made every ms= in the access line a multiple of 4; this one is read in the vDSO too.
 */
static uint64_t session_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Arms the state's timer for ms from now and restarts the inactivity clock. */
static void session_timer_arm(struct session *s, uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};

    s->timer_ms = ms;
    s->activity_ms = session_now_ms();
    evtimer_add(s->timer, &tv);
}

/* Notes that bytes moved; the timer callback compares against this before acting. */
static void session_touch(struct session *s)
{
    s->activity_ms = session_now_ms();
}

/* Records the termination code of the exchange unless one was recorded already. */
static void session_set_term(struct session *s, char who, char phase)
{
    if (s->x.term[0] == '\0') {
        s->x.term[0] = who;
        s->x.term[1] = phase;
        s->x.term[2] = '\0';
    }
}

/* The decision that settled the exchange: the guard's refusal, else the request's. */
static const struct policy_decision *session_decision(const struct session *s)
{
    return s->x.refused ? &s->x.refusal : s->x.decided ? &s->x.decision : NULL;
}

/* Fills rec with what is known of the exchange under way; its strings stay s's. */
static void session_fill_record(struct session *s, struct audit_record *rec_out)
{
    struct exchange *x = &s->x;
    const struct policy_decision *d = session_decision(s);
    struct audit_record rec = {0};

    rec.client = s->client_addr;
    rec.method = x->req.method[0] != '\0' ? x->req.method : "-";
    rec.target = x->target != NULL ? x->target : "-";
    rec.is_connect = x->req.is_connect;
    rec.host = x->req.host;
    rec.port = x->req.port;
    rec.user = x->identity.user;
    rec.status = x->status != 0 ? x->status : x->fwd.status;
    /* What sluice passed on: a refused request counts nothing, whatever refused it. */
    rec.sent = (x->head_passed ? x->head_bytes : 0) + x->fwd.sent + x->tun.up.bytes;
    rec.received = x->own_bytes + x->fwd.received + x->tun.down.bytes;
    /* The upstream's, or sluice's own error page's (errpage.c writes text/plain). */
    rec.media_type = x->fwd.content_type[0] != '\0' ? x->fwd.content_type
                     : x->fwd.status == 0 && x->own_bytes > 0 && rec.status >= 400 ? "text/plain"
                                                                                   : "";
    rec.duration_ms = session_now_ms() - x->start_ms;
    rec.sni = x->tun.sni != NULL ? x->tun.sni : s->tls_sni != NULL ? s->tls_sni : "";
    rec.tls_mode = x->tls_mode != NULL ? x->tls_mode : s->inspecting ? "inspect" : NULL;
    rec.set_fields = x->set_names;
    rec.term = x->term;
    rec.tool = x->identity.tool != NULL ? x->identity.tool->id : "unidentified";
    rec.id_source = identity_source_str(x->identity.source);
    rec.offered = x->identity.tool == NULL ? x->identity.user : "";
    rec.pid = (uint32_t)s->proc.pid;
    rec.uid = s->proc.pid > 0 ? s->proc.uid : UINT32_MAX;
    rec.exe = s->proc.exe != NULL ? s->proc.exe : "";
    /* The hash may have come in since: the thread hashes while the request runs. */
    if (s->proc.sha256[0] == '\0' && s->proc.pid > 0 &&
        !exehash_known(&s->proc.exe_key, s->proc.sha256))
        s->proc.sha256[0] = '\0';
    rec.exe_sha256 = s->proc.sha256;
    rec.cmd = s->proc.cmd != NULL ? s->proc.cmd : "";
    rec.chain = s->proc.chain != NULL ? s->proc.chain : "";
    rec.parent_pid = (uint32_t)s->proc.parent_pid;
    rec.parent_exe = s->proc.parent_exe;
    rec.mismatch = x->identity.mismatch;
    rec.version = x->identity.version;
    /* A block is said by decision= and rule=; every other failure names its kind. */
    rec.error = x->error_type != NULL && strcmp(x->error_type, "http_request_denied") != 0
                    ? x->error_type
                    : "";
    rec.decision = d != NULL ? policy_verdict_str(d->verdict) : "-";
    rec.rule = d != NULL ? d->rule : "-";
    rec.rule_file = d != NULL && d->file != NULL ? d->file : "";
    rec.dest_ip = x->dest_known ? x->dest.ip : "-";
    rec.country = x->dest_known && x->dest.country[0] != '\0' ? x->dest.country : "-";
    rec.asn = x->dest_known ? x->dest.asn : 0;
    rec.path = x->path;
    rec.user_agent = x->user_agent;
    rec.req_secrets = &x->req_secrets;
    rec.resp_secrets = &x->fwd.resp_secrets;
    rec.req_capture = x->req_captured.present ? &x->req_captured : NULL;
    rec.resp_capture = x->resp_captured.present ? &x->resp_captured : NULL;
    *rec_out = rec;
}

/* Writes the access line and the record of the exchange under way, once. */
static void session_report(struct session *s)
{
    struct exchange *x = &s->x;
    struct audit_record rec;

    if (!x->active)
        return;
    x->active = false;
    if (x->term[0] == '\0')
        session_set_term(s, TERM_NORMAL, TERM_PH_NONE);
    /* The bodies as far as they went: a cut one is kept as what left, and says so. */
    capture_body_finish(&x->req_capture, &x->req_captured);
    capture_body_finish(&x->resp_capture, &x->resp_captured);
    session_fill_record(s, &rec);
    audit_emit(&rec);
}

/* Makes an interim record of a long exchange; see the header. */
void session_interim(struct session *s, uint32_t every_ms)
{
    struct exchange *x = &s->x;
    uint64_t now = session_now_ms();
    struct audit_record rec;

    if (!x->active || !x->head_passed ||
        now - (x->interim_ms != 0 ? x->interim_ms : x->start_ms) < every_ms)
        return;
    x->interim_ms = now;
    session_fill_record(s, &rec);
    rec.interim = true;
    audit_emit_interim(&rec);
}

/* Clears everything that belongs to one exchange so the next request starts clean. */
static void session_reset_exchange(struct session *s)
{
    struct exchange *x = &s->x;

    free(x->target);
    free(x->user_agent);
    free(x->path);
    forward_reset(&x->fwd);
    tunnel_end(&x->tun);
    free(x->tun.sni); /* an inspected CONNECT's, read before any tunnel began */
    free(x->set_names);
    capture_body_reset(&x->req_capture);
    capture_body_reset(&x->resp_capture);
    memset(x, 0, sizeof(*x));
    tunnel_init(&x->tun);
}

/* Frees the dial, if one is under way or just ended. */
static void session_drop_dial(struct session *s)
{
    if (s->dial == NULL)
        return;
    dial_cancel(s->dial);
    free(s->dial);
    s->dial = NULL;
}

/* Frees the upstream connection in use, if any. */
static void session_drop_upstream(struct session *s)
{
    s->upstream_reused = s->upstream_pinned = false;
    session_drop_dial(s);
    sock_free(s->upstream);
    s->upstream = NULL;
}

/* Closes the upstream connection kept for connection-bound authentication. */
static void session_drop_pinned(struct session *s)
{
    if (s->pinned == NULL)
        return;
    sock_free(s->pinned->so);
    free(s->pinned);
    s->pinned = NULL;
}

/* Formats "ip:port" (IPv6 in brackets) for the log. */
static void session_format_addr(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        evutil_inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(out, cap, "%s:%u", ip, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        evutil_inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    } else {
        snprintf(out, cap, "unix");
    }
}

/*
 * The lookup of s's process is done (on the loop): s takes what was found.  A first head
 * that was waiting for it goes on now.
 */
static void session_lookup_done(struct proclookup_record *r, void *arg)
{
    struct session *s = arg;
    struct policy_snapshot *p;

    s->lookup = NULL;
    proclookup_record_clear(&s->proc);
    s->proc = *r;
    memset(r, 0, sizeof(*r)); /* moved: the strings are s's now */
    s->process_unseen = s->proc.pid <= 0;
    /* A reload while the lookup ran: the process is matched again under the new policy,
     * as a reload does for every known process. */
    if (s->proc.pid > 0 && (p = policy_acquire()) != NULL) {
        if (p->generation != s->proc.generation)
            session_rematch_process(s, p);
        policy_unref(p);
    }
    if (s->head_waiting && s->state == SESSION_ST_HEAD) {
        const char *buf;

        s->head_waiting = false;
        sock_set_reading(s->client, true);
        buf = (const char *)evbuffer_pullup(sock_in(s->client), (ev_ssize_t)s->head.head_len);
        if (buf == NULL) {
            session_close(s, TERM_RESOURCE, TERM_PH_REQUEST);
            return;
        }
        session_dispatch(s, buf);
    }
}

/* A first head no longer waits for the lookup, which is dropped: the session ends. */
static void session_stop_waiting(struct session *s)
{
    s->head_waiting = false;
    if (s->lookup != NULL)
        proclookup_cancel(s->lookup);
    s->lookup = NULL;
}

/*
 * For a loopback or Unix client: starts looking for the process behind the connection,
 * and the tool it or one of its ancestors is under the current policy, in the worker's
 * lookup thread (proclookup.h).  Done once, at the first byte (the process does not change); a
 * request still names its tool by the strongest source (identity.h).
 */
static void session_find_process(struct session *s, evutil_socket_t fd, const struct sockaddr *peer)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    struct ucred cred = {0};
    socklen_t credlen = sizeof(cred);

    if (s->env->lookups == NULL)
        return;
    if (peer->sa_family == AF_UNIX) {
        /* The kernel names the peer of a Unix socket: no lookup, nothing it could forge. */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) < 0 || cred.pid <= 0) {
            s->process_unseen = true;
            return;
        }
        s->lookup = proclookup_submit(s->env->lookups, s->policy, NULL, NULL, cred.pid,
                                      session_lookup_done, s);
        s->lookup_refused = s->lookup == NULL;
    } else if ((peer->sa_family == AF_INET || peer->sa_family == AF_INET6) &&
               getsockname(fd, (struct sockaddr *)&local, &len) == 0 &&
               procid_is_local(peer, (struct sockaddr *)&local)) {
        s->lookup = proclookup_submit(s->env->lookups, s->policy, peer, (struct sockaddr *)&local,
                                      0, session_lookup_done, s);
        s->lookup_refused = s->lookup == NULL;
    }
}

/* Takes over an accepted socket and starts reading the first request head. */
struct session *session_new(struct session_env *env, evutil_socket_t fd, const struct sockaddr *sa,
                            const struct session_arrival *a)
{
    const struct sluice_settings *st = env->settings;
    struct session *s = calloc(1, sizeof(*s));
    size_t high;

    if (s == NULL)
        goto fail;
    s->env = env;
    s->listener_tool = a->listener_tool;
    s->ask_credentials = a->ask_credentials;
    s->proxy_header = a->proxy_header;
    tunnel_init(&s->x.tun);
    s->policy = policy_acquire();
    if (s->policy == NULL)
        goto fail;
    s->state = SESSION_ST_HEAD;
    s->unix_client = sa->sa_family == AF_UNIX;
    session_format_addr(sa, s->client_addr, sizeof(s->client_addr));
    if (sa->sa_family == AF_INET6)
        s->client_sa.sin6 = *(const struct sockaddr_in6 *)(const void *)sa;
    else if (sa->sa_family == AF_INET)
        s->client_sa.sin = *(const struct sockaddr_in *)(const void *)sa;
    s->timer = evtimer_new(env->base, session_timer_cb, s);
    if (s->timer == NULL)
        goto fail;
    /* A Unix socket's peer is always looked at: it is how `sluice run --isolate` is known.
     * The lookup starts with the first byte, so a burst of connections that send nothing
     * (idle, or a port scan) costs no lookup and cannot fill the queue for the others. */
    if (!a->proxy_header && (st->identify_processes || sa->sa_family == AF_UNIX))
        s->lookup_family = sa->sa_family;
    s->client = sock_new(env->base, fd);
    fd = -1; /* the sock owns it now, or closed it */
    if (s->client == NULL)
        goto fail;
    sock_setcb(s->client, session_client_cb, s);
    /* A whole head must fit in the input; past that, reading pauses until we consume. */
    high = (size_t)st->request_limits.max_head + 4096;
    if (high < RELAY_HIGH_WATERMARK)
        high = RELAY_HIGH_WATERMARK;
    sock_set_read_limit(s->client, high);
    sock_set_reading(s->client, true);
    /* A client sends its request right after it connects: it is most likely here. */
    sock_read_soon(s->client);
    TAILQ_INSERT_TAIL(&env->live, s, entry);
    env->nlive++;
    metrics_connection_opened();
    s->cap_held = a->cap_held; /* from here on the session releases it */
    session_timer_arm(s, st->timeout_head_ms);
    return s;

fail:
    if (s != NULL) {
        if (s->lookup != NULL)
            proclookup_cancel(s->lookup);
        proclookup_record_clear(&s->proc);
        policy_unref(s->policy);
        sock_free(s->client);
        if (s->timer != NULL)
            event_free(s->timer);
        free(s);
    }
    if (fd >= 0)
        evutil_closesocket(fd);
    return NULL;
}

/* Tears s down: access line, events, sockets, buffers; the struct goes to the dead list. */
void session_close(struct session *s, char who, char phase)
{
    struct session_env *env = s->env;

    if (s->state == SESSION_ST_CLOSED)
        return;
    session_set_term(s, who, phase);
    session_report(s);
    if (s->state == SESSION_ST_TUNNEL)
        metrics_tunnel_closed();
    session_set_state(s, SESSION_ST_CLOSED);
    if (s->timer != NULL) {
        event_free(s->timer);
        s->timer = NULL;
    }
    if (s->rate_timer != NULL) {
        event_free(s->rate_timer);
        s->rate_timer = NULL;
    }
    session_reset_exchange(s); /* the tunnel's buffers and pipes, before the sockets */
    session_drop_upstream(s);
    session_drop_pinned(s);
    sock_free(s->client);
    s->client = NULL;
    free(s->fields);
    s->fields = NULL;
    free(s->http_tunnel);
    s->http_tunnel = NULL;
    if (s->tunnel_auth != NULL)
        OPENSSL_cleanse(s->tunnel_auth, strlen(s->tunnel_auth)); /* a credential */
    free(s->tunnel_auth);
    s->tunnel_auth = NULL;
    free(s->tls_sni);
    s->tls_sni = NULL;
    if (s->lookup != NULL)
        proclookup_cancel(s->lookup);
    s->lookup = NULL;
    proclookup_record_clear(&s->proc);
    policy_unref(s->policy);
    s->policy = NULL;
    TAILQ_REMOVE(&env->live, s, entry);
    env->nlive--;
    atomic_fetch_sub(env->open_total, 1);
    metrics_connection_closed();
    if (env->clientcap != NULL && s->cap_held)
        clientcap_release(env->clientcap, &s->client_sa.sa);
    TAILQ_INSERT_TAIL(&env->dead, s, entry);
    event_active(env->reap, 0, 0);
}

/* Frees what is left of a closed session. */
void session_free(struct session *s)
{
    if (s == NULL)
        return;
    assert(s->state == SESSION_ST_CLOSED);
    free(s);
}

/* Closes s like session_close(), but with a TCP reset toward the client. */
static void session_abort(struct session *s, char who, char phase)
{
    if (s->client != NULL)
        sock_reset_on_free(s->client);
    session_close(s, who, phase);
}

/* Starts the lingering close: flush what is queued, half-close, drain, then close. */
static void session_linger(struct session *s)
{
    session_report(s);
    session_drop_upstream(s);
    session_drop_pinned(s);
    session_set_state(s, SESSION_ST_LINGER);
    sock_set_read_limit(s->client, 0);
    sock_set_reading(s->client, true);
    evbuffer_drain(sock_in(s->client), (size_t)-1);
    sock_flush(s->client);
    /* A slow client may take long to read the last response: bound the flush by progress
     * (nothing written for the idle timeout), not by a fixed time. */
    s->linger_left = evbuffer_get_length(sock_out(s->client));
    session_timer_arm(s, s->env->settings->timeout_idle_ms);
    session_linger_step(s);
}

/*
 * Lingering, once the output is empty: a client that ended too is closed; otherwise the
 * connection is half-closed, so the client sees the end, and read for a while, so that
 * bytes it still sends do not turn the close into a reset that destroys the response.
 */
static void session_linger_step(struct session *s)
{
    if (evbuffer_get_length(sock_out(s->client)) > 0 || s->linger_shut)
        return;
    if (s->client_eof) {
        session_close(s, TERM_NORMAL, TERM_PH_NONE);
        return;
    }
    sock_shutdown_write(s->client);
    s->linger_shut = true;
    session_timer_arm(s, SESSION_LINGER_MS);
}

/* Ends the exchange with a response of sluice's own, or a reset if one already started. */
static void session_fail(struct session *s, unsigned status, const char *error_type, char who,
                         char phase, const char *what)
{
    char host[300];

    if (s->state == SESSION_ST_CLOSED || s->state == SESSION_ST_LINGER)
        return;
    session_set_term(s, who, phase);
    s->x.error_type = error_type; /* the access line's error=, whatever the level */
    /* After a response head, or a CONNECT's 200 (the bytes after it are the tunnel's), an
     * answer could only be read as part of what came before: the connection is cut. */
    if (s->x.fwd.resp_head_done || s->state == SESSION_ST_TUNNEL ||
        (s->x.req.is_connect && s->x.status == 200)) {
        session_abort(s, who, phase);
        return;
    }
    log_escape(host, sizeof(host), s->x.req.host, strlen(s->x.req.host));
    s->x.own_bytes += errpage_write(sock_out(s->client), status, error_type, host, what);
    s->x.status = status;
    if (!s->x.failure_logged)
        log_info("%s: %u for %s: %s", s->client_addr, status, host[0] ? host : "-", what);
    session_linger(s);
}

/* Refuses the exchange with 403 on the strength of d, naming tool, host, rule and file. */
static void session_deny(struct session *s, char phase, const struct policy_decision *d,
                         const char *address)
{
    char what[640], host[300];

    log_escape(host, sizeof(host), s->x.req.host, strlen(s->x.req.host));
    snprintf(what, sizeof(what), "blocked %s:%u%s%s%s for tool %s: %s (rule %s in %s)", host,
             s->x.req.port, address != NULL ? " (address " : "", address != NULL ? address : "",
             address != NULL ? ")" : "", d->tool, d->reason, d->rule, d->file);
    log_notice("%s: %s %s", s->client_addr, s->x.req.method, what);
    s->x.failure_logged = true; /* once, at notice: -v must not say it again */
    session_fail(s, 403, "http_request_denied", TERM_PROXY, phase, what);
}

/*
 * Answers 407 with a Basic challenge: proxy credentials are missing (a listener that asks
 * for them, or a credentials file) or wrong (the file).  The access line says
 * decision=block rule=proxy-auth; the client may retry with credentials.
 */
static void session_challenge(struct session *s, const char *why, const char *user)
{
    struct exchange *x = &s->x;
    char what[800], shown[IDENTITY_USER_MAX * 4];

    log_escape(shown, sizeof(shown), user, strlen(user));
    snprintf(what, sizeof(what), "%s%s%s; send the tool's proxy user name and token", why,
             user[0] != '\0' ? " for user " : "", shown);
    x->decision.verdict = POLICY_BLOCK;
    x->decision.bad_request = false;
    x->decision.tool = "unidentified";
    x->decision.file = credentials_current() != NULL ? "the credentials file" : "the listener";
    x->decision.reason = why;
    snprintf(x->decision.rule, sizeof(x->decision.rule), "proxy-auth");
    x->decided = true;
    log_notice("%s: 407: %s", s->client_addr, what);
    x->failure_logged = true;
    session_fail(s, 407, "http_request_denied", TERM_PROXY, TERM_PH_REQUEST, what);
}

/*
 * With a credentials file, a request must carry a user and token it verifies; a listener
 * that asks for credentials wants some (unverified without a file), so clients that wait
 * for a challenge send them.  Returns true to go on, false after a 407.
 */
static bool session_check_credentials(struct session *s, const struct identity_input *in)
{
    char user[IDENTITY_USER_MAX] = "", token[256];
    bool have = in->proxy_auth != NULL, ok;
    struct credentials *set = credentials_current(); /* a reload may install another */

    if (set == NULL) {
        if (!s->ask_credentials || have)
            return true;
        session_challenge(s, "proxy credentials are required on this listener", "");
        return false;
    }
    ok = have &&
         identity_basic_decode(in->proxy_auth, in->proxy_auth_len, user, sizeof(user), token,
                               sizeof(token)) &&
         credentials_verify(set, user, strlen(user), token, strlen(token));
    OPENSSL_cleanse(token, sizeof(token));
    if (ok)
        return true;
    session_challenge(
        s, have ? "the proxy credentials are not valid" : "proxy credentials are required", user);
    return false;
}

/* Refuses a request the parser or the dispatcher could not accept. */
static void session_refuse(struct session *s, unsigned status, const char *what, uint32_t pos)
{
    log_notice("%s: %u: %s (at byte %u)", s->client_addr, status, what, pos);
    session_fail(s, status, "http_request_error", TERM_PROXY, TERM_PH_REQUEST, what);
}

/*
 * The key kept upstream connections are filed under: who asked (identity_owner_key), and
 * whether the connection speaks TLS, so that an inspected request never gets a plain
 * connection to the same host and port, nor a plain request a TLS one.
 */
static void session_owner_key(const struct session *s, char *out, size_t cap)
{
    size_t n;

    identity_owner_key(&s->x.identity, out, cap);
    n = strlen(out);
    if (s->inspecting && n + 5 <= cap)
        memcpy(out + n, "\ntls", 5);
}

/*
 * After a finished exchange: the upstream goes to the pool (or stays pinned), and the
 * client is kept for its next request or closed.
 */
static void session_exchange_done(struct session *s)
{
    struct forward *f = &s->x.fwd;

    session_report(s);
    if (s->upstream != NULL && f->upstream_keep && !s->env->draining) {
        char owner[POOL_OWNER_MAX];
        session_owner_key(s, owner, sizeof(owner));
        if (f->conn_auth || s->upstream_pinned) {
            /* The origin now knows this connection as this user: it stays with this client
             * (Squid calls it pinning), is closed with it, and never goes to the pool. */
            session_drop_pinned(s);
            if (!f->close_after && (s->pinned = calloc(1, sizeof(*s->pinned))) != NULL) {
                s->pinned->so = s->upstream;
                s->pinned->peer = s->upstream_peer;
                snprintf(s->pinned->host, sizeof(s->pinned->host), "%s", s->x.req.host);
                s->pinned->port = s->x.req.port;
                snprintf(s->pinned->owner, sizeof(s->pinned->owner), "%s", owner);
                sock_setcb(s->upstream, session_pinned_cb, s); /* to see the origin close it */
                sock_set_reading(s->upstream, true);
                s->upstream = NULL;
            }
        } else {
            pool_put(s->env->pool, s->x.req.host, s->x.req.port, owner, s->upstream,
                     &s->upstream_peer);
            s->upstream = NULL;
        }
    }
    session_drop_upstream(s);
    /* A client that half-closed after pipelining more requests still gets their answers. */
    if (f->close_after || s->env->draining ||
        (s->client_eof && evbuffer_get_length(sock_in(s->client)) == 0)) {
        session_linger(s);
        return;
    }
    session_reset_exchange(s);
    session_set_state(s, SESSION_ST_HEAD);
    sock_set_reading(s->client, true);
    session_timer_arm(s, s->env->settings->timeout_keepalive_ms);
    /* A pipelined request may be waiting already. */
    if (evbuffer_get_length(sock_in(s->client)) > 0)
        session_read_head(s);
}

/* The pinned upstream, idle, sent something, closed or failed: it cannot be used again. */
static void session_pinned_cb(struct sock *so, short what, void *arg)
{
    struct session *s = arg;

    (void)so;
    (void)what;
    session_drop_pinned(s);
}

/* The forward's deadline: the response timeout while waiting for the head, else idle. */
static void session_forward_timer(struct session *s)
{
    const struct sluice_settings *st = s->env->settings;
    uint32_t ms =
        forward_awaiting_response(&s->x.fwd) ? st->timeout_response_ms : st->timeout_idle_ms;

    if (ms != s->timer_ms)
        session_timer_arm(s, ms);
    else
        session_touch(s);
}

/* Every tunnel event lands here and goes to the tunnel, then to session_advance(). */
static void session_tunnel_cb(struct sock *so, short what, void *arg)
{
    struct session *s = arg;
    struct outcome o = tunnel_on_event(&s->x.tun, so, what);

    session_touch(s);
    session_advance(s, o);
}

/* Turns the connection into a tunnel; prefix goes to the client first (CONNECT's 200). */
static void session_start_tunnel(struct session *s, const char *prefix, bool peek)
{
    struct tunnel_ctx ctx = {.pipes = s->env->pipes, .cb = session_tunnel_cb, .arg = s};
    struct outcome o;

    session_set_state(s, SESSION_ST_TUNNEL);
    metrics_tunnel_opened(); /* closed in session_close(): a tunnel ends only there */
    /* An idle tunnel keeps nothing it does not need: the head parser's field array goes. */
    free(s->fields);
    s->fields = NULL;
    s->fields_cap = 0;
    session_timer_arm(s, s->env->settings->timeout_tunnel_ms);
    o = tunnel_begin(&s->x.tun, &ctx, s->client, s->upstream, prefix, peek);
    session_advance(s, o);
}

/*
 * Decides name, the tunnel's server name already normalised, under p as query q's tool:
 * true when it names another host than the CONNECT's and that host is blocked (or, for a
 * spliced tunnel, must be inspected for request_headers), with the decision in *d under
 * the rule "sni:RULE".
 */
static bool session_sni_blocked(const struct session *s, const struct policy_snapshot *p,
                                const struct policy_query *q, const char *name,
                                struct policy_decision *d)
{
    struct policy_query other = *q;
    /* Spliced: relayed already (a reload), or about to be (a CONNECT decided so, or an
     * inspected one whose client offers HTTP/2 only); not an inspection under way. */
    bool spliced = s->state == SESSION_ST_TUNNEL || s->x.decision.tls != POLICY_TLS_INSPECT ||
                   s->splice_after_hello;

    if (strcmp(name, s->x.req.host) == 0)
        return false;
    other.host = name;
    policy_decide(p, &other, d);
    /* A spliced handshake for a host whose requests must carry request_headers' fields
     * would take them past the fields (a CONNECT to another name of the same servers). */
    if (d->verdict != POLICY_BLOCK && spliced && d->must_inspect) {
        d->verdict = POLICY_BLOCK;
        d->file = p->org.file;
        d->reason = "request_headers sets fields on this server name, which a spliced tunnel "
                    "cannot carry; connect to the name itself";
        snprintf(d->rule, sizeof(d->rule), "tls:must-inspect");
    }
    if (d->verdict != POLICY_BLOCK)
        return false;
    {
        char rule[sizeof(d->rule)];
        snprintf(rule, sizeof(rule), "%s", d->rule);
        snprintf(d->rule, sizeof(d->rule), "sni:%.120s", rule);
    }
    return true;
}

/*
 * The host of a server name spelled "host:port" (a port of 1 to 5 digits, up to 65535,
 * and no other ':') into out (cap bytes): true, or false for any other spelling.
 */
static bool session_sni_without_port(const char *sni, char *out, size_t cap)
{
    const char *colon = strrchr(sni, ':');
    size_t digits = colon != NULL ? strlen(colon + 1) : 0, host;
    unsigned long port;

    if (colon == NULL || colon == sni || digits == 0 || digits > 5 ||
        strspn(colon + 1, "0123456789") != digits || (port = strtoul(colon + 1, NULL, 10)) == 0 ||
        port > 65535 || (host = (size_t)(colon - sni)) >= cap || memchr(sni, ':', host) != NULL)
        return false; /* an IPv6 literal stays what it is: no host name */
    memcpy(out, sni, host);
    out[host] = '\0';
    return true;
}

/*
 * The server name a tunnel's ClientHello gives, when it is not the CONNECT's host, is
 * decided too: a tunnel to an allowed host carrying a handshake for a denied one (a client
 * that names one host to sluice and another to the server) is cut off before a byte of it
 * leaves; policy that allows both lets it through.  A name that is not a host name (hello
 * CLIENTHELLO_BAD_NAME, sni then its escaped spelling, or one request_normalize_host
 * refuses) cannot be decided, and the server may read it as some host: cut off too.  A
 * ClientHello that names no server (or bytes that are not TLS) leaves nothing more to
 * decide: the CONNECT's host was.  Returns true when the tunnel may go on, with the name
 * normalised in name (cap bytes, REQUEST_HOST_MAX will do), or "" when there is none.
 */
static bool session_check_sni(struct session *s, enum clienthello_result hello, const char *sni,
                              char *name, size_t cap)
{
    struct exchange *x = &s->x;
    char shown[300], host[300], without_port[REQUEST_HOST_MAX];
    const char *errstr = "it holds a byte no host name has, or is longer than 253 bytes";
    struct policy_decision d;
    struct policy_query q;
    bool ipv6;

    name[0] = '\0';
    if (sni == NULL && hello != CLIENTHELLO_BAD_NAME)
        return true;
    /* "host:port": Go programs that put a URL's host into tls.Config.ServerName (hey, say)
     * send the port too, and a server that matches names (nginx) drops it: decided on the
     * host, as such a server reads it.  The record keeps the name as sent. */
    if (hello == CLIENTHELLO_BAD_NAME && sni != NULL &&
        session_sni_without_port(sni, without_port, sizeof(without_port))) {
        hello = CLIENTHELLO_FOUND;
        sni = without_port;
    }
    if (sni == NULL)
        errstr = "it is empty";
    log_escape(shown, sizeof(shown), sni != NULL ? sni : "", sni != NULL ? strlen(sni) : 0);
    if (hello == CLIENTHELLO_BAD_NAME ||
        request_normalize_host(sni, strlen(sni), false, name, cap, &ipv6, &errstr) <= 0) {
        log_escape(host, sizeof(host), x->req.host, strlen(x->req.host));
        log_notice("%s: tunnel to %s:%u: the ClientHello names a server that is not a host name "
                   "(%s: %s); closed before any of it left",
                   s->client_addr, host, x->req.port, shown, errstr);
        name[0] = '\0';
        x->error_type = "tls_protocol_error";
        x->tun.up.bytes = 0; /* the ClientHello was held, never relayed */
        session_close(s, TERM_PROXY, TERM_PH_TUNNEL);
        return false;
    }
    session_query(s, x->identity.tool, &q);
    if (!session_sni_blocked(s, s->policy, &q, name, &d)) {
        if (strcmp(name, x->req.host) != 0)
            log_info("%s: tunnel to %s:%u carries a TLS handshake for %s, which policy allows "
                     "too",
                     s->client_addr, x->req.host, x->req.port, shown);
        return true;
    }
    log_notice("%s: tunnel to %s:%u carries a TLS handshake for %s, which is blocked for tool %s: "
               "%s (rule %s in %s); closed before any of it left",
               s->client_addr, x->req.host, x->req.port, shown, d.tool, d.reason, d.rule, d.file);
    x->decision = d;
    x->decided = true;
    x->failure_logged = true;
    x->tun.up.bytes = 0; /* the ClientHello was held, never relayed */
    session_close(s, TERM_PROXY, TERM_PH_TUNNEL);
    return false;
}

/* The client's first tunnel bytes were examined: check and record the server name, then
 * relay. */
static void session_peeked(struct session *s)
{
    const struct tunnel *t = &s->x.tun;
    char name[REQUEST_HOST_MAX];

    log_debug("%s: tunnel to %s:%u: ClientHello %s, sni=%s", s->client_addr, s->x.req.host,
              s->x.req.port, clienthello_result_str(t->hello), t->sni != NULL ? t->sni : "-");
    /* A TLS handshake sluice cannot read (two server_name extensions, a vector cut short)
     * may still be read by the server, some way sluice did not decide on: not relayed.
     * What is not TLS at all goes on, as a tunnel may carry any protocol. */
    if (t->hello == CLIENTHELLO_MALFORMED) {
        char host[300];

        log_escape(host, sizeof(host), s->x.req.host, strlen(s->x.req.host));
        log_notice("%s: tunnel to %s:%u: its first bytes are a TLS handshake that does not read "
                   "as one ClientHello (a server name given twice, a length that does not add "
                   "up); closed before any of it left",
                   s->client_addr, host, s->x.req.port);
        s->x.error_type = "tls_protocol_error";
        s->x.tun.up.bytes = 0; /* the ClientHello was held, never relayed */
        session_close(s, TERM_PROXY, TERM_PH_TUNNEL);
        return;
    }
    if (!session_check_sni(s, t->hello, t->sni, name, sizeof(name)))
        return;
    /* A bad name that passed is a host with its port (session_check_sni()). */
    if (t->hello == CLIENTHELLO_FOUND || t->hello == CLIENTHELLO_BAD_NAME)
        s->x.tls_mode = "splice";
    session_advance(s, tunnel_proceed(&s->x.tun));
}

/*
 * Starts checking the minimum upload rate (gateway mode) for a request with a body, so
 * that a client trickling a byte at a time cannot hold a connection for long.
 */
static void session_start_upload_clock(struct session *s)
{
    struct timeval tick = {.tv_sec = SESSION_RATE_TICK_MS / 1000, .tv_usec = 0};

    if (s->env->settings->min_upload_rate == 0 || s->x.fwd.req_done)
        return;
    if (s->rate_timer == NULL &&
        (s->rate_timer = event_new(s->env->base, -1, EV_PERSIST, session_rate_cb, s)) == NULL)
        return; /* out of memory: the idle timeout still bounds it */
    s->x.upload_start_ms = session_now_ms();
    s->x.upload_paused_ms = 0;
    evtimer_add(s->rate_timer, &tick);
}

/*
 * Each second of an upload: time sluice held the body back (the upstream was full) does
 * not count against the client; after the grace, a body behind the minimum rate ends the
 * exchange with 408 (or a reset once a response began), termination code cD.
 */
static void session_rate_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    const struct forward *f = &s->x.fwd;
    uint32_t rate = s->env->settings->min_upload_rate;
    uint64_t grace = s->env->settings->upload_grace_ms, active, expected;
    char what_text[200];

    (void)fd;
    (void)what;
    if (s->state != SESSION_ST_FORWARD || f->req_done) {
        evtimer_del(s->rate_timer);
        return;
    }
    if (f->req_flow.paused)
        s->x.upload_paused_ms += SESSION_RATE_TICK_MS;
    active = session_now_ms() - s->x.upload_start_ms;
    /* Ticks count held time a little ahead of the clock: never let it go below zero. */
    active = active > s->x.upload_paused_ms ? active - s->x.upload_paused_ms : 0;
    if (active <= grace)
        return;
    expected = (active - grace) * rate / 1000;
    if (f->sent >= expected)
        return;
    evtimer_del(s->rate_timer);
    snprintf(what_text, sizeof(what_text),
             "the request body came slower than %u bytes per second (min_upload_rate)", rate);
    session_fail(s, 408, "http_request_error", TERM_CLIENT_T, TERM_PH_DATA, what_text);
}

/* The upstream is ready: answer CONNECT and tunnel, or send the request on. */
static void session_upstream_ready(struct session *s)
{
    struct outcome o;

    s->x.head_passed = true;
    if (s->x.req.is_connect && s->splice_after_hello) {
        /* The 200 went out and the ClientHello was read already: relay it, and the rest. */
        s->splice_after_hello = false;
        session_start_tunnel(s, NULL, false);
        return;
    }
    if (s->x.req.is_connect) {
        s->x.own_bytes += sizeof(session_established) - 1;
        s->x.status = 200;
        session_start_tunnel(s, session_established, true);
        return;
    }
    session_set_state(s, SESSION_ST_FORWARD);
    s->x.fwd.client_eof = s->client_eof; /* the connection's, not only this exchange's */
    session_start_upload_clock(s);
    o = forward_begin(&s->x.fwd, s->client, s->upstream, s->env->settings, s->fields, s->fields_cap,
                      s->upstream_reused && s->x.fwd.req_body == FORWARD_BODY_NONE &&
                          s->x.req.idempotent,
                      s->env->draining);
    session_forward_timer(s);
    session_advance(s, o);
}

/* What the dial needs from the session. */
static struct dial_ctx session_dial_ctx(struct session *s);

/* The resolution answered. */
static void session_resolved_cb(int err, struct evutil_addrinfo *ai, void *arg)
{
    struct session *s = arg;
    struct dial_ctx ctx = session_dial_ctx(s);
    struct outcome o;

    session_set_state(s, SESSION_ST_CONNECT);
    o = dial_resolved(s->dial, &ctx, err, ai);
    s->x.dest = s->dial->dest;
    s->x.dest_known = s->dial->dest_known;
    session_advance(s, o);
}

/* The socket being connected became ready (dial_connected() tells what that means). */
static void session_connect_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    struct dial_ctx ctx = session_dial_ctx(s);
    struct outcome o;

    (void)fd;
    o = dial_connected(s->dial, &ctx, what);
    s->x.dest = s->dial->dest;
    s->x.dest_known = s->dial->dest_known;
    session_advance(s, o);
}

/* What the dial needs from the session. */
static struct dial_ctx session_dial_ctx(struct session *s)
{
    struct dial_ctx ctx = {.base = s->env->base,
                           .policy = s->policy,
                           .tool = s->x.identity.tool,
                           .client = s->client_addr,
                           .host = s->x.req.host,
                           .port = s->x.req.port,
                           .connect_cb = session_connect_cb,
                           .arg = s};
    return ctx;
}

/* Wraps the connected socket in a sock (no system call) and goes on. */
static void session_dial_connected(struct session *s)
{
    s->upstream = sock_new(s->env->base, dial_take_fd(s->dial));
    if (s->upstream == NULL) {
        session_fail(s, 503, "proxy_internal_error", TERM_RESOURCE, TERM_PH_CONNECT,
                     "out of memory while connecting upstream");
        return;
    }
    s->upstream_peer = s->dial->peer;
    session_drop_dial(s); /* a long tunnel keeps nothing of it */
    sock_setcb(s->upstream, session_upstream_cb, s);
    s->upstream_reused = false;
    if (s->inspecting && !s->x.req.is_connect) {
        /* Verified TLS to the origin first; session_upstream_tls() goes on from its end.
         * It resumes only a session left by the same owner for the same host and port. */
        char owner[POOL_OWNER_MAX];
        SSL *ssl;

        session_owner_key(s, owner, sizeof(owner));
        ssl = tls_upstream_side(s->env->tls, s->x.req.host, s->x.req.port, owner);
        if (ssl == NULL || sock_start_tls(s->upstream, ssl) < 0) {
            session_fail(s, 503, "proxy_internal_error", TERM_RESOURCE, TERM_PH_CONNECT,
                         "out of memory while starting TLS upstream");
            return;
        }
        s->upstream_tls_handshake = true;
        return;
    }
    session_upstream_ready(s);
}

/*
 * The TLS handshake with the origin ended: the request goes on, or the client gets a 502
 * that says which check failed (the certificate is expired, for another host, not signed
 * by a trusted CA, self-signed...), with the same in the access line's error=.
 */
static void session_upstream_tls(struct session *s, short what)
{
    char why[300], what_text[640], host[300], url[1024], shown[1024];
    const char *type;

    s->upstream_tls_handshake = false;
    if ((what & SOCK_EV_TLS) != 0) {
        metrics_count_upstream_handshake(SSL_session_reused(sock_tls(s->upstream)) == 1);
        session_upstream_ready(s);
        return;
    }
    type = tls_explain(sock_tls(s->upstream), sock_tls_error(s->upstream), sock_error(s->upstream),
                       why, sizeof(why));
    log_escape(host, sizeof(host), s->x.req.host, strlen(s->x.req.host));
    snprintf(what_text, sizeof(what_text), "TLS to %s:%u: %s", host, s->x.req.port, why);
    /* The target as every record shows it: its secrets hidden (a query's api_key), and
     * escaped. */
    if (s->x.target != NULL) {
        size_t n = redact_url(s->x.target, strlen(s->x.target), url, sizeof(url));
        log_escape(shown, sizeof(shown), url, n);
    } else {
        snprintf(shown, sizeof(shown), "-");
    }
    log_notice("%s: %s %s: %s", s->client_addr, s->x.req.method, shown, what_text);
    s->x.failure_logged = true;
    session_drop_upstream(s);
    session_fail(s, 502, type, TERM_SERVER, TERM_PH_CONNECT, what_text);
}

/*
 * True when the address guard of s's policy lets s use a kept connection to peer, an
 * address checked under the policy of the request that dialled it.
 */
static bool session_reuse_allowed(struct session *s, const union netguard_sockaddr *peer)
{
    struct policy_decision refusal;

    s->x.dest_known =
        policy_check_address(s->policy, s->x.identity.tool, &peer->sa, &s->x.dest, &refusal);
    return s->x.dest_known;
}

/*
 * The connection kept for this client or from the pool, when the request may use one:
 * the pinned one for the same destination and identity, whatever the method (NTLM and
 * Negotiate need the POST that follows the handshake on it; if it died meanwhile, the
 * POST gets a 502 rather than a second sending), else (idempotent requests only, as Squid
 * does: a non-idempotent one must never meet a connection the origin just closed) an idle
 * one filed under the same destination and identity.  NULL when there is none;
 * else s->upstream_peer holds the address it was dialled to.
 */
static struct sock *session_take_kept(struct session *s)
{
    const struct request *r = &s->x.req;
    struct sock *so = NULL;
    char owner[POOL_OWNER_MAX];

    session_owner_key(s, owner, sizeof(owner));
    if (s->pinned != NULL) {
        if (s->pinned->port == r->port && strcmp(s->pinned->host, r->host) == 0 &&
            strcmp(s->pinned->owner, owner) == 0) {
            so = s->pinned->so; /* pinned again when done; see session_exchange_done() */
            s->upstream_peer = s->pinned->peer;
            s->pinned->so = NULL;
            session_drop_pinned(s);
            s->upstream_pinned = true;
        } else {
            session_drop_pinned(s); /* the client moved on */
        }
    }
    if (so == NULL && r->idempotent)
        so = pool_take(s->env->pool, r->host, r->port, owner, &s->upstream_peer);
    if (so != NULL && !session_reuse_allowed(s, &s->upstream_peer)) {
        sock_free(so); /* the policy changed since it was dialled: dial anew */
        s->upstream_pinned = false;
        so = NULL;
    }
    return so;
}

/* Reaches the upstream of the request: a kept connection when allowed, else resolve. */
static void session_reach_upstream(struct session *s, bool may_reuse)
{
    struct dial_ctx ctx;

    if (may_reuse) {
        struct sock *so = session_take_kept(s);
        if (so != NULL) {
            log_debug("%s: reusing a kept connection to %s:%u", s->client_addr, s->x.req.host,
                      s->x.req.port);
            s->upstream = so;
            s->upstream_reused = true;
            sock_setcb(so, session_upstream_cb, s);
            session_upstream_ready(s);
            return;
        }
    }
    session_set_state(s, SESSION_ST_RESOLVE);
    session_timer_arm(s, s->env->settings->timeout_connect_ms);
    ctx = session_dial_ctx(s);
    session_drop_dial(s);
    if ((s->dial = malloc(sizeof(*s->dial))) != NULL)
        dial_init(s->dial);
    if (s->dial == NULL || dial_resolve(s->dial, &ctx, s->env->dns, session_resolved_cb) < 0)
        session_fail(s, 503, "proxy_internal_error", TERM_RESOURCE, TERM_PH_RESOLVE,
                     "out of memory while resolving");
}

/* A kept (pooled or pinned) connection was dead: send the request again on a new one. */
static void session_retry(struct session *s)
{
    log_info("%s: kept connection to %s:%u was closed, retrying on a new one", s->client_addr,
             s->x.req.host, s->x.req.port);
    session_drop_upstream(s);
    session_reach_upstream(s, false);
}

/* Applies an outcome: the one place where a connection changes phase. */
static void session_advance(struct session *s, struct outcome o)
{
    switch (o.kind) {
    case OUTCOME_MORE:
        if (s->state == SESSION_ST_FORWARD)
            session_forward_timer(s);
        return;
    case OUTCOME_DONE:
        /* Both sides of a tunnel ended in order: "--", as for a complete exchange. */
        if (s->state == SESSION_ST_TUNNEL)
            session_close(s, TERM_NORMAL, TERM_PH_NONE);
        else
            session_exchange_done(s);
        return;
    case OUTCOME_UPGRADE:
        session_start_tunnel(s, NULL, false);
        return;
    case OUTCOME_RETRY:
        session_retry(s);
        return;
    case OUTCOME_CONNECTED:
        session_dial_connected(s);
        return;
    case OUTCOME_DENIED:
        s->x.refusal = s->dial->refusal;
        s->x.refused = true;
        session_deny(s, TERM_PH_CONNECT, &s->x.refusal, s->x.dest.ip);
        return;
    case OUTCOME_PEEKED:
        session_peeked(s);
        return;
    case OUTCOME_FAIL:
        session_fail(s, o.status, o.error_type, o.who, o.phase, o.what);
        return;
    case OUTCOME_CLOSE:
        if (o.error_type != NULL)
            s->x.error_type = o.error_type;
        if (o.reset)
            session_abort(s, o.who, o.phase);
        else
            session_close(s, o.who, o.phase);
        return;
    }
}

/*
 * The newest policy, taken when a request head is complete and about to be decided: a
 * reload reaches keep-alive clients, and a head sent slowly across a reload is decided on
 * the policy in force when it ends.
 */
static void session_refresh_policy(struct session *s)
{
    struct policy_snapshot *p;

    if (s->policy->generation == policy_current_generation() || (p = policy_acquire()) == NULL)
        return;
    policy_unref(s->policy);
    s->policy = p;
}

/* What policy is asked about the exchange under way, for tool (in the snapshot asked). */
static void session_query(const struct session *s, const struct policy_tool *tool,
                          struct policy_query *q)
{
    const struct exchange *x = &s->x;

    q->settings = s->env->settings;
    q->tool = tool;
    q->is_connect = x->req.is_connect;
    q->method = x->req.method;
    q->host = x->req.host;
    q->port = x->req.port;
    q->path = x->path;
    q->raw_path = x->raw_path;
    q->plain_path = x->plain_path;
    q->literal_path = x->literal_path;
    q->path_flags = x->path_flags;
    q->identity_mismatch = x->identity.mismatch;
    q->identity_unverified = s->proc.isolated && s->proc.unverified;
    q->process_tool = s->proc.tool;
    q->process_unseen = s->process_unseen;
    q->unix_client = s->unix_client;
}

/*
 * An inspected connection's tunnel, judged again as query q's tool under p: true when the
 * CONNECT to its host would now be refused (a ban, a denied host, tls: block), with that
 * decision in *d.  Each request inside, and a reload, ask it, so that what closes a
 * spliced tunnel also closes an inspected one, whichever tool a request inside names.
 */
static bool session_tunnel_blocked(const struct session *s, const struct policy_snapshot *p,
                                   const struct policy_query *q, struct policy_decision *d)
{
    struct policy_query tunnel = *q;

    if (!s->inspecting || s->http_tunnel == NULL)
        return false;
    tunnel.is_connect = true;
    tunnel.method = "CONNECT";
    tunnel.host = s->http_tunnel->host;
    tunnel.port = s->http_tunnel->port;
    tunnel.path = tunnel.raw_path = tunnel.plain_path = tunnel.literal_path = NULL;
    tunnel.path_flags = 0;
    policy_decide(p, &tunnel, d);
    return d->verdict == POLICY_BLOCK;
}

/*
 * Names the tool and asks the policy about the request whose head is in buf; answers 403
 * (400 for a path that servers read in different ways) and returns false when it is
 * blocked.  A "report" decision goes through with a log line.
 */
static bool session_decide(struct session *s, const char *buf)
{
    const struct http1_head *h = &s->head;
    struct exchange *x = &s->x;
    struct identity_input in = {.listener_tool = s->listener_tool,
                                .process_tool = s->proc.tool,
                                .process_isolated = s->proc.isolated};
    struct policy_query q;

    for (uint32_t i = 0; i < h->nfields; i++) {
        if (http1_span_eq_ci(buf, h->fields[i].name, "proxy-authorization")) {
            in.proxy_auth = buf + h->fields[i].value.off;
            in.proxy_auth_len = h->fields[i].value.len;
        } else if (http1_span_eq_ci(buf, h->fields[i].name, "user-agent")) {
            in.user_agent = buf + h->fields[i].value.off;
            in.user_agent_len = h->fields[i].value.len;
        }
    }
    /* Inside a CONNECT read as plain HTTP, the CONNECT's credentials name the client. */
    if (in.proxy_auth == NULL && s->tunnel_auth != NULL) {
        in.proxy_auth = s->tunnel_auth;
        in.proxy_auth_len = strlen(s->tunnel_auth);
    }
    /* For the record: the User-Agent (cut short), and of secrets only a keyed hash. */
    if (in.user_agent != NULL && x->user_agent == NULL) {
        /* A longer one is cut, and says so. */
        size_t n = in.user_agent_len <= SESSION_UA_MAX ? in.user_agent_len : SESSION_UA_MAX - 3;
        if ((x->user_agent = malloc(n + 4)) != NULL) {
            memcpy(x->user_agent, in.user_agent, n);
            strcpy(x->user_agent + n, n < in.user_agent_len ? "..." : "");
        }
    }
    redact_scan(buf, h, &x->req_secrets);
    /* Through an isolating launcher, the processes behind one connection change: a banned
     * tool started later (or handed the socket) is looked for again, at most every
     * SESSION_RECHECK_MS, so that a connection's first request does not vouch for all. */
    if (s->proc.isolated && session_now_ms() - s->proc.checked_ms >= SESSION_RECHECK_MS) {
        session_rematch_process(s, s->policy);
        in.process_tool = s->proc.tool;
        in.process_isolated = s->proc.isolated;
    }
    /* Nothing leaves unrecorded: while the trail cannot be written, requests wait outside. */
    if (auditlog_failing() && !s->env->settings->audit_fail_open) {
        session_fail(s, 503, "proxy_internal_error", TERM_PROXY, TERM_PH_REQUEST,
                     "the audit trail cannot be written, and requests are refused until it "
                     "can; free the disk or fix the file (audit.fail_open lets them through)");
        return false;
    }
    if (!session_check_credentials(s, &in))
        return false;
    in.proxy_user_verified = credentials_current() != NULL; /* checked just above */
    identity_resolve(s->policy, &in, &x->identity);
    session_query(s, x->identity.tool, &q);
    policy_decide(s->policy, &q, &x->decision);
    x->decided = true;
    if (x->decision.verdict != POLICY_BLOCK) {
        struct policy_decision tunnel;
        if (session_tunnel_blocked(s, s->policy, &q, &tunnel))
            x->decision = tunnel;
    }
    if (x->decision.bad_request) {
        char what[600], flags[128];
        urlpath_flags_format(x->path_flags, flags, sizeof(flags));
        snprintf(what, sizeof(what),
                 "the request path can mean different things to different servers (%s), and "
                 "rule %s of tool %s judges paths on this host; send the path in its plain form",
                 flags, x->decision.rule, x->decision.tool);
        session_refuse(s, 400, what, x->req.path.off);
        return false;
    }
    if (x->decision.verdict == POLICY_ALLOW)
        return true;
    if (x->decision.verdict == POLICY_REPORT) {
        char host[300];
        log_escape(host, sizeof(host), x->req.host, strlen(x->req.host));
        log_notice("%s: would block %s %s:%u for tool %s: rule %s in %s", s->client_addr,
                   x->req.method, host, x->req.port, x->decision.tool, x->decision.rule,
                   x->decision.file);
        return true;
    }
    session_deny(s, TERM_PH_REQUEST, &x->decision, NULL);
    return false;
}

/* Keeps an owned copy of span s of buf in *out (NULL when out of memory). */
static void session_copy_span(char **out, const char *buf, struct http1_span sp)
{
    *out = malloc((size_t)sp.len + 1);
    if (*out != NULL) {
        memcpy(*out, buf + sp.off, sp.len);
        (*out)[sp.len] = '\0';
    }
}

/*
 * Keeps the readings of the origin-form path and query in span sp of buf that policy
 * decides on, in one allocation: the normalised one in x->path (the ambiguities seen in
 * x->path_flags), and, where they differ from it, the one without segment parameters in
 * x->plain_path and the one with dot segments kept in x->literal_path.  x->path is NULL
 * when out of memory.
 */
static void session_take_path(struct exchange *x, const char *buf, struct http1_span sp)
{
    size_t cap = (size_t)sp.len + 2; /* each reading is at most one byte longer */
    char *plain, *literal;
    int n, m;

    x->plain_path = x->literal_path = NULL;
    if ((x->path = malloc(3 * cap)) == NULL)
        return;
    plain = x->path + cap;
    literal = x->path + 2 * cap;
    n = urlpath_normalize(buf + sp.off, sp.len, x->path, cap, &x->path_flags);
    m = n < 0 ? -1 : urlpath_literal(buf + sp.off, sp.len, literal, cap);
    if (n < 0 || m < 0) {
        free(x->path); /* cannot happen, see above */
        x->path = NULL;
        return;
    }
    if (urlpath_strip_params(x->path, (size_t)n, plain, cap) != n)
        x->plain_path = plain;
    if (m != n || memcmp(literal, x->path, (size_t)n) != 0)
        x->literal_path = literal;
}

/*
 * Keeps the request's target for the record: as received, or, for an origin-form target
 * read inside a CONNECT to connect_http_port or an inspected one, the URL it stands for
 * ("http://host:port/path", "https://host/path"), so that reports say where it went.
 */
static void session_copy_target(struct session *s, const char *buf)
{
    struct exchange *x = &s->x;
    const struct http1_span *t = &x->req.target;
    char authority[REQUEST_HOST_MAX + 16];
    size_t n;

    if (s->http_tunnel == NULL || t->len == 0 || buf[t->off] != '/') {
        session_copy_span(&x->target, buf, *t);
        return;
    }
    n = (size_t)snprintf(authority, sizeof(authority), "%s://%s%s%s",
                         x->req.https ? "https" : "http", x->req.host_is_ipv6 ? "[" : "",
                         x->req.host, x->req.host_is_ipv6 ? "]" : "");
    if (x->req.port != (x->req.https ? 443 : 80))
        n += (size_t)snprintf(authority + n, sizeof(authority) - n, ":%u", x->req.port);
    if ((x->target = malloc(n + t->len + 1)) == NULL)
        return;
    memcpy(x->target, authority, n);
    memcpy(x->target + n, buf + t->off, t->len);
    x->target[n + t->len] = '\0';
}

/*
 * Keeps what the requests read inside a CONNECT (head in buf) need of it: its host and
 * port, where every one of them goes, and its credentials, which they do not repeat.
 * False when out of memory (the connection is closed).
 */
static bool session_keep_tunnel(struct session *s, const char *buf)
{
    const struct http1_head *h = &s->head;

    free(s->http_tunnel);
    if ((s->http_tunnel = malloc(sizeof(*s->http_tunnel))) == NULL) {
        session_close(s, TERM_RESOURCE, TERM_PH_REQUEST);
        return false;
    }
    *s->http_tunnel = s->x.req;
    for (uint32_t i = 0; i < h->nfields; i++)
        if (http1_span_eq_ci(buf, h->fields[i].name, "proxy-authorization")) {
            if (s->tunnel_auth != NULL)
                OPENSSL_cleanse(s->tunnel_auth, strlen(s->tunnel_auth));
            free(s->tunnel_auth);
            s->tunnel_auth = strndup(buf + h->fields[i].value.off, h->fields[i].value.len);
        }
    return true;
}

/* Answers the CONNECT whose head (head_len bytes) is in the input with 200, by sluice
 * itself: nothing is dialled for it. */
static void session_answer_connect(struct session *s, uint32_t head_len)
{
    evbuffer_drain(sock_in(s->client), head_len);
    s->x.head_bytes += head_len;
    evbuffer_add(sock_out(s->client), session_established, sizeof(session_established) - 1);
    s->x.own_bytes += sizeof(session_established) - 1;
    s->x.status = 200;
    sock_flush(s->client);
}

/*
 * From now on the connection carries the requests of the CONNECT it answered (plain, or
 * inspected): the CONNECT's exchange ends unrecorded -- it sent nothing anywhere, the
 * requests inside are what is recorded -- and the first of them is read.
 */
static void session_read_tunnel_requests(struct session *s)
{
    s->x.active = false;
    session_reset_exchange(s);
    sock_set_reading(s->client, true);
    session_timer_arm(s, s->env->settings->timeout_keepalive_ms);
    if (evbuffer_get_length(sock_in(s->client)) > 0)
        session_read_head(s);
}

/*
 * A CONNECT to connect_http_port (80): nothing is dialled.  sluice answers 200 itself and
 * reads what comes through as plain HTTP requests for that host and port, each decided and
 * recorded as a proxy request is (node's undici sends every http:// request so).  Bytes
 * that are not an HTTP request get 400 and the connection closes: the port carries plain
 * HTTP only.
 */
static void session_open_http_tunnel(struct session *s, const char *buf, uint32_t head_len)
{
    if (!session_keep_tunnel(s, buf))
        return;
    session_answer_connect(s, head_len);
    log_info("%s: CONNECT %s:%u is read as plain HTTP (connect_http_port)", s->client_addr,
             s->x.req.host, s->x.req.port);
    session_read_tunnel_requests(s);
}

/*
 * The ClientHello of an inspected CONNECT offers no HTTP/1.1 (an h2-only client): sluice
 * cannot read it yet, so the tunnel is spliced -- dialled now, the hello and the rest
 * relayed untouched -- and recorded as uninspected, with a line that says so.
 */
static void session_splice_after_hello(struct session *s, const char *offered)
{
    char host[300];

    log_escape(host, sizeof(host), s->x.req.host, strlen(s->x.req.host));
    log_notice("%s: CONNECT %s:%u: the client offers only %s, which sluice does not inspect: "
               "the tunnel is spliced, and its requests are not seen (tool %s)",
               s->client_addr, host, s->x.req.port, offered, s->x.decision.tool);
    s->splice_after_hello = true;
    s->x.tls_mode = "splice";
    session_reach_upstream(s, false);
}

/* Turns the client's connection to TLS with a certificate for name. */
static void session_start_client_tls(struct session *s, const char *name)
{
    uint64_t cert_us = 0;
    SSL *ssl = tls_client_side(s->env->tls, name, &cert_us);

    if (cert_us > 0)
        metrics_observe_certificate((double)cert_us / 1e6);
    if (ssl == NULL || sock_start_tls(s->client, ssl) < 0) {
        s->x.error_type = "proxy_internal_error";
        session_close(s, TERM_RESOURCE, TERM_PH_TUNNEL);
        return;
    }
    s->client_tls_handshake = true;
    s->x.tls_mode = "inspect";
}

/*
 * Reads the ClientHello of an inspected CONNECT, held in the client's input: its server
 * name is checked against the CONNECT's host as a spliced tunnel's is; a client that
 * offers HTTP/2 only is spliced; any other goes on to the handshake with sluice.  Bytes
 * that are not a ClientHello close the connection.
 */
static void session_read_hello(struct session *s)
{
    struct exchange *x = &s->x;
    struct evbuffer *in = sock_in(s->client);
    size_t len = evbuffer_get_length(in),
           want = len < CLIENTHELLO_MAX_BYTES ? len : CLIENTHELLO_MAX_BYTES;
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)want);
    char sni[256], host[300], name[REQUEST_HOST_MAX];
    unsigned alpn = 0;
    bool h2_only;

    if (len == 0) {
        if (s->client_eof)
            session_close(s, TERM_CLIENT, TERM_PH_TUNNEL);
        return;
    }
    if (p == NULL) {
        session_close(s, TERM_RESOURCE, TERM_PH_TUNNEL);
        return;
    }
    x->tun.hello = clienthello_parse_alpn(p, want, sni, sizeof(sni), &alpn);
    if (x->tun.hello == CLIENTHELLO_NEED_MORE && !s->client_eof)
        return; /* the head timeout bounds the wait */
    s->hello_wait = false;
    if (x->tun.hello != CLIENTHELLO_FOUND && x->tun.hello != CLIENTHELLO_BAD_NAME) {
        log_escape(host, sizeof(host), x->req.host, strlen(x->req.host));
        log_notice("%s: CONNECT %s:%u is inspected, and the client sent no TLS ClientHello "
                   "(%s); closed",
                   s->client_addr, host, x->req.port, clienthello_result_str(x->tun.hello));
        x->error_type = "tls_protocol_error";
        session_close(s, TERM_CLIENT, TERM_PH_TUNNEL);
        return;
    }
    if (sni[0] != '\0' && (x->tun.sni = strdup(sni)) == NULL) {
        session_close(s, TERM_RESOURCE, TERM_PH_TUNNEL);
        return;
    }
    /* HTTP/2 without HTTP/1.1 is spliced (below), so its server name is checked as a
     * spliced tunnel's: one that request_headers names is refused.  Any other list without
     * http/1.1 goes on to the handshake, which refuses it: it is never spliced. */
    h2_only = (alpn & CLIENTHELLO_ALPN_H2) != 0 && (alpn & CLIENTHELLO_ALPN_HTTP11) == 0;
    s->splice_after_hello = h2_only && !x->decision.must_inspect && !x->decision.must_capture &&
                            !x->decision.refuse_uninspectable;
    if (!session_check_sni(s, x->tun.hello, x->tun.sni, name, sizeof(name)))
        return;
    if (h2_only && !s->splice_after_hello) {
        log_escape(host, sizeof(host), x->req.host, strlen(x->req.host));
        log_notice("%s: CONNECT %s:%u: the client offers only HTTP/2, and %s, so it cannot be "
                   "spliced; closed (the client must offer http/1.1)",
                   s->client_addr, host, x->req.port,
                   x->decision.must_inspect   ? "request_headers sets fields on this host"
                   : x->decision.must_capture ? "the policy keeps bodies sent to this host "
                                                "(capture)"
                                              : "the policy refuses what it cannot inspect "
                                                "(refuse_uninspectable)");
        x->error_type = "tls_protocol_error";
        session_close(s, TERM_PROXY, TERM_PH_TUNNEL);
        return;
    }
    if (h2_only) {
        session_splice_after_hello(s, "HTTP/2");
        return;
    }
    /* The certificate names what the client will check: its server name (normalised: one
     * leaf for every spelling), else the host. */
    session_start_client_tls(s, name[0] != '\0' ? name : x->req.host);
}

/*
 * A CONNECT that policy inspects: sluice answers 200 itself (nothing is dialled yet) and
 * reads the ClientHello that follows (session_read_hello).
 */
static void session_open_inspected(struct session *s, const char *buf, uint32_t head_len)
{
    if (s->env->tls == NULL) {
        session_fail(s, 503, "proxy_configuration_error", TERM_PROXY, TERM_PH_REQUEST,
                     "policy inspects this host, and sluice has no CA to do it with; set "
                     "ca.cert and ca.key (sluice ca init makes them)");
        return;
    }
    if (!session_keep_tunnel(s, buf))
        return;
    s->http_tunnel->https = true;
    session_answer_connect(s, head_len);
    s->hello_wait = true;
    if (evbuffer_get_length(sock_in(s->client)) > 0)
        session_read_hello(s);
}

/*
 * The client's TLS handshake with sluice ended.  Done: the connection reads the requests
 * inside as it reads those of a CONNECT to connect_http_port, each decided and recorded on
 * its own (the CONNECT itself sent nothing anywhere).  Failed: closed, and a client that
 * refused sluice's certificate is said to (it does not trust the CA, or pins its own).
 */
static void session_client_tls(struct session *s, short what)
{
    struct exchange *x = &s->x;
    char host[300], why[300];
    unsigned long err;

    s->client_tls_handshake = false;
    log_escape(host, sizeof(host), x->req.host, strlen(x->req.host));
    if ((what & SOCK_EV_TLS) != 0) {
        s->inspecting = true;
        free(s->tls_sni);
        s->tls_sni = x->tun.sni; /* for the records of the requests inside */
        x->tun.sni = NULL;
        log_info("%s: CONNECT %s:%u: inspecting (%s)", s->client_addr, host, x->req.port,
                 x->decision.tls_rule);
        session_read_tunnel_requests(s);
        return;
    }
    err = sock_tls_error(s->client);
    x->error_type = tls_explain(sock_tls(s->client), err, sock_error(s->client), why, sizeof(why));
    if (!tls_client_rejected_cert(sock_tls(s->client), err)) {
        log_info("%s: CONNECT %s:%u: %s", s->client_addr, host, x->req.port, why);
    } else {
        /* Kept whatever the policy says now: a reload that turns splice_pinned on finds it.
         * Filed under who asked (tool and user), so one user's client cannot turn
         * inspection off for another's. */
        char owner[POOL_OWNER_MAX];
        identity_owner_key(&x->identity, owner, sizeof(owner));
        tls_pinned_note(s->env->tls, owner, x->req.host);
        log_notice("%s: CONNECT %s:%u: the client refused sluice's certificate (%s): it does not "
                   "trust the local CA (see sluice ca show), or it pins its own certificate; %s "
                   "tool %s's tunnels to this host%s",
                   s->client_addr, host, x->req.port, why,
                   x->decision.splice_pinned  ? "from now on sluice splices"
                   : x->decision.must_capture ? "the policy keeps bodies sent to this host "
                                                "(capture), so sluice never splices"
                                              : "splice_pinned: true in the policy would splice",
                   x->decision.tool,
                   x->decision.splice_pinned ? ", and no longer inspects them" : "");
    }
    session_close(s, TERM_CLIENT, TERM_PH_TUNNEL);
}

/* True when who asks now (tool and user) refused sluice's certificate for the host before. */
static bool session_pinned_before(const struct session *s)
{
    char owner[POOL_OWNER_MAX];

    identity_owner_key(&s->x.identity, owner, sizeof(owner));
    return tls_pinned_seen(s->env->tls, owner, s->x.req.host);
}

/*
 * Rewrites the request head in buf for the origin (forward_prepare), with the fields the
 * policy's request_headers sets on its host in place of any the client sent of those
 * names; their names are kept for the record.  False with *errstr when the request cannot
 * be forwarded.
 */
static bool session_prepare_forward(struct session *s, const char *buf, const char **errstr)
{
    struct exchange *x = &s->x;
    const char *fields[POLICY_MAX_SET_FIELDS];
    size_t n = policy_request_fields(s->policy, x->req.host, fields, POLICY_MAX_SET_FIELDS);
    int rc;

    x->fwd.set_fields = fields;
    x->fwd.nset_fields = n;
    rc = forward_prepare(&x->fwd, buf, &s->head, &x->req, errstr);
    x->fwd.set_fields = NULL; /* fields is this frame's; the head holds their copies */
    x->fwd.nset_fields = 0;
    if (rc == 0 && n > 0 && (x->set_names = malloc(SESSION_SET_NAMES_MAX)) != NULL) {
        size_t len = 0;
        for (size_t i = 0; i < n; i++) {
            size_t name_len = (size_t)(strchr(fields[i], ':') - fields[i]);
            if (len + name_len + 2 > SESSION_SET_NAMES_MAX)
                break; /* the rest go unnamed in the record; the fields were still set */
            if (i > 0)
                x->set_names[len++] = ',';
            memcpy(x->set_names + len, fields[i], name_len);
            len += name_len;
        }
        x->set_names[len] = '\0';
    }
    return rc == 0;
}

/*
 * Starts copying the bodies policy keeps of the request in buf (its head) as they pass:
 * the request's for capture: requests, the response's too for requests-and-responses.
 * Nothing when the store is not open (sluice refuses such a policy at start and reload).
 * What leaves is kept or does not leave: a request body that finds no memory as it comes
 * is not sent on past what was kept (forward.c answers 503), and one that cannot be kept
 * at all is refused here, unless audit.fail_open (then it goes, and its record says what
 * was kept).  Returns false when it refused.
 */
static bool session_begin_capture(struct session *s, const char *buf)
{
    struct exchange *x = &s->x;
    size_t limit = (size_t)s->env->settings->capture_message_kib << 10;
    char codings[CAPTURE_CODINGS_MAX];
    bool fail_closed = !s->env->settings->audit_fail_open;

    if (x->decision.capture < POLICY_CAPTURE_REQUESTS || !capture_enabled())
        return true;
    /* Clients are counted (gateway mode): each keeps to its share of the memory. */
    s->capture_share.clients = s->cap_held ? s->env->clientcap : NULL;
    s->capture_share.client = &s->client_sa.sa;
    s->capture_share.max = capture_client_share(s->env->settings->max_conns_per_client);
    if (x->fwd.req_body != FORWARD_BODY_NONE) {
        forward_body_codings(buf, &s->head, codings, sizeof(codings));
        x->fwd.req_capture = &x->req_capture;
        x->fwd.capture_fail_closed = fail_closed;
        if (!capture_body_begin(&x->req_capture, limit, codings,
                                x->fwd.req_body == FORWARD_BODY_LENGTH ? x->fwd.req_left
                                                                       : CAPTURE_LENGTH_UNKNOWN,
                                &s->capture_share) &&
            fail_closed) {
            session_fail(s, 503, "proxy_internal_error", TERM_RESOURCE, TERM_PH_REQUEST,
                         CAPTURE_FULL_WHY);
            return false;
        }
    }
    if (x->decision.capture == POLICY_CAPTURE_BOTH) {
        capture_body_begin(&x->resp_capture, limit, NULL, CAPTURE_LENGTH_UNKNOWN,
                           &s->capture_share);
        x->fwd.resp_capture = &x->resp_capture;
    }
    return true;
}

/* Works out where a complete request goes and hands it on; buf holds the head. */
static void session_dispatch(struct session *s, const char *buf)
{
    struct exchange *x = &s->x;
    struct request_error err;
    const char *errstr = NULL;
    uint32_t head_len = s->head.head_len;

    if ((s->http_tunnel != NULL
             ? request_from_head_in_tunnel(buf, &s->head, s->http_tunnel, &x->req, &err)
             : request_from_head(buf, &s->head, &x->req, &err)) < 0) {
        session_copy_span(&x->target, buf, s->head.target);
        session_refuse(s, err.status, err.what, err.pos);
        return;
    }
    if (x->req.is_connect && s->env->settings->connect_http_port != 0 &&
        x->req.port == s->env->settings->connect_http_port) {
        session_open_http_tunnel(s, buf, head_len);
        return;
    }
    session_copy_target(s, buf);
    if (!x->req.is_connect) {
        session_take_path(x, buf, x->req.path);
        if (x->target != NULL)
            x->raw_path = x->target + strlen(x->target) -
                          (x->req.target.len - (x->req.path.off - x->req.target.off));
    }
    if (x->target == NULL || (!x->req.is_connect && x->path == NULL)) {
        session_close(s, TERM_RESOURCE, TERM_PH_REQUEST);
        return;
    }
    session_refresh_policy(s);
    if (!session_decide(s, buf))
        return;
    if (x->req.is_connect && x->decision.tls == POLICY_TLS_INSPECT && x->decision.splice_pinned &&
        s->env->tls != NULL && session_pinned_before(s)) {
        char host[300];
        log_escape(host, sizeof(host), x->req.host, strlen(x->req.host));
        log_notice("%s: CONNECT %s:%u: spliced, not inspected: tool %s refused sluice's "
                   "certificate for this host before (splice_pinned)",
                   s->client_addr, host, x->req.port, x->decision.tool);
        x->decision.tls = POLICY_TLS_SPLICE;
        snprintf(x->decision.tls_rule, sizeof(x->decision.tls_rule), "tls:pinned:%.100s",
                 x->decision.tool);
    }
    if (x->req.is_connect && x->decision.tls == POLICY_TLS_INSPECT) {
        session_open_inspected(s, buf, head_len);
        return;
    }
    if (!x->req.is_connect && !session_prepare_forward(s, buf, &errstr)) {
        session_refuse(s, 400, errstr, 0);
        return;
    }
    /* After an upgrade the bytes are frames sluice relays unread: none of them could be kept. */
    if (x->fwd.wants_upgrade && x->decision.capture >= POLICY_CAPTURE_REQUESTS) {
        session_refuse(s, 501,
                       "protocol upgrades (WebSocket) cannot be captured, and the policy keeps "
                       "the bodies of this request (capture); set capture: none for this "
                       "endpoint group if its WebSocket traffic may go unrecorded",
                       0);
        return;
    }
    if (!x->req.is_connect && !x->fwd.wants_upgrade && !session_begin_capture(s, buf))
        return;
    evbuffer_drain(sock_in(s->client), head_len);
    x->head_bytes += head_len;
    session_reach_upstream(s, !x->req.is_connect && !x->fwd.wants_upgrade);
}

/* Allocates the field array once per connection, large enough for either kind of head. */
static bool session_ensure_fields(struct session *s)
{
    const struct sluice_settings *st = s->env->settings;
    uint32_t cap = st->request_limits.max_fields;

    if (st->response_limits.max_fields > cap)
        cap = st->response_limits.max_fields;
    if (s->fields != NULL)
        return true;
    s->fields = calloc(cap, sizeof(*s->fields));
    s->fields_cap = cap;
    return s->fields != NULL;
}

/*
 * Reads the PROXY protocol header a trusted load balancer sends first, and from then on
 * takes the client it names as this connection's: for the per-client cap, policy and the
 * log.  Returns true once it is consumed (the head follows); false while more is needed
 * or when the connection was closed.
 */
static bool session_read_proxy_header(struct session *s)
{
    struct evbuffer *in = sock_in(s->client);
    size_t len = evbuffer_get_length(in);
    size_t want = len < PROXYPROTO_MAX_BYTES ? len : PROXYPROTO_MAX_BYTES;
    const uint8_t *buf = evbuffer_pullup(in, (ev_ssize_t)want);
    struct proxyproto_result r;
    const char *why = NULL;
    char from[64];

    if (buf == NULL) {
        session_close(s, TERM_RESOURCE, TERM_PH_REQUEST);
        return false;
    }
    switch (proxyproto_parse(buf, want, &r, &why)) {
    case PROXYPROTO_NEED_MORE:
        if (s->client_eof)
            session_close(s, TERM_CLIENT, TERM_PH_REQUEST);
        return false; /* the head timeout bounds the wait */
    case PROXYPROTO_INVALID:
        /* The balancer is trusted to send one; without it nothing says who the client is. */
        log_notice("%s: closed: the load balancer sent %s, where a PROXY protocol header "
                   "must come first",
                   s->client_addr, why);
        session_close(s, TERM_PROXY, TERM_PH_REQUEST);
        return false;
    case PROXYPROTO_DONE:
        break;
    }
    evbuffer_drain(in, r.length);
    s->proxy_header = false;
    if (r.has_source) {
        snprintf(from, sizeof(from), "%s", s->client_addr);
        memset(&s->client_sa, 0, sizeof(s->client_sa));
        memcpy(&s->client_sa, &r.source,
               r.source.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in));
        session_format_addr(&s->client_sa.sa, s->client_addr, sizeof(s->client_addr));
        log_debug("%s: client %s, by the PROXY protocol (version %d)", from, s->client_addr,
                  r.version);
    }
    /* The client behind the balancer is the one counted, not the balancer. */
    if (s->env->clientcap != NULL) {
        if (!clientcap_take(s->env->clientcap, &s->client_sa.sa)) {
            log_warn("client %s holds as many connections as one client may: refusing this "
                     "one (it came through the load balancer)",
                     s->client_addr);
            session_close(s, TERM_PROXY, TERM_PH_REQUEST);
            return false;
        }
        s->cap_held = true;
    }
    return true;
}

/* Parses as much of the request head as has arrived; dispatches it when complete. */
static void session_read_head(struct session *s)
{
    struct evbuffer *in = sock_in(s->client);
    const struct http1_limits *lim = &s->env->settings->request_limits;
    size_t len = evbuffer_get_length(in), want;
    const char *buf;
    int64_t r;

    if (s->hello_wait) {
        session_read_hello(s);
        return;
    }
    if (len == 0)
        return;
    if (s->proxy_header) {
        if (!session_read_proxy_header(s))
            return;
        if ((len = evbuffer_get_length(in)) == 0)
            return;
    }
    if (!s->x.active) {
        if (!session_ensure_fields(s)) {
            session_close(s, TERM_RESOURCE, TERM_PH_REQUEST);
            return;
        }
        s->x.active = true;
        s->x.start_ms = session_now_ms();
        s->requests++;
        if (s->lookup_family != 0) {
            struct sockaddr unix_peer = {.sa_family = AF_UNIX};
            session_find_process(s, sock_fd(s->client),
                                 s->lookup_family == AF_UNIX ? &unix_peer : &s->client_sa.sa);
            s->lookup_family = 0;
        }
        http1_parser_init(&s->parser, HTTP1_REQUEST, lim, &s->head, s->fields, s->fields_cap);
        /* A keep-alive wait ends with the first byte; the head bound starts now. */
        if (s->requests > 1)
            session_timer_arm(s, s->env->settings->timeout_head_ms);
    }
    /* The parser never needs more than one byte past the head limit to decide. */
    want = len < (size_t)lim->max_head + 1 ? len : (size_t)lim->max_head + 1;
    buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
    if (buf == NULL) {
        session_close(s, TERM_RESOURCE, TERM_PH_REQUEST);
        return;
    }
    /* TLS where a CONNECT to connect_http_port promised plain HTTP: said at once, not
     * after the head timeout. */
    if (s->http_tunnel != NULL && !s->inspecting && (unsigned char)buf[0] == 0x16) {
        session_refuse(s, 400,
                       "a CONNECT to this port carries plain HTTP only, and this is TLS; send "
                       "https:// through a CONNECT to port 443",
                       0);
        return;
    }
    r = http1_parse_head(&s->parser, buf, want);
    if (r < 0) {
        enum http1_error e = s->parser.error;
        char what[160];
        snprintf(what, sizeof(what),
                 "refused a malformed request (%s); send one plain HTTP/1.1 request",
                 http1_error_str(e));
        session_refuse(s, e == HTTP1_E_VERSION_UNSUPP ? 505 : 400, what, s->parser.error_pos);
        return;
    }
    if (r == 0) {
        if (s->client_eof) /* the rest of this head can never arrive */
            session_close(s, TERM_CLIENT, TERM_PH_REQUEST);
        return;
    }
    /* A lookup that could not even be queued: not let out unidentified. */
    if (s->lookup_refused && s->requests == 1) {
        session_fail(s, 503, "proxy_internal_error", TERM_PROXY, TERM_PH_REQUEST,
                     "too many new connections are waiting for their process to be found; "
                     "try again in a moment");
        return;
    }
    /* The first request is decided knowing the process: it waits for the lookup (bounded
     * by the lookup's own budgets and the head timeout), reading nothing meanwhile. */
    if (s->lookup != NULL) {
        s->head_waiting = true;
        sock_set_reading(s->client, false);
        return;
    }
    session_dispatch(s, buf);
}

/* Lingering: what the client sends is thrown away, within a bound; its end closes. */
static void session_linger_event(struct session *s, short what)
{
    struct evbuffer *in = sock_in(s->client);

    s->linger_discarded += (uint32_t)evbuffer_get_length(in);
    evbuffer_drain(in, (size_t)-1);
    if (s->linger_discarded > SESSION_LINGER_MAX) {
        session_close(s, TERM_PROXY, TERM_PH_NONE);
        return;
    }
    if ((what & SOCK_EV_ERROR) != 0 ||
        ((what & SOCK_EV_EOF) != 0 && evbuffer_get_length(sock_out(s->client)) == 0)) {
        session_close(s, TERM_NORMAL, TERM_PH_NONE);
        return;
    }
    if ((what & SOCK_EV_EOF) != 0)
        s->client_eof = true;
    if ((what & SOCK_EV_DRAINED) != 0)
        session_linger_step(s);
}

/* Something happened on the client: what it means depends on the state. */
static void session_client_cb(struct sock *so, short what, void *arg)
{
    struct session *s = arg;

    (void)so;
    switch (s->state) {
    case SESSION_ST_HEAD:
        if (s->client_tls_handshake) {
            session_client_tls(s, what);
        } else if ((what & SOCK_EV_READ) != 0) {
            session_read_head(s);
        } else if ((what & (SOCK_EV_EOF | SOCK_EV_ERROR)) != 0) {
            s->client_eof = true;
            if (s->x.active && (what & SOCK_EV_ERROR) == 0)
                session_read_head(s); /* the head can never be completed now: it says so */
            else
                session_close(s, TERM_CLIENT, TERM_PH_REQUEST);
        }
        break;
    case SESSION_ST_RESOLVE:
    case SESSION_ST_CONNECT:
        /* Body bytes wait in the input until the upstream is there; the bound holds them. */
        if ((what & (SOCK_EV_EOF | SOCK_EV_ERROR)) == 0)
            break;
        if ((what & SOCK_EV_EOF) != 0 && !s->x.req.is_connect) {
            /* A half-close after the request is fine; whether the body it holds is whole,
             * the forward sees once the upstream is there. */
            s->client_eof = true;
            s->x.fwd.client_eof = true;
            break;
        }
        session_close(s, TERM_CLIENT,
                      s->state == SESSION_ST_RESOLVE ? TERM_PH_RESOLVE : TERM_PH_CONNECT);
        break;
    case SESSION_ST_FORWARD: {
        struct outcome o = forward_client_event(&s->x.fwd, what);
        s->client_eof = s->x.fwd.client_eof;
        session_advance(s, o);
        break;
    }
    case SESSION_ST_LINGER:
        session_linger_event(s, what);
        break;
    case SESSION_ST_TUNNEL:
    case SESSION_ST_CLOSED:
        break;
    }
}

/* Something happened on the upstream while forwarding. */
static void session_upstream_cb(struct sock *so, short what, void *arg)
{
    struct session *s = arg;

    (void)so;
    if (s->upstream_tls_handshake)
        session_upstream_tls(s, what);
    else if (s->state == SESSION_ST_FORWARD)
        session_advance(s, forward_upstream_event(&s->x.fwd, what));
}

/* A deadline passed; inactivity timers re-arm themselves while bytes still move. */
static void session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    uint64_t idle = session_now_ms() - s->activity_ms;

    (void)fd;
    (void)what;
    if ((s->state == SESSION_ST_FORWARD || s->state == SESSION_ST_TUNNEL) && idle < s->timer_ms) {
        uint32_t left = s->timer_ms - (uint32_t)idle;
        struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (suseconds_t)(left % 1000) * 1000};
        evtimer_add(s->timer, &tv);
        return;
    }
    switch (s->state) {
    case SESSION_ST_HEAD:
        if (s->proxy_header) {
            /* A trusted balancer that never finished its header: say so, it is no idle
             * keep-alive client. */
            log_notice("%s: closed: no whole PROXY protocol header from the load balancer "
                       "within the head timeout",
                       s->client_addr);
            session_close(s, TERM_CLIENT_T, TERM_PH_REQUEST);
            return;
        }
        if (!s->x.active) {
            session_close(s, TERM_NORMAL, TERM_PH_NONE); /* an idle client, nothing owed */
            return;
        }
        if (s->head_waiting) {
            /* The client sent its whole head; sluice could not say who it is in time:
             * the request is not let out unidentified.  The record still names it. */
            const char *buf =
                (const char *)evbuffer_pullup(sock_in(s->client), (ev_ssize_t)s->head.head_len);
            struct request_error err;

            if (buf != NULL && request_from_head(buf, &s->head, &s->x.req, &err) == 0)
                session_copy_span(&s->x.target, buf, s->x.req.target);
            session_stop_waiting(s);
            session_fail(s, 503, "proxy_internal_error", TERM_PROXY, TERM_PH_REQUEST,
                         "could not find the process behind this connection in time; try "
                         "again");
            break;
        }
        session_fail(s, 408, "http_request_error", TERM_CLIENT_T, TERM_PH_REQUEST,
                     "timed out waiting for the whole request head");
        break;
    case SESSION_ST_RESOLVE:
        session_fail(s, 504, "dns_timeout", TERM_SERVER_T, TERM_PH_RESOLVE,
                     "resolving the host name timed out");
        break;
    case SESSION_ST_CONNECT:
        session_fail(s, 504, "connection_timeout", TERM_SERVER_T, TERM_PH_CONNECT,
                     "connecting to the upstream timed out");
        break;
    case SESSION_ST_FORWARD:
        if (!s->x.fwd.resp_started) {
            session_fail(s, 504, "http_response_timeout", TERM_SERVER_T, TERM_PH_RESPONSE,
                         "the upstream accepted the request but sent no response in time");
            return;
        }
        /* A client that stopped reading cut itself off; an upstream that stopped sending
         * cut the client's body short, and the access line says so. */
        if (!s->x.fwd.resp_flow.paused)
            s->x.error_type = "connection_read_timeout";
        session_abort(s, s->x.fwd.resp_flow.paused ? TERM_CLIENT_T : TERM_SERVER_T, TERM_PH_DATA);
        break;
    case SESSION_ST_TUNNEL:
        session_close(s, TERM_CLIENT_T, TERM_PH_TUNNEL);
        break;
    case SESSION_ST_LINGER: {
        size_t left = evbuffer_get_length(sock_out(s->client));
        if (left > 0 && left < s->linger_left) { /* progress: the client still reads */
            s->linger_left = left;
            session_timer_arm(s, s->env->settings->timeout_idle_ms);
            return;
        }
        /* Nothing went out for the whole idle timeout: the client stopped reading. */
        session_close(s, left > 0 ? TERM_CLIENT_T : TERM_NORMAL,
                      left > 0 ? TERM_PH_DATA : TERM_PH_NONE);
        break;
    }
    case SESSION_ST_CLOSED:
        break;
    }
}

/* The worker drains: a connection idle between requests goes now. */
void session_drain(struct session *s)
{
    if (s->state == SESSION_ST_HEAD && !s->x.active)
        session_close(s, TERM_DRAIN, TERM_PH_NONE);
}

/*
 * A reload may name a known process another tool (a profile added, its executables
 * changed): its chain is read again, if it is still the same process, and matched under
 * p.  Without it, a tool banned by the reload would keep the tunnels it opened while
 * unknown.
 */
static void session_rematch_process(struct session *s, const struct policy_snapshot *p)
{
    static _Thread_local struct procid chain; /* large: off the stack */

    if (s->proc.pid <= 0 || procid_of_process(s->proc.pid, s->proc.start, &chain) < 0)
        return;
    proclookup_record_match(&s->proc, p, &chain, session_now_ms(), false);
}

/* Decides an exchange under way again on the newest policy; see the header. */
void session_policy_changed(struct session *s)
{
    struct exchange *x = &s->x;
    struct policy_snapshot *p;
    struct policy_query q;
    struct policy_decision d;
    const struct policy_tool *tool = NULL;
    const union netguard_sockaddr *peer = NULL;
    char phase, what[640], host[300];
    bool blocked;

    if (s->proc.pid > 0 && (p = policy_acquire()) != NULL) {
        session_rematch_process(s, p); /* also for the next request of a keep-alive client */
        policy_unref(p);
    }
    switch (s->state) {
    case SESSION_ST_RESOLVE:
        phase = TERM_PH_RESOLVE;
        break;
    case SESSION_ST_CONNECT:
        phase = TERM_PH_CONNECT;
        /* The address being connected to was checked under the old policy. */
        if (s->dial != NULL && s->dial->fd >= 0)
            peer = &s->dial->peer;
        break;
    case SESSION_ST_FORWARD:
        phase = x->fwd.resp_head_done ? TERM_PH_DATA : TERM_PH_RESPONSE;
        peer = s->upstream != NULL && x->dest_known ? &s->upstream_peer : NULL;
        break;
    case SESSION_ST_TUNNEL:
        phase = TERM_PH_TUNNEL;
        peer = s->upstream != NULL && x->dest_known ? &s->upstream_peer : NULL;
        break;
    default:
        return; /* between requests: the next request takes the new policy */
    }
    if (!x->decided || (p = policy_acquire()) == NULL)
        return;
    if (x->identity.tool != NULL)
        tool = policy_find_tool(p, x->identity.tool->id);
    /* The process, matched again, outranks what named the exchange if that was weaker. */
    if (s->proc.tool != NULL &&
        (x->identity.source == IDENTITY_NONE || x->identity.source == IDENTITY_PROCESS ||
         x->identity.source == IDENTITY_USER_AGENT ||
         (x->identity.source == IDENTITY_PROXY_USER && credentials_current() == NULL))) {
        const struct policy_tool *named = policy_find_tool(p, s->proc.tool);
        if (named != NULL) {
            tool = named;
            x->identity.source = IDENTITY_PROCESS;
        }
    }
    session_query(s, tool, &q);
    policy_decide(p, &q, &x->decision);
    blocked = x->decision.verdict == POLICY_BLOCK;
    d = x->decision;
    if (!blocked && peer != NULL) {
        struct policy_dest dest;
        if (!policy_check_address(p, tool, &peer->sa, &dest, &x->refusal)) {
            x->refused = true;
            d = x->refusal;
            blocked = true;
        }
    }
    if (!blocked && session_tunnel_blocked(s, p, &q, &d)) {
        x->decision = d;
        blocked = true;
    }
    /* A spliced tunnel to a host that request_headers now names cannot carry the fields: it
     * is closed (or, still dialling, refused), and the client's next tunnel is inspected.
     * An inspected CONNECT dials nothing itself: a CONNECT in these states is spliced. */
    if (!blocked && x->req.is_connect && x->decision.must_inspect &&
        (s->state == SESSION_ST_TUNNEL || s->state == SESSION_ST_RESOLVE ||
         s->state == SESSION_ST_CONNECT)) {
        snprintf(x->decision.rule, sizeof(x->decision.rule), "tls:must-inspect");
        x->decision.reason = "request_headers now sets fields on this host, which a spliced "
                             "tunnel cannot carry; connect again";
        d = x->decision;
        blocked = true;
    }
    /* The frames after an upgrade are relayed unread: where the new policy keeps what is
     * sent (capture), the upgraded connection cannot go on, as it could not have begun. */
    if (!blocked && s->state == SESSION_ST_TUNNEL && !x->req.is_connect &&
        x->decision.capture >= POLICY_CAPTURE_REQUESTS) {
        snprintf(x->decision.rule, sizeof(x->decision.rule), "capture:upgrade");
        x->decision.reason = "the policy now keeps the bodies sent to this endpoint (capture), "
                             "and the frames of an upgraded connection cannot be kept; "
                             "capture: none for its endpoint group lets it go on unrecorded";
        d = x->decision;
        blocked = true;
    }
    /* A tunnel's server name, when it names another host, is held to the new policy too. */
    if (!blocked && s->state == SESSION_ST_TUNNEL && x->tun.sni != NULL) {
        char name[REQUEST_HOST_MAX], without_port[REQUEST_HOST_MAX];
        const char *errstr = NULL, *sni = x->tun.sni;
        struct policy_decision sd;
        bool ipv6;
        /* A name sent with its port was decided on its host (session_check_sni()). */
        if (session_sni_without_port(sni, without_port, sizeof(without_port)))
            sni = without_port;
        if (request_normalize_host(sni, strlen(sni), false, name, sizeof(name), &ipv6, &errstr) >
                0 &&
            session_sni_blocked(s, p, &q, name, &sd)) {
            x->decision = sd; /* only a block replaces the CONNECT host's decision */
            d = sd;
            blocked = true;
        }
    }
    /* The exchange goes on under the new snapshot: identity and decision point into it, and
     * a dial under way checks its next addresses under it (session_dial_ctx). */
    x->identity.tool = tool;
    policy_unref(s->policy);
    s->policy = p;
    if (!blocked)
        return;
    /* A 403 while no response byte has gone out, else the connection is cut. */
    log_escape(host, sizeof(host), x->req.host, strlen(x->req.host));
    snprintf(what, sizeof(what),
             "blocked %s:%u for tool %s after the policy reload: %s (rule %s in %s)", host,
             x->req.port, d.tool, d.reason, d.rule, d.file);
    log_notice("%s: %s %s", s->client_addr, x->req.method, what);
    x->failure_logged = true;
    session_fail(s, 403, "http_request_denied", TERM_KILLED, phase, what);
}
