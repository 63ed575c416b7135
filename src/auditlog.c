/* The audit trail's JSON Lines file; see include/sluice/auditlog.h. */
#include "sluice/auditlog.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sluice/log.h"
#include "sluice/redact.h"

/* Hex digits of a SHA-256, and the NUL. */
#define AUDITLOG_HASH_HEX 65
/* Bytes of lines written with one write(2) at most. */
#define AUDITLOG_BATCH_BYTES (256 * 1024)
/* How long the writer gathers records after the first, and how many wake it at once. */
#define AUDITLOG_TICK_MS 20
#define AUDITLOG_WAKE_AT 1024

/* The chain's field, written last on every line: what verify looks for. */
#define AUDITLOG_PREV_KEY "\"prev_hash\":\""

/* A line being built: bounded, and cut (with "...") rather than overrun. */
struct jbuf {
    char *p;
    size_t len, cap;
    bool first; /* no member yet in the object just opened */
};

/* Appends n raw bytes, while room lasts. */
static void jb_raw(struct jbuf *b, const char *s, size_t n)
{
    if (b->len + n >= b->cap)
        n = b->len < b->cap ? b->cap - b->len - 1 : 0;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void jb_text(struct jbuf *b, const char *s)
{
    jb_raw(b, s, strlen(s));
}

/* The length of the UTF-8 sequence at s (at most n bytes), or 0 when it is not one. */
static size_t jb_utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;

    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4;
    else
        return 0;
    /* No overlong forms, no surrogates, nothing past U+10FFFF. */
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/*
 * Appends s (len bytes, any bytes: they came from the network or a process) as a JSON
 * string: quotes, backslashes and control bytes escaped, UTF-8 kept, any other byte
 * written as the code point of the same number (\u00XX), so the line stays valid JSON
 * and the byte can still be told.  Past max bytes of s, the string ends in "...".
 */
static void jb_string(struct jbuf *b, const char *s, size_t len, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    char esc[8];

    jb_raw(b, "\"", 1);
    for (size_t i = 0; i < len && i < max;) {
        size_t n, run = 0;

        /* Plain printable ASCII, the most of every line, goes in one copy. */
        while (i + run < len && i + run < max && u[i + run] >= 0x20 && u[i + run] < 0x7f &&
               u[i + run] != '"' && u[i + run] != '\\')
            run++;
        if (run > 0) {
            jb_raw(b, s + i, run);
            i += run;
            continue;
        }
        if (u[i] == '"' || u[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)u[i];
            jb_raw(b, esc, 2);
            i++;
        } else if (u[i] < 0x20 || u[i] == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", u[i]);
            jb_raw(b, esc, 6);
            i++;
        } else if (u[i] < 0x80) {
            jb_raw(b, s + i, 1);
            i++;
        } else if ((n = jb_utf8_len(u + i, len - i)) > 0) {
            jb_raw(b, s + i, n);
            i += n;
        } else {
            snprintf(esc, sizeof(esc), "\\u%04x", u[i]);
            jb_raw(b, esc, 6);
            i++;
        }
    }
    if (len > max)
        jb_raw(b, "...", 3);
    jb_raw(b, "\"", 1);
}

/* Starts a member: the comma, the key. */
static void jb_key(struct jbuf *b, const char *key)
{
    if (!b->first)
        jb_raw(b, ",", 1);
    b->first = false;
    jb_raw(b, "\"", 1);
    jb_text(b, key);
    jb_raw(b, "\":", 2);
}

static void jb_open(struct jbuf *b, const char *key)
{
    jb_key(b, key);
    jb_raw(b, "{", 1);
    b->first = true;
}

static void jb_close(struct jbuf *b)
{
    jb_raw(b, "}", 1);
    b->first = false;
}

/* A string member, left out when value is NULL, empty or "-" (nothing known). */
static void jb_str(struct jbuf *b, const char *key, const char *value)
{
    if (value == NULL || value[0] == '\0' || strcmp(value, "-") == 0)
        return;
    jb_key(b, key);
    jb_string(b, value, strlen(value), 4096);
}

static void jb_u64(struct jbuf *b, const char *key, uint64_t v)
{
    char num[24];
    size_t at = sizeof(num);

    jb_key(b, key);
    do {
        num[--at] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    jb_raw(b, num + at, sizeof(num) - at);
}

/* Starts an array member. */
static void jb_open_array(struct jbuf *b, const char *key)
{
    jb_key(b, key);
    jb_raw(b, "[", 1);
    b->first = true;
}

static void jb_close_array(struct jbuf *b)
{
    jb_raw(b, "]", 1);
    b->first = false;
}

/*
 * The secret fields of one message as an array of {field, scheme, hash} under key (and
 * key_more: how many more there were), or nothing when it had none.
 */
static void jb_secrets(struct jbuf *b, const char *key, const char *key_more,
                       const struct redact_seen *seen)
{
    char hex[2 * REDACT_HASH_BYTES + 1];

    if (seen == NULL || seen->n == 0)
        return;
    jb_open_array(b, key);
    for (uint8_t i = 0; i < seen->n; i++) {
        if (!b->first)
            jb_raw(b, ",", 1);
        jb_raw(b, "{", 1);
        b->first = true;
        jb_str(b, "field", redact_name(seen->item[i].name));
        jb_str(b, "scheme", redact_scheme(seen->item[i].scheme));
        redact_hash_hex(seen->item[i].hash, hex);
        jb_str(b, "hash", hex);
        jb_close(b);
    }
    jb_close_array(b);
    if (seen->more > 0)
        jb_u64(b, key_more, seen->more);
}

/* source.ip and source.port from "ip:port" or "[ip]:port". */
static void jb_source(struct jbuf *b, const char *client)
{
    const char *colon = strrchr(client, ':');
    char ip[64];
    size_t len;

    jb_str(b, "address", client);
    if (colon == NULL)
        return;
    len = (size_t)(colon - client);
    if (client[0] == '[' && len >= 2 && client[len - 1] == ']') {
        client++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(ip))
        return;
    memcpy(ip, client, len);
    ip[len] = '\0';
    jb_str(b, "ip", ip);
    jb_u64(b, "port", strtoul(colon + 1, NULL, 10));
}

/* The trail's state: the file, the queue and the chain; everything under lock. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool open, stopping;
    int fd;        /* the writer's; changed only by the writer, at a reopen */
    int reopen_fd; /* a file opened again by auditlog_reopen(), for the writer to take */
    char *path;
    char **queue; /* a ring of AUDITLOG_QUEUE lines, each malloc'd */
    size_t head, count;
    struct auditlog_options opt;  /* opt.path is auditlog.path */
    uint64_t size;                /* bytes in the file now being written (the writer's) */
    bool dirty;                   /* written since the last fdatasync (the writer's) */
    uint64_t synced_ms;           /* when the last fdatasync ran (the writer's) */
    char prev[AUDITLOG_HASH_HEX]; /* the hash of the last line written (the writer's) */
    bool asleep;                  /* the writer waits for a record with no deadline */
    char **taken;                 /* lines the writer took from the queue (its own) */
    char *batch;                  /* lines being put together for one write (the writer's) */
    size_t batch_len;
    unsigned batch_n;
    char batch_prev[AUDITLOG_HASH_HEX]; /* the chain before the batch, for a failed write */
    uint64_t batch_id;                  /* the record id of its first line */
    uint64_t next_id;                   /* the writer's */
    atomic_uint_fast64_t lost;
    atomic_bool enabled;
    atomic_bool failing; /* the last write failed, or the queue was full */
} auditlog = {
    .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .fd = -1, .reopen_fd = -1};

/* The SHA-256 implementation, fetched once: a fetch per line costs a lookup under a lock. */
static EVP_MD *auditlog_md;
static pthread_once_t auditlog_md_once = PTHREAD_ONCE_INIT;

static void auditlog_md_fetch(void)
{
    auditlog_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* SHA-256 of n bytes as hex into out. */
static void auditlog_sha256(const char *s, size_t n, char out[AUDITLOG_HASH_HEX])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[32];
    unsigned int mdlen = 0;

    pthread_once(&auditlog_md_once, auditlog_md_fetch);
    if (auditlog_md == NULL || EVP_Digest(s, n, md, &mdlen, auditlog_md, NULL) != 1 ||
        mdlen != sizeof(md)) {
        memset(out, '0', 64);
        out[64] = '\0';
        return;
    }
    for (size_t i = 0; i < sizeof(md); i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
}

/* Formats a record up to its chain fields (the writer adds them); NULL when out of memory. */
static char *auditlog_format(const struct audit_record *r)
{
    /* Built in the thread's own room, then copied to an allocation of its size: what
     * waits in the queue is the line, not the room. */
    static _Thread_local char room[AUDITLOG_LINE_MAX];
    static _Thread_local time_t stamp_sec = -1;
    static _Thread_local char stamp[40];
    static _Thread_local size_t stamp_len; /* of "YYYY-MM-DDTHH:MM:SS." */
    struct jbuf b = {.p = room, .cap = AUDITLOG_LINE_MAX - 200, .first = true};
    struct timespec now;
    char *line;

    b.p[0] = '\0';
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != stamp_sec) { /* the date and time, made once a second */
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        stamp_len = strftime(stamp, sizeof(stamp) - 8, "%Y-%m-%dT%H:%M:%S.", &tm);
        stamp_sec = now.tv_sec;
    }
    {
        size_t n = stamp_len;
        unsigned ms = (unsigned)(now.tv_nsec / 1000000) % 1000;
        stamp[n] = (char)('0' + ms / 100);
        stamp[n + 1] = (char)('0' + ms / 10 % 10);
        stamp[n + 2] = (char)('0' + ms % 10);
        stamp[n + 3] = 'Z';
        stamp[n + 4] = '\0';
    }
    jb_raw(&b, "{", 1);
    jb_str(&b, "@timestamp", stamp);
    jb_open(&b, "event");
    jb_str(&b, "action", r->is_connect ? "tunnel" : "http_request");
    jb_u64(&b, "duration", r->duration_ms * 1000000u); /* ECS: nanoseconds */
    jb_close(&b);
    jb_open(&b, "source");
    jb_source(&b, r->client);
    jb_close(&b);
    jb_open(&b, "destination");
    jb_str(&b, "domain", r->host);
    jb_str(&b, "ip", r->dest_ip);
    if (r->port != 0)
        jb_u64(&b, "port", r->port);
    if (r->country != NULL && strcmp(r->country, "-") != 0) {
        jb_open(&b, "geo");
        jb_str(&b, "country_iso_code", r->country);
        jb_close(&b);
    }
    if (r->asn != 0) {
        jb_open(&b, "as");
        jb_u64(&b, "number", r->asn);
        jb_close(&b);
    }
    jb_close(&b);
    if (!r->is_connect) {
        /* A forwarded request's target is absolute: the full URL, as the client sent it. */
        char url[4096];
        redact_url(r->target, strlen(r->target), url, sizeof(url));
        jb_open(&b, "url");
        jb_str(&b, "original", url);
        jb_str(&b, "full", url);
        if (r->path != NULL) { /* ECS's path has no query: that is in full, redacted */
            jb_key(&b, "path");
            jb_string(&b, r->path, strcspn(r->path, "?"), 4096);
        }
        jb_close(&b);
    }
    if (r->user_agent != NULL) {
        jb_open(&b, "user_agent");
        jb_str(&b, "original", r->user_agent);
        jb_close(&b);
    }
    jb_open(&b, "http");
    jb_open(&b, "request");
    jb_str(&b, "method", r->method);
    jb_u64(&b, "bytes", r->sent);
    jb_close(&b);
    jb_open(&b, "response");
    if (r->status != 0)
        jb_u64(&b, "status_code", r->status);
    jb_u64(&b, "bytes", r->received);
    jb_close(&b);
    jb_close(&b);
    if (r->sni != NULL && r->sni[0] != '\0') {
        jb_open(&b, "tls");
        jb_open(&b, "client");
        jb_str(&b, "server_name", r->sni);
        jb_close(&b);
        jb_close(&b);
    }
    if (r->user != NULL && r->user[0] != '\0') {
        jb_open(&b, "user");
        jb_str(&b, "name", r->user);
        jb_close(&b);
    }
    if (r->pid != 0) {
        jb_open(&b, "process");
        jb_u64(&b, "pid", r->pid);
        jb_str(&b, "executable", r->exe);
        jb_str(&b, "command_line", r->cmd);
        if (r->exe_sha256 != NULL && r->exe_sha256[0] != '\0') {
            jb_open(&b, "hash");
            jb_str(&b, "sha256", r->exe_sha256);
            jb_close(&b);
        }
        if (r->uid != UINT32_MAX) {
            char uid[16];
            snprintf(uid, sizeof(uid), "%" PRIu32, r->uid);
            jb_open(&b, "user");
            jb_str(&b, "id", uid);
            jb_close(&b);
        }
        jb_close(&b);
    }
    jb_open(&b, "rule");
    jb_str(&b, "id", r->rule);
    jb_str(&b, "ruleset", r->rule_file);
    jb_close(&b);
    jb_open(&b, "sluice");
    jb_str(&b, "tool", r->tool);
    jb_str(&b, "tool_version", r->version);
    jb_str(&b, "identity_source", r->id_source);
    jb_str(&b, "identity_mismatch", r->mismatch);
    jb_str(&b, "offered_user", r->offered);
    jb_str(&b, "process_chain", r->chain);
    jb_str(&b, "decision", r->decision);
    jb_str(&b, "termination", r->term);
    if (r->interim) {
        jb_key(&b, "interim");
        jb_text(&b, "true");
    }
    jb_str(&b, "error", r->error);
    jb_secrets(&b, "request_secrets", "request_secrets_more", r->req_secrets);
    jb_secrets(&b, "response_secrets", "response_secrets_more", r->resp_secrets);
    /* The writer closes the object with the record's number and the chain. */
    jb_raw(&b, b.first ? "" : ",", b.first ? 0 : 1);
    if ((line = malloc(b.len + 1)) == NULL)
        return NULL;
    memcpy(line, b.p, b.len + 1);
    return line;
}

/*
 * Appends one queued line, with its record number and chain, to the batch; the writer's
 * alone.  The batch is written by auditlog_flush().
 */
static void auditlog_append(const char *body)
{
    char tail[160];
    size_t blen = strlen(body), tlen;
    char *line;

    snprintf(tail, sizeof(tail), "\"record_id\":%" PRIu64 "," AUDITLOG_PREV_KEY "%s\"}}",
             auditlog.next_id, auditlog.prev);
    tlen = strlen(tail);
    if (auditlog.batch_n == 0) { /* where the chain goes back to if the batch is lost */
        memcpy(auditlog.batch_prev, auditlog.prev, sizeof(auditlog.prev));
        auditlog.batch_id = auditlog.next_id;
    }
    line = auditlog.batch + auditlog.batch_len;
    memcpy(line, body, blen);
    memcpy(line + blen, tail, tlen);
    auditlog_sha256(line, blen + tlen, auditlog.prev);
    line[blen + tlen] = '\n';
    auditlog.batch_len += blen + tlen + 1;
    auditlog.batch_n++;
    auditlog.next_id++;
}

/*
 * Writes the batch with one write(2): whole lines only, so a reader never sees half of
 * one.  When it cannot be written, what a short write left is cut off again, the chain
 * goes back to the line before the batch (the file's chain stays whole), and its records
 * are counted lost.  The writer's alone.
 */
static void auditlog_flush(void)
{
    ssize_t n;

    if (auditlog.batch_n == 0)
        return;
    n = write(auditlog.fd, auditlog.batch, auditlog.batch_len);
    if (n == (ssize_t)auditlog.batch_len) {
        auditlog.size += auditlog.batch_len;
        auditlog.dirty = true;
        if (atomic_exchange(&auditlog.failing, false))
            log_notice("the audit trail %s is written again; %" PRIu64 " records were lost",
                       auditlog.path, (uint64_t)atomic_load(&auditlog.lost));
    } else {
        int err = n < 0 ? errno : ENOSPC;
        if (n > 0) {
            off_t end = lseek(auditlog.fd, 0, SEEK_END);
            if (end < 0 || ftruncate(auditlog.fd, end - n) < 0)
                log_error("cannot cut off the part of a record written to the audit trail %s: "
                          "%s",
                          auditlog.path, strerror(errno));
        }
        memcpy(auditlog.prev, auditlog.batch_prev, sizeof(auditlog.prev));
        auditlog.next_id = auditlog.batch_id;
        atomic_fetch_add(&auditlog.lost, auditlog.batch_n);
        /* Said once when it starts failing, and once when it works again. */
        if (!atomic_exchange(&auditlog.failing, true))
            log_error("cannot write the audit trail %s: %s; records are lost until it can be "
                      "written again",
                      auditlog.path, strerror(err));
    }
    auditlog.batch_len = 0;
    auditlog.batch_n = 0;
}

/* Milliseconds on the monotonic clock. */
static uint64_t auditlog_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Brings what was written to the disk; the writer's alone. */
static void auditlog_sync(void)
{
    if (!auditlog.dirty)
        return;
    if (fdatasync(auditlog.fd) < 0 && errno != EINVAL)
        log_warn("cannot sync the audit trail %s: %s", auditlog.path, strerror(errno));
    auditlog.dirty = false;
    auditlog.synced_ms = auditlog_now_ms();
}

/* PATH.i into out: PATH itself for 0. */
static void auditlog_numbered(char *out, size_t cap, unsigned i)
{
    if (i == 0)
        snprintf(out, cap, "%s", auditlog.path);
    else
        snprintf(out, cap, "%s.%u", auditlog.path, i);
}

/*
 * The file reached opt.rotate_bytes: it becomes PATH.1 (PATH.1 becomes PATH.2, and so
 * on; the one past opt.keep is removed) and a new PATH takes the next line, whose
 * prev_hash is the last line's of the old file, so `sluice audit verify PATH.1 PATH`
 * checks across.  On failure the old file is written on.  The writer's alone.
 */
static void auditlog_rotate(void)
{
    char from[PATH_MAX + 16], to[PATH_MAX + 16];
    int fd;

    auditlog_sync();
    auditlog_numbered(to, sizeof(to), auditlog.opt.keep);
    if (unlink(to) < 0 && errno != ENOENT)
        log_warn("cannot remove the oldest audit trail %s: %s", to, strerror(errno));
    for (unsigned i = auditlog.opt.keep; i > 0; i--) {
        auditlog_numbered(from, sizeof(from), i - 1);
        auditlog_numbered(to, sizeof(to), i);
        if (rename(from, to) < 0 && errno != ENOENT) {
            log_error("cannot rotate the audit trail: %s to %s: %s; writing on to %s", from, to,
                      strerror(errno), auditlog.path);
            auditlog.size = 0; /* try again after another opt.rotate_bytes */
            return;
        }
    }
    fd = open(auditlog.path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("cannot start a new audit trail %s after rotating: %s; writing on to %s.1",
                  auditlog.path, strerror(errno), auditlog.path);
        auditlog.size = 0;
        return;
    }
    close(auditlog.fd);
    auditlog.fd = fd;
    auditlog.size = 0;
    log_notice("the audit trail reached %" PRIu64 " bytes: it is now %s.1, and %s goes on",
               auditlog.opt.rotate_bytes, auditlog.path, auditlog.path);
}

/* The realtime clock ms from now: the condition variable's clock. */
static struct timespec auditlog_deadline(uint64_t ms)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000u);
    until.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return until;
}

