/*
 * Executables and scripts learned by their content: once a process's executable, or the
 * script an interpreter runs, named a tool by its path (a profile's executables pattern),
 * that file's SHA-256 names the tool too, so a copy of the same file under another name or
 * in another place is still that tool.  Learned per
 * user (the uid of the process behind the connection): what one user runs under a tool's
 * name never changes what another user's programs are taken for.  Profiles can also list
 * digests outright (identify: sha256), which holds from the first connection; see
 * identity.h.
 *
 * Bounded (TOOLHASH_MAX entries, the oldest pushed out), kept in memory for the life of
 * the process, shared by every worker behind one mutex.
 */
#ifndef SLUICE_TOOLHASH_H
#define SLUICE_TOOLHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Entries kept at most. */
#define TOOLHASH_MAX 256
/* Room for a tool id, NUL included. */
#define TOOLHASH_TOOL_MAX 64

/*
 * Learns that for uid, the executable of size bytes whose SHA-256 is sha256 (64 hex
 * digits) is tool.  A newer lesson for the same uid and digest replaces the older.
 */
void toolhash_learn(uint32_t uid, const char *sha256, uint64_t size, const char *tool);

/* The tool learned for uid and sha256, into tool (capacity cap): false when none. */
bool toolhash_lookup(uint32_t uid, const char *sha256, char *tool, size_t cap);

/* True when some executable of size bytes was learned for uid: only then can a hash made
 * now name a tool by what was learned. */
bool toolhash_size_learned(uint32_t uid, uint64_t size);

/* True when anything was learned for uid. */
bool toolhash_has_user(uint32_t uid);

/* Forgets everything (tests). */
void toolhash_reset(void);

#endif /* SLUICE_TOOLHASH_H */
