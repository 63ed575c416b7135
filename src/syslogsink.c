/* Audit records as RFC 5424 syslog messages; see include/sluice/syslogsink.h. */
#include "sluice/syslogsink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sluice/log.h"

/* The facilities by code (RFC 5424 table 1), as syslog.conf names them. */
static const char *const syslogsink_facilities[24] = {
    "kern",   "user",   "mail",     "daemon", "auth",   "syslog", "lpr",    "news",
    "uucp",   "cron",   "authpriv", "ftp",    NULL,     NULL,     NULL,     NULL,
    "local0", "local1", "local2",   "local3", "local4", "local5", "local6", "local7"};

/* The sink's state: set by open before any record, read by every worker. */
static struct {
    int fd;
    struct syslogsink_target to;
    uint32_t facility;
    char hostname[256];
    long pid;
    char target[160]; /* as configured, for messages */
    atomic_bool enabled;
    atomic_bool losing; /* the last send failed: said once, and once when it ends */
    atomic_uint_fast64_t lost;
} sink = {.fd = -1};

/* Reads a port number, 1 to 65535, that is all of s.  Returns 0, or -1. */
static int syslogsink_port(const char *s, uint16_t *port)
{
    char *end;
    unsigned long v;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* Reads "ADDR", "ADDR:PORT", "[ADDR6]" or "[ADDR6]:PORT" into t.  Returns 0, or -1. */
static int syslogsink_udp(const char *s, struct syslogsink_target *t)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *port = NULL, *close;
    uint16_t p = 514;
    size_t n;

    if (s[0] == '[') {
        if ((close = strchr(s, ']')) == NULL || (close[1] != '\0' && close[1] != ':'))
            return -1;
        n = (size_t)(close - s - 1);
        if (n >= sizeof(addr))
            return -1;
        memcpy(addr, s + 1, n);
        addr[n] = '\0';
        if (close[1] == ':')
            port = close + 2;
    } else {
        const char *colon = strchr(s, ':');
        n = colon != NULL ? (size_t)(colon - s) : strlen(s);
        if (n >= sizeof(addr))
            return -1;
        memcpy(addr, s, n);
        addr[n] = '\0';
        if (colon != NULL)
            port = colon + 1;
    }
    if (port != NULL && syslogsink_port(port, &p) < 0)
        return -1;
    memset(t, 0, sizeof(*t));
    if (s[0] == '[') {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&t->addr;
        if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) != 1)
            return -1;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(p);
        t->len = sizeof(*sin6);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&t->addr;
        if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1)
            return -1;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(p);
        t->len = sizeof(*sin);
    }
    return 0;
}

/* Reads a target; see the header. */
int syslogsink_parse_target(const char *text, struct syslogsink_target *t, const char **errstr)
{
    if (strcmp(text, "on") == 0)
        text = SYSLOGSINK_DEFAULT_TARGET;
    if (strncmp(text, "unix:", 5) == 0) {
        struct sockaddr_un *sun = (struct sockaddr_un *)(void *)&t->addr;
        size_t n = strlen(text + 5);

        if (text[5] != '/' || n >= sizeof(sun->sun_path)) {
            *errstr = "a Unix target needs an absolute path of at most 107 bytes";
            return -1;
        }
        memset(t, 0, sizeof(*t));
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, text + 5, n + 1);
        t->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        return 0;
    }
    if (strncmp(text, "udp:", 4) == 0) {
        if (syslogsink_udp(text + 4, t) < 0) {
            *errstr = "a UDP target is an IPv4 address or a bracketed IPv6 one, and an "
                      "optional port from 1 to 65535";
            return -1;
        }
        return 0;
    }
    *errstr = "not a syslog target";
    return -1;
}

/* Reads a facility name; see the header. */
int syslogsink_parse_facility(const char *name, uint32_t *code)
{
    for (uint32_t i = 0; i < 24; i++)
        if (syslogsink_facilities[i] != NULL && strcmp(syslogsink_facilities[i], name) == 0) {
            *code = i;
            return 0;
        }
    return -1;
}

const char *syslogsink_facility_str(uint32_t code)
{
    return code < 24 && syslogsink_facilities[code] != NULL ? syslogsink_facilities[code] : "?";
}

/* The severity of a record; see the header. */
unsigned syslogsink_severity(const struct audit_record *r)
{
    if (r->decision != NULL && strcmp(r->decision, "block") == 0)
        return 4; /* warning */
    if (r->decision != NULL && strcmp(r->decision, "report") == 0)
        return 5; /* notice */
    return 6;     /* informational */
}

/*
 * Escapes s into out, at most max bytes and a NUL: in an SD PARAM-VALUE (sd) '"', '\'
 * and ']' get a backslash; in both, a '\' does, and a byte outside printable ASCII is
 * written as \xHH.  What does not fit ends in "..." (max >= 3), never inside an escape.
 * Returns the bytes written.
 */
