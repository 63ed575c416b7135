/*
 * The audit trail's file: one JSON object per line for each finished request or tunnel,
 * with Elastic Common Schema names where ECS has the field and sluice's own under
 * "sluice".  Workers hand records to a bounded queue; one writer thread appends them in
 * batches of whole lines (linewriter.h), so writing never blocks an event loop and a
 * reader never sees half a line.  Each record carries the SHA-256 of the line
 * before it (sluice.prev_hash) and a sequence number (sluice.record_id), continued across
 * restarts from the file's last line, or, when the file is new or empty (logrotate moved
 * it), from the last record kept in the lock file beside it: an edited, deleted or
 * reordered line breaks the chain, and auditlog_verify() says where.
 */
#ifndef SLUICE_AUDITLOG_H
#define SLUICE_AUDITLOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sluice/auditrec.h"

/* Records waiting for the writer at most; past that a record is lost, counted and logged. */
#define AUDITLOG_QUEUE 65536
/*
 * Bytes of one line at most.  A field is cut past its own bound (4096 for a URL, 1024 for
 * most) and says so with "..."; a member that would not fit the line is left out whole,
 * and the record says "truncated": every line is valid JSON whatever a client sends.
 */
#define AUDITLOG_LINE_MAX 32768

/* How the trail is kept. */
struct auditlog_options {
    const char *path;      /* the file, appended to; copied */
    uint32_t sync_ms;      /* fdatasync at most this long after a write; 0: after each */
    uint64_t rotate_bytes; /* past this size the file becomes PATH.1; 0: never */
    uint32_t keep;         /* rotated files kept, PATH.1 to PATH.keep (at least 1) */
};

/*
 * Takes the lock DIR/.NAME.lock beside opt->path (DIR/NAME), held until auditlog_close(),
 * opens opt->path for appending (created 0600), reads its last line to continue the chain
 * (cutting off a line a crash left unfinished; the lock file's last record when there is
 * none), starts the writer and logs the chain's last record and its line's hash.  Returns
 * 0, or -1 with a sentence in err (another sluice holds the lock: its pid is named).
 */
int auditlog_open(const struct auditlog_options *opt, char *err, size_t cap);

/*
 * Writes what is queued, stops the writer, closes the file and logs the chain's last
 * record and its line's hash.  Nothing when not open.
 */
void auditlog_close(void);

/*
 * Opens the trail's path again (SIGUSR1, after logrotate moved the file): the writer
 * takes the new file before its next record, whose prev_hash is the last line's of the
 * old file, so `sluice audit verify OLD NEW` checks across.  Returns 0, or -1 with a
 * sentence in err (the old file stays in use).
 */
int auditlog_reopen(char *err, size_t cap);

/* True when the trail is open: audit_emit() hands it every record. */
bool auditlog_enabled(void);

/*
 * The line of r up to its chain fields, in the calling thread's own room (good until its
 * next call), its length in *len: the writer ends it with "record_id":N,"prev_hash":"..."}}
 * and a newline.  Valid JSON so ended, whatever r holds, NUL-terminated, and at most
 * AUDITLOG_LINE_MAX - 200 bytes.  Any thread.
 */
const char *auditlog_format(const struct audit_record *r, size_t *len);

/* Queues one record (any thread).  A record the queue has no room for is counted lost. */
void auditlog_record(const struct audit_record *r);

/*
 * True while the trail is failing: its last write failed, or a record found the queue
 * full.  A record written again ends it.  Unless audit.fail_open, requests are refused
 * meanwhile (session.c); each refusal's own record tries the file again.
 */
bool auditlog_failing(void);

/* Records lost so far because the queue was full or a write failed. */
uint64_t auditlog_lost(void);

/* Records waiting for the writer now (0 when the trail is not open); any thread. */
size_t auditlog_queue_depth(void);

/*
 * Checks the chain of the files paths[0..n), in order (a later file continues the one
 * before it), reporting on out: each line's prev_hash is the SHA-256 of the line before
 * it and its record_id is one more than that line's, and record 1's prev_hash is zeros.
 * Returns 0 when every line follows the one before it from record 1, 3 when they do but
 * the first line is past record 1 (the earlier records are elsewhere, or were removed),
 * 1 at the first break (named by file and line), 2 when a file cannot be read.  Records
 * removed from the end, or the last one changed, cannot be told from the files: the
 * summary names the last record and its line's hash, to compare with a copy elsewhere.
 */
int auditlog_verify(char *const *paths, size_t n, FILE *out);

#endif /* SLUICE_AUDITLOG_H */
