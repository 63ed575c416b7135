/* Verified proxy credentials; see include/sluice/credentials.h. */
#include "sluice/credentials.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define CRED_MAX_USERS  4096
#define CRED_NAME_MAX   128
#define CRED_SALT_BYTES 16
#define CRED_HASH_BYTES 32
/* Verified credentials remembered (by keyed hash). */
#define CRED_MEMORY 512
/*
 * scrypt's cost for new lines: about 1 MiB and a millisecond or two.  The tokens
 * sluice passwd makes are random (192 bits), so the hash needs no cost against guessing;
 * what a wrong token costs the worker that checks it must stay small, since anyone can
 * send one.  The file may ask for more, up to N=16384, r=8, p=1.
 */
#define CRED_N     1024u
#define CRED_R     8u
#define CRED_P     1u
#define CRED_MAX_N 16384u
#define CRED_MAX_R 8u

/* One user of the file. */
struct cred_user {
    char name[CRED_NAME_MAX];
    uint64_t n;
    uint32_t r, p;
    unsigned char salt[CRED_SALT_BYTES];
    unsigned char hash[CRED_HASH_BYTES];
};

struct credentials {
    struct credentials *retired; /* the set installed before this one, kept until exit */
    struct cred_user *users;
    size_t nusers;
    unsigned char key[32]; /* keys the memory of verified credentials; random per set */
    pthread_mutex_t lock;  /* guards what follows */
    unsigned char known[CRED_MEMORY][32];
    size_t nknown, next_known;
};

/* Decodes hex text[0..len) into out (exactly cap bytes).  False unless it is that. */
static bool cred_hex(const char *text, size_t len, unsigned char *out, size_t cap)
{
    if (len != cap * 2)
        return false;
    for (size_t i = 0; i < cap; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char ch = text[i * 2 + (size_t)k];
            v <<= 4;
            if (ch >= '0' && ch <= '9')
                v |= (unsigned)(ch - '0');
            else if (ch >= 'a' && ch <= 'f')
                v |= (unsigned)(ch - 'a' + 10);
            else
                return false;
        }
        out[i] = (unsigned char)v;
    }
    return true;
}

/* Parses "NAME:scrypt:N:r:p:SALT:HASH" into u.  Returns NULL, or what is wrong. */
static const char *cred_parse(char *line, struct cred_user *u)
{
    char *field[7], *p = line;
    size_t n = 0;
    char *end;

    /* Exactly seven fields, none empty: "a::b" is two mistakes, not one field. */
    while (n < 7) {
        field[n++] = p;
        if ((p = strchr(p, ':')) == NULL)
            break;
        *p++ = '\0';
    }
    if (n != 7 || p != NULL)
        return "expected NAME:scrypt:N:r:p:SALT:HASH, as sluice passwd prints it";
    for (size_t i = 0; i < n; i++)
        if (field[i][0] == '\0')
            return "an empty field; expected NAME:scrypt:N:r:p:SALT:HASH";
    if (strlen(field[0]) >= sizeof(u->name))
        return "the name is longer than 127 bytes";
    if (strcmp(field[1], "scrypt") != 0)
        return "only scrypt hashes are taken";
    snprintf(u->name, sizeof(u->name), "%s", field[0]);
    errno = 0;
    u->n = strtoull(field[2], &end, 10);
    if (errno != 0 || field[2][0] == '-' || *end != '\0' || u->n < 2 || (u->n & (u->n - 1)) != 0 ||
        u->n > CRED_MAX_N)
        return "N must be a power of two from 2 to 16384";
    u->r = (uint32_t)strtoul(field[3], &end, 10);
    if (field[3][0] == '-' || *end != '\0' || u->r < 1 || u->r > CRED_MAX_R)
        return "r must be from 1 to 8";
    u->p = (uint32_t)strtoul(field[4], &end, 10);
    if (field[4][0] == '-' || *end != '\0' || u->p != 1)
        return "p must be 1";
    if (!cred_hex(field[5], strlen(field[5]), u->salt, sizeof(u->salt)))
        return "the salt must be 32 hex digits";
    if (!cred_hex(field[6], strlen(field[6]), u->hash, sizeof(u->hash)))
        return "the hash must be 64 hex digits";
    return NULL;
}

