/* The audit trail's JSON Lines file; see include/sluice/auditlog.h. */
#include "sluice/auditlog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sluice/hex.h"
#include "sluice/linewriter.h"
#include "sluice/log.h"
#include "sluice/utf8.h"
#include "sluice/redact.h"

/* Hex digits of a SHA-256, and the NUL. */
#define AUDITLOG_HASH_HEX 65
/* The chain's field, written last on every line: what verify looks for. */
#define AUDITLOG_PREV_KEY "\"prev_hash\":\""

/*
 * A line being built, always valid JSON: a member that does not fit is taken back whole
 * (and the record says "truncated"), never cut in the middle; the frame (object keys and
 * braces) has JB_FRAME_ROOM bytes of its own past the members' room, so it always closes.
 */
struct jbuf {
    char *p;
    size_t len;
    size_t cap;   /* room for members */
    size_t hard;  /* room for the frame too: the buffer's size */
    bool first;   /* no member yet in the object just opened */
    bool over;    /* the member being written did not fit */
    bool dropped; /* a member was left out for room */
};

/* Bytes kept for the frame: every key of an object, its braces, "truncated". */
#define JB_FRAME_ROOM 1024

/* Appends n bytes within limit; past it, nothing more of the member (over).  The line
 * gets its NUL when it is done (auditlog_format), not after every piece. */
