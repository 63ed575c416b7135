/*
 * What the records say of secrets: never their value.  Header fields that carry
 * credentials (Authorization, Cookie, x-api-key and the names audit.secret_headers adds)
 * are recorded as present with a short keyed hash, HMAC-SHA256 under a key of the
 * installation's, so two requests with the same credential can be told alike without the
 * credential being recoverable from the record; URLs and command lines keep their shape
 * with the values of parameters named like secrets replaced.  Configured once, before the
 * workers start; after that every function is safe from any thread.
 */
#ifndef SLUICE_REDACT_H
#define SLUICE_REDACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/http1.h"

/* What a secret value is replaced with. */
#define REDACT_HIDDEN "<redacted>"
/* Secret fields one message's record holds; more are counted as "more". */
#define REDACT_SEEN_MAX 8
/* Bytes of the keyed hash kept (16 hex digits). */
#define REDACT_HASH_BYTES 8
/* Header names redact knows at most, the defaults included. */
#define REDACT_NAMES_MAX 48
/* Bytes of the key. */
#define REDACT_KEY_BYTES 32

/* The secret fields of one message, in the order they came. */
struct redact_seen {
    uint8_t n;    /* entries used */
    uint8_t more; /* secret fields past the last entry, up to 255 */
    struct {
        uint8_t name;                    /* index of the field's name: redact_name() */
        uint8_t scheme;                  /* index of its authentication scheme: redact_scheme() */
        uint8_t hash[REDACT_HASH_BYTES]; /* the start of HMAC-SHA256(key, value) */
    } item[REDACT_SEEN_MAX];
};

/*
 * Sets the names of secret header fields, the defaults and extra (comma-separated, or
 * NULL), and the hash key (REDACT_KEY_BYTES bytes).  Call once, before any other
 * function runs on another thread.  Returns 0, or -1 with a sentence in err (a name that
 * is not a field name, too many names).
 */
int redact_configure(const char *extra, const unsigned char key[REDACT_KEY_BYTES], char *err,
                     size_t cap);

/* Checks that name[0..len) is a header field name (RFC 9110 token, at most 63 bytes):
 * 0, or -1 with a sentence in err. */
int redact_check_name(const char *name, size_t len, char *err, size_t cap);

/*
 * Reads the key from path, or, when there is no such file, makes a random one there
 * (mode 0600, created exclusively).  A key file that is not a regular file of
 * REDACT_KEY_BYTES bytes, or that others may read, is refused.  Returns 0, or -1 with a
 * sentence in err that says what to do.
 */
int redact_load_key(const char *path, unsigned char key[REDACT_KEY_BYTES], char *err, size_t cap);

/* True when name (len bytes) names a secret field (case-insensitive). */
bool redact_is_secret_field(const char *name, size_t len);

/* Records the secret fields of head h (parsed from buf) into *out, which it clears first. */
void redact_scan(const char *buf, const struct http1_head *h, struct redact_seen *out);

/* The field name of index i, in lower case ("authorization"), or "?" */
const char *redact_name(uint8_t i);

/* The authentication scheme of index i ("Bearer"), or "" when the value named none. */
const char *redact_scheme(uint8_t i);

/* hash as 2 * REDACT_HASH_BYTES hex digits and a NUL. */
void redact_hash_hex(const uint8_t hash[REDACT_HASH_BYTES], char out[2 * REDACT_HASH_BYTES + 1]);

/*
 * True when a parameter or option named name (len bytes) holds a secret: its name has one
 * of the words token, secret, passw, key, auth, cred, bearer, cookie, session, private,
 * signature, jwt or sessid, or is pass, pwd, sig, code or sid, in any case.
 */
bool redact_secret_name(const char *name, size_t len);

/*
 * Copies the URL url[0..len) into out (cap bytes; cut with "..." when it does not fit)
 * with the values of its query and fragment parameters named like secrets
 * (redact_secret_name, on the name percent-decoded as a server reads it: "%74oken" is
 * "token"; a name too long to tell counts as one) replaced by REDACT_HIDDEN, and so the
 * password of its user information, or the whole of a user part without one (a token).
 * The authority is the one after "scheme://" at the start, or the start of a target that
 * is not a path (CONNECT's "user:pw@host:443").  Parameters end at '&', ';' or '#'.
 * Returns the length written.
 */
size_t redact_url(const char *url, size_t len, char *out, size_t cap);

/*
 * Copies a parameter list params[0..len) (NAME=VALUE joined by '&' or ';', as a form's data
 * or a query without its '?') into out like redact_url() copies a query.  Returns the
 * length written.
 */
size_t redact_params(const char *params, size_t len, char *out, size_t cap);

#endif /* SLUICE_REDACT_H */