/*
 * Waits, lock held, for records: woken by the first record after an idle spell, it
 * gathers for AUDITLOG_TICK_MS more (or until AUDITLOG_WAKE_AT are queued), so that the
 * writer and the workers trade places a few dozen times a second, not once per record;
 * lines written and not yet synced are synced when their time comes.
 */
static void auditlog_wait(void)
{
    struct timespec until;

    if (!auditlog.dirty) {
        auditlog.asleep = true;
        while (auditlog.asleep && !auditlog.stopping)
            pthread_cond_wait(&auditlog.wake, &auditlog.lock);
        auditlog.asleep = false;
        if (auditlog.stopping)
            return;
    }
    until = auditlog_deadline(AUDITLOG_TICK_MS);
    if (auditlog.count < AUDITLOG_WAKE_AT && !auditlog.stopping)
        pthread_cond_timedwait(&auditlog.wake, &auditlog.lock, &until);
    if (auditlog.dirty && auditlog.count == 0 &&
        auditlog_now_ms() - auditlog.synced_ms >= auditlog.opt.sync_ms) {
        pthread_mutex_unlock(&auditlog.lock);
        auditlog_sync();
        pthread_mutex_lock(&auditlog.lock);
    }
}

/*
 * The writer: takes what is queued, in order, and writes it in batches with its chain,
 * syncing at most opt.sync_ms after a write (after each batch when 0) and rotating at
 * opt.rotate_bytes.
 */