static void jb_put(struct jbuf *b, const char *s, size_t n, size_t limit)
{
    if (b->over || b->len + n >= limit) {
        b->over = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* A member's bytes. */
static void jb_raw(struct jbuf *b, const char *s, size_t n)
{
    jb_put(b, s, n, b->cap);
}

/* The frame's bytes. */
static void jb_frame(struct jbuf *b, const char *s, size_t n)
{
    jb_put(b, s, n, b->hard);
}

/* Where a member starts, to take it back when it does not fit. */
struct jb_mark {
    size_t len;
    bool first;
};

static struct jb_mark jb_begin(const struct jbuf *b)
{
    return (struct jb_mark){b->len, b->first};
}

/* Ends a member: one that did not fit is taken back whole. */
static void jb_end(struct jbuf *b, struct jb_mark m)
{
    if (!b->over)
        return;
    b->len = m.len;
    b->first = m.first;
    b->over = false;
    b->dropped = true;
}

/* Ones in the lowest bit of each byte of a word, and in the highest. */
#define JB_LOW_BITS  0x0101010101010101u
#define JB_HIGH_BITS 0x8080808080808080u

/* Whether one of the eight bytes of v is 0 (the high bit of that byte is set). */
static uint64_t jb_zero_byte(uint64_t v)
{
    return (v - JB_LOW_BITS) & ~v & JB_HIGH_BITS;
}

/* Whether the eight bytes at s are all plain printable ASCII (0x20 to 0x7e, but '"' and
 * '\\'): none is 0x80 or more, below 0x20, 0x7f, the quote or the backslash. */
static bool jb_plain8(const unsigned char *s)
{
    uint64_t v;

    memcpy(&v, s, sizeof(v));
    return ((v | (v - 0x20 * JB_LOW_BITS) | jb_zero_byte(v ^ (0x7f * JB_LOW_BITS)) |
             jb_zero_byte(v ^ ('"' * JB_LOW_BITS)) | jb_zero_byte(v ^ ('\\' * JB_LOW_BITS))) &
            JB_HIGH_BITS) == 0;
}

/*
 * Appends s (len bytes, any bytes: they came from the network or a process) as a JSON
 * string: quotes, backslashes and control bytes escaped, UTF-8 kept, any other byte
 * written as the code point of the same number (\u00XX), so the line stays valid JSON
 * and the byte can still be told.  Once about max bytes are written (escapes count, so a
 * string of quotes cannot grow past it), the string ends in "...".
 */
static void jb_string(struct jbuf *b, const char *s, size_t len, size_t max)
{
    /* The bytes that go in as they are, one bit each: printable ASCII (0x20 to 0x7e) but
     * the quote (0x22) and the backslash (0x5c). */
    static const uint64_t plain[4] = {0xfffffffb00000000u, 0x7fffffffefffffffu, 0, 0};
    const unsigned char *u = (const unsigned char *)s;
    char esc[8];

    size_t start = b->len, i = 0;

    jb_raw(b, "\"", 1);
    while (i < len && b->len - start < max && !b->over) {
        size_t n, run = 0, room = max - (b->len - start);
        size_t most = len - i < room ? len - i : room;

        /* Plain printable ASCII, the most of every line, goes in one copy; looked at eight
         * bytes at a time while they are all plain. */
        while (run + 8 <= most && jb_plain8(u + i + run))
            run += 8;
        while (run < most && (plain[u[i + run] >> 6] >> (u[i + run] & 63) & 1) != 0)
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
        } else if ((n = utf8_seq_len(u + i, len - i)) > 0) {
            jb_raw(b, s + i, n);
            i += n;
        } else {
            snprintf(esc, sizeof(esc), "\\u%04x", u[i]);
            jb_raw(b, esc, 6);
            i++;
        }
    }
    if (i < len)
        jb_raw(b, "...", 3);
    jb_raw(b, "\"", 1);
}

/* A member's key as it is written, quotes and colon included, made when sluice is built. */
struct jb_key {
    const char *text;
    size_t len;
};
#define KEY(name) ((struct jb_key){"\"" name "\":", sizeof(name) + 2})

/* Starts a member: the comma, the key; put with the member's bytes or the frame's. */
static void jb_key_put(struct jbuf *b, struct jb_key key, size_t limit)
{
    if (!b->first)
        jb_put(b, ",", 1, limit);
    b->first = false;
    jb_put(b, key.text, key.len, limit);
}

static void jb_key(struct jbuf *b, struct jb_key key)
{
    jb_key_put(b, key, b->cap);
}

/* An object member: part of the frame, so it opens and closes whatever its members do. */
static void jb_open(struct jbuf *b, struct jb_key key)
{
    jb_key_put(b, key, b->hard);
    jb_frame(b, "{", 1);
    b->first = true;
}

static void jb_close(struct jbuf *b)
{
    jb_frame(b, "}", 1);
    b->first = false;
}

/* A string member of at most about max bytes, left out when value is NULL, empty or "-"
 * (nothing known), or when it does not fit. */
static void jb_str_max(struct jbuf *b, struct jb_key key, const char *value, size_t max)
{
    struct jb_mark m = jb_begin(b);

    if (value == NULL || value[0] == '\0' || strcmp(value, "-") == 0)
        return;
    jb_key(b, key);
    jb_string(b, value, strlen(value), max);
    jb_end(b, m);
}

/* Bytes of a string member at most, unless said otherwise. */
#define JB_STRING_MAX 1024
/* Bytes of a URL member at most. */
#define AUDITLOG_URL_MAX 4096

static void jb_str(struct jbuf *b, struct jb_key key, const char *value)
{
    jb_str_max(b, key, value, JB_STRING_MAX);
}

static void jb_u64(struct jbuf *b, struct jb_key key, uint64_t v)
{
    struct jb_mark m = jb_begin(b);
    char num[24];
    size_t at = sizeof(num);

    jb_key(b, key);
    do {
        num[--at] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    jb_raw(b, num + at, sizeof(num) - at);
    jb_end(b, m);
}

/* A member that is true. */
static void jb_true(struct jbuf *b, struct jb_key key)
{
    struct jb_mark m = jb_begin(b);

    jb_key(b, key);
    jb_raw(b, "true", 4);
    jb_end(b, m);
}

/*
 * One captured body under key: the hash that names its file in the capture store, the
 * bytes kept, whether it was longer, the codings a reader undoes; "lost" in place of the
 * hash when it could not be kept.  Nothing when c is NULL.
 */
static void jb_capture(struct jbuf *b, struct jb_key key, const struct capture_ref *c)
{
    if (c == NULL || !c->present)
        return;
    jb_open(b, key);
    if (c->lost)
        jb_true(b, KEY("lost"));
    else
        jb_str(b, KEY("sha256"), c->sha256);
    jb_u64(b, KEY("bytes"), c->bytes);
    if (c->truncated)
        jb_true(b, KEY("truncated"));
    jb_str(b, KEY("codings"), c->codings);
    jb_close(b);
}

/* Starts an array member. */
static void jb_open_array(struct jbuf *b, struct jb_key key)
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
static void jb_secrets(struct jbuf *b, struct jb_key key, struct jb_key key_more,
                       const struct redact_seen *seen)
{
    char hex[2 * REDACT_HASH_BYTES + 1];

    struct jb_mark m = jb_begin(b);

    if (seen == NULL || seen->n == 0)
        return;
    /* One member, the array: it goes in whole or not at all. */
    jb_open_array(b, key);
    for (uint8_t i = 0; i < seen->n; i++) {
        const char *field = redact_name(seen->item[i].name);
        const char *scheme = redact_scheme(seen->item[i].scheme);

        jb_raw(b, b->first ? "{" : ",{", b->first ? 1 : 2);
        b->first = true;
        jb_key(b, KEY("field"));
        jb_string(b, field, strlen(field), JB_STRING_MAX);
        if (scheme[0] != '\0') {
            jb_key(b, KEY("scheme"));
            jb_string(b, scheme, strlen(scheme), JB_STRING_MAX);
        }
        redact_hash_hex(seen->item[i].hash, hex);
        jb_key(b, KEY("hash"));
        jb_string(b, hex, strlen(hex), JB_STRING_MAX);
        jb_raw(b, "}", 1);
        b->first = false;
    }
    jb_close_array(b);
    jb_end(b, m);
    if (seen->more > 0)
        jb_u64(b, key_more, seen->more);
}

/* source.ip and source.port from "ip:port" or "[ip]:port". */
static void jb_source(struct jbuf *b, const char *client)
{
    const char *colon = strrchr(client, ':');
    char ip[64];
    size_t len;

    jb_str(b, KEY("address"), client);
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
    jb_str(b, KEY("ip"), ip);
    jb_u64(b, KEY("port"), strtoul(colon + 1, NULL, 10));
}

/* The trail's file, queue and writer (linewriter.h). */
static struct linewriter trail = LINEWRITER_INIT;

/*
 * DIR/.NAME.lock beside the trail DIR/NAME, flock'd while the trail is open (-1: none):
 * one sluice per trail, or two would fork its chain.  It holds the holder's pid on a line,
 * then the chain's head, "RECORD_ID SHA256\n" (AUDITLOG_HEAD_LEN bytes, the id in 20
 * digits), written after every batch: a restart that finds the trail new or empty (moved
 * by logrotate, rotated by size) goes on from it.  The writer's alone while it runs.
 */
static int auditlog_lock_fd = -1;
static off_t auditlog_head_at; /* where the head starts in the lock file: past the pid */
static bool auditlog_head_failed;
#define AUDITLOG_HEAD_LEN (20 + 1 + 64 + 1)

/* The chain: the writer's alone (the line hooks run on it), and set before it starts. */
static struct {
    char prev[AUDITLOG_HASH_HEX];       /* the hash of the last line written */
    uint64_t next_id;                   /* the record id of the next line */
    char batch_prev[AUDITLOG_HASH_HEX]; /* the chain before the batch being written */
    uint64_t batch_id;
} auditlog;

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
    unsigned char md[32];
    unsigned int mdlen = 0;

    pthread_once(&auditlog_md_once, auditlog_md_fetch);
    if (auditlog_md == NULL || EVP_Digest(s, n, md, &mdlen, auditlog_md, NULL) != 1 ||
        mdlen != sizeof(md)) {
        memset(out, '0', 64);
        out[64] = '\0';
        return;
    }
    hex_lower(md, sizeof(md), out);
}

/* Formats a record up to its chain fields; see the header. */
const char *auditlog_format(const struct audit_record *r, size_t *len)
{
    /* Built in the thread's own room; the queue takes a copy of the line alone. */
    static _Thread_local char room[AUDITLOG_LINE_MAX];
    static _Thread_local time_t stamp_sec = -1;
    static _Thread_local char stamp[40];
    static _Thread_local size_t stamp_len; /* of "YYYY-MM-DDTHH:MM:SS." */
    struct jbuf b = {.p = room,
                     .cap = AUDITLOG_LINE_MAX - 200 - JB_FRAME_ROOM,
                     .hard = AUDITLOG_LINE_MAX - 200,
                     .first = true};
    struct timespec now;

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
    jb_str(&b, KEY("@timestamp"), stamp);
    jb_open(&b, KEY("event"));
    jb_str(&b, KEY("action"), r->is_connect ? "tunnel" : "http_request");
    jb_u64(&b, KEY("duration"), r->duration_ms * 1000000u); /* ECS: nanoseconds */
    jb_close(&b);
    jb_open(&b, KEY("source"));
    jb_source(&b, r->client);
    jb_close(&b);
    jb_open(&b, KEY("destination"));
    jb_str(&b, KEY("domain"), r->host);
    jb_str(&b, KEY("ip"), r->dest_ip);
    if (r->port != 0)
        jb_u64(&b, KEY("port"), r->port);
    if (r->country != NULL && strcmp(r->country, "-") != 0) {
        jb_open(&b, KEY("geo"));
        jb_str(&b, KEY("country_iso_code"), r->country);
        jb_close(&b);
    }
    if (r->asn != 0) {
        jb_open(&b, KEY("as"));
        jb_u64(&b, KEY("number"), r->asn);
        jb_close(&b);
    }
    jb_close(&b);
    if (!r->is_connect) {
        /* A forwarded request's target is absolute: the full URL, as the client sent it. */
        /* audit.c hid the target's secrets (redact_url). */
        jb_open(&b, KEY("url"));
        jb_str_max(&b, KEY("original"), r->target, AUDITLOG_URL_MAX);
        jb_str_max(&b, KEY("full"), r->target, AUDITLOG_URL_MAX);
        if (r->path != NULL) { /* ECS's path has no query: that is in full, redacted */
            struct jb_mark m = jb_begin(&b);
            jb_key(&b, KEY("path"));
            jb_string(&b, r->path, strcspn(r->path, "?"), AUDITLOG_URL_MAX / 2);
            jb_end(&b, m);
        }
        jb_close(&b);
    }
    if (r->user_agent != NULL) {
        jb_open(&b, KEY("user_agent"));
        jb_str(&b, KEY("original"), r->user_agent);
        jb_close(&b);
    }
    jb_open(&b, KEY("http"));
    jb_open(&b, KEY("request"));
    jb_str(&b, KEY("method"), r->method);
    jb_u64(&b, KEY("bytes"), r->sent);
    jb_close(&b);
    jb_open(&b, KEY("response"));
    if (r->status != 0)
        jb_u64(&b, KEY("status_code"), r->status);
    jb_u64(&b, KEY("bytes"), r->received);
    jb_str(&b, KEY("mime_type"), r->media_type);
    jb_close(&b);
    jb_close(&b);
    if (r->sni != NULL && r->sni[0] != '\0') {
        jb_open(&b, KEY("tls"));
        jb_open(&b, KEY("client"));
        jb_str(&b, KEY("server_name"), r->sni);
        jb_close(&b);
        jb_close(&b);
    }
    if (r->user != NULL && r->user[0] != '\0') {
        jb_open(&b, KEY("user"));
        jb_str(&b, KEY("name"), r->user);
        jb_close(&b);
    }
    if (r->pid != 0) {
        jb_open(&b, KEY("process"));
        jb_u64(&b, KEY("pid"), r->pid);
        jb_str(&b, KEY("executable"), r->exe);
        jb_str_max(&b, KEY("command_line"), r->cmd, 2 * JB_STRING_MAX);
        if (r->parent_pid != 0) {
            jb_open(&b, KEY("parent"));
            jb_u64(&b, KEY("pid"), r->parent_pid);
            jb_str(&b, KEY("executable"), r->parent_exe);
            jb_close(&b);
        }
        if (r->exe_sha256 != NULL && r->exe_sha256[0] != '\0') {
            jb_open(&b, KEY("hash"));
            jb_str(&b, KEY("sha256"), r->exe_sha256);
            jb_close(&b);
        }
        if (r->uid != UINT32_MAX) {
            char uid[16];
            snprintf(uid, sizeof(uid), "%" PRIu32, r->uid);
            jb_open(&b, KEY("user"));
            jb_str(&b, KEY("id"), uid);
            jb_close(&b);
        }
        jb_close(&b);
    }
    jb_open(&b, KEY("rule"));
    jb_str(&b, KEY("id"), r->rule);
    jb_str(&b, KEY("ruleset"), r->rule_file);
    jb_close(&b);
    jb_open(&b, KEY("sluice"));
    jb_str(&b, KEY("tool"), r->tool);
    jb_str(&b, KEY("tool_version"), r->version);
    jb_str(&b, KEY("identity_source"), r->id_source);
    jb_str(&b, KEY("identity_mismatch"), r->mismatch);
    jb_str(&b, KEY("offered_user"), r->offered);
    jb_str(&b, KEY("process_chain"), r->chain);
    jb_str(&b, KEY("decision"), r->decision);
    jb_str(&b, KEY("termination"), r->term);
    jb_str(&b, KEY("tls_mode"), r->tls_mode);
    jb_str(&b, KEY("set_fields"), r->set_fields);
    if (r->interim)
        jb_true(&b, KEY("interim"));
    jb_str(&b, KEY("error"), r->error);
    jb_secrets(&b, KEY("request_secrets"), KEY("request_secrets_more"), r->req_secrets);
    jb_secrets(&b, KEY("response_secrets"), KEY("response_secrets_more"), r->resp_secrets);
    if (r->req_capture != NULL || r->resp_capture != NULL) {
        jb_open(&b, KEY("capture"));
        jb_capture(&b, KEY("request"), r->req_capture);
        jb_capture(&b, KEY("response"), r->resp_capture);
        jb_close(&b);
    }
    /* A member left out for room is said, in the frame's own room. */
    if (b.dropped) {
        jb_key_put(&b, KEY("truncated"), b.hard);
        jb_frame(&b, "true", 4);
    }
    /* The writer closes the object with the record's number and the chain. */
    jb_frame(&b, b.first ? "" : ",", b.first ? 0 : 1);
    b.p[b.len] = '\0';
    *len = b.len;
    return b.p;
}

/* The trail's line of a queued record: its record number and chain added (line hook). */
static size_t auditlog_line(const char *body, size_t blen, char *out, void *arg)
{
    static const char id_key[] = "\"record_id\":", prev_key[] = "," AUDITLOG_PREV_KEY;
    char digits[24];
    size_t at = sizeof(digits), len = blen;
    uint64_t id = auditlog.next_id;

    (void)arg;
    do { /* the record id in decimal, made from its last digit */
        digits[--at] = (char)('0' + id % 10);
        id /= 10;
    } while (id > 0);
    memcpy(out, body, blen);
    memcpy(out + len, id_key, sizeof(id_key) - 1);
    len += sizeof(id_key) - 1;
    memcpy(out + len, digits + at, sizeof(digits) - at);
    len += sizeof(digits) - at;
    memcpy(out + len, prev_key, sizeof(prev_key) - 1);
    len += sizeof(prev_key) - 1;
    memcpy(out + len, auditlog.prev, 64);
    len += 64;
    memcpy(out + len, "\"}}", 3);
    len += 3;
    auditlog_sha256(out, len, auditlog.prev);
    out[len] = '\n';
    auditlog.next_id++;
    return len + 1;
}

/* A batch begins: what its failure goes back to (save hook). */
static void auditlog_save(void *arg)
{
    (void)arg;
    memcpy(auditlog.batch_prev, auditlog.prev, sizeof(auditlog.prev));
    auditlog.batch_id = auditlog.next_id;
}

/* The batch was not written: the chain goes on from the file's last line (restore hook). */
static void auditlog_restore(void *arg)
{
    (void)arg;
    memcpy(auditlog.prev, auditlog.batch_prev, sizeof(auditlog.prev));
    auditlog.next_id = auditlog.batch_id;
}

/*
 * Reads the last whole line of the file open on fd (-1: none): its hash and record id
 * continue the chain.  A last line cut short by a crash is left for linewriter_open() to
 * cut off; the chain goes on from the line before it.
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
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0)
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

/*
 * The lock file's path for the trail at path into out: DIR/.NAME.lock, of the trail as
 * the file system resolves it (a symbolic link to the trail, under whatever name, shares
 * its lock; a trail not made yet is resolved through its directory).  False when it does
 * not fit.
 */
static bool auditlog_lock_path(const char *path, char *out, size_t cap)
{
    char real[PATH_MAX];
    const char *slash;
    size_t dir, name;

    if (realpath(path, real) != NULL) {
        path = real;
    } else if ((slash = strrchr(path, '/')) != NULL && slash != path) {
        char parent[PATH_MAX];
        size_t n = (size_t)(slash - path);

        if (n < sizeof(parent)) {
            memcpy(parent, path, n);
            parent[n] = '\0';
            if (realpath(parent, real) != NULL && strlen(real) + strlen(slash) < sizeof(real)) {
                memcpy(real + strlen(real), slash, strlen(slash) + 1);
                path = real;
            }
        }
    }
    slash = strrchr(path, '/');
    dir = slash != NULL ? (size_t)(slash - path) + 1 : 0;
    name = strlen(path) - dir;

    if (dir + 1 + name + 5 + 1 > cap)
        return false;
    memcpy(out, path, dir);
    out[dir] = '.';
    memcpy(out + dir + 1, path + dir, name);
    memcpy(out + dir + 1 + name, ".lock", 6);
    return true;
}

/*
 * Takes the trail's lock, held until auditlog_close(), so that no second sluice appends
 * to it (two writers fork the chain: two records with one record_id).  The lock is a file
 * of its own, beside the trail, so that it stays when logrotate moves the trail or SIGUSR1
 * reopens it; hidden, so that a logrotate glob of the whole directory passes it by.  A trail
 * that is not a regular file (a pipe, /dev/stdout) has none.  Returns 0, or -1 with a
 * sentence in err naming the holder.
 */
static int auditlog_take_lock(const char *path, uint64_t *head_id, char head[AUDITLOG_HASH_HEX],
                              char *err, size_t cap)
{
    char lock[PATH_MAX], pid[32], held[128];
    struct stat st;
    ssize_t n;
    int fd;

    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return 0;
    if (!auditlog_lock_path(path, lock, sizeof(lock))) {
        snprintf(err, cap, "the audit trail's path is too long for its lock beside it: %s", path);
        return -1;
    }
    fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, cap,
                 "cannot make the audit trail's lock %s: %s (it keeps a second sluice from "
                 "writing %s; sluice must be able to write in its directory)",
                 lock, strerror(errno), path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        long holder = 0;

        if ((n = pread(fd, pid, sizeof(pid) - 1, 0)) > 0) {
            pid[n] = '\0';
            holder = strtol(pid, NULL, 10);
        }
        if (holder > 0)
            snprintf(pid, sizeof(pid), " (pid %ld)", holder);
        else
            pid[0] = '\0';
        snprintf(err, cap,
                 "the audit trail %s is being written by another sluice%s, which holds %s: "
                 "stop that sluice first (one that is draining holds it until it exits), or "
                 "give each sluice its own --audit-log; two would fork the trail's chain",
                 path, pid, lock);
        close(fd);
        return -1;
    }
    /* The head the last holder kept: "PID\nRECORD_ID SHA256\n". */
    *head_id = 0;
    if ((n = pread(fd, held, sizeof(held) - 1, 0)) > 0) {
        char *nl, *end;
        uint64_t id;

        held[n] = '\0';
        if ((nl = strchr(held, '\n')) != NULL && (id = strtoull(nl + 1, &end, 10)) > 0 &&
            end == nl + 21 && *end == ' ' && strspn(end + 1, "0123456789abcdef") == 64 &&
            end[65] == '\n') {
            *head_id = id;
            memcpy(head, end + 1, 64);
            head[64] = '\0';
        }
    }
    /* The new pid with the head kept, in one write, then cut to that length: a crash
     * between the two leaves the head there still. */
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    auditlog_head_at = n;
    n = *head_id > 0 ? snprintf(held, sizeof(held), "%s%020" PRIu64 " %s\n", pid, *head_id, head)
                     : snprintf(held, sizeof(held), "%s", pid);
    if (pwrite(fd, held, (size_t)n, 0) != n || ftruncate(fd, n) < 0)
        log_warn("cannot write the pid into the audit trail's lock %s: %s", lock, strerror(errno));
    auditlog_lock_fd = fd;
    return 0;
}

