/*
 * libFuzzer target for what reaches the log from the network.  The first byte picks one
 * of four checks; the rest is its input.
 *
 *   0  any bytes as a Proxy-Authorization value, through identity_resolve(): never read
 *      out of bounds; the user name fits; where the value is "Basic" and well-formed
 *      base64 (read by this file's own decoder), the user is exactly the bytes before
 *      the first ':', or "" when they do not fit.
 *   1  the input as "user:pass" (user up to the first ':'), base64-encoded in a Basic
 *      credential spelt in one of several ways: the user name comes back exactly, or ""
 *      when it is too long, never cut short.
 *   2  any bytes through log_escape() into every capacity from 1 to 64 and one large
 *      enough: NUL-terminated inside the capacity, printable ASCII only, every '"'
 *      escaped, no lone trailing backslash, and decoding the escapes gives the input (or,
 *      ending in "...", a prefix of it).
 *   3  the input as a request head, taken as the session takes it (parser,
 *      request_from_head(), identity_resolve()) into an access line by audit_emit(); the
 *      line, caught on its way to stderr, holds one '\n' at its end and no other control
 *      byte, its fields are exactly the expected keys, and its quoted target and offered
 *      user decode to what the client sent.
 *
 * A credential with a control character anywhere (RFC 7617 section 2 forbids them: a NUL
 * would cut a name short and name another tool) gives no user name at all.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/audit.h"
#include "sluice/http1.h"
#include "sluice/identity.h"
#include "sluice/log.h"
#include "sluice/policy.h"
#include "sluice/redact.h"
#include "sluice/request.h"
#include "fuzzcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longest credential src/identity.c decodes (IDENTITY_MAX_AUTH there); longer ones name
 * no user. */
#define AUTH_MAX 512
#define FIELDS   100

/* A policy with no tools: every user name is an offered one, as the log shows it. */
static struct policy_snapshot no_tools;

/* True for the bytes no log line may hold raw: C0 controls and DEL. */
static bool is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* The value of one base64 digit, or -1. */
static int b64_digit(unsigned char c)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c != '\0' ? strchr(digits, c) : NULL;

    return p != NULL ? (int)(p - digits) : -1;
}

/* Decodes strict base64 (RFC 4648: groups of four, '=' only at the end) in[0..n) into
 * out (room for 3n/4 bytes).  Returns the decoded length, or -1. */
static long b64_decode(const unsigned char *in, size_t n, unsigned char *out)
{
    size_t o = 0;

    if (n == 0 || n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int d[4];
        size_t pad = 0;
        for (int k = 0; k < 4; k++) {
            bool last = i + 4 == n;
            if (in[i + k] == '=' && last && k >= 2 && (k == 3 || in[i + 3] == '=')) {
                d[k] = 0;
                pad++;
                continue;
            }
            if ((d[k] = b64_digit(in[i + k])) < 0)
                return -1;
        }
        out[o++] = (unsigned char)(d[0] << 2 | d[1] >> 4);
        if (pad < 2)
            out[o++] = (unsigned char)((d[1] & 15) << 4 | d[2] >> 2);
        if (pad < 1)
            out[o++] = (unsigned char)((d[2] & 3) << 6 | d[3]);
    }
    return (long)o;
}