static void *auditlog_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "sluice-audit"); /* so top -H and perf tell it apart */
    pthread_mutex_lock(&auditlog.lock);
    for (;;) {
        size_t n;

        if (auditlog.count == 0 && !auditlog.stopping) {
            auditlog_wait();
            continue;
        }
        if (auditlog.count == 0) /* stopping, and all written */
            break;
        n = auditlog.count;
        for (size_t i = 0; i < n; i++)
            auditlog.taken[i] = auditlog.queue[(auditlog.head + i) % AUDITLOG_QUEUE];
        auditlog.head = (auditlog.head + n) % AUDITLOG_QUEUE;
        auditlog.count = 0;
        /* A reopened file takes over between two batches: the chain goes on in it. */
        if (auditlog.reopen_fd >= 0) {
            struct stat st;
            auditlog_sync();
            close(auditlog.fd);
            auditlog.fd = auditlog.reopen_fd;
            auditlog.reopen_fd = -1;
            auditlog.size = fstat(auditlog.fd, &st) == 0 ? (uint64_t)st.st_size : 0;
        }
        pthread_mutex_unlock(&auditlog.lock);
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(auditlog.taken[i]);
            if (auditlog.batch_len + len + 200 > AUDITLOG_BATCH_BYTES)
                auditlog_flush();
            if (auditlog.opt.rotate_bytes > 0 &&
                auditlog.size + auditlog.batch_len >= auditlog.opt.rotate_bytes) {
                auditlog_flush();
                auditlog_rotate();
            }
            auditlog_append(auditlog.taken[i]);
            free(auditlog.taken[i]);
        }
        auditlog_flush();
        if (auditlog.opt.sync_ms == 0 ||
            auditlog_now_ms() - auditlog.synced_ms >= auditlog.opt.sync_ms)
            auditlog_sync();
        pthread_mutex_lock(&auditlog.lock);
    }
    pthread_mutex_unlock(&auditlog.lock);
    auditlog_sync();
    return NULL;
}