/* Keeps the chain's head in the lock file, after each batch written (written hook). */
static void auditlog_keep_head(void *arg)
{
    char head[AUDITLOG_HEAD_LEN + 1];

    (void)arg;
    if (auditlog_lock_fd < 0)
        return;
    snprintf(head, sizeof(head), "%020" PRIu64 " %s\n", auditlog.next_id - 1, auditlog.prev);
    if (pwrite(auditlog_lock_fd, head, AUDITLOG_HEAD_LEN, auditlog_head_at) != AUDITLOG_HEAD_LEN &&
        !auditlog_head_failed) {
        auditlog_head_failed = true; /* said once */
        log_warn("cannot keep the audit trail's last record in its lock file: %s; a restart "
                 "that finds the trail moved or empty starts a new chain",
                 strerror(errno));
    }
}

/* Lets the trail's lock go. */
static void auditlog_drop_lock(void)
{
    if (auditlog_lock_fd >= 0) {
        if (fdatasync(auditlog_lock_fd) < 0 && errno != EINVAL)
            log_warn("cannot sync the audit trail's lock file: %s", strerror(errno));
        close(auditlog_lock_fd); /* the lock goes with it; the file stays for the next */
    }
    auditlog_lock_fd = -1;
}

/* Opens the trail; see the header. */
int auditlog_open(const struct auditlog_options *opt, char *err, size_t cap)
{
    const struct linewriter_options lw = {
        .path = opt->path,
        .what = "audit trail",
        .queue = AUDITLOG_QUEUE,
        .sync_ms = opt->sync_ms,
        .rotate_bytes = opt->rotate_bytes,
        .keep = opt->keep,
        .hooks = {.line = auditlog_line,
                  .save = auditlog_save,
                  .restore = auditlog_restore,
                  .written = auditlog_keep_head},
    };
    char kept[AUDITLOG_HASH_HEX];
    uint64_t kept_id = 0;
    bool from_lock = false;
    int rfd;

    /* Taken before the last line is read: no other sluice appends after it. */
    if (auditlog_take_lock(opt->path, &kept_id, kept, err, cap) < 0)
        return -1;
    /* The chain goes on from the file's last line, before the writer starts; from the head
     * the lock file kept when the file is new or empty (logrotate moved it, or it was
     * rotated by size, before the restart). */
    rfd = open(opt->path, O_RDONLY | O_CLOEXEC);
    auditlog_continue(rfd);
    if (rfd >= 0)
        close(rfd);
    if (auditlog.next_id == 1 && kept_id > 0) {
        auditlog.next_id = kept_id + 1;
        memcpy(auditlog.prev, kept, sizeof(auditlog.prev));
        from_lock = true;
    }
    auditlog_head_failed = false;
    auditlog_keep_head(NULL); /* kept again after the new pid, before the writer starts */
    if (linewriter_open(&trail, &lw, "sluice-audit", err, cap) < 0) {
        auditlog_drop_lock();
        return -1;
    }
    /* Where the chain stands, in the log too: a copy of it kept elsewhere shows a trail
     * whose end was cut off (verify prints the same for the file). */
    if (auditlog.next_id == 1)
        log_notice("audit trail: %s; a new chain, from record 1", opt->path);
    else
        log_notice("audit trail: %s; the chain goes on after record %" PRIu64
                   ", whose line's SHA-256 is %s%s",
                   opt->path, auditlog.next_id - 1, auditlog.prev,
                   from_lock ? " (that record is in an earlier file: this one is new or empty)"
                             : "");
    return 0;
}

