/*
 * Time and descriptor helpers for tests: a monotonic clock and reads, writes and
 * connects that each have a bound in time, so no test can hang on a socket.
 */
#ifndef SLUICE_TEST_TIO_H
#define SLUICE_TEST_TIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Cap on the iterations of any waiting loop in the test support code: every such loop is
 * bounded in time by its timeout and in count by this, whichever comes first.
 */
#define TIO_MAX_ITER 1000000

/* Milliseconds on the monotonic clock; only differences mean anything. */
uint64_t tio_now_ms(void);

/* Sleeps ms milliseconds (restarting after signals). */
void tio_sleep_ms(unsigned ms);

/* Sets or clears O_NONBLOCK.  Returns 0 or -1. */
int tio_set_nonblock(int fd, bool on);

/*
 * Waits until fd is readable (events POLLIN) or writable (POLLOUT) for at most timeout_ms.
 * Returns 1 ready, 0 timed out, -1 error.
 */
int tio_wait(int fd, short events, int timeout_ms);

/*
 * Writes all of buf to a socket or pipe, waiting at most timeout_ms in total.
 * Works on blocking and non-blocking descriptors; never raises SIGPIPE (MSG_NOSIGNAL on
 * sockets).  Returns 0, or -1 with errno set (ETIMEDOUT when the bound was hit).
 */
int tio_write_all(int fd, const void *buf, size_t len, int timeout_ms);

/*
 * Reads what is available, waiting at most timeout_ms for the first byte.
 * Returns the number of bytes (> 0), 0 at end of stream, or -1 with errno set
 * (ETIMEDOUT when nothing came in time, ECONNRESET on a reset).
 */
ssize_t tio_read_some(int fd, void *buf, size_t cap, int timeout_ms);

/*
 * Connects a TCP socket to ip ("127.0.0.1" or "::1") port, waiting at most timeout_ms.
 * The descriptor returned is blocking, with TCP_NODELAY.  Returns the fd or -1 (errno set:
 * ECONNREFUSED, ETIMEDOUT, ...).
 */
int tio_connect(const char *ip, uint16_t port, int timeout_ms);

/*
 * Opens a TCP listener on ip port 0 (backlog given) and stores the port chosen.
 * Returns the fd or -1.
 */
int tio_listen(const char *ip, int backlog, uint16_t *port);

/* Sets SO_LINGER {1, 0} so that close() sends a reset instead of a FIN. */
int tio_set_linger0(int fd);

/* Closes *fd when it is >= 0 and sets it to -1. */
void tio_close(int *fd);

/* Reads a whole small file into a malloc'd NUL-terminated string; NULL if unreadable. */
char *tio_read_file(const char *path, size_t *len);

/* Writes a NUL-terminated string to path (created or truncated).  Returns 0 or -1. */
int tio_write_file(const char *path, const char *text);

#endif /* SLUICE_TEST_TIO_H */