/*
 * Reads the last line of the open file: its hash and record id continue the chain.  A
 * last line cut short (the process was killed inside its one write, which one write makes
 * unlikely) is cut off, so that readers never meet half a line, and said in the log; the
 * chain goes on from the line before it.
 */
static void auditlog_continue(int fd)
{
    struct stat st;
    off_t size, from;
    char *buf;
    ssize_t n;
    char *end, *start, *id;

    memset(auditlog.prev, '0', 64);
    auditlog.prev[64] = '\0';
    auditlog.next_id = 1;
    if (fstat(fd, &st) < 0 || st.st_size == 0)
        return;
    size = st.st_size;
    from = size > AUDITLOG_LINE_MAX * 2 ? size - AUDITLOG_LINE_MAX * 2 : 0;
    if ((buf = malloc((size_t)(size - from) + 1)) == NULL)
        return;
    n = pread(fd, buf, (size_t)(size - from), from);
    if (n <= 0) {
        free(buf);
        return;
    }
    buf[n] = '\0';
    end = buf + n;
    while (end > buf && end[-1] != '\n') /* an unfinished last line */
        end--;
    if (end < buf + n && (end > buf || from == 0)) {
        off_t whole = from + (off_t)(end - buf);
        if (ftruncate(auditlog.fd, whole) == 0)
            log_warn("the audit trail %s ended in %zd bytes of a record cut short (sluice was "
                     "stopped in the middle of writing it); they are removed",
                     auditlog.path, (ssize_t)(buf + n - end));
        else
            log_error("the audit trail %s ends in a record cut short, and it cannot be removed: "
                      "%s",
                      auditlog.path, strerror(errno));
    }
    if (end > buf) {
        end--; /* the newline of the last whole line */
        *end = '\0';
        start = strrchr(buf, '\n');
        start = start != NULL ? start + 1 : buf;
        auditlog_sha256(start, (size_t)(end - start), auditlog.prev);
        if ((id = strstr(start, "\"record_id\":")) != NULL)
            auditlog.next_id = strtoull(id + 12, NULL, 10) + 1;
    }
    free(buf);
}