/* Loads the file; see the header. */
struct credentials *credentials_load(const char *path, struct yamldoc_errors *errs)
{
    struct credentials *c = calloc(1, sizeof(*c));
    char line[1024];
    unsigned lineno = 0;
    struct stat st;
    FILE *f = NULL;
    size_t before = errs->count;

    if (c == NULL || (c->users = calloc(CRED_MAX_USERS, sizeof(*c->users))) == NULL) {
        yamldoc_error(errs, path, NULL, "out of memory");
        goto fail;
    }
    if ((f = fopen(path, "r")) == NULL || fstat(fileno(f), &st) < 0) {
        yamldoc_error(errs, path, NULL, "cannot read the credentials file: %s", strerror(errno));
        goto fail;
    }
    /* What lets a client in: a regular file that only root or the user sluice runs as can
     * change, and that nobody else can read (its group only when root owns it). */
    if (!S_ISREG(st.st_mode)) {
        yamldoc_error(errs, path, NULL, "the credentials file is not a regular file");
        goto fail;
    }
    if ((st.st_mode & 007) != 0 || (st.st_mode & 020) != 0 ||
        ((st.st_mode & 040) != 0 && st.st_uid != 0)) {
        yamldoc_error(errs, path, NULL,
                      "the credentials file is readable by others (mode %04o); chmod 600 %s",
                      (unsigned)(st.st_mode & 07777), path);
        goto fail;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        yamldoc_error(errs, path, NULL,
                      "the credentials file belongs to uid %u, who could add users; give it "
                      "to root or to the user sluice runs as",
                      (unsigned)st.st_uid);
        goto fail;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *why;
        size_t len = strcspn(line, "\r\n");
        char where[4200];

        lineno++;
        snprintf(where, sizeof(where), "%s:%u:1", path, lineno);
        if (line[len] == '\0' && !feof(f)) { /* no end of line within the buffer */
            int ch;
            yamldoc_error(errs, where, NULL, "a line longer than %zu bytes", sizeof(line) - 2);
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
            continue;
        }
        line[len] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        if (c->nusers == CRED_MAX_USERS) {
            yamldoc_error(errs, path, NULL, "more than %d users", CRED_MAX_USERS);
            break;
        }
        if ((why = cred_parse(line, &c->users[c->nusers])) != NULL) {
            yamldoc_error(errs, where, NULL, "%s", why);
            continue;
        }
        for (size_t i = 0; i < c->nusers; i++)
            if (strcmp(c->users[i].name, c->users[c->nusers].name) == 0)
                yamldoc_error(errs, where, NULL, "user '%s' is given twice", c->users[i].name);
        c->nusers++;
    }
    OPENSSL_cleanse(line, sizeof(line));
    fclose(f);
    f = NULL;
    if (errs->count > before)
        goto fail;
    {
        /* Room for every user was made up front; keep what the file holds. */
        struct cred_user *fit = realloc(c->users, (c->nusers > 0 ? c->nusers : 1) * sizeof(*fit));
        if (fit != NULL)
            c->users = fit;
    }
    if (RAND_bytes(c->key, sizeof(c->key)) != 1) {
        yamldoc_error(errs, path, NULL, "no random bytes for the credential memory");
        goto fail;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
fail:
    if (f != NULL)
        fclose(f);
    if (c != NULL)
        free(c->users);
    free(c);
    return NULL;
}

/* Frees the set. */
void credentials_free(struct credentials *c)
{
    if (c == NULL)
        return;
    pthread_mutex_destroy(&c->lock);
    OPENSSL_cleanse(c->users, (c->nusers > 0 ? c->nusers : 1) * sizeof(*c->users));
    OPENSSL_cleanse(c->key, sizeof(c->key));
    free(c->users);
    free(c);
}

/* The set the workers check against, and sets retired while none was installed. */
static _Atomic(struct credentials *) cred_current;
static struct credentials *cred_orphans;

/* Keeps a retired chain of sets for credentials_release_all(). */
static void credentials_keep_retired(struct credentials *c)
{
    struct credentials *last = c;

    while (last->retired != NULL)
        last = last->retired;
    last->retired = cred_orphans;
    cred_orphans = c;
}

/* Installs a set; see the header.  Only the main thread installs. */
void credentials_install(struct credentials *c)
{
    struct credentials *old = atomic_load(&cred_current);

    if (c != NULL)
        c->retired = old;
    else if (old != NULL)
        credentials_keep_retired(old);
    atomic_store(&cred_current, c);
}

/* The set installed last. */
struct credentials *credentials_current(void)
{
    return atomic_load(&cred_current);
}

/* Frees every set; see the header. */
void credentials_release_all(void)
{
    struct credentials *c = atomic_exchange(&cred_current, NULL), *next;

    for (; c != NULL; c = next) {
        next = c->retired;
        credentials_free(c);
    }
    for (c = cred_orphans; c != NULL; c = next) {
        next = c->retired;
        credentials_free(c);
    }
    cred_orphans = NULL;
}

/* Number of users. */
size_t credentials_count(const struct credentials *c)
{
    return c->nusers;
}

/*
 * The keyed hash (HMAC-SHA-256) of user and token that the memory of verified ones holds.
 * False when it could not be made: the memory is then left alone, both ways.
 */
static bool cred_mark(const struct credentials *c, const char *user, size_t ulen, const char *pass,
                      size_t plen, unsigned char out[32])
{
    static char digest[] = "SHA256";
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                           OSSL_PARAM_construct_end()};
    size_t outlen = 0;
    bool ok = ctx != NULL && EVP_MAC_init(ctx, c->key, sizeof(c->key), params) == 1 &&
              EVP_MAC_update(ctx, (const unsigned char *)user, ulen) == 1 &&
              EVP_MAC_update(ctx, (const unsigned char *)"", 1) == 1 &&
              EVP_MAC_update(ctx, (const unsigned char *)pass, plen) == 1 &&
              EVP_MAC_final(ctx, out, &outlen, 32) == 1 && outlen == 32;

    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
}

