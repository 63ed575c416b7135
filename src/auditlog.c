/* The audit trail's JSON Lines file; see include/sluice/auditlog.h. */
#include "sluice/auditlog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sluice/linewriter.h"
#include "sluice/log.h"

/* Hex digits of a SHA-256, and the NUL. */
#define AUDITLOG_HASH_HEX 65
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
        size_t n;

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

    jb_key(b, key);
    snprintf(num, sizeof(num), "%" PRIu64, v);
    jb_text(b, num);
}

/* The trail's file, queue and writer (linewriter.h). */
static struct linewriter trail = LINEWRITER_INIT;

/* The chain: the writer's alone (auditlog_write_line runs on it), and set before it starts. */
static struct {
    char prev[AUDITLOG_HASH_HEX]; /* the hash of the last line written */
    uint64_t next_id;
} auditlog;

/* SHA-256 of n bytes as hex into out. */
static void auditlog_sha256(const char *s, size_t n, char out[AUDITLOG_HASH_HEX])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[32];
    unsigned int mdlen = 0;

    if (EVP_Digest(s, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != sizeof(md)) {
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
    struct jbuf b = {.p = malloc(AUDITLOG_LINE_MAX), .cap = AUDITLOG_LINE_MAX - 200, .first = true};
    struct timespec now;
    struct tm tm;
    char stamp[80];

    if (b.p == NULL)
        return NULL;
    b.p[0] = '\0';
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    {
        size_t n = strftime(stamp, sizeof(stamp) - 8, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(stamp + n, sizeof(stamp) - n, ".%03dZ", (int)(now.tv_nsec / 1000000) % 1000);
    }
    jb_raw(&b, "{", 1);
    jb_str(&b, "@timestamp", stamp);
    jb_open(&b, "event");
    jb_str(&b, "action", r->is_connect ? "tunnel" : "http_request");
    jb_u64(&b, "duration", r->duration_ms * 1000000u); /* ECS: nanoseconds */
    jb_close(&b);
    jb_open(&b, "source");
    jb_str(&b, "address", r->client);
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
        jb_open(&b, "url");
        jb_str(&b, "original", r->target);
        jb_str(&b, "full", r->target);
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
    jb_str(&b, "error", r->error);
    /* The writer closes the object with the record's number and the chain. */
    jb_raw(&b, b.first ? "" : ",", b.first ? 0 : 1);
    return b.p;
}

/* Writes one queued line with its chain fields to fd; the writer's alone.  False on failure. */
static bool auditlog_write_line(int fd, const char *body, void *arg)
{
    char tail[160], *line;
    size_t blen = strlen(body), tlen, n;
    bool ok;

    (void)arg;
    snprintf(tail, sizeof(tail), "\"record_id\":%" PRIu64 "," AUDITLOG_PREV_KEY "%s\"}}",
             auditlog.next_id, auditlog.prev);
    tlen = strlen(tail);
    if ((line = malloc(blen + tlen + 2)) == NULL)
        return false;
    memcpy(line, body, blen);
    memcpy(line + blen, tail, tlen);
    n = blen + tlen;
    auditlog_sha256(line, n, auditlog.prev);
    line[n] = '\n';
    /* One write: a reader never sees half a line, and a kill leaves none. */
    ok = write(fd, line, n + 1) == (ssize_t)(n + 1);
    free(line);
    auditlog.next_id++;
    return ok;
}

/*
 * Reads the last line of the open file: its hash and record id continue the chain.  A
 * last line cut short (a crash mid-write, which one write makes unlikely) is left alone
 * and the chain starts from the line before it.
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
int auditlog_open(const char *path, char *err, size_t cap)
{
    int rfd = open(path, O_RDONLY | O_CLOEXEC);

    /* The chain goes on from the file's last line, before the writer starts. */
    if (rfd >= 0) {
        auditlog_continue(rfd);
        close(rfd);
    } else {
        auditlog_continue(-1); /* no file yet, or a write-only one: the chain starts anew */
    }
    return linewriter_open(&trail, path, "audit trail", AUDITLOG_QUEUE, auditlog_write_line, NULL,
                           err, cap);
}

/* Closes the trail; see the header. */
void auditlog_close(void)
{
    linewriter_close(&trail);
}

bool auditlog_enabled(void)
{
    return linewriter_enabled(&trail);
}

uint64_t auditlog_lost(void)
{
    return linewriter_lost(&trail);
}

/* Queues a record; see the header. */
void auditlog_record(const struct audit_record *r)
{
    if (auditlog_enabled())
        linewriter_queue(&trail, auditlog_format(r));
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
                fprintf(out, "%s:%zu: the last line is cut short (no newline)\n", paths[f], lineno);
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
    return linewriter_reopen(&trail, err, cap);
}

bool auditlog_failing(void)
{
    return linewriter_failing(&trail);
}