/* Opens the trail; see the header. */
int auditlog_open(const struct auditlog_options *opt, char *err, size_t cap)
{
    const char *path = opt->path;
    struct stat st;
    sigset_t all, old;
    int rc;

    auditlog.opt = *opt;
    if (auditlog.opt.keep == 0)
        auditlog.opt.keep = 1;
    auditlog.fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (auditlog.fd < 0) {
        snprintf(err, cap, "cannot open the audit trail %s: %s", path, strerror(errno));
        return -1;
    }
    auditlog.queue = calloc(AUDITLOG_QUEUE, sizeof(*auditlog.queue));
    auditlog.taken = calloc(AUDITLOG_QUEUE, sizeof(*auditlog.taken));
    auditlog.batch = malloc(AUDITLOG_BATCH_BYTES);
    auditlog.batch_len = 0;
    auditlog.batch_n = 0;
    auditlog.path = strdup(path);
    auditlog.opt.path = auditlog.path;
    if (auditlog.queue == NULL || auditlog.taken == NULL || auditlog.batch == NULL ||
        auditlog.path == NULL) {
        snprintf(err, cap, "cannot open the audit trail %s: out of memory", path);
        goto fail;
    }
    {
        int rfd = open(path, O_RDONLY | O_CLOEXEC);
        if (rfd >= 0) {
            auditlog_continue(rfd);
            close(rfd);
        } else {
            auditlog_continue(auditlog.fd); /* fstat only: write-only files start anew */
        }
    }
    auditlog.size = fstat(auditlog.fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    auditlog.dirty = false;
    auditlog.synced_ms = auditlog_now_ms();
    auditlog.stopping = false;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&auditlog.thread, NULL, auditlog_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, cap, "cannot start the audit trail's writer: %s", strerror(rc));
        goto fail;
    }
    auditlog.open = true;
    atomic_store(&auditlog.enabled, true);
    return 0;

