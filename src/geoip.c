/*
 * GeoIP lookups on libmaxminddb.
 *
 * Databases are memory-mapped by MMDB_open() and only read afterwards; libmaxminddb's
 * lookups on an opened MMDB_s are thread-safe.  Lookups walk record paths with
 * MMDB_aget_value(), which, unlike MMDB_get_value(), allocates nothing.
 */
#include "sluice/geoip.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <sys/stat.h>

#include <maxminddb.h>

/* Bounds on the search, at open, for a record that carries the expected fields. */
#define GEOIP_PROBE_RECORDS 64     /* data records examined before giving up */
#define GEOIP_PROBE_NODES   100000 /* search-tree nodes visited before giving up */
#define GEOIP_MAX_DEPTH     128    /* bits in an IPv6 address: no real tree is deeper */

/* Which data a database is opened for. */
enum geoip_want {
    GEOIP_WANT_COUNTRY, /* country.iso_code, registered_country.iso_code or country_code */
    GEOIP_WANT_ASN,     /* autonomous_system_number */
};

/* The opened databases; a database's MMDB_s is valid only when its has_ flag is set. */
struct geoip {
    MMDB_s country;
    MMDB_s asn;
    bool has_country;
    bool has_asn;
};

/* Record paths, in the order they are tried: GeoLite2/GeoIP2 first, ip-location-db last. */
static const char *const path_country_iso[] = {"country", "iso_code", NULL};
static const char *const path_registered_iso[] = {"registered_country", "iso_code", NULL};
static const char *const path_country_code[] = {"country_code", NULL};
static const char *const path_asn[] = {"autonomous_system_number", NULL};
static const char *const path_as_org[] = {"autonomous_system_organization", NULL};

static const char *const *const country_paths[] = {
    path_country_iso,
    path_registered_iso,
    path_country_code,
};

/* Formats a message into err[0..cap) when the caller gave room for one. */
static void set_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats into err; the prototype above carries the printf format check. */
static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* True for an ASCII letter. */
static bool is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Upper-cases an ASCII letter. */
static char to_upper(unsigned char c)
{
    return (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
}

/* Writes the upper-case form of the two letters at s to out, or returns false. */
static bool country_from(const char *s, size_t n, char out[3])
{
    if (n != 2 || !is_alpha((unsigned char)s[0]) || !is_alpha((unsigned char)s[1]))
        return false;
    out[0] = to_upper((unsigned char)s[0]);
    out[1] = to_upper((unsigned char)s[1]);
    out[2] = '\0';
    return true;
}

/* Finds a country code in entry under any known layout; out is left alone when none. */
static bool record_country(MMDB_entry_s *entry, char out[3])
{
    for (size_t i = 0; i < sizeof(country_paths) / sizeof(country_paths[0]); i++) {
        MMDB_entry_data_s d;

        if (MMDB_aget_value(entry, &d, country_paths[i]) != MMDB_SUCCESS || !d.has_data ||
            d.type != MMDB_DATA_TYPE_UTF8_STRING)
            continue;
        if (country_from(d.utf8_string, d.data_size, out))
            return true;
    }
    return false;
}

/* The AS number in entry, or 0 when it has none that fits 1..UINT32_MAX. */
static uint32_t record_asn(MMDB_entry_s *entry)
{
    MMDB_entry_data_s d;

    if (MMDB_aget_value(entry, &d, path_asn) != MMDB_SUCCESS || !d.has_data)
        return 0;
    switch (d.type) {
    case MMDB_DATA_TYPE_UINT16:
        return d.uint16;
    case MMDB_DATA_TYPE_UINT32:
        return d.uint32;
    case MMDB_DATA_TYPE_UINT64:
        return d.uint64 <= UINT32_MAX ? (uint32_t)d.uint64 : 0;
    case MMDB_DATA_TYPE_INT32:
        return d.int32 > 0 ? (uint32_t)d.int32 : 0;
    default:
        return 0;
    }
}

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 if s[0] does not start one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        if (s[0] == 0xe0)
            lo = 0xa0; /* overlong */
        else if (s[0] == 0xed)
            hi = 0x9f; /* UTF-16 surrogates */
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        if (s[0] == 0xf0)
            lo = 0x90; /* overlong */
        else if (s[0] == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/*
 * Copies the organisation name src[0..n) into dst[0..cap) for logs and audit records:
 * C0, DEL and C1 controls and malformed UTF-8 bytes are dropped, and a name that does not
 * fit is cut before the first character that would not fit whole.
 */
static void copy_org(char *dst, size_t cap, const char *src, size_t n)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        size_t len = utf8_len(s + i, n - i);
        bool control;

        if (len == 0) {
            i++;
            continue;
        }
        control = (len == 1 && (s[i] < 0x20 || s[i] == 0x7f)) ||
                  (len == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0);
        if (!control) {
            if (o + len >= cap)
                break;
            memcpy(dst + o, s + i, len);
            o += len;
        }
        i += len;
    }
    dst[o] = '\0';
}