/* Closes the trail; see the header. */
void auditlog_close(void)
{
    bool was_open = linewriter_enabled(&trail);

    linewriter_close(&trail); /* the writer has stopped: its chain is ours to read */
    if (!was_open)
        return;
    auditlog_drop_lock(); /* every record is written: the next sluice may go on */
    if (auditlog.next_id == 1)
        log_notice("audit trail closed: no record in it");
    else
        log_notice("audit trail closed: the last record is %" PRIu64 ", whose line's SHA-256 is %s",
                   auditlog.next_id - 1, auditlog.prev);
}

bool auditlog_enabled(void)
{
    return linewriter_enabled(&trail);
}

uint64_t auditlog_lost(void)
{
    return linewriter_lost(&trail);
}

size_t auditlog_queue_depth(void)
{
    return linewriter_queue_depth(&trail);
}

/* Queues a record; see the header. */
void auditlog_record(const struct audit_record *r)
{
    const char *line;
    size_t len;

    if (auditlog_enabled()) {
        line = auditlog_format(r, &len);
        linewriter_queue(&trail, line, len);
    }
}

/*
 * The chain fields at the end of a trail line (len bytes, no newline): its record id into
 * *id and where its prev_hash's 64 hex digits start into *prev.  False when the line does
 * not end in "record_id":N,"prev_hash":"<64 hex>"}} as the writer ends every line.
 */
