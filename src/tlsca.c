/* The local certificate authority; see include/sluice/tlsca.h. */
#include "sluice/tlsca.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Adds extension nid, written as OpenSSL's configuration writes it, to x (issued by x). */
static bool tlsca_add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    bool ok;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
        return false;
    ok = X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* The self-signed CA certificate for key; NULL on failure. */
static X509 *tlsca_certificate(EVP_PKEY *key)
{
    char host[256] = "this machine", cn[300];
    X509 *x = X509_new();
    X509_NAME *name;
    BIGNUM *serial = BN_new();

    if (x == NULL || serial == NULL)
        goto fail;
    if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "this machine");
    host[sizeof(host) - 1] = '\0';
    snprintf(cn, sizeof(cn), "sluice local CA on %.200s", host);
    /* A random 127-bit serial: positive, and unlike any other CA's this machine made. */
    if (X509_set_version(x, 2) != 1 ||
        BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), (long)TLSCA_DAYS * 86400) == NULL)
        goto fail;
    name = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"sluice", -1,
                                   -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1)
        goto fail;
    if (!tlsca_add_ext(x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        !tlsca_add_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !tlsca_add_ext(x, NID_subject_key_identifier, "hash") ||
        !tlsca_add_ext(x, NID_authority_key_identifier, "keyid:always") ||
        X509_sign(x, key, EVP_sha256()) == 0)
        goto fail;
    BN_free(serial);
    return x;

fail:
    BN_free(serial);
    X509_free(x);
    return NULL;
}

/*
 * Makes the directories that lead to path, mode 0700, where they are missing (mkdir -p
 * of its directory): a CA asked for in ~/.config/sluice/ needs no step before.  A
 * directory that cannot be made is said when the file cannot be created in it.
 */
static void tlsca_make_dirs(const char *path)
{
    char dir[PATH_MAX];

    if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
        return;
    for (char *slash = strchr(dir + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return;
        *slash = '/';
    }
}

/* Opens path for writing, created exclusively with mode; a FILE, or NULL with errno. */
static FILE *tlsca_create_file(const char *path, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    FILE *f;

    if (fd < 0)
        return NULL;
    if (fchmod(fd, mode) < 0 || (f = fdopen(fd, "w")) == NULL) {
        int saved = errno;
        close(fd);
        unlink(path);
        errno = saved;
        return NULL;
    }
    return f;
}

/* Makes the CA; see the header. */
int tlsca_create(const char *cert_path, const char *key_path, char *err, size_t cap)
{
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    FILE *kf = NULL, *cf = NULL;
    int rc = -1;

    if (access(key_path, F_OK) == 0 || access(cert_path, F_OK) == 0) {
        snprintf(err, cap,
                 "a CA is there already (%s, %s); remove both to make a new one (clients that "
                 "trust the old one must then trust the new one)",
                 cert_path, key_path);
        return -1;
    }
    if ((key = EVP_EC_gen("P-256")) == NULL || (x = tlsca_certificate(key)) == NULL) {
        snprintf(err, cap, "cannot make the CA's key and certificate (OpenSSL failed)");
        goto out;
    }
    tlsca_make_dirs(key_path);
    tlsca_make_dirs(cert_path);
    if ((kf = tlsca_create_file(key_path, 0600)) == NULL) {
        snprintf(err, cap, "cannot create the CA key %s: %s", key_path, strerror(errno));
        goto out;
    }
    if (PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL) != 1 || fflush(kf) != 0 ||
        fsync(fileno(kf)) < 0) {
        snprintf(err, cap, "cannot write the CA key %s", key_path);
        goto out;
    }
    if ((cf = tlsca_create_file(cert_path, 0644)) == NULL) {
        snprintf(err, cap, "cannot create the CA certificate %s: %s", cert_path, strerror(errno));
        goto out;
    }
    if (PEM_write_X509(cf, x) != 1 || fflush(cf) != 0 || fsync(fileno(cf)) < 0) {
        snprintf(err, cap, "cannot write the CA certificate %s", cert_path);
        goto out;
    }
    rc = 0;

out:
    if (kf != NULL && fclose(kf) != 0 && rc == 0) {
        snprintf(err, cap, "cannot write the CA key %s: %s", key_path, strerror(errno));
        rc = -1;
    }
    if (cf != NULL && fclose(cf) != 0 && rc == 0) {
        snprintf(err, cap, "cannot write the CA certificate %s: %s", cert_path, strerror(errno));
        rc = -1;
    }
    if (rc < 0) { /* nothing half made stays */
        if (kf != NULL)
            unlink(key_path);
        if (cf != NULL)
            unlink(cert_path);
    }
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

/* Writes t (an ASN.1 time) as "YYYY-MM-DD HH:MM:SS UTC" into out. */
static void tlsca_time(const ASN1_TIME *t, char *out, size_t cap)
{
    struct tm tm;

    if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, cap, "(unreadable)");
}

/* Describes the CA; see the header. */
int tlsca_describe(const char *cert_path, const char *key_path, FILE *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char subject[512], from[40], until[40];
    int days = 0, secs = 0, rc = 0;
    struct stat st;
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    FILE *f;

    if ((f = fopen(cert_path, "r")) == NULL) {
        fprintf(out, "certificate: %s: %s; make the CA with sluice ca init\n", cert_path,
                strerror(errno));
        return 1;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL) {
        fprintf(out, "certificate: %s: not a PEM certificate\n", cert_path);
        return 1;
    }
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    X509_digest(x, EVP_sha256(), md, &mdlen);
    tlsca_time(X509_get0_notBefore(x), from, sizeof(from));
    tlsca_time(X509_get0_notAfter(x), until, sizeof(until));
    fprintf(out, "certificate: %s\n  subject: %s\n  SHA-256 fingerprint: ", cert_path, subject);
    for (unsigned int i = 0; i < mdlen; i++)
        fprintf(out, "%02X%s", md[i], i + 1 < mdlen ? ":" : "\n");
    ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x));
    fprintf(out, "  valid: %s to %s", from, until);
    if (days < 0 || secs < 0) {
        fprintf(out, " (expired: make a new one with sluice ca init)\n");
        rc = 1;
    } else {
        fprintf(out, " (%d days left)\n", days);
    }
    if (X509_check_ca(x) != 1) {
        fprintf(out, "  it is not a CA certificate\n");
        rc = 1;
    }
    if (lstat(key_path, &st) < 0) {
        fprintf(out, "key: %s: %s\n", key_path, strerror(errno));
        X509_free(x);
        return 1;
    }
    {
        const struct passwd *pw = getpwuid(st.st_uid);
        fprintf(out, "key: %s (mode %04o, owner %s)", key_path, (unsigned)(st.st_mode & 07777),
                pw != NULL ? pw->pw_name : "?");
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(out, ": not a regular file\n");
        X509_free(x);
        return 1;
    }
    if ((st.st_mode & 077) != 0) {
        fprintf(out, ": others may read it; chmod 600 %s\n", key_path);
        X509_free(x);
        return 1;
    }
    if ((f = fopen(key_path, "r")) != NULL) {
        key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (key == NULL || X509_check_private_key(x, key) != 1) {
        fprintf(out, ": %s\n",
                key == NULL ? "cannot be read as a PEM private key"
                            : "it is not the certificate's key; make both again with sluice ca "
                              "init");
        rc = 1;
    } else {
        fprintf(out, ": the certificate's key\n");
    }
    EVP_PKEY_free(key);
    X509_free(x);
    return rc;
}
