/* Executables learned by their content; see include/sluice/toolhash.h. */
#include "sluice/toolhash.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* One lesson. */
struct toolhash_entry {
    bool used;
    uint32_t uid;
    uint64_t size;
    char sha256[65];
    char tool[TOOLHASH_TOOL_MAX];
};

static struct {
    pthread_mutex_t lock;
    struct toolhash_entry entries[TOOLHASH_MAX];
    size_t next; /* the slot the next lesson takes: the oldest */
} toolhash = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The entry for uid and sha256, or NULL; under lock. */
static struct toolhash_entry *toolhash_find(uint32_t uid, const char *sha256)
{
    for (size_t i = 0; i < TOOLHASH_MAX; i++) {
        struct toolhash_entry *e = &toolhash.entries[i];
        if (e->used && e->uid == uid && strcmp(e->sha256, sha256) == 0)
            return e;
    }
    return NULL;
}

/* Learns one; see the header. */
void toolhash_learn(uint32_t uid, const char *sha256, uint64_t size, const char *tool)
{
    struct toolhash_entry *e;

    if (strlen(sha256) != 64 || strlen(tool) >= TOOLHASH_TOOL_MAX)
        return;
    pthread_mutex_lock(&toolhash.lock);
    if ((e = toolhash_find(uid, sha256)) == NULL) {
        e = &toolhash.entries[toolhash.next];
        toolhash.next = (toolhash.next + 1) % TOOLHASH_MAX;
    }
    e->used = true;
    e->uid = uid;
    e->size = size;
    memcpy(e->sha256, sha256, sizeof(e->sha256));
    snprintf(e->tool, sizeof(e->tool), "%s", tool);
    pthread_mutex_unlock(&toolhash.lock);
}

/* Looks one up; see the header. */
bool toolhash_lookup(uint32_t uid, const char *sha256, char *tool, size_t cap)
{
    const struct toolhash_entry *e;
    bool found = false;

    pthread_mutex_lock(&toolhash.lock);
    if ((e = toolhash_find(uid, sha256)) != NULL) {
        snprintf(tool, cap, "%s", e->tool);
        found = true;
    }
    pthread_mutex_unlock(&toolhash.lock);
    return found;
}

/* Whether a size was learned; see the header. */
bool toolhash_size_learned(uint32_t uid, uint64_t size)
{
    bool found = false;

    pthread_mutex_lock(&toolhash.lock);
    for (size_t i = 0; i < TOOLHASH_MAX && !found; i++)
        found = toolhash.entries[i].used && toolhash.entries[i].uid == uid &&
                toolhash.entries[i].size == size;
    pthread_mutex_unlock(&toolhash.lock);
    return found;
}

/* Whether anything was learned for uid; see the header. */
bool toolhash_has_user(uint32_t uid)
{
    bool found = false;

    pthread_mutex_lock(&toolhash.lock);
    for (size_t i = 0; i < TOOLHASH_MAX && !found; i++)
        found = toolhash.entries[i].used && toolhash.entries[i].uid == uid;
    pthread_mutex_unlock(&toolhash.lock);
    return found;
}

/* Forgets everything. */
void toolhash_reset(void)
{
    pthread_mutex_lock(&toolhash.lock);
    memset(toolhash.entries, 0, sizeof(toolhash.entries));
    toolhash.next = 0;
    pthread_mutex_unlock(&toolhash.lock);
}
