/* The commands beside running the proxy; see include/sluice/commands.h. */
#include "sluice/commands.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "sluice/auditlog.h"
#include "sluice/credentials.h"
#include "sluice/isolate.h"
#include "sluice/launch.h"
#include "sluice/listener.h"
#include "sluice/privilege.h"
#include "sluice/procid.h"
#include "sluice/settings.h"
#include "sluice/tlsca.h"
#include "sluice/toolreport.h"

/*
 * "sluice passwd NAME": prints the credentials line for NAME, with the token read from
 * standard input or made at random.  Returns the exit status.
 */
int command_passwd(int argc, char **argv)
{
    char token[256] = "", line[512];
    unsigned char raw[24];

    if (argc != 1 || !settings_is_tool_id(argv[0])) {
        fprintf(stderr, "sluice: passwd takes one proxy user name: lower-case letters, digits, "
                        "'-', '_' or '.' (see sluice help passwd)\n");
        return 2;
    }
    if (!isatty(STDIN_FILENO) && fgets(token, sizeof(token), stdin) != NULL) {
        if (strchr(token, '\n') == NULL && !feof(stdin)) {
            fprintf(stderr, "sluice: the token is longer than %zu bytes\n", sizeof(token) - 2);
            return 1;
        }
        token[strcspn(token, "\r\n")] = '\0';
        for (const char *c = token; *c != '\0'; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                fprintf(stderr, "sluice: the token holds a control byte, which no client may "
                                "send in Basic credentials\n");
                return 1;
            }
    }
    if (token[0] == '\0') {
        if (RAND_bytes(raw, sizeof(raw)) != 1) {
            fprintf(stderr, "sluice: no random bytes for a token\n");
            return 1;
        }
        for (size_t i = 0; i < sizeof(raw); i++)
            snprintf(token + i * 2, 3, "%02x", raw[i]);
        fprintf(stderr, "token for %s (shown once; the file keeps only its hash): %s\n", argv[0],
                token);
    }
    if (credentials_line(argv[0], token, line, sizeof(line)) < 0) {
        fprintf(stderr, "sluice: cannot hash the token\n");
        return 1;
    }
    OPENSSL_cleanse(token, sizeof(token));
    printf("%s\n", line);
    return 0;
}

/* The Unix listener `sluice run --isolate` dials when the configuration names none. */
#define COMMAND_DEFAULT_UNIX "unix:sluice.sock"

/*
 * The listeners `sluice run --isolate` needs: the first Unix one into *unix_at (else the
 * shipped configuration's, unix:sluice.sock), and the port of the first TCP one (the
 * address the command is given, inside), 3128 when none.  Returns 0, or -1 having said
 * why not.
 */
static int command_isolate_listeners(const struct sluice_config *config,
                                     struct listener_addr *unix_at, uint16_t *port)
{
    struct listener_addr a;
    const char *errstr = NULL;
    bool found = false;

    *port = 3128;
    for (size_t i = config->nlisteners; i-- > 0;) {
        if (listener_parse(config->listeners[i].address, &a, &errstr) < 0)
            continue; /* the loader took none such */
        if (a.ss.ss_family == AF_UNIX) {
            *unix_at = a;
            found = true;
        } else {
            *port = ntohs(a.ss.ss_family == AF_INET
                              ? ((const struct sockaddr_in *)(const void *)&a.ss)->sin_port
                              : ((const struct sockaddr_in6 *)(const void *)&a.ss)->sin6_port);
        }
    }
    if (*port == 0)
        *port = 3128;
    if (!found && listener_parse(COMMAND_DEFAULT_UNIX, unix_at, &errstr) < 0) {
        fprintf(stderr, "sluice: run --isolate: %s: %s\n", COMMAND_DEFAULT_UNIX, errstr);
        return -1;
    }
    return 0;
}

/*
 * "sluice env --tool ID" and "sluice run [--isolate] --tool ID -- CMD...": the
 * environment that sends the tool through sluice's first listener, printed or given to
 * CMD (which runs in place of sluice, or, isolated, under it).  Returns the exit status
 * (run returns only when CMD cannot be started, or, isolated, CMD's status).
 */