/* True when entry carries the data a database is opened for. */
static bool record_has(MMDB_entry_s *entry, enum geoip_want want)
{
    char cc[3];

    if (want == GEOIP_WANT_COUNTRY)
        return record_country(entry, cc);
    return record_asn(entry) != 0;
}

/* A search-tree node waiting to be visited by db_has_data(). */
struct probe_item {
    uint32_t node;
    uint32_t depth;
};

/*
 * True when one of the first data records of db, in address order, carries the wanted
 * data; the walk is bounded, so a huge or malformed tree cannot stall startup.
 */
static bool db_has_data(const MMDB_s *db, enum geoip_want want)
{
    struct probe_item stack[2 * GEOIP_MAX_DEPTH + 2];
    size_t top = 0, nodes = 0, records = 0;

    stack[top++] = (struct probe_item){.node = 0, .depth = 0};
    while (top > 0 && nodes < GEOIP_PROBE_NODES && records < GEOIP_PROBE_RECORDS) {
        struct probe_item it = stack[--top];
        MMDB_search_node_s n;

        nodes++;
        if (MMDB_read_node(db, it.node, &n) != MMDB_SUCCESS)
            return false;
        /* The right child goes on the stack first so that lower addresses come first. */
        for (int side = 0; side < 2; side++) {
            uint8_t type = side == 0 ? n.right_record_type : n.left_record_type;
            uint64_t rec = side == 0 ? n.right_record : n.left_record;
            MMDB_entry_s entry = side == 0 ? n.right_record_entry : n.left_record_entry;

            if (type == MMDB_RECORD_TYPE_DATA) {
                records++;
                if (record_has(&entry, want))
                    return true;
            } else if (type == MMDB_RECORD_TYPE_SEARCH_NODE && it.depth < GEOIP_MAX_DEPTH &&
                       top < sizeof(stack) / sizeof(stack[0])) {
                stack[top++] = (struct probe_item){.node = (uint32_t)rec, .depth = it.depth + 1};
            }
        }
    }
    return false;
}

