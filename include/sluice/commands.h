/*
 * The commands beside running the proxy, each a function the program's door calls and
 * whose return is the exit status: "passwd" (a credentials file line), "env" and "run"
 * (a tool's environment through sluice), "tools" (reports on the profiles).
 */
#ifndef SLUICE_COMMANDS_H
#define SLUICE_COMMANDS_H

#include "sluice/config.h"
#include <stdbool.h>

#include "sluice/policy.h"

/* sluice passwd NAME: argv[0..argc) are the words after "passwd". */
int command_passwd(int argc, char **argv);

/*
 * sluice env --tool TOOL (which "env") or sluice run [--isolate] --tool TOOL -- CMD...
 * (which "run", run_argv the command, NULL-terminated).  run returns only when CMD cannot
 * be started, or with --isolate (CMD in a network namespace under this process) when CMD
 * ends, with its status.
 */
int command_launch(const struct sluice_config *config, const struct policy_snapshot *p,
                   const char *which, const char *tool_name, bool isolate, char **run_argv);

/* sluice audit verify FILE...: argv[0..argc) are the words after "audit". */
int command_audit(int argc, char **argv);

/*
 * sluice ca init [--if-absent] | ca show: argv[0..argc) are the words after "ca"; the
 * paths are config's ca.cert and ca.key.
 */
int command_ca(const struct sluice_config *config, int argc, char **argv, bool if_absent);

/* sluice tools [show ID | which PID]: argv[0..argc) are the words after "tools". */
int command_tools(const struct policy_snapshot *p, int argc, char **argv);

#endif /* SLUICE_COMMANDS_H */
