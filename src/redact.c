/* What the records say of secrets; see include/sluice/redact.h. */
#include "sluice/redact.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "sluice/hex.h"

/* Fields that carry credentials whatever the configuration adds. */
static const char *const redact_default_names[] = {
    "authorization",   "proxy-authorization",  "cookie",        "set-cookie",     "x-api-key",
    "api-key",         "x-goog-api-key",       "x-auth-token",  "x-access-token", "private-token",
    "job-token",       "x-amz-security-token", "x-vault-token", "x-csrf-token",   "x-xsrf-token",
    "x-refresh-token",
};

/* Authentication schemes named in the record; index 0 is "none named". */
static const char *const redact_schemes[] = {
    "", "Basic", "Bearer", "Digest", "NTLM", "Negotiate", "AWS4-HMAC-SHA256", "token", "other"};
#define REDACT_SCHEME_OTHER 8

/* Words that make a parameter's or option's name a secret's, anywhere in it. */
static const char *const redact_secret_words[] = {
    "token",  "secret",  "passw",   "key",       "auth", "cred",  "bearer",
    "cookie", "session", "private", "signature", "jwt",  "sessid"};
/* Names that are a secret's only when they are the whole name. */
static const char *const redact_secret_exact[] = {"pass", "pwd", "sig", "code", "sid"};

/* Set once by redact_configure(), read by every thread after. */
static struct {
    char names[REDACT_NAMES_MAX][64];
    size_t nnames;
    unsigned char key[REDACT_KEY_BYTES];
} redact;