fail:
    close(auditlog.fd);
    auditlog.fd = -1;
    free(auditlog.queue);
    auditlog.queue = NULL;
    free(auditlog.taken);
    auditlog.taken = NULL;
    free(auditlog.batch);
    auditlog.batch = NULL;
    free(auditlog.path);
    auditlog.path = NULL;
    return -1;
}

/* Closes the trail; see the header. */
void auditlog_close(void)
{
    if (!auditlog.open)
        return;
    atomic_store(&auditlog.enabled, false);
    pthread_mutex_lock(&auditlog.lock);
    auditlog.stopping = true;
    pthread_cond_signal(&auditlog.wake);
    pthread_mutex_unlock(&auditlog.lock);
    pthread_join(auditlog.thread, NULL); /* it writes what is queued first */
    if (auditlog.reopen_fd >= 0) {
        close(auditlog.fd);
        auditlog.fd = auditlog.reopen_fd;
        auditlog.reopen_fd = -1;
    }
    close(auditlog.fd); /* the writer synced it as it stopped */
    auditlog.fd = -1;
    free(auditlog.queue);
    auditlog.queue = NULL;
    free(auditlog.taken);
    auditlog.taken = NULL;
    free(auditlog.batch);
    auditlog.batch = NULL;
    free(auditlog.path);
    auditlog.path = NULL;
    auditlog.open = false;
}