static bool auditlog_chain_fields(const char *line, size_t len, uint64_t *id, const char **prev)
{
    static const char id_key[] = "\"record_id\":", prev_key[] = "," AUDITLOG_PREV_KEY;
    const size_t tail = sizeof(prev_key) - 1 + 64 + 3;
    const char *digits, *key;
    uint64_t v = 0;

    if (len < tail + sizeof(id_key) || memcmp(line + len - 3, "\"}}", 3) != 0)
        return false;
    key = line + len - tail;
    if (memcmp(key, prev_key, sizeof(prev_key) - 1) != 0)
        return false;
    *prev = key + sizeof(prev_key) - 1;
    for (size_t i = 0; i < 64; i++)
        if ((*prev)[i] == '\0' || strchr("0123456789abcdef", (*prev)[i]) == NULL)
            return false;
    digits = key;
    while (digits > line && digits[-1] >= '0' && digits[-1] <= '9')
        digits--;
    if (digits == key || key - digits > 19 || (size_t)(digits - line) < sizeof(id_key) - 1 ||
        memcmp(digits - (sizeof(id_key) - 1), id_key, sizeof(id_key) - 1) != 0)
        return false;
    for (const char *d = digits; d < key; d++)
        v = v * 10 + (uint64_t)(*d - '0');
    *id = v;
    return true;
}

