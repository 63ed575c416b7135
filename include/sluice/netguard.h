/*
 * Address guard: what an upstream address is before the proxy dials it.
 *
 * The caller resolves the upstream host once, classifies EVERY resolved address (and the
 * port) with netguard_classify_target(), refuses the connection when any deny class is
 * set, and then connects to exactly the address it checked, so DNS rebinding has no second
 * resolution to slip through.  The organisation policy's CIDR allow/deny lists are
 * netguard_cidrs sets.
 *
 * Parsing, formatting, classification and matching are pure and never allocate; only
 * building a CIDR set or a self set does.  Sets are built once (one thread), then only
 * read, so any number of threads may match against them without locks.
 */
#ifndef SLUICE_NETGUARD_H
#define SLUICE_NETGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>

/* Address classes, as bits; an address may carry several. */
enum netguard_class {
    NETGUARD_LOOPBACK = 1u << 0,     /* 127.0.0.0/8, ::1 */
    NETGUARD_PRIVATE = 1u << 1,      /* RFC 1918: 10/8, 172.16/12, 192.168/16 */
    NETGUARD_LINK_LOCAL = 1u << 2,   /* 169.254/16, fe80::/10 */
    NETGUARD_METADATA = 1u << 3,     /* cloud metadata endpoints, also in their other class */
    NETGUARD_CGNAT = 1u << 4,        /* 100.64.0.0/10 (RFC 6598 shared address space) */
    NETGUARD_UNIQUE_LOCAL = 1u << 5, /* fc00::/7 */
    NETGUARD_MULTICAST = 1u << 6,    /* 224/4, ff00::/8 */
    NETGUARD_UNSPECIFIED = 1u << 7,  /* 0.0.0.0/8, :: (Linux dials them as the local host) */
    NETGUARD_RESERVED = 1u << 8,     /* not globally routable otherwise: see netguard.c */
    NETGUARD_SELF = 1u << 9,         /* one of the proxy's own listeners (netguard_is_self) */
};

/* Every class. */
#define NETGUARD_ALL_CLASSES ((uint32_t)((1u << 10) - 1))

/*
 * An IPv4 or IPv6 socket address in the room it needs (28 bytes, where a
 * sockaddr_storage takes 128): what connections keep of their peers.
 */
union netguard_sockaddr {
    struct sockaddr sa;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
};

/* Room for the text of any address, NUL included (as INET6_ADDRSTRLEN). */
#define NETGUARD_ADDRSTRLEN 46

/*
 * An IP address in exactly one form: IPv4, including IPv4-mapped IPv6 (::ffff:a.b.c.d),
 * is held as AF_INET in bytes[0..4); IPv6 as AF_INET6 in bytes[0..16).  Bytes beyond the
 * family's length are zero, so two addresses are equal when their structs are.
 */
struct netguard_addr {
    int family;        /* AF_INET or AF_INET6 */
    uint8_t bytes[16]; /* network byte order */
};

/*
 * Parses host[0..len) as an IP literal the way a browser's URL parser (and inet_aton)
 * would, so that every spelling of one address is that address: IPv4 in 1 to 4 parts,
 * each decimal, octal (leading 0) or hex (0x), the last filling the remaining bytes
 * (2130706433, 0x7f000001, 0177.0.0.1, 127.1, 0x7f.1), one trailing dot allowed; IPv6
 * bracketed or not ([::1], ::1, [::ffff:127.0.0.1]).  IPv4-mapped IPv6 becomes AF_INET.
 * Returns true and fills *out for a literal; false for a name, for garbage, for IPv4 with
 * an overflowing part (256.1.1.1, 4294967296), for IPv4 in brackets and for an IPv6 zone id:
 * the caller then treats the host as a name (which will not resolve, or whose addresses
 * are checked in their turn).  host need not be NUL-terminated.  Never allocates.
 */
bool netguard_parse_literal(const char *host, size_t len, struct netguard_addr *out);

/*
 * Writes the canonical text of a into out[0..cap): a dotted quad, or RFC 5952 IPv6
 * without brackets (lower case, longest zero run as "::", ::ffff:a.b.c.d for a mapped
 * address built by hand).  Truncates but always NUL-terminates when cap > 0; "?" for a
 * family that is neither.  Returns the length of the full text.
 */
size_t netguard_format(const struct netguard_addr *a, char *out, size_t cap);

/* True when a and b are the same address. */
bool netguard_addr_equal(const struct netguard_addr *a, const struct netguard_addr *b);

/*
 * Fills *out from an AF_INET or AF_INET6 socket address (an IPv4-mapped one becomes
 * AF_INET; the port and an IPv6 scope id are dropped).  Returns false for another family.
 */
bool netguard_from_sockaddr(const struct sockaddr *sa, struct netguard_addr *out);

/*
 * Writes a with port (host byte order) into *ss as a sockaddr_in or sockaddr_in6 to
 * connect to.  Returns its length, or 0 when a's family is neither.
 */