bool auditlog_enabled(void)
{
    return atomic_load(&auditlog.enabled);
}

uint64_t auditlog_lost(void)
{
    return atomic_load(&auditlog.lost);
}

/* Records waiting for the writer; see the header. */
size_t auditlog_queue_depth(void)
{
    size_t n;

    pthread_mutex_lock(&auditlog.lock);
    n = auditlog.open ? auditlog.count : 0;
    pthread_mutex_unlock(&auditlog.lock);
    return n;
}

/* Queues a record; see the header. */
void auditlog_record(const struct audit_record *r)
{
    char *body;
    bool queued = false;

    if (!auditlog_enabled())
        return;
    body = auditlog_format(r);
    if (body != NULL) {
        pthread_mutex_lock(&auditlog.lock);
        if (auditlog.open && !auditlog.stopping && auditlog.count < AUDITLOG_QUEUE) {
            auditlog.queue[(auditlog.head + auditlog.count) % AUDITLOG_QUEUE] = body;
            auditlog.count++;
            queued = true;
            /* The writer comes by on its own while records flow; a sleeping one, and one
             * that lets too many gather, is woken. */
            if (auditlog.asleep || auditlog.count == AUDITLOG_WAKE_AT) {
                auditlog.asleep = false;
                pthread_cond_signal(&auditlog.wake);
            }
        }
        pthread_mutex_unlock(&auditlog.lock);
    }
    if (!queued) {
        free(body);
        atomic_fetch_add(&auditlog.lost, 1);
        if (!atomic_exchange(&auditlog.failing, true))
            log_error("the audit trail's queue is full (the disk is slower than the traffic): "
                      "records are lost until it drains");
    }
}