/* True for a byte RFC 9110 allows in a field name (tchar). */
static bool redact_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Checks a header field name; see the header. */
int redact_check_name(const char *name, size_t len, char *err, size_t cap)
{
    if (len == 0 || len >= sizeof(redact.names[0])) {
        snprintf(err, cap, "'%.*s' is not a header field name of 1 to 63 characters",
                 (int)(len < 80 ? len : 80), name);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        if (!redact_tchar((unsigned char)name[i])) {
            snprintf(err, cap, "'%.*s' is not a header field name: it holds '%c'", (int)len, name,
                     name[i]);
            return -1;
        }
    return 0;
}

/* Adds name[0..len) in lower case; -1 with err when it is not a field name or no room. */
static int redact_add_name(const char *name, size_t len, char *err, size_t cap)
{
    if (redact_check_name(name, len, err, cap) < 0)
        return -1;
    if (redact_is_secret_field(name, len))
        return 0;
    if (redact.nnames == REDACT_NAMES_MAX) {
        snprintf(err, cap, "more than %d secret header names", REDACT_NAMES_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        redact.names[redact.nnames][i] =
            (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    redact.names[redact.nnames][len] = '\0';
    redact.nnames++;
    return 0;
}

/* Sets the names and the key; see the header. */
int redact_configure(const char *extra, const unsigned char key[REDACT_KEY_BYTES], char *err,
                     size_t cap)
{
    redact.nnames = 0;
    for (size_t i = 0; i < sizeof(redact_default_names) / sizeof(redact_default_names[0]); i++)
        if (redact_add_name(redact_default_names[i], strlen(redact_default_names[i]), err, cap) < 0)
            return -1;
    while (extra != NULL && *extra != '\0') {
        const char *comma = strchr(extra, ',');
        size_t len = comma != NULL ? (size_t)(comma - extra) : strlen(extra);

        while (len > 0 && extra[0] == ' ') {
            extra++;
            len--;
        }
        while (len > 0 && extra[len - 1] == ' ')
            len--;
        if (len > 0 && redact_add_name(extra, len, err, cap) < 0)
            return -1;
        extra = comma != NULL ? comma + 1 : NULL;
    }
    memcpy(redact.key, key, REDACT_KEY_BYTES);
    return 0;
}

/* Reads or makes the key; see the header. */
int redact_load_key(const char *path, unsigned char key[REDACT_KEY_BYTES], char *err, size_t cap)
{
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0 && errno == ENOENT) {
        if (RAND_bytes(key, REDACT_KEY_BYTES) != 1) {
            snprintf(err, cap, "cannot make the hash key %s: no randomness", path);
            return -1;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || write(fd, key, REDACT_KEY_BYTES) != REDACT_KEY_BYTES || fsync(fd) < 0) {
            snprintf(err, cap, "cannot make the hash key %s: %s; make its directory writable", path,
                     strerror(errno));
            if (fd >= 0) {
                close(fd);
                unlink(path);
            }
            OPENSSL_cleanse(key, REDACT_KEY_BYTES);
            return -1;
        }
        close(fd);
        return 0;
    }
    if (fd < 0) {
        snprintf(err, cap, "cannot read the hash key %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != REDACT_KEY_BYTES) {
        snprintf(err, cap,
                 "the hash key %s is not a file of %d bytes; remove it and sluice makes a new one "
                 "(hashes made before will not match the new ones)",
                 path, REDACT_KEY_BYTES);
        close(fd);
        return -1;
    }
    if ((st.st_mode & 077) != 0) {
        snprintf(err, cap, "the hash key %s may be read by others (mode %04o); chmod 600 %s", path,
                 (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return -1;
    }
    n = read(fd, key, REDACT_KEY_BYTES);
    close(fd);
    if (n != REDACT_KEY_BYTES) {
        snprintf(err, cap, "cannot read the hash key %s: %s", path,
                 n < 0 ? strerror(errno) : "it is shorter than it was");
        return -1;
    }
    return 0;
}

/* The index of name among the secret fields, or -1. */
static int redact_name_index(const char *name, size_t len)
{
    for (size_t i = 0; i < redact.nnames; i++)
        if (strlen(redact.names[i]) == len && strncasecmp(redact.names[i], name, len) == 0)
            return (int)i;
    return -1;
}

bool redact_is_secret_field(const char *name, size_t len)
{
    return redact_name_index(name, len) >= 0;
}

/* The scheme an Authorization-like value v[0..len) starts with, as an index. */
static uint8_t redact_scheme_of(const char *v, size_t len)
{
    size_t word = 0;

    while (word < len && v[word] != ' ')
        word++;
    if (word == len)
        return 0; /* a bare value (x-api-key's), no scheme */
    for (uint8_t i = 1; i < REDACT_SCHEME_OTHER; i++)
        if (strlen(redact_schemes[i]) == word && strncasecmp(redact_schemes[i], v, word) == 0)
            return i;
    return REDACT_SCHEME_OTHER;
}

/* Records the secret fields; see the header. */
void redact_scan(const char *buf, const struct http1_head *h, struct redact_seen *out)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct http1_field *f = &h->fields[i];
        int name = redact_name_index(buf + f->name.off, f->name.len);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;

        if (name < 0)
            continue;
        if (out->n == REDACT_SEEN_MAX) {
            if (out->more < UINT8_MAX)
                out->more++;
            continue;
        }
        out->item[out->n].name = (uint8_t)name;
        out->item[out->n].scheme = strstr(redact.names[name], "authorization") != NULL
                                       ? redact_scheme_of(buf + f->value.off, f->value.len)
                                       : 0;
        if (HMAC(EVP_sha256(), redact.key, REDACT_KEY_BYTES,
                 (const unsigned char *)buf + f->value.off, f->value.len, md, &mdlen) == NULL ||
            mdlen < REDACT_HASH_BYTES)
            memset(md, 0, REDACT_HASH_BYTES);
        memcpy(out->item[out->n].hash, md, REDACT_HASH_BYTES);
        OPENSSL_cleanse(md, sizeof(md));
        out->n++;
    }
}

const char *redact_name(uint8_t i)
{
    return i < redact.nnames ? redact.names[i] : "?";
}

const char *redact_scheme(uint8_t i)
{
    return i < sizeof(redact_schemes) / sizeof(redact_schemes[0]) ? redact_schemes[i] : "";
}

void redact_hash_hex(const uint8_t hash[REDACT_HASH_BYTES], char out[2 * REDACT_HASH_BYTES + 1])
{
    hex_lower(hash, REDACT_HASH_BYTES, out);
}

/* True when a parameter's name is a secret's; see the header. */
bool redact_secret_name(const char *name, size_t len)
{
    for (size_t w = 0; w < sizeof(redact_secret_words) / sizeof(redact_secret_words[0]); w++) {
        size_t wl = strlen(redact_secret_words[w]);
        for (size_t i = 0; i + wl <= len; i++)
            if (strncasecmp(name + i, redact_secret_words[w], wl) == 0)
                return true;
    }
    for (size_t w = 0; w < sizeof(redact_secret_exact) / sizeof(redact_secret_exact[0]); w++)
        if (strlen(redact_secret_exact[w]) == len &&
            strncasecmp(name, redact_secret_exact[w], len) == 0)
            return true;
    return false;
}

/* The value of hex digit c, or -1. */
static int redact_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * True when the query parameter name q[0..len) is a secret's once percent-decoded (and
 * '+' read as a space), as the server will read it.
 */
static bool redact_secret_param(const char *q, size_t len)
{
    char name[256];
    size_t n = 0;

    /* A cookie's name after "; ", a form's after "& ": the blanks are no part of it. */
    while (len > 0 && (*q == ' ' || *q == '\t')) {
        q++;
        len--;
    }
    for (size_t i = 0; i < len && n < sizeof(name); i++) {
        int hi, lo;
        if (q[i] == '%' && i + 2 < len && (hi = redact_hex(q[i + 1])) >= 0 &&
            (lo = redact_hex(q[i + 2])) >= 0) {
            name[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            name[n++] = q[i] == '+' ? ' ' : q[i];
        }
    }
    /* A name longer than the room cannot be told: taken for a secret's. */
    return n == sizeof(name) || redact_secret_name(name, n) || redact_secret_name(q, len);
}

/*
 * Appends s[0..len) to out (cap bytes, at least 4) while room lasts, always leaving room
 * for "..." and the NUL; false, with "..." written, once it does not fit.
 */
static bool redact_put(char *out, size_t cap, size_t *at, const char *s, size_t len)
{
    size_t room = cap - *at - 4;

    if (len <= room) {
        memcpy(out + *at, s, len);
        *at += len;
        out[*at] = '\0';
        return true;
    }
    memcpy(out + *at, s, room);
    *at += room;
    memcpy(out + *at, "...", 4);
    *at += 3;
    return false;
}

/*
 * Appends one parameter p[0..end) ("name=value", or anything else), its value hidden when
 * its name is a secret's; false once out is full.
 */
static bool redact_put_param(const char *p, const char *end, char *out, size_t cap, size_t *at)
{
    const char *eq = memchr(p, '=', (size_t)(end - p));

    if (eq != NULL && redact_secret_param(p, (size_t)(eq - p)))
        return redact_put(out, cap, at, p, (size_t)(eq - p) + 1) &&
               redact_put(out, cap, at, REDACT_HIDDEN, sizeof(REDACT_HIDDEN) - 1);
    return redact_put(out, cap, at, p, (size_t)(end - p));
}

/*
 * Appends the parameters p[0..end) (p starts one; '&', ';' or '#' ends one) with the
 * values of those named like secrets hidden; false once out is full.
 */
static bool redact_put_params(const char *p, const char *end, char *out, size_t cap, size_t *at)
{
    for (;;) {
        const char *param_end = p;

        while (param_end < end && *param_end != '&' && *param_end != ';' && *param_end != '#')
            param_end++;
        if (!redact_put_param(p, param_end, out, cap, at))
            return false;
        if (param_end == end)
            return true;
        if (!redact_put(out, cap, at, param_end, 1)) /* the '&', ';' or '#' after it */
            return false;
        p = param_end + 1;
    }
}

/*
 * Appends the path p[0..end) with the values of its segment parameters named like
 * secrets hidden (/app;jsessionid=...): a parameter starts at ';' and ends at the next
 * '/' or ';'.  False once out is full.
 */
static bool redact_put_path(const char *p, const char *end, char *out, size_t cap, size_t *at)
{
    const char *semi;

    while ((semi = memchr(p, ';', (size_t)(end - p))) != NULL) {
        const char *param = semi + 1, *param_end = param;

        while (param_end < end && *param_end != '/' && *param_end != ';')
            param_end++;
        if (!redact_put(out, cap, at, p, (size_t)(param - p)) ||
            !redact_put_param(param, param_end, out, cap, at))
            return false;
        p = param_end;
    }
    return redact_put(out, cap, at, p, (size_t)(end - p));
}

/* Starts out (cap bytes) empty; false when it has no room for "..." and a NUL. */
static bool redact_out_init(char *out, size_t cap)
{
    if (cap > 0)
        out[0] = '\0';
    return cap >= 4;
}

/* Copies a parameter list with its secrets hidden; see the header. */
size_t redact_params(const char *params, size_t len, char *out, size_t cap)
{
    size_t at = 0;

    if (!redact_out_init(out, cap))
        return 0;
    redact_put_params(params, params + len, out, cap, &at);
    return at;
}

/* Copies a URL with its secrets hidden; see the header. */
size_t redact_url(const char *url, size_t len, char *out, size_t cap)
{
    const char *end = url + len, *p = url, *scheme, *auth = NULL, *params;
    size_t at = 0;

    if (!redact_out_init(out, cap))
        return 0;
    /* The authority: after "scheme://" when the URL starts with a scheme, else the start of
     * a target that is not a path (CONNECT's host:port), up to a path, query or fragment. */
    scheme = url;
    while (scheme < end && (isalpha((unsigned char)*scheme) ||
                            (scheme > url && (isdigit((unsigned char)*scheme) || *scheme == '+' ||
                                              *scheme == '-' || *scheme == '.'))))
        scheme++;
    if (scheme > url && end - scheme >= 3 && memcmp(scheme, "://", 3) == 0)
        auth = scheme + 3;
    else if (len > 0 && url[0] != '/')
        auth = url;
    if (auth != NULL) {
        const char *authority_end = auth, *atsign, *colon;
        while (authority_end < end && *authority_end != '/' && *authority_end != '?' &&
               *authority_end != '#')
            authority_end++;
        atsign = memrchr(auth, '@', (size_t)(authority_end - auth));
        /* user:password@ keeps the user; a user part alone may be a token
         * (https://TOKEN@github.com/...): all of it goes. */
        if (atsign != NULL) {
            colon = memchr(auth, ':', (size_t)(atsign - auth));
            if (!redact_put(out, cap, &at, url,
                            (size_t)((colon != NULL ? colon + 1 : auth) - url)) ||
                !redact_put(out, cap, &at, REDACT_HIDDEN, sizeof(REDACT_HIDDEN) - 1))
                return at;
            p = atsign;
        }
    }
    /* The query and the fragment (an OAuth token travels there) alike, parameter by
     * parameter. */
    for (params = p; params < end && *params != '?' && *params != '#'; params++)
        ;
    if (!redact_put_path(p, params, out, cap, &at) || params == end ||
        !redact_put(out, cap, &at, params, 1)) /* the '?' or '#' */
        return at;
    redact_put_params(params + 1, end, out, cap, &at);
    return at;
}