/* Encodes in[0..n) as base64 with padding into out (room for 4 * ceil(n/3) + 1). */
static size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = digits[v >> 18 & 63];
        out[o++] = digits[v >> 12 & 63];
        out[o++] = i + 1 < n ? digits[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? digits[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

/* Checks a user name identity_resolve() gave: it fits and has no control byte. */
static void check_user(const struct identity *id)
{
    size_t n = strnlen(id->user, sizeof(id->user));

    CHECK(n < sizeof(id->user));
    CHECK(id->tool == NULL && id->source == IDENTITY_NONE);
    for (size_t i = 0; i < n; i++)
        CHECK(!is_control((unsigned char)id->user[i]));
}

/*
 * Whether the decoded credential cred[0..n), whose user name is its first ulen bytes, is
 * one identity_resolve() takes: a name that fits, and no control byte anywhere.
 */
static bool credential_returnable(const unsigned char *cred, size_t n, size_t ulen)
{
    if (ulen == 0 || ulen >= IDENTITY_USER_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (is_control(cred[i]))
            return false;
    return true;
}

/* 0: any bytes as a Proxy-Authorization value. */
static void fuzz_basic_value(const uint8_t *data, size_t size)
{
    char *v = malloc(size > 0 ? size : 1); /* exactly the value: reading past it is caught */
    unsigned char decoded[AUTH_MAX];
    struct identity id;
    size_t i = 0;
    long n;

    CHECK(v != NULL);
    memcpy(v, data, size);
    identity_resolve(&no_tools, &(struct identity_input){.proxy_auth = v, .proxy_auth_len = size},
                     &id);
    check_user(&id);

    /* This file's own reading: [SP/HTAB] "Basic" (any case) SP [SP...] base64. */
    while (i < size && (v[i] == ' ' || v[i] == '\t'))
        i++;
    if (size - i >= 6 && strncasecmp(v + i, "Basic ", 6) == 0) {
        const unsigned char *colon;
        i += 6;
        while (i < size && v[i] == ' ')
            i++;
        n = size - i <= AUTH_MAX ? b64_decode((const unsigned char *)v + i, size - i, decoded) : -1;
        colon = n > 0 ? memchr(decoded, ':', (size_t)n) : NULL;
        if (colon != NULL && credential_returnable(decoded, (size_t)n, (size_t)(colon - decoded)))
            CHECK(strlen(id.user) == (size_t)(colon - decoded) &&
                  memcmp(id.user, decoded, (size_t)(colon - decoded)) == 0);
        else if (n >= 0)
            CHECK(id.user[0] == '\0');
    }
    free(v);
}

/* 1: "user:pass" from the input, base64-encoded into a Basic credential; flags (the first
 * byte) spell the scheme and the spaces around it. */
static void fuzz_basic_roundtrip(uint8_t flags, const uint8_t *data, size_t size)
{
    static const char *const schemes[] = {"Basic", "basic", "BASIC", "bAsIc"};
    const uint8_t *colon = memchr(data, ':', size);
    size_t ulen = colon != NULL ? (size_t)(colon - data) : size, n = 0;
    char *v = malloc(8 + 3 + 4 * (size + 1) / 3 + 8 + 1), *exact;
    struct identity id;

    CHECK(v != NULL);
    for (unsigned k = 0; k < (flags >> 2 & 3u); k++)
        v[n++] = k & 1 ? '\t' : ' ';
    memcpy(v + n, schemes[flags & 3], 5);
    n += 5;
    for (unsigned k = 0; k <= (flags >> 4 & 3u); k++)
        v[n++] = ' ';
    if (colon == NULL) {
        /* No ':' in the input: the password is empty. */
        unsigned char *up = malloc(size + 1);
        CHECK(up != NULL);
        memcpy(up, data, size);
        up[size] = ':';
        n += b64_encode(up, size + 1, v + n);
        free(up);
    } else {
        n += b64_encode(data, size, v + n);
    }
    exact = malloc(n);
    CHECK(exact != NULL);
    memcpy(exact, v, n);
    identity_resolve(&no_tools, &(struct identity_input){.proxy_auth = exact, .proxy_auth_len = n},
                     &id);
    check_user(&id);
    if (credential_returnable(data, size, ulen) &&
        4 * ((size + (colon == NULL) + 2) / 3) <= AUTH_MAX)
        CHECK(strlen(id.user) == ulen && memcmp(id.user, data, ulen) == 0);
    else
        CHECK(id.user[0] == '\0'); /* refused whole, never cut short */
    free(exact);
    free(v);
}

/* Decodes the escapes of out[0..n) into dec (room for n bytes); returns its length, or -1
 * when out is not a well-formed escaped text: printable ASCII, '"' and '\\' only escaped,
 * every backslash starting one of \\, \" and \xHH (lower-case hex). */
static long unescape(const char *out, size_t n, char *dec)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        const char *h1, *h2;
        if (c < 0x20 || c >= 0x7f || c == '"')
            return -1;
        if (c != '\\') {
            dec[o++] = (char)c;
            continue;
        }
        if (i + 1 >= n)
            return -1; /* a lone trailing backslash */
        if (out[i + 1] == '\\' || out[i + 1] == '"') {
            dec[o++] = out[++i];
            continue;
        }
        if (out[i + 1] != 'x' || i + 3 >= n || out[i + 2] == '\0' || out[i + 3] == '\0' ||
            (h1 = strchr(hex, out[i + 2])) == NULL || (h2 = strchr(hex, out[i + 3])) == NULL)
            return -1;
        dec[o++] = (char)((h1 - hex) << 4 | (h2 - hex));
        /* Only what needs it is escaped, so that the line stays readable. */
        if (!is_control((unsigned char)dec[o - 1]) && (unsigned char)dec[o - 1] < 0x80)
            return -1;
        i += 3;
    }
    return (long)o;
}

/* Checks that escaped text out[0..n) stands for src[0..len): all of it, or, ending in
 * "...", a part of it at its start (with no room for "...", nothing); whole is true when
 * it must be all of it. */
static void check_escaped(const char *out, size_t n, const char *src, size_t len, bool whole,
                          bool dots)
{
    char *dec = malloc(n + 1);
    long d;

    CHECK(dec != NULL);
    d = unescape(out, n, dec);
    CHECK(d >= 0);
    if (!((size_t)d == len && memcmp(dec, src, len) == 0) && !dots) {
        CHECK(!whole && n == 0);
    } else if (!((size_t)d == len && memcmp(dec, src, len) == 0)) {
        CHECK(!whole && n >= 3 && memcmp(out + n - 3, "...", 3) == 0);
        d = unescape(out, n - 3, dec);
        CHECK(d >= 0 && (size_t)d < len && memcmp(dec, src, (size_t)d) == 0);
    }
    free(dec);
}

/* Escapes src[0..len) into exactly cap bytes and checks the result. */
static void escape_into(size_t cap, const char *src, size_t len, bool whole)
{
    char *dst = malloc(cap);
    const char *nul;

    CHECK(dst != NULL);
    memset(dst, 0xaa, cap);
    CHECK(log_escape(dst, cap, src, len) == dst);
    nul = memchr(dst, '\0', cap);
    CHECK(nul != NULL);
    check_escaped(dst, (size_t)(nul - dst), src, len, whole, cap >= 4);
    free(dst);
}

/* 2: any bytes through log_escape() at every small capacity and a large one. */
static void fuzz_escape(const uint8_t *data, size_t size)
{
    char *src = malloc(size > 0 ? size : 1);

    CHECK(src != NULL);
    memcpy(src, data, size);
    for (size_t cap = 1; cap <= 64; cap++)
        escape_into(cap, src, size, false);
    /* Four bytes per input byte at most, and room kept for "..." and the NUL. */
    escape_into(4 * size + 4, src, size, true);
    free(src);
}

/* Where log lines go while this target catches them: a pipe, read back after each. */
static int catch_read = -1, catch_write = -1, saved_stderr = -1;

/* Holds log lines in this thread and opens the pipe that catches them, once. */
static void catch_init(void)
{
    int fds[2];

    if (catch_read >= 0)
        return;
    CHECK(pipe(fds) == 0);
    catch_read = fds[0];
    catch_write = fds[1];
    CHECK(fcntl(catch_read, F_SETFL, O_NONBLOCK) == 0);
    CHECK((saved_stderr = dup(STDERR_FILENO)) >= 0);
    CHECK(log_buffer_start(NULL, NULL) == 0);
}

/* Writes the lines held into the pipe (stderr is the pipe only meanwhile) and reads them
 * into buf (capacity cap, NUL-terminated); returns their length. */
static size_t catch_lines(char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;

    CHECK(dup2(catch_write, STDERR_FILENO) == STDERR_FILENO);
    log_flush();
    CHECK(dup2(saved_stderr, STDERR_FILENO) == STDERR_FILENO);
    while (n + 1 < cap && (r = read(catch_read, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    return n;
}

/* The keys of an access line, in order; version, offered, pid, exe, mismatch and error
 * appear only when set. */
static const char *const access_keys[] = {
    "client", "method",   "target",   "status",  "sent", "received", "ms",  "sni",    "term",
    "tool",   "version",  "id",       "offered", "pid",  "uid",      "exe", "sha256", "cmd",
    "chain",  "mismatch", "decision", "rule",    "dst",  "country",  "asn", "error"};

/* True when an access line may leave key out. */
static bool access_key_optional(const char *key)
{
    static const char *const optional[] = {"version", "offered", "pid",   "uid",      "exe",
                                           "sha256",  "cmd",     "chain", "mismatch", "error"};

    for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
        if (strcmp(key, optional[i]) == 0)
            return true;
    return false;
}

/* Checks one access line: its bytes, its keys in order, and what its quoted values say. */
static void check_access_line(const char *line, size_t n, const struct audit_record *rec)
{
    const char *p, *end = line + n - 1;
    size_t k = 0;

    CHECK(n > 0 && line[n - 1] == '\n');
    for (size_t i = 0; i + 1 < n; i++)
        CHECK(!is_control((unsigned char)line[i]) && (unsigned char)line[i] < 0x80);
    p = strstr(line, " notice access ");
    CHECK(p != NULL);
    p += strlen(" notice access ");
    while (p < end) {
        const char *eq = memchr(p, '=', (size_t)(end - p)), *v, *ve;
        size_t klen;

        CHECK(eq != NULL);
        klen = (size_t)(eq - p);
        /* The next key; only the optional ones may be left out. */
        while (k < sizeof(access_keys) / sizeof(access_keys[0]) &&
               !(strlen(access_keys[k]) == klen && memcmp(access_keys[k], p, klen) == 0)) {
            CHECK(access_key_optional(access_keys[k]));
            k++;
        }
        CHECK(k < sizeof(access_keys) / sizeof(access_keys[0]));
        v = eq + 1;
        if (*v == '"') {
            /* A quoted value ends at the first quote no backslash escapes. */
            for (ve = v + 1; ve < end && *ve != '"'; ve++)
                if (*ve == '\\')
                    ve++;
            CHECK(ve < end);
            if (strcmp(access_keys[k], "target") == 0) {
                /* The target as every report has it: its secrets hidden (redact.h). */
                static char red[4096];
                size_t rn = redact_url(rec->target, strlen(rec->target), red, sizeof(red));
                check_escaped(v + 1, (size_t)(ve - v - 1), red, rn, false, true);
            }
            if (strcmp(access_keys[k], "cmd") == 0)
                check_escaped(v + 1, (size_t)(ve - v - 1), rec->cmd, strlen(rec->cmd), false, true);
            if (strcmp(access_keys[k], "chain") == 0)
                check_escaped(v + 1, (size_t)(ve - v - 1), rec->chain, strlen(rec->chain), false,
                              true);
            if (strcmp(access_keys[k], "offered") == 0)
                check_escaped(v + 1, (size_t)(ve - v - 1), rec->offered, strlen(rec->offered),
                              false, true);
            ve++;
        } else {
            for (ve = v; ve < end && *ve != ' '; ve++)
                CHECK(*ve != '"');
        }
        CHECK(ve == end || *ve == ' ');
        p = ve + (ve < end);
        k++;
    }
    /* Every key that is always there was there. */
    CHECK(k >= sizeof(access_keys) / sizeof(access_keys[0]) - 1);
    /* The offered user is in the line exactly when there is one. */
    CHECK((strstr(line, " offered=\"") != NULL) == (rec->offered[0] != '\0'));
}

/* 3: a request head, as the session takes it, into an access line. */
static void fuzz_access_line(const uint8_t *data, size_t size)
{
    static struct http1_field fields[FIELDS];
    static char caught[16384];
    struct http1_limits lim;
    struct http1_parser ps;
    struct http1_head h;
    struct request r;
    struct request_error err;
    struct identity id;
    struct audit_record rec;
    const char *buf = (const char *)data, *auth = NULL;
    char *target;
    size_t auth_len = 0, n;

    http1_limits_default(&lim);
    http1_parser_init(&ps, HTTP1_REQUEST, &lim, &h, fields, FIELDS);
    if (http1_parse_head(&ps, buf, size) <= 0)
        return;
    request_from_head(buf, &h, &r, &err); /* a refused request is logged as well */
    for (uint32_t i = 0; i < h.nfields; i++)
        if (http1_span_eq_ci(buf, h.fields[i].name, "proxy-authorization")) {
            auth = buf + h.fields[i].value.off;
            auth_len = h.fields[i].value.len;
        }
    identity_resolve(&no_tools,
                     &(struct identity_input){.proxy_auth = auth, .proxy_auth_len = auth_len}, &id);
    check_user(&id);
    target = malloc((size_t)h.target.len + 1);
    CHECK(target != NULL);
    memcpy(target, buf + h.target.off, h.target.len);
    target[h.target.len] = '\0';

    memset(&rec, 0, sizeof(rec));
    rec.client = "127.0.0.1:40000";
    rec.method = r.method[0] != '\0' ? r.method : "-";
    rec.target = target;
    rec.sni = "";
    rec.term = "--";
    rec.tool = "unidentified";
    rec.id_source = identity_source_str(id.source);
    rec.offered = id.user;
    /* A client's own command line is as hostile as its request target. */
    rec.pid = 4242;
    rec.uid = 1000;
    rec.cmd = target;
    rec.chain = target;
    rec.error = "";
    rec.decision = "-";
    rec.rule = "-";
    rec.dest_ip = "-";
    rec.country = "-";
    catch_init();
    audit_emit(&rec);
    n = catch_lines(caught, sizeof(caught));
    check_access_line(caught, n, &rec);
    free(target);
}

/* First byte: which check, and for the round trip how the credential is spelt. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] >> 6) {
    case 0:
        fuzz_basic_value(data + 1, size - 1);
        break;
    case 1:
        fuzz_basic_roundtrip(data[0], data + 1, size - 1);
        break;
    case 2:
        fuzz_escape(data + 1, size - 1);
        break;
    default:
        fuzz_access_line(data + 1, size - 1);
        break;
    }
    return 0;
}