int command_launch(const struct sluice_config *config, const struct policy_snapshot *p,
                   const char *which, const char *tool_name, bool isolate, char **run_argv)
{
    struct launch_var vars[LAUNCH_MAX_VARS];
    struct listener_addr listen, unix_at;
    const struct policy_tool *t = tool_name != NULL ? policy_find_tool(p, tool_name) : NULL;
    const char *token = getenv("SLUICE_TOKEN"), *errstr = NULL;
    char address[128], bundle[4000], err[512];
    uint16_t inside_port = 0;
    bool telemetry_off;
    size_t n;

    if (tool_name == NULL) {
        fprintf(stderr, "sluice: %s needs --tool ID (see sluice tools)\n", which);
        return 2;
    }
    if (isolate && strcmp(which, "run") != 0) {
        fprintf(stderr, "sluice: --isolate is for run (see sluice help run)\n");
        return 2;
    }
    if (t == NULL) {
        fprintf(stderr,
                "sluice: no tool profile has the id or proxy user '%s' in %s (see "
                "sluice tools)\n",
                tool_name, p->dir != NULL ? p->dir : "(no policy directory)");
        return 1;
    }
    if (isolate) {
        static struct procid self; /* large: off the stack */
        char seen[64];

        /* sluice names the tool by reading this command line as a plain list of words (up
         * to "--"); where getopt read it otherwise, or /proc cuts it short, refuse. */
        if (procid_of_pid(getpid(), &self) < 0 ||
            !procid_isolate_tool(&self.chain[0], seen, sizeof(seen)) ||
            strcmp(seen, tool_name) != 0) {
            fprintf(stderr,
                    "sluice: run --isolate: sluice could not read the tool from this "
                    "command line as given; write it as sluice run --isolate --tool ID "
                    "[options] -- CMD, with at most %d bytes before the --\n",
                    PROCID_MAX_ARGS - 1);
            return 2;
        }
        if (command_isolate_listeners(config, &unix_at, &inside_port) < 0)
            return 1;
        listen = unix_at;
        snprintf(address, sizeof(address), "127.0.0.1:%u", inside_port);
    } else {
        if (listener_parse(config->listeners[0].address, &listen, &errstr) < 0) {
            fprintf(stderr, "sluice: listener %s: %s\n", config->listeners[0].address, errstr);
            return 1;
        }
        if (listen.ss.ss_family == AF_UNIX) {
            fprintf(stderr,
                    "sluice: the first listener, %s, is a Unix socket, which clients "
                    "cannot take as a proxy address; list a TCP one first, or use "
                    "run --isolate\n",
                    listen.text);
            return 1;
        }
        launch_client_address(&listen, address, sizeof(address));
    }
    if (config->ca_cert != NULL &&
        launch_ca_bundle(config->ca_cert, bundle, sizeof(bundle), err, sizeof(err)) < 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return 1;
    }
    /* Where its telemetry is blocked anyway, the tool is told not to try. */
    telemetry_off = p->org.block_telemetry || t->block_telemetry;
    n = launch_vars(t->id, token != NULL && token[0] != '\0' ? token : "x", address,
                    config->ca_cert != NULL ? bundle : NULL, t->telemetry_env,
                    telemetry_off ? t->ntelemetry_env : 0, vars, LAUNCH_MAX_VARS);
    if (strcmp(which, "env") == 0) {
        for (size_t i = 0; i < n; i++) {
            printf("export %s='", vars[i].name);
            for (const char *c = vars[i].value; *c != '\0'; c++)
                fputs(*c == '\'' ? "'\\''" : (char[]){*c, '\0'}, stdout);
            printf("'\n");
        }
        return 0;
    }
    /* Never start the tool unprotected: no sluice, no run. */
    if (!launch_listening(&listen, 1000)) {
        char where[160];

        if (isolate)
            listener_format(&unix_at, where, sizeof(where));
        fprintf(stderr,
                "sluice: no sluice answers on %s; start it (proxy/run) first%s, or %s "
                "would not go through its policy\n",
                isolate ? where : address,
                isolate ? " with that Unix listener (listen: in proxy/sluice.yaml has it)" : "",
                run_argv[0]);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (setenv(vars[i].name, vars[i].value, 1) < 0) {
            fprintf(stderr, "sluice: cannot set %s: %s\n", vars[i].name, strerror(errno));
            return 1;
        }
    if (isolate) {
        int status;

        if (isolate_enter(err, sizeof(err)) < 0) {
            fprintf(stderr, "sluice: %s\n", err);
            return 1;
        }
        err[0] = '\0';
        status = isolate_run(inside_port, (const struct sockaddr *)&unix_at.ss, unix_at.len,
                             run_argv, err, sizeof(err));
        if (status < 0) {
            fprintf(stderr, "sluice: %s\n", err);
            return 1;
        }
        return status;
    }
    execvp(run_argv[0], run_argv);
    fprintf(stderr, "sluice: cannot run %s: %s\n", run_argv[0], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}

/* "sluice tools [show ID | which PID]" on the loaded policy.  Returns the exit status. */
int command_tools(const struct policy_snapshot *p, int argc, char **argv)
{
    char *end;
    long pid;

    if (argc == 0) {
        toolreport_list(p, stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[0], "show") == 0) {
        if (toolreport_show(p, argv[1], stdout) == 0)
            return 0;
        fprintf(stderr,
                "sluice: no tool profile has the id or proxy user '%s' (see sluice tools)\n",
                argv[1]);
        return 1;
    }
    if (argc == 2 && strcmp(argv[0], "which") == 0) {
        pid = strtol(argv[1], &end, 10);
        if (*argv[1] == '\0' || *end != '\0' || pid <= 0) {
            fprintf(stderr, "sluice: tools which takes a process id, not '%s'\n", argv[1]);
            return 2;
        }
        switch (toolreport_which(p, (pid_t)pid, stdout)) {
        case 0:
            return 0;
        case 1:
            return 1;
        default:
            fprintf(stderr, "sluice: cannot read process %ld (gone, or another user's)\n", pid);
            return 1;
        }
    }
    fprintf(stderr, "sluice: tools takes nothing, show ID or which PID (see sluice help tools)\n");
    return 2;
}

/* "sluice audit verify FILE...": checks the audit trail's chain.  Returns the exit status. */
int command_audit(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[0], "verify") != 0) {
        fprintf(stderr, "sluice: audit takes verify FILE... (see sluice help audit)\n");
        return 2;
    }
    return auditlog_verify(argv + 1, (size_t)(argc - 1), stdout);
}

