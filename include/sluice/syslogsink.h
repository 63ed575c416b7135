/*
 * The audit records as syslog messages (audit.syslog, --audit-syslog): RFC 5424, one
 * datagram per finished request or tunnel, to the local syslog socket (unix:/dev/log,
 * "on") or a collector over UDP (RFC 5426).  The record's fields are structured data,
 *
 *   <PRI>1 TIMESTAMP HOSTNAME sluice PROCID access [sluice@32473 tool="..." ...] MSG
 *
 * with each PARAM-VALUE escaped as RFC 5424 section 6.3.3 says ('"', '\' and ']' after a
 * backslash) and every byte outside printable ASCII written as the four characters \xHH,
 * so a value can neither end its parameter nor the message.  The severity says what the
 * policy did: informational when it allowed, notice for "report" (would block), warning
 * for a block.  The socket never blocks: a datagram the receiver has no room for (a full
 * socket buffer) is counted lost, said once when the losses start and once when they end,
 * and the event loop goes on.  Syslog is a copy for pipelines; the audit trail is the
 * record that fails closed.
 */
#ifndef SLUICE_SYSLOGSINK_H
#define SLUICE_SYSLOGSINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "sluice/auditrec.h"

/* Bytes of one message at most: what RFC 5426 says every receiver should take. */
#define SYSLOGSINK_MSG_MAX 2048
/* The SD-ID: "sluice" at the enterprise number RFC 5612 sets aside for examples. */
#define SYSLOGSINK_SD_ID "sluice@32473"
/* What audit.syslog "on" means: the local syslog daemon's socket. */
#define SYSLOGSINK_DEFAULT_TARGET "unix:/dev/log"
/* The facility when none is configured: local0 (see sluice.yaml(5) for why). */
#define SYSLOGSINK_DEFAULT_FACILITY 16

/* Where messages go: a Unix datagram socket or a UDP address. */
struct syslogsink_target {
    struct sockaddr_storage addr;
    socklen_t len;
};

/*
 * Reads a target: "on" (unix:/dev/log), "unix:PATH", "udp:ADDR" or "udp:ADDR:PORT" with
 * an IPv4 address or a bracketed IPv6 one (port 514 when left out).  Returns 0, or -1
 * with *errstr saying what is wrong.
 */
int syslogsink_parse_target(const char *text, struct syslogsink_target *t, const char **errstr);

/*
 * Reads a facility name (kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron,
 * authpriv, ftp, local0 ... local7) into its code.  Returns 0, or -1.
 */
int syslogsink_parse_facility(const char *name, uint32_t *code);

/* The name of facility code, or "?". */
const char *syslogsink_facility_str(uint32_t code);

/* The severity (RFC 5424 numbers) a record is sent with: 6, 5 or 4. */
unsigned syslogsink_severity(const struct audit_record *r);

/*
 * Formats r, finished at now, as one message (no newline) for facility, from hostname
 * and process pid, into out (cap at least SYSLOGSINK_MSG_MAX + 1).  Values too long for
 * the message are cut, ending in "..."; the message ends at SYSLOGSINK_MSG_MAX bytes.
 * Returns its length.
 */
size_t syslogsink_format(const struct audit_record *r, uint32_t facility,
                         const struct timespec *now, const char *hostname, long pid, char *out,
                         size_t cap);

/*
 * Opens a non-blocking datagram socket for target (as syslogsink_parse_target() reads
 * it) and starts sending records with facility.  A Unix target must be a socket that is
 * there.  Returns 0, or -1 with a sentence in err.
 */
int syslogsink_open(const char *target, uint32_t facility, char *err, size_t cap);

/* Stops sending and closes the socket.  Nothing when not open. */
void syslogsink_close(void);

/* True when records are sent. */
bool syslogsink_enabled(void);

/* Sends one record (any thread); never blocks. */
void syslogsink_record(const struct audit_record *r);

/* Records lost so far (the receiver had no room, or was not there). */
uint64_t syslogsink_lost(void);

#endif /* SLUICE_SYSLOGSINK_H */
