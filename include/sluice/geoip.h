/*
 * GeoIP: the country and autonomous system of an address, from MaxMind DB (.mmdb) files.
 *
 * Two record layouts are read for the country: MaxMind's GeoLite2/GeoIP2 Country and City
 * (country.iso_code, falling back to registered_country.iso_code) and ip-location-db's
 * (a top-level country_code).  The ASN database is read for autonomous_system_number and
 * autonomous_system_organization, the layout both GeoLite2-ASN and ip-location-db use.
 * The databases are opened once and never change, so one struct geoip may be read from
 * many threads at once; a reload opens a new one.
 */
#ifndef SLUICE_GEOIP_H
#define SLUICE_GEOIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

/* Opened databases; immutable after geoip_open(), owned by whoever opened them. */
struct geoip;

/* What a lookup found; a field that is unknown stays empty. */
struct geoip_result {
    char country[3]; /* ISO 3166-1 alpha-2, upper case, or "" when unknown */
    uint32_t asn;    /* autonomous system number, or 0 when unknown */
    char as_org[64]; /* AS organisation, or "": truncated, UTF-8 kept whole, controls dropped */
};

/*
 * Opens a country database and/or an ASN database; either path may be NULL, not both.
 * Each file given must be a MaxMind DB whose records carry the data it is opened for.
 * Returns the databases, which the caller frees with geoip_close(), or NULL with a
 * message in err[0..cap) that names the file and says what is wrong.
 */
struct geoip *geoip_open(const char *country_db, const char *asn_db, char *err, size_t cap);

/* Closes the databases and frees g; NULL is a no-op. */
void geoip_close(struct geoip *g);

/* True when g was opened with a country database. */
bool geoip_has_country(const struct geoip *g);

/* True when g was opened with an ASN database. */
bool geoip_has_asn(const struct geoip *g);

/*
 * Looks up sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address is looked up as its IPv4
 * address) into *out, whose fields stay empty where nothing is known.  Thread-safe and
 * never allocates on the heap.
 */
void geoip_lookup(const struct geoip *g, const struct sockaddr *sa, struct geoip_result *out);

/* True when text is a country code as a policy file writes it (two ASCII letters, any
 * case); the upper-case form is written to out. */
bool geoip_country_code_valid(const char *text, char out[3]);

#endif /* SLUICE_GEOIP_H */
