/*
 * The SHA-256 of the executable a client process runs, for the record: a copy of a tool
 * renamed, or a tool replaced under the same path, shows as another hash.  Hashing a
 * large executable (node is about 100 MB) takes longer than an event loop may stall, so
 * one thread of the process hashes in the background, and the result is kept under the
 * file's device, inode, size and modification time: a file changed in place is hashed
 * again, and an unchanged one never is.
 */
#ifndef SLUICE_EXEHASH_H
#define SLUICE_EXEHASH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Hex digits of a SHA-256, and the NUL. */
#define EXEHASH_HEX 65
/* Executables whose hash is kept; the oldest goes first. */
#define EXEHASH_CACHE 256
/* Executables waiting to be hashed; past that a request for another is dropped. */
#define EXEHASH_QUEUE 32
/* Larger files are not hashed. */
#define EXEHASH_MAX_BYTES (1024ull * 1024 * 1024)

/* Which file: what a hash is kept under. */
struct exehash_key {
    uint64_t dev, ino, size;
    int64_t mtime_ns;
};

/* Starts the hashing thread.  Returns 0, or -1 (then nothing is ever hashed). */
int exehash_start(void);

/* Stops it and forgets every hash; pending files are dropped. */
void exehash_stop(void);

/*
 * Looks at the executable process pid runs (/proc/PID/exe: the very file, even when it
 * was deleted or renamed since): fills *key and, when its hash is known, hex, returning
 * true.  Otherwise queues it for hashing (a later exehash_known() finds it) and returns
 * false; also false, with *key zeroed, when the file cannot be looked at.  Costs a stat;
 * an open when queued.  Thread-safe.
 */
bool exehash_of_pid(pid_t pid, struct exehash_key *key, char hex[EXEHASH_HEX]);

/* Which file process pid runs (a stat of /proc/PID/exe), into *key: false, with *key
 * zeroed, when it cannot be looked at. */
bool exehash_key_of_pid(pid_t pid, struct exehash_key *key);

/* The same for the file path names (links followed): false unless it is a regular file. */
bool exehash_key_of_path(const char *path, struct exehash_key *key);

/*
 * As exehash_of_pid(), for the file path names (the script an interpreter runs, reached
 * through /proc/PID/cwd or /proc/PID/root): only a regular file is hashed, opened without
 * blocking, so an argument naming a FIFO or a device costs nothing.
 */
bool exehash_of_path(const char *path, struct exehash_key *key, char hex[EXEHASH_HEX]);

/* Larger files are not hashed while a lookup waits: they go to the hashing thread. */
#define EXEHASH_WAIT_MAX_BYTES (256ull * 1024 * 1024)

/*
 * As exehash_of_pid(), but a hash not yet known is made now, in this thread, and kept:
 * for a thread that may wait (a process lookup), when the answer depends on the hash.
 * A file larger than EXEHASH_WAIT_MAX_BYTES is queued instead (false, as exehash_of_pid()
 * says); false too when the file cannot be read.
 */
bool exehash_of_pid_now(pid_t pid, struct exehash_key *key, char hex[EXEHASH_HEX]);

/* The same for the file path names; see exehash_of_path(). */
bool exehash_of_path_now(const char *path, struct exehash_key *key, char hex[EXEHASH_HEX]);

/* The hash kept for key, into hex: true when it is known. */
bool exehash_known(const struct exehash_key *key, char hex[EXEHASH_HEX]);

/*
 * Hashes pid's executable now, in this thread (for `sluice tools which`).  Returns true
 * with hex filled.
 */
bool exehash_now(pid_t pid, char hex[EXEHASH_HEX]);

#endif /* SLUICE_EXEHASH_H */