socklen_t netguard_to_sockaddr(const struct netguard_addr *a, uint16_t port,
                               struct sockaddr_storage *ss);

/*
 * The classes of a (never NETGUARD_SELF, which needs the port: netguard_classify_target).
 * IPv6 forms that embed an IPv4 address carry that address's classes as well:
 * IPv4-compatible ::/96 (except :: and ::1), NAT64 64:ff9b::/96 and 64:ff9b:1::/48 (IPv4
 * in the last 32 bits), 6to4 2002::/16 (bits 16..47) and Teredo 2001::/32 (the client,
 * the last 32 bits inverted).  An address of an unknown family is NETGUARD_RESERVED.
 */
uint32_t netguard_classify(const struct netguard_addr *a);

/*
 * Parses a class name ("loopback", "private", "link-local", "metadata", "cgnat",
 * "unique-local", "multicast", "unspecified", "reserved", "self") into its bit; 0 when
 * name is unknown or NULL.  Exact, lower-case match.
 */
uint32_t netguard_class_parse(const char *name);

/* The name of the lowest set bit of classes: "none" for 0, never NULL. */
const char *netguard_class_str(uint32_t classes);

/*
 * Writes the names of every class in classes, comma-separated ("link-local,metadata"),
 * or "none", into out[0..cap) for messages and audit records.  Truncates but always
 * NUL-terminates when cap > 0; returns the length of the full text.
 */
size_t netguard_classes_format(uint32_t classes, char *out, size_t cap);

/* A set of IPv4 and IPv6 prefixes; owned by whoever called netguard_cidrs_new(). */
struct netguard_cidrs;

/* Makes an empty set; NULL when out of memory. */
struct netguard_cidrs *netguard_cidrs_new(void);

/* Frees c; NULL is a no-op. */
void netguard_cidrs_free(struct netguard_cidrs *c);

/*
 * Adds a prefix written as "10.0.0.0/8", "2001:db8::/32", or a single address
 * "192.0.2.1" (= /32) or "2001:db8::1" (= /128).  Addresses are strict: a dotted quad or
 * inet_pton IPv6, no brackets, no legacy IPv4 forms, no zone id; the length is decimal.
 * An IPv4-mapped prefix (::ffff:10.0.0.0/104) is stored as its IPv4 prefix, so it matches
 * the IPv4 addresses it covers.  Host bits set beyond the length are refused with the
 * form to write ("10.1.0.0/8 has host bits set; write 10.0.0.0/8"); a prefix already in
 * the set is accepted once.  Returns 0, or -1 with *errstr (when errstr is not NULL)
 * pointing to a message that stays valid until the next add to c or netguard_cidrs_free(c).
 * Not safe while other threads match against c.
 */
int netguard_cidrs_add(struct netguard_cidrs *c, const char *text, const char **errstr);

/* How many distinct prefixes c holds (0 for NULL). */
size_t netguard_cidrs_count(const struct netguard_cidrs *c);

/* True when a prefix of c covers a; false for an empty or NULL set.  Never allocates. */
bool netguard_cidrs_match(const struct netguard_cidrs *c, const struct netguard_addr *a);

/*
 * The proxy's own listening addresses, built at startup from what each listener's
 * getsockname() reports and read-only after; owned by whoever called netguard_self_new().
 */
struct netguard_self;

/* Makes an empty self set; NULL when out of memory. */
struct netguard_self *netguard_self_new(void);

/* Frees s; NULL is a no-op. */
void netguard_self_free(struct netguard_self *s);

/*
 * Records a listener bound to a:port (port in host byte order, not 0).  A wildcard
 * listener (0.0.0.0 or ::) stands for every local address; see netguard_is_self().
 * Returns 0, or -1 with *errstr (a static string) when port is 0 or memory runs out.
 */
int netguard_self_add(struct netguard_self *s, const struct netguard_addr *a, uint16_t port,
                      const char **errstr);

/*
 * True when dialling a:port could reach one of the proxy's own listeners: a listener on
 * exactly a:port; an unspecified target (0.0.0.0, ::) on the port of a loopback listener,
 * since Linux dials it as the local host; and, for a wildcard listener on that port, any
 * loopback or unspecified target of either family (a [::] listener may take IPv4 too).
 * The proxy's other interface addresses are not known here: a caller that wants them
 * treated as self under a wildcard listener adds each with netguard_self_add().
 * False for a NULL s.  Never allocates.
 */
bool netguard_is_self(const struct netguard_self *s, const struct netguard_addr *a, uint16_t port);

/* netguard_classify(a), plus NETGUARD_SELF when netguard_is_self(s, a, port). */
uint32_t netguard_classify_target(const struct netguard_self *s, const struct netguard_addr *a,
                                  uint16_t port);

#endif /* SLUICE_NETGUARD_H */