/* Checks user and token; see the header. */
bool credentials_verify(struct credentials *c, const char *user, size_t ulen, const char *pass,
                        size_t plen)
{
    const struct cred_user *u = NULL;
    unsigned char mark[32], hash[CRED_HASH_BYTES];
    bool ok = false, known = false, marked;

    for (size_t i = 0; i < c->nusers && u == NULL; i++)
        if (strlen(c->users[i].name) == ulen && memcmp(c->users[i].name, user, ulen) == 0)
            u = &c->users[i];
    if (u == NULL)
        return false; /* no scrypt for a name nobody has */
    marked = cred_mark(c, user, ulen, pass, plen, mark);
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; marked && i < c->nknown && !known; i++)
        known = CRYPTO_memcmp(c->known[i], mark, sizeof(mark)) == 0;
    pthread_mutex_unlock(&c->lock);
    if (known)
        return true;
    if (EVP_PBE_scrypt(pass, plen, u->salt, sizeof(u->salt), u->n, u->r, u->p, 64u << 20, hash,
                       sizeof(hash)) == 1)
        ok = CRYPTO_memcmp(hash, u->hash, sizeof(hash)) == 0;
    OPENSSL_cleanse(hash, sizeof(hash));
    pthread_mutex_lock(&c->lock);
    if (ok && marked) {
        memcpy(c->known[c->next_known], mark, sizeof(mark));
        c->next_known = (c->next_known + 1) % CRED_MEMORY;
        if (c->nknown < CRED_MEMORY)
            c->nknown++;
    }
    pthread_mutex_unlock(&c->lock);
    return ok;
}

/* Formats a new line; see the header. */
int credentials_line(const char *user, const char *token, char *out, size_t cap)
{
    unsigned char salt[CRED_SALT_BYTES], hash[CRED_HASH_BYTES];
    char salt_hex[CRED_SALT_BYTES * 2 + 1], hash_hex[CRED_HASH_BYTES * 2 + 1];
    int n;

    if (RAND_bytes(salt, sizeof(salt)) != 1 ||
        EVP_PBE_scrypt(token, strlen(token), salt, sizeof(salt), CRED_N, CRED_R, CRED_P, 64u << 20,
                       hash, sizeof(hash)) != 1)
        return -1;
    for (size_t i = 0; i < sizeof(salt); i++)
        snprintf(salt_hex + i * 2, 3, "%02x", salt[i]);
    for (size_t i = 0; i < sizeof(hash); i++)
        snprintf(hash_hex + i * 2, 3, "%02x", hash[i]);
    OPENSSL_cleanse(hash, sizeof(hash));
    n = snprintf(out, cap, "%s:scrypt:%u:%u:%u:%s:%s", user, CRED_N, CRED_R, CRED_P, salt_hex,
                 hash_hex);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}