static size_t syslogsink_escape(char *out, size_t max, const char *s, bool sd)
{
    const unsigned char *u = (const unsigned char *)(s != NULL ? s : "");
    size_t whole = 0, o = 0;

    for (size_t i = 0; u[i] != '\0'; i++)
        whole += u[i] < 0x20 || u[i] >= 0x7f                            ? 4
                 : u[i] == '\\' || (sd && (u[i] == '"' || u[i] == ']')) ? 2
                                                                        : 1;
    for (size_t i = 0; u[i] != '\0'; i++) {
        char e[5];
        size_t n;

        if (u[i] < 0x20 || u[i] >= 0x7f) {
            n = (size_t)snprintf(e, sizeof(e), "\\x%02x", u[i]);
        } else if (u[i] == '\\' || (sd && (u[i] == '"' || u[i] == ']'))) {
            e[0] = '\\';
            e[1] = (char)u[i];
            n = 2;
        } else {
            e[0] = (char)u[i];
            n = 1;
        }
        if (o + n + (whole > max ? 3 : 0) > max)
            break;
        memcpy(out + o, e, n);
        o += n;
    }
    if (whole > max) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return o;
}

/* A message being built: the next byte goes at at; room ends at end (a NUL fits after). */
struct syslogsink_msg {
    char *at, *end;
};

/* Appends ` name="value"` with value cut to max escaped bytes and to the room left, keeping
 * keep bytes free; nothing when value is NULL or there is no room even for a cut one. */
static void syslogsink_param(struct syslogsink_msg *m, const char *name, const char *value,
                             size_t max, size_t keep)
{
    size_t room = (size_t)(m->end - m->at), fixed = strlen(name) + 4, len;

    if (value == NULL || room < fixed + keep + 3)
        return;
    if (max > room - fixed - keep)
        max = room - fixed - keep;
    len = (size_t)snprintf(m->at, room + 1, " %s=\"", name);
    len += syslogsink_escape(m->at + len, max, value, true);
    m->at[len++] = '"';
    m->at[len] = '\0';
    m->at += len;
}

/* The same for a number. */
static void syslogsink_param_u64(struct syslogsink_msg *m, const char *name, uint64_t v,
                                 size_t keep)
{
    char num[24];

    snprintf(num, sizeof(num), "%" PRIu64, v);
    syslogsink_param(m, name, num, sizeof(num), keep);
}

/* value, or NULL when it says nothing is known ("", "-"): the parameter is left out. */
static const char *syslogsink_known(const char *value)
{
    return value == NULL || value[0] == '\0' || strcmp(value, "-") == 0 ? NULL : value;
}

/* Formats one message; see the header. */
size_t syslogsink_format(const struct audit_record *r, uint32_t facility,
                         const struct timespec *now, const char *hostname, long pid, char *out,
                         size_t cap)
{
    struct syslogsink_msg m = {
        .at = out, .end = out + (cap - 1 < SYSLOGSINK_MSG_MAX ? cap - 1 : SYSLOGSINK_MSG_MAX)};
    char stamp[40], host[256], text[600];
    struct tm tm;
    size_t n;
    int len;

    /* HOSTNAME is 1 to 255 printable ASCII characters other than space, or "-". */
    n = hostname != NULL ? strlen(hostname) : 0;
    for (size_t i = 0; i < n; i++)
        if (hostname[i] <= 0x20 || hostname[i] >= 0x7f)
            n = 0;
    if (n == 0 || n >= sizeof(host)) {
        snprintf(host, sizeof(host), "-");
    } else {
        memcpy(host, hostname, n);
        host[n] = '\0';
    }
    gmtime_r(&now->tv_sec, &tm);
    n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ", now->tv_nsec / 1000000 % 1000);
    len = snprintf(out, cap, "<%u>1 %s %s sluice %ld access [" SYSLOGSINK_SD_ID,
                   (unsigned)(facility * 8 + syslogsink_severity(r)), stamp, host, pid);
    if (len < 0 || (size_t)len >= (size_t)(m.end - out))
        return 0; /* cannot happen: the header is at most 330 bytes */
    m.at = out + len;
    /* What says most first; each value has a bound, and the URL the largest. */
    syslogsink_param(&m, "tool", r->tool, 128, 1);
    syslogsink_param(&m, "decision", r->decision, 16, 1);
    syslogsink_param(&m, "rule", r->rule, 256, 1);
    syslogsink_param_u64(&m, "status", r->status, 1);
    syslogsink_param(&m, "client", r->client, 64, 1);
    syslogsink_param(&m, "method", r->method, 32, 1);
    syslogsink_param(&m, "url", r->target, 1024, 1);
    syslogsink_param_u64(&m, "sent", r->sent, 1);
    syslogsink_param_u64(&m, "received", r->received, 1);
    syslogsink_param_u64(&m, "ms", r->duration_ms, 1);
    syslogsink_param(&m, "term", r->term, 8, 1);
    syslogsink_param(&m, "id", r->id_source, 32, 1);
    syslogsink_param(&m, "dst", syslogsink_known(r->dest_ip), 64, 1);
    syslogsink_param(&m, "country", syslogsink_known(r->country), 8, 1);
    if (r->asn != 0)
        syslogsink_param_u64(&m, "asn", r->asn, 1);
    syslogsink_param(&m, "user", syslogsink_known(r->user), 256, 1);
    syslogsink_param(&m, "sni", syslogsink_known(r->sni), 256, 1);
    syslogsink_param(&m, "error", syslogsink_known(r->error), 64, 1);
    if (r->pid != 0)
        syslogsink_param_u64(&m, "pid", r->pid, 1);
    syslogsink_param(&m, "exe", syslogsink_known(r->exe), 256, 1);
    *m.at++ = ']';
    *m.at = '\0';
    /* MSG: one line a person reads where only it is shown (journalctl, a terminal). */
    snprintf(text, sizeof(text), "%s %s %.400s %u", r->decision != NULL ? r->decision : "-",
             r->method != NULL ? r->method : "-", r->target != NULL ? r->target : "-", r->status);
    if (m.end - m.at > 4) {
        *m.at++ = ' ';
        m.at += syslogsink_escape(m.at, (size_t)(m.end - m.at), text, false);
    }
    return (size_t)(m.at - out);
}