/* "sluice ca init|show": makes or describes the local CA.  Returns the exit status. */
int command_ca(const struct sluice_config *config, int argc, char **argv, bool if_absent)
{
    char err[600] = "";

    if (argc != 1 || (strcmp(argv[0], "init") != 0 && strcmp(argv[0], "show") != 0)) {
        fprintf(stderr, "sluice: ca takes init or show (see sluice help ca)\n");
        return 2;
    }
    if (config->ca_cert == NULL || config->ca_key == NULL) {
        fprintf(stderr,
                "sluice: ca %s needs the CA's files: set ca.cert and ca.key in the "
                "configuration, or give --ca-cert FILE --ca-key FILE\n",
                argv[0]);
        return 2;
    }
    if (strcmp(argv[0], "show") == 0)
        return tlsca_describe(config->ca_cert, config->ca_key, stdout);
    if (if_absent && access(config->ca_cert, F_OK) == 0 && access(config->ca_key, F_OK) == 0)
        return 0;
    if (tlsca_create(config->ca_cert, config->ca_key, err, sizeof(err)) < 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return 1;
    }
    /* Made by root for the user sluice becomes: the key must be that user's (check_ca_key). */
    if (geteuid() == 0 && config->user != NULL) {
        struct privilege_user u;
        int fd = -1;
        bool ok = privilege_lookup(config->user, &u, err, sizeof(err)) == 0 &&
                  (fd = open(config->ca_key, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) >= 0 &&
                  fchown(fd, u.uid, u.gid) == 0; /* the file made, not what a link names */
        if (fd >= 0)
            close(fd);
        if (!ok) {
            fprintf(stderr,
                    "sluice: the CA is made, but its key %s cannot be handed to user %s: %s\n",
                    config->ca_key, config->user, err[0] != '\0' ? err : strerror(errno));
            return 1;
        }
    }
    fprintf(stderr, "created the local CA: %s (key in %s, mode 0600)\n", config->ca_cert,
            config->ca_key);
    return 0;
}
