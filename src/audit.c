/* The report of finished requests and tunnels; see include/sluice/audit.h. */
#include "sluice/audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sluice/auditlog.h"
#include "sluice/log.h"
#include "sluice/redact.h"
#include "sluice/metrics.h"
#include "sluice/squidlog.h"
#include "sluice/syslogsink.h"

/*
 * Writes ` name="value"` (value escaped, quoted like target: it may hold spaces and '=',
 * which must not make fields) into out, or nothing when value is empty.
 */
static void audit_quoted(char *out, size_t cap, const char *name, const char *value)
{
    size_t n;

    out[0] = '\0';
    if (value == NULL || value[0] == '\0')
        return;
    n = (size_t)snprintf(out, cap, " %s=\"", name);
    if (n + 2 >= cap)
        return;
    log_escape(out + n, cap - n - 1, value, strlen(value));
    strcat(out, "\"");
}

/* Bytes of a URL the reports keep; the trail cuts its strings there too. */
#define AUDIT_URL_MAX 4096

/*
 * r with its target's secrets hidden (redact_url: secret query parameters and segment
 * parameters, a URL's password) in url, and its path's in path, so that no report, the
 * access line, the trail, the Squid log or syslog, ever has them.
 */
static struct audit_record audit_redacted(const struct audit_record *r, char url[AUDIT_URL_MAX],
                                          char path[AUDIT_URL_MAX])
{
    struct audit_record out = *r;

    if (r->target != NULL) {
        redact_url(r->target, strlen(r->target), url, AUDIT_URL_MAX);
        out.target = url;
    }
    if (r->path != NULL) {
        redact_url(r->path, strlen(r->path), path, AUDIT_URL_MAX);
        out.path = path;
    }
    return out;
}

/*
 * Writes the access line of r, escaping every field that came from the network.  It is
 * the record when no audit trail is open, and then written whatever the level (-q
 * quietens the diagnostics, not the record).  With the trail open and written, the trail
 * is the record and the access line a diagnostic at notice: -q quietens it, so that a
 * busy sluice does not write each request twice.  While the trail fails (its records
 * lost: audit.fail_open, or a refusal's own record) the access line is the record again.
 */
static void audit_access_line(const struct audit_record *r)
{
    char method[64], target[1024], sni[300], offered[300], error[80] = "", pid[24] = "";
    char exe[600], mismatch[300], version[80], uid[24] = "", sha[80] = "", cmd[1600];
    char chain[600], tls[24] = "", set[640] = "";

    if (auditlog_enabled() && !auditlog_failing() && !log_enabled(LOGL_NOTICE))
        return;
    audit_quoted(offered, sizeof(offered), "offered", r->offered);
    audit_quoted(exe, sizeof(exe), "exe", r->exe);
    audit_quoted(cmd, sizeof(cmd), "cmd", r->cmd);
    audit_quoted(chain, sizeof(chain), "chain", r->chain);
    if (r->uid != UINT32_MAX && r->pid != 0)
        snprintf(uid, sizeof(uid), " uid=%" PRIu32, r->uid);
    if (r->exe_sha256 != NULL && r->exe_sha256[0] != '\0')
        snprintf(sha, sizeof(sha), " sha256=%.64s", r->exe_sha256);
    audit_quoted(mismatch, sizeof(mismatch), "mismatch", r->mismatch);
    audit_quoted(version, sizeof(version), "version", r->version);
    if (r->pid != 0)
        snprintf(pid, sizeof(pid), " pid=%" PRIu32, r->pid);
    if (r->error[0] != '\0')
        snprintf(error, sizeof(error), " error=%s", r->error);
    if (r->tls_mode != NULL && r->tls_mode[0] != '\0')
        snprintf(tls, sizeof(tls), " tls=%s", r->tls_mode);
    if (r->set_fields != NULL && r->set_fields[0] != '\0')
        snprintf(set, sizeof(set), " set_fields=%s", r->set_fields);
    log_escape(method, sizeof(method), r->method, strlen(r->method));
    log_escape(target, sizeof(target), r->target, strlen(r->target));
    log_escape(sni, sizeof(sni), r->sni, strlen(r->sni));
    log_record("access client=%s method=%s target=\"%s\" status=%u sent=%" PRIu64
               " received=%" PRIu64 " ms=%" PRIu64
               " sni=%s%s%s term=%s tool=%s%s id=%s%s%s%s%s%s%s%s%s decision=%s rule=%s dst=%s"
               " country=%s asn=%" PRIu32 "%s",
               r->client, method, target, r->status, r->sent, r->received, r->duration_ms,
               sni[0] != '\0' ? sni : "-", tls, set, r->term, r->tool, version, r->id_source,
               offered, pid, uid, exe, sha, cmd, chain, mismatch, r->decision, r->rule, r->dest_ip,
               r->country, r->asn, error);
}

/*
 * Writes the access line, hands the record to each sink that is open (the audit trail,
 * the Squid log, syslog) and counts it for /metrics; every one of them gets the target
 * with its secrets hidden.
 */
void audit_emit(const struct audit_record *given)
{
    char url[AUDIT_URL_MAX], path[AUDIT_URL_MAX];
    const struct audit_record red = audit_redacted(given, url, path), *r = &red;

    audit_access_line(r);
    auditlog_record(r);
    squidlog_record(r);
    syslogsink_record(r);
    metrics_count_record(r);
}

void audit_emit_interim(const struct audit_record *r)
{
    char url[AUDIT_URL_MAX], path[AUDIT_URL_MAX];
    const struct audit_record red = audit_redacted(r, url, path);

    auditlog_record(&red);
}