/* Opens the socket; see the header. */
int syslogsink_open(const char *target, uint32_t facility, char *err, size_t cap)
{
    const char *errstr = NULL;
    struct stat st;

    if (syslogsink_parse_target(target, &sink.to, &errstr) < 0) {
        snprintf(err, cap, "syslog target %s: %s", target, errstr);
        return -1;
    }
    if (sink.to.addr.ss_family == AF_UNIX) {
        const char *path = ((const struct sockaddr_un *)(const void *)&sink.to.addr)->sun_path;
        if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
            snprintf(err, cap, "cannot send the audit records to syslog: %s is %s", path,
                     stat(path, &st) < 0 ? "not there (is a syslog daemon running?)"
                                         : "not a socket");
            return -1;
        }
    }
    sink.fd = socket(sink.to.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sink.fd < 0) {
        snprintf(err, cap, "cannot open a socket for syslog: %s", strerror(errno));
        return -1;
    }
    if (gethostname(sink.hostname, sizeof(sink.hostname) - 1) < 0)
        snprintf(sink.hostname, sizeof(sink.hostname), "-");
    sink.hostname[sizeof(sink.hostname) - 1] = '\0';
    sink.pid = (long)getpid();
    sink.facility = facility;
    snprintf(sink.target, sizeof(sink.target), "%s",
             strcmp(target, "on") == 0 ? SYSLOGSINK_DEFAULT_TARGET : target);
    atomic_store(&sink.enabled, true);
    return 0;
}

/* Closes the socket; see the header. */
void syslogsink_close(void)
{
    if (sink.fd < 0)
        return;
    atomic_store(&sink.enabled, false);
    close(sink.fd);
    sink.fd = -1;
}

bool syslogsink_enabled(void)
{
    return atomic_load(&sink.enabled);
}

uint64_t syslogsink_lost(void)
{
    return atomic_load(&sink.lost);
}

/* Sends one record; see the header. */
void syslogsink_record(const struct audit_record *r)
{
    char msg[SYSLOGSINK_MSG_MAX + 1];
    struct timespec now;
    size_t n;

    if (!syslogsink_enabled())
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    n = syslogsink_format(r, sink.facility, &now, sink.hostname, sink.pid, msg, sizeof(msg));
    /* One datagram, and never a wait: a receiver with no room loses this record. */
    if (sendto(sink.fd, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&sink.to.addr,
               sink.to.len) == (ssize_t)n) {
        if (atomic_exchange(&sink.losing, false))
            log_notice("syslog %s takes the audit records again; %" PRIu64 " were lost so far",
                       sink.target, (uint64_t)atomic_load(&sink.lost));
        return;
    }
    atomic_fetch_add(&sink.lost, 1);
    if (!atomic_exchange(&sink.losing, true))
        log_warn("cannot send an audit record to syslog %s: %s; records are lost (and counted) "
                 "until it takes them again",
                 sink.target,
                 errno == EAGAIN || errno == EWOULDBLOCK ? "its socket buffer is full"
                                                         : strerror(errno));
}