/* Checks the chain of files; see the header. */
int auditlog_verify(char *const *paths, size_t n, FILE *out)
{
    char prev[AUDITLOG_HASH_HEX] = "", *line = NULL;
    size_t cap = 0, total = 0;
    bool have_prev = false;

    for (size_t f = 0; f < n; f++) {
        FILE *in = fopen(paths[f], "r");
        ssize_t len;
        size_t lineno = 0;

        if (in == NULL) {
            fprintf(out, "%s: cannot read: %s\n", paths[f], strerror(errno));
            free(line);
            return 2;
        }
        while ((len = getline(&line, &cap, in)) > 0) {
            const char *key;

            lineno++;
            if (line[len - 1] != '\n') {
                fprintf(out,
                        "%s:%zu: the last line is cut short (no newline): sluice was stopped "
                        "while writing it, and removes it when it next opens the file; the "
                        "%zu records before it hold\n",
                        paths[f], lineno, total);
                fclose(in);
                free(line);
                return 1;
            }
            line[--len] = '\0';
            key = strstr(line, AUDITLOG_PREV_KEY);
            if (key == NULL || strlen(key) != strlen(AUDITLOG_PREV_KEY) + 64 + 3) {
                fprintf(out, "%s:%zu: not an audit record (no prev_hash at its end)\n", paths[f],
                        lineno);
                fclose(in);
                free(line);
                return 1;
            }
            if (have_prev && strncmp(key + strlen(AUDITLOG_PREV_KEY), prev, 64) != 0) {
                fprintf(out,
                        "%s:%zu: the chain breaks here: its prev_hash is not the hash of the "
                        "line before it (a line was changed, removed or moved there)\n",
                        paths[f], lineno);
                fclose(in);
                free(line);
                return 1;
            }
            auditlog_sha256(line, (size_t)len, prev);
            have_prev = true;
            total++;
        }
        fclose(in);
    }
    free(line);
    fprintf(out, "%zu records, the chain holds\n", total);
    return 0;
}

/* Opens the trail's path again; see the header. */
int auditlog_reopen(char *err, size_t cap)
{
    int fd;

    if (!auditlog.open) {
        snprintf(err, cap, "no audit trail is open");
        return -1;
    }
    fd = open(auditlog.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, cap, "cannot reopen the audit trail %s: %s; writing on to the old file",
                 auditlog.path, strerror(errno));
        return -1;
    }
    pthread_mutex_lock(&auditlog.lock);
    if (auditlog.reopen_fd >= 0)
        close(auditlog.reopen_fd); /* two reopens before a record: the later one counts */
    auditlog.reopen_fd = fd;
    pthread_mutex_unlock(&auditlog.lock);
    return 0;
}

bool auditlog_failing(void)
{
    return auditlog_enabled() && atomic_load(&auditlog.failing);
}
