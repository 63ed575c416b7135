/*
 * A Squid-format access log (audit.squid_log, --squid-log), so that the analyzers that
 * read Squid's access.log (calamaris, sarg, ...) read sluice's: one line per finished
 * request or tunnel in Squid's native format,
 *
 *   %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
 *   time.ms elapsed_ms client_ip RESULT/status bytes method url user HIER/peer_ip type
 *
 * with sluice's outcomes as Squid's result codes (squidlog_result()).  Every column that
 * came from the network is URL-encoded where a byte could end or split it (space, control
 * bytes, DEL, bytes past ASCII), so a line has ten columns whatever a client sends.  The
 * lines are written by a thread of its own (linewriter.h), never on an event loop;
 * SIGUSR1 reopens the file.  A line that cannot be written is counted lost and logged:
 * the audit trail is the record that fails closed, this log is a copy for analyzers.
 */
#ifndef SLUICE_SQUIDLOG_H
#define SLUICE_SQUIDLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sluice/auditrec.h"

/* Lines waiting for the writer at most; past that a line is lost, counted and logged. */
#define SQUIDLOG_QUEUE 65536
/* Room for one line: every column at its bound (the URL's is SQUIDLOG_URL_MAX). */
#define SQUIDLOG_LINE_MAX 8192
/* Bytes of the encoded URL at most; a longer one is cut (never inside a %XX). */
#define SQUIDLOG_URL_MAX 6000

/*
 * Squid's result code for r: TCP_DENIED for a block (or a 407), TCP_TUNNEL for a tunnel
 * opened, TCP_MISS for a request allowed and sent on (an upstream failure included, with
 * its 502 or 504), TCP_MISS_ABORTED when the client went away before the end, NONE_NONE
 * when no decision was made (a malformed request, a refusal before the policy).
 */
const char *squidlog_result(const struct audit_record *r);

/*
 * Formats r, finished at now, as one line with its newline into out (cap at least
 * SQUIDLOG_LINE_MAX).  Returns the line's length.
 */
size_t squidlog_format(const struct audit_record *r, const struct timespec *now, char *out,
                       size_t cap);

/* Opens path for appending (created 0600) and starts the writer.  0, or -1 with err. */
int squidlog_open(const char *path, char *err, size_t cap);

/* Writes what is queued, stops the writer, closes the file.  Nothing when not open. */
void squidlog_close(void);

/* Opens the path again (SIGUSR1); the next line goes to the new file.  0, or -1 with err. */
int squidlog_reopen(char *err, size_t cap);

/* True when the log is open: audit_emit() hands it every record. */
bool squidlog_enabled(void);

/* Formats and queues one record (any thread). */
void squidlog_record(const struct audit_record *r);

/* Lines lost so far. */
uint64_t squidlog_lost(void);

#endif /* SLUICE_SQUIDLOG_H */