/* Opens path into *db and checks that it holds the wanted data; 0, or -1 with err set. */
static int open_db(MMDB_s *db, const char *path, enum geoip_want want, char *err, size_t cap)
{
    const char *what = want == GEOIP_WANT_COUNTRY ? "country" : "ASN";
    struct stat st;
    int rc;

    if (stat(path, &st) != 0) {
        set_err(err, cap, "GeoIP %s database %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, cap, "GeoIP %s database %s: not a regular file", what, path);
        return -1;
    }
    /* libmaxminddb would report mmap()'s EINVAL, which says nothing useful. */
    if (st.st_size == 0) {
        set_err(err, cap, "GeoIP %s database %s: empty file, not a MaxMind DB (.mmdb) file", what,
                path);
        return -1;
    }
    rc = MMDB_open(path, MMDB_MODE_MMAP, db);
    if (rc == MMDB_FILE_OPEN_ERROR || rc == MMDB_IO_ERROR) {
        set_err(err, cap, "GeoIP %s database %s: cannot read: %s", what, path, strerror(errno));
        return -1;
    }
    if (rc == MMDB_INVALID_METADATA_ERROR || rc == MMDB_UNKNOWN_DATABASE_FORMAT_ERROR) {
        set_err(err, cap, "GeoIP %s database %s: not a MaxMind DB (.mmdb) file (%s)", what, path,
                MMDB_strerror(rc));
        return -1;
    }
    if (rc != MMDB_SUCCESS) {
        set_err(err, cap, "GeoIP %s database %s: damaged MaxMind DB file (%s)", what, path,
                MMDB_strerror(rc));
        return -1;
    }
    if (!db_has_data(db, want)) {
        set_err(err, cap,
                "GeoIP %s database %s: has no %s data (database type \"%s\"); expected %s in its "
                "records",
                what, path, what, db->metadata.database_type ? db->metadata.database_type : "",
                want == GEOIP_WANT_COUNTRY
                    ? "country.iso_code (GeoLite2/GeoIP2 Country or City) or country_code "
                      "(ip-location-db)"
                    : "autonomous_system_number (GeoLite2-ASN or ip-location-db ASN)");
        MMDB_close(db);
        return -1;
    }
    return 0;
}

/* Opens the databases given; see geoip.h. */
struct geoip *geoip_open(const char *country_db, const char *asn_db, char *err, size_t cap)
{
    struct geoip *g = NULL;

    if (country_db == NULL && asn_db == NULL) {
        set_err(err, cap, "GeoIP: no database given (neither a country nor an ASN database)");
        goto fail;
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        set_err(err, cap, "GeoIP: out of memory");
        goto fail;
    }
    if (country_db != NULL) {
        if (open_db(&g->country, country_db, GEOIP_WANT_COUNTRY, err, cap) != 0)
            goto fail;
        g->has_country = true;
    }
    if (asn_db != NULL) {
        if (open_db(&g->asn, asn_db, GEOIP_WANT_ASN, err, cap) != 0)
            goto fail;
        g->has_asn = true;
    }
    return g;

fail:
    geoip_close(g);
    return NULL;
}

/* Unmaps the databases and frees g. */
void geoip_close(struct geoip *g)
{
    if (g == NULL)
        return;
    if (g->has_country)
        MMDB_close(&g->country);
    if (g->has_asn)
        MMDB_close(&g->asn);
    free(g);
}

/* True when a country database is open. */
bool geoip_has_country(const struct geoip *g)
{
    return g != NULL && g->has_country;
}

/* True when an ASN database is open. */
bool geoip_has_asn(const struct geoip *g)
{
    return g != NULL && g->has_asn;
}

/* Finds the entry for sa in db; false when there is none or the lookup failed. */
static bool db_find(const MMDB_s *db, const struct sockaddr *sa, MMDB_entry_s *entry)
{
    int mmdb_err = MMDB_SUCCESS;
    MMDB_lookup_result_s res = MMDB_lookup_sockaddr(db, sa, &mmdb_err);

    /* An IPv6 address in an IPv4-only database is an error here, and simply unknown. */
    if (mmdb_err != MMDB_SUCCESS || !res.found_entry)
        return false;
    *entry = res.entry;
    return true;
}

/* Looks sa up in every open database; see geoip.h. */
void geoip_lookup(const struct geoip *g, const struct sockaddr *sa, struct geoip_result *out)
{
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    struct sockaddr_in v4;
    MMDB_entry_s entry;

    memset(out, 0, sizeof(*out));
    if (g == NULL || sa == NULL)
        return;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;

        /* ip-location-db files do not alias ::ffff:0:0/96 to IPv4 as MaxMind's do. */
        if (memcmp(s6->sin6_addr.s6_addr, v4mapped, sizeof(v4mapped)) == 0) {
            memset(&v4, 0, sizeof(v4));
            v4.sin_family = AF_INET;
            v4.sin_port = s6->sin6_port;
            memcpy(&v4.sin_addr, &s6->sin6_addr.s6_addr[12], sizeof(v4.sin_addr));
            sa = (const struct sockaddr *)(const void *)&v4;
        }
    } else if (sa->sa_family != AF_INET) {
        return;
    }
    if (g->has_country && db_find(&g->country, sa, &entry))
        record_country(&entry, out->country);
    if (g->has_asn && db_find(&g->asn, sa, &entry)) {
        MMDB_entry_data_s d;

        out->asn = record_asn(&entry);
        if (MMDB_aget_value(&entry, &d, path_as_org) == MMDB_SUCCESS && d.has_data &&
            d.type == MMDB_DATA_TYPE_UTF8_STRING)
            copy_org(out->as_org, sizeof(out->as_org), d.utf8_string, d.data_size);
    }
}

/* Checks a policy file's country code; see geoip.h. */
bool geoip_country_code_valid(const char *text, char out[3])
{
    if (text == NULL)
        return false;
    return country_from(text, strnlen(text, 3), out);
}
