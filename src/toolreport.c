/* Reports on the tool profiles, for people; see include/sluice/toolreport.h. */
#include "sluice/toolreport.h"

#include <string.h>

#include "sluice/domainset.h"
#include "sluice/exehash.h"
#include "sluice/identity.h"
#include "sluice/log.h"
#include "sluice/procid.h"

/* Writes the items of a list after label, comma-separated, or nothing when it is empty. */
static void toolreport_items(FILE *out, const char *label, char *const *items, size_t n)
{
    if (n == 0)
        return;
    fprintf(out, "  %-12s", label);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s%s", i == 0 ? "" : ", ", items[i]);
    fputc('\n', out);
}

/* The proxy user names that select t: its id, then the listed ones that are not its id. */
static size_t toolreport_users(const struct policy_tool *t, char **out)
{
    size_t n = 0;

    out[n++] = t->id;
    for (size_t i = 0; i < t->nproxy_users; i++)
        if (strcmp(t->proxy_users[i], t->id) != 0)
            out[n++] = t->proxy_users[i];
    return n;
}

/* Lists the profiles; see the header. */
void toolreport_list(const struct policy_snapshot *p, FILE *out)
{
    fprintf(out, "%-18s %-24s %s\n", "ID", "NAME", "RECOGNISED BY");
    for (size_t i = 0; i < p->ntools; i++) {
        const struct policy_tool *t = &p->tools[i];
        char *users[POLICY_MAX_LIST + 1];

        fprintf(out, "%-18s %-24s proxy user (%zu), executable (%zu), user agent (%zu)\n", t->id,
                t->name != NULL ? t->name : "-", toolreport_users(t, users), t->nexecutables,
                t->nuser_agents);
    }
}

/* Shows one profile; see the header. */
int toolreport_show(const struct policy_snapshot *p, const char *id, FILE *out)
{
    const struct policy_tool *t = policy_find_tool(p, id);
    char *users[POLICY_MAX_LIST + 1];

    if (t == NULL)
        return -1;
    fprintf(out, "%s (%s)\n  profile     %s\n  default     %s%s\n", t->id,
            t->name != NULL ? t->name : "no name", t->file, policy_verdict_str(t->default_verdict),
            t->block_telemetry ? ", its telemetry blocked" : "");
    toolreport_items(out, "proxy users", users, toolreport_users(t, users));
    toolreport_items(out, "executables", t->executables, t->nexecutables);
    toolreport_items(out, "sha256", t->sha256, t->nsha256);
    toolreport_items(out, "user agents", t->user_agents, t->nuser_agents);
    for (size_t i = 0; i < t->nendpoints; i++) {
        const struct policy_endpoint *e = &t->endpoints[i];

        fprintf(out, "  group       %s (%s): %zu host%s", e->group, policy_purpose_str(e->purpose),
                domainset_count(e->hosts), domainset_count(e->hosts) == 1 ? "" : "s");
        if (e->nports > 0)
            fprintf(out, ", %zu port%s", e->nports, e->nports == 1 ? "" : "s");
        for (size_t k = 0; k < e->nmethods; k++)
            fprintf(out, "%s%s", k == 0 ? ", methods " : " ", e->methods[k]);
        for (size_t k = 0; k < e->npaths; k++)
            fprintf(out, "%s%s", k == 0 ? ", paths " : " ", e->paths[k]);
        fputc('\n', out);
    }
    return 0;
}

/* Says which tool a process is; see the header. */
int toolreport_which(const struct policy_snapshot *p, pid_t pid, FILE *out)
{
    static struct procid chain; /* large: off the stack */
    struct identity_process_match m;
    const struct policy_tool *t;
    const char *pattern = NULL, *what = NULL;
    size_t depth = 0;

    if (procid_of_pid(pid, &chain) < 0)
        return -1;
    /* A person asked: every executable's content is looked at, as a lookup that needs it
     * would. */
    for (size_t i = 0; i < chain.nchain; i++)
        if (!exehash_now(chain.chain[i].pid, chain.chain[i].sha256))
            chain.chain[i].sha256[0] = '\0';
    identity_match_process(p, &chain, NULL, NULL, &m);
    t = m.tool;
    depth = m.depth;
    if (t != NULL)
        pattern = identity_process_pattern(t, procid_nth(&chain, depth), chain.uid, &what);
    if (m.unverified)
        fprintf(out,
                "process %ld is under `sluice run --isolate --tool %s` (process %ld), whose "
                "processes could not all be looked at: its requests are refused\n",
                (long)pid, t->id, (long)procid_nth(&chain, depth)->pid);
    else if (t != NULL && pattern != NULL)
        fprintf(out, "process %ld is tool %s: %s %s matches %s in %s%s\n", (long)pid, t->id,
                what == procid_nth(&chain, depth)->exe ? "the executable" : "the argument", what,
                pattern, t->file,
                m.isolated  ? " (started by the isolating launcher above it)"
                : depth > 0 ? " (an ancestor's)"
                            : "");
    else if (t != NULL)
        fprintf(out, "process %ld is tool %s: process %ld is `sluice run --isolate --tool %s`\n",
                (long)pid, t->id, (long)procid_nth(&chain, depth)->pid, t->id);
    else
        fprintf(out,
                "process %ld is no tool: no profile's executables match it or its "
                "ancestors\n",
                (long)pid);
    {
        const struct procid_proc *who = procid_nth(&chain, t != NULL ? depth : 0);
        char hex[EXEHASH_HEX], cmd[PROCID_MAX_ARGS + 64], shown[4 * sizeof(cmd)];

        if (exehash_now(who->pid, hex))
            fprintf(out, "  executable %s sha256 %s\n", who->exe, hex);
        procid_command_line(&chain.chain[0], cmd, sizeof(cmd));
        /* A process names itself: its bytes must not drive the reader's terminal. */
        log_escape(shown, sizeof(shown), cmd, strlen(cmd));
        fprintf(out, "  command line: %s\n", shown);
    }
    for (size_t i = 0; i < chain.nchain; i++)
        fprintf(out, "  %s %ld %s\n", i == 0 ? "   " : "<-", (long)chain.chain[i].pid,
                chain.chain[i].exe[0] != '\0' ? chain.chain[i].exe : "(hidden)");
    return t != NULL ? 0 : 1;
}