/* Checks the chain of files; see the header. */
int auditlog_verify(char *const *paths, size_t n, FILE *out)
{
    static const char zeros[] = "0000000000000000000000000000000000000000000000000000000000000000";
    char prev[AUDITLOG_HASH_HEX] = "", first_prev[AUDITLOG_HASH_HEX] = "", *line = NULL;
    size_t cap = 0, total = 0;
    uint64_t first_id = 0, last_id = 0;
    FILE *in = NULL;

    for (size_t f = 0; f < n; f++) {
        ssize_t len;
        size_t lineno = 0;

        if ((in = fopen(paths[f], "r")) == NULL) {
            fprintf(out, "%s: cannot read: %s\n", paths[f], strerror(errno));
            free(line);
            return 2;
        }
        while ((len = getline(&line, &cap, in)) > 0) {
            const char *at;
            uint64_t id;

            lineno++;
            if (line[len - 1] != '\n') {
                fprintf(out,
                        "%s:%zu: the last line is cut short (no newline): sluice was stopped "
                        "while writing it, and removes it when it next opens the file; the "
                        "%zu records before it hold\n",
                        paths[f], lineno, total);
                goto fail;
            }
            line[--len] = '\0';
            if (!auditlog_chain_fields(line, (size_t)len, &id, &at)) {
                fprintf(out,
                        "%s:%zu: not an audit record (no record_id and prev_hash at its end)\n",
                        paths[f], lineno);
                goto fail;
            }
            if (total == 0) {
                /* Record 1 begins the chain: nothing comes before it. */
                if (id == 1 && strncmp(at, zeros, 64) != 0) {
                    fprintf(out,
                            "%s:%zu: the chain breaks here: record 1 has a prev_hash that is not "
                            "zeros, so it was not the first record written (it was edited)\n",
                            paths[f], lineno);
                    goto fail;
                }
                first_id = id;
                memcpy(first_prev, at, 64);
                first_prev[64] = '\0';
            } else if (id != last_id + 1) {
                fprintf(out,
                        "%s:%zu: the chain breaks here: its record_id is %" PRIu64
                        " and the one before it is %" PRIu64 " (records were %s there)\n",
                        paths[f], lineno, id, last_id,
                        id > last_id + 1 ? "removed, or this one was added"
                                         : "repeated, moved or added");
                goto fail;
            } else if (strncmp(at, prev, 64) != 0) {
                fprintf(out,
                        "%s:%zu: the chain breaks here: its prev_hash is not the hash of the "
                        "line before it (a line was changed, removed or moved there)\n",
                        paths[f], lineno);
                goto fail;
            }
            auditlog_sha256(line, (size_t)len, prev);
            last_id = id;
            total++;
        }
        fclose(in);
    }
    free(line);
    if (total == 0) {
        fprintf(out, "0 records: nothing to check\n");
        return 0;
    }
    if (first_id != 1) {
        fprintf(out,
                "%zu record%s, the chain holds from record %" PRIu64 " to record %" PRIu64
                " (the last line's SHA-256: %s), but it starts at record %" PRIu64
                " (prev_hash %s): the records before it are in another file, or were removed; "
                "give the earlier files too\n",
                total, total == 1 ? "" : "s", first_id, last_id, prev, first_id, first_prev);
        return 3;
    }
    fprintf(out,
            "%zu record%s, the chain holds from record 1 to record %" PRIu64
            " (the last line's SHA-256: %s)\n",
            total, total == 1 ? "" : "s", last_id, prev);
    return 0;

fail:
    fclose(in);
    free(line);
    return 1;
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
