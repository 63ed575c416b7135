/*
 * Sets of host names and "*.suffix" wildcards, each with a value, for policy matching.
 *
 * A set is built with domainset_add() from one thread, then frozen with domainset_freeze();
 * a frozen set is immutable, so any number of threads may look names up in it with no lock.
 * Names are compared in their normalised form (domainset_normalize()): ASCII lower case, no
 * trailing dot, Unicode names in their IDNA ASCII form.  Matching is on whole labels only:
 * "*.example.com" matches "a.example.com" and "a.b.example.com" but neither "example.com"
 * nor "badexample.com"; "example.com" matches only itself.  An IP literal is an exact
 * entry in its canonical text, whatever spelling it was given in; no wildcard covers one.
 */
#ifndef SLUICE_DOMAINSET_H
#define SLUICE_DOMAINSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest normalised name in bytes (RFC 1035 limit, without the trailing dot). */
#define DOMAINSET_NAME_MAX 253

/* Longest label in bytes. */
#define DOMAINSET_LABEL_MAX 63

/* A set of exact names and wildcard suffixes; opaque, owned by whoever called _new(). */
struct domainset;

/* Makes an empty set, ready for domainset_add().  Returns NULL when out of memory. */
struct domainset *domainset_new(void);

/* Frees s and everything it holds; NULL is a no-op. */
void domainset_free(struct domainset *s);

/*
 * Adds pattern, an exact name ("api.example.com") or a wildcard ("*.example.com", matching
 * any name strictly below example.com, not example.com itself), with value.  The pattern is
 * normalised first, so case, one trailing dot and Unicode spellings do not matter.  Adding
 * a pattern already present keeps the first value.  The set must not be frozen yet.
 * Returns 0, or -1 with *errstr set to a static string saying what is wrong.
 */
int domainset_add(struct domainset *s, const char *pattern, uint32_t value, const char **errstr);

/*
 * Ends building: indexes every pattern added (this is where the work is), after which
 * lookups are valid, domainset_add() is refused and the set is immutable, safe to read
 * from many threads without a lock.  A second call does nothing.  Returns 0, or -1 when
 * out of memory (the set is then left unfrozen, as it was).
 */
int domainset_freeze(struct domainset *s);

/*
 * True when host[0..len) (not necessarily NUL-terminated) matches an entry of the frozen
 * set s (an unfrozen set matches nothing); *value
 * (which may be NULL) then gets the value of the most specific match: an exact entry beats
 * any wildcard, and a longer wildcard suffix beats a shorter one.  The host is normalised
 * as by domainset_normalize(); one that fails normalisation matches nothing.  Never
 * allocates for ASCII hosts (libidn2 allocates internally for Unicode ones).
 */
bool domainset_lookup(const struct domainset *s, const char *host, size_t len, uint32_t *value);

/*
 * domainset_lookup() for a name already in its normalised form, name[0..n) (as
 * domainset_normalize() or request_normalize_host() gives it): no normalising again, for
 * callers that look one name up in many sets.  Never allocates.
 */
bool domainset_lookup_normal(const struct domainset *s, const char *name, size_t n,
                             uint32_t *value);

/*
 * Number of distinct patterns in s (exact names and wildcards together) once frozen;
 * before that, the number of patterns accepted so far, duplicates included.
 */
size_t domainset_count(const struct domainset *s);

/* Bytes of memory held by s, its tables and its names included. */
size_t domainset_memory(const struct domainset *s);

/*
 * Normalises the host name host[0..len) for matching into out[0..cap): an IP literal in
 * any spelling as its one canonical text (netguard_parse_literal, netguard_format: every
 * IPv4 form as a dotted quad, IPv6 as RFC 5952 text without brackets, an IPv4-mapped one as
 * the IPv4 it maps); a name in ASCII lower case,
 * one trailing dot removed, a UTF-8 name converted to its IDNA ASCII form ("xn--...",
 * UTS #46 non-transitional, transitional as a fallback).  The result must consist of
 * letters, digits, '-', '_' and '.', with no empty label, labels of at most 63 bytes and
 * at most 253 bytes in all.  out is NUL-terminated when cap leaves room (a buffer of
 * DOMAINSET_NAME_MAX + 1 bytes always does).  Returns the length, or -1 with *errstr set
 * to a static string.  Never allocates for ASCII input.
 */
int domainset_normalize(const char *host, size_t len, char *out, size_t cap, const char **errstr);

#endif /* SLUICE_DOMAINSET_H */
