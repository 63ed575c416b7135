/*
 * Running the real sluice binary from a test: posix_spawn with the test's arguments and
 * --ready-file, stdout and stderr into a per-process log file, the listening addresses
 * read back from the ready file, a bounded wait for access log lines, and a stop by PID
 * (SIGTERM, bounded waitpid, then SIGKILL).
 */
#ifndef SLUICE_TEST_SLUICEPROC_H
#define SLUICE_TEST_SLUICEPROC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SLUICEPROC_MAX_ADDRS 8

struct sluiceproc;

/* Path of the binary: $SLUICE_BIN, else the one CMake built (SLUICE_BIN_DEFAULT). */
const char *sluiceproc_bin(void);

/*
 * Starts sluice with argv[1..] = args (NULL-terminated) followed by "--ready-file F",
 * logging to a new file in dir.  Does not wait; see sluiceproc_wait_ready().
 * Returns NULL when posix_spawn failed.
 */
struct sluiceproc *sluiceproc_spawn(const char *dir, const char *const args[]);

/*
 * Waits at most timeout_ms for the ready file (one "ADDR:PORT" line per listener).
 * Returns false when it did not appear or the process exited first.
 */
bool sluiceproc_wait_ready(struct sluiceproc *p, int timeout_ms);

/* PID of the process (still valid after it exited, for messages). */
pid_t sluiceproc_pid(const struct sluiceproc *p);

/* Port of the i-th listener from the ready file (0 when there is none). */
uint16_t sluiceproc_port(const struct sluiceproc *p, unsigned i);

/* The i-th "ADDR:PORT" line of the ready file, or NULL. */
const char *sluiceproc_addr(const struct sluiceproc *p, unsigned i);

/* Number of listeners in the ready file. */
unsigned sluiceproc_naddrs(const struct sluiceproc *p);

/* Path of the log file that gets the process's stdout and stderr. */
const char *sluiceproc_log_path(const struct sluiceproc *p);

/* Sends sig to the process unless it was already reaped.  Returns 0 or -1. */
int sluiceproc_signal(struct sluiceproc *p, int sig);

/* Waits at most timeout_ms for the process to exit.  True once it has been reaped. */
bool sluiceproc_wait_exit(struct sluiceproc *p, int timeout_ms);

/* Wait status of the reaped process (see <sys/wait.h>); meaningless before it exited. */
int sluiceproc_status(const struct sluiceproc *p);

/*
 * SIGTERM, waits at most timeout_ms, then SIGKILL and a final bounded wait.
 * Returns the wait status, or -1 when the process could not be reaped.
 */
int sluiceproc_stop(struct sluiceproc *p, int timeout_ms);

/*
 * Waits at most timeout_ms for an access line containing every token (NULL-terminated
 * list).  A token "key=value" with an unquoted value and no space must be a whole field
 * of the line ("term=C" does not match term=CD); any other token (a quoted value's start,
 * a path, several fields) is looked for as a substring.  Returns the first such line (malloc'd,
 * without newline) or NULL.
 */
char *sluiceproc_access_wait(struct sluiceproc *p, int timeout_ms, ...) __attribute__((sentinel));

/* sluiceproc_access_wait() with the token list as a va_list. */
char *sluiceproc_access_waitv(struct sluiceproc *p, int timeout_ms, va_list ap);

/* Number of access lines containing every token (as for the wait), right now. */
unsigned sluiceproc_access_count(struct sluiceproc *p, ...) __attribute__((sentinel));

/* True when the log holds s anywhere, right now. */
bool sluiceproc_log_contains(struct sluiceproc *p, const char *s);

/*
 * Waits at most timeout_ms until the log holds s: a worker holds its lines for up to
 * 50 ms before it writes them, so a line can be late, and later than another worker's
 * line about something that came after it.  True when it does.
 */
bool sluiceproc_log_wait(struct sluiceproc *p, const char *s, int timeout_ms);

/* True when the log holds an AddressSanitizer, LeakSanitizer or UBSan report. */
bool sluiceproc_sanitizer_report(struct sluiceproc *p);

/*
 * A size field of /proc/PID/status in KiB ("VmRSS", "VmHWM"), or -1 when the process is
 * gone or the field missing.
 */
long sluiceproc_status_kib(struct sluiceproc *p, const char *field);

/* Number of descriptors the process has open now, or -1 when it is gone. */
int sluiceproc_fd_count(struct sluiceproc *p);

/*
 * Waits (at most timeout_ms) until the process has at least want descriptors open: how a
 * test knows sluice accepted the connections it opened.  True when it does.
 */
bool sluiceproc_wait_fds(struct sluiceproc *p, int want, int timeout_ms);

/* Copies the last max_bytes of the log to stderr, for a failing test's output. */
void sluiceproc_dump_log(struct sluiceproc *p, size_t max_bytes);

/* Stops the process if it still runs (bounded) and frees p.  NULL is a no-op. */
void sluiceproc_free(struct sluiceproc *p);

#endif /* SLUICE_TEST_SLUICEPROC_H */
