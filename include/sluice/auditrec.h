/*
 * What happened to one request or tunnel: the record every report of it is made from
 * (the access line, audit.h; the audit trail's JSON, auditlog.h).
 */
#ifndef SLUICE_AUDITREC_H
#define SLUICE_AUDITREC_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/capture.h"
#include "sluice/redact.h"

/* What happened to one request or tunnel; strings are not owned and may be raw bytes. */
struct audit_record {
    const char *client;     /* "ip:port" */
    const char *method;     /* request method, or "-" */
    const char *target;     /* request target as received, or "-" */
    bool is_connect;        /* a tunnel (CONNECT), not a forwarded request */
    const char *host;       /* the host asked for, normalised, or "" */
    uint16_t port;          /* its port, or 0 */
    const char *user;       /* the proxy user name offered, or "" */
    unsigned status;        /* status sent to the client, 0 if none */
    uint64_t sent;          /* bytes the client sent through sluice */
    uint64_t received;      /* bytes sluice sent to the client */
    const char *media_type; /* the response's Content-Type without parameters, or "" or NULL */
    uint64_t duration_ms;   /* from the first byte of the request to the end */
    const char *sni;        /* TLS server name seen in a tunnel, or "" */
    const char *tls_mode;   /* "splice" or "inspect" for TLS sluice saw, else "" or NULL */
    const char *set_fields; /* names of the request fields the policy set, "a,b", or NULL */
    const char *term;       /* two-character termination code */
    const char *tool;       /* tool id, or "unidentified" */
    const char *id_source;  /* how the tool was identified */
    const char *offered;    /* a proxy user name that named no tool (logged), or "" */
    uint32_t pid;           /* the local client process, or 0 when not known */
    uint32_t uid;           /* its owner, or UINT32_MAX when not known */
    const char *exe;        /* the executable that named the tool (or the client's), or "" */
    const char *exe_sha256; /* its SHA-256 in hex, or "" while not known */
    const char *cmd;        /* the client process's command line, secrets redacted, or "" */
    const char *chain;      /* its chain by executable name, "curl<bash<sshd", or "" */
    uint32_t parent_pid;    /* its parent process, or 0 when not known */
    const char *parent_exe; /* the parent's executable, or NULL */
    const char *mismatch;   /* "SOURCE:TOOL" when a weaker source named another tool, or "" */
    const char *version;    /* the tool's version its User-Agent gives, or "" */
    const char *error;      /* RFC 9209 type of a failure other than a block, or "" */
    const char *decision;   /* allow, block or report, or "-" before a decision */
    const char *rule;       /* the rule that decided, or "-" */
    const char *rule_file;  /* the file that holds it, or "" */
    const char *dest_ip;    /* the address dialled, or "-" */
    const char *country;    /* its ISO 3166 country, or "-" */
    uint32_t asn;           /* its autonomous system, or 0 */
    const char *path;       /* the normalised path policy decided on, or NULL */
    const char *user_agent; /* the User-Agent (cut short), or NULL */
    const struct redact_seen *req_secrets;  /* the request's secret fields, or NULL */
    const struct redact_seen *resp_secrets; /* the response's, or NULL */
    const struct capture_ref *req_capture;  /* the request body kept (capture.h), or NULL */
    const struct capture_ref *resp_capture; /* the response body kept, or NULL */
    bool interim; /* the exchange goes on: what it did so far (the audit trail only) */
};

#endif /* SLUICE_AUDITREC_H */
