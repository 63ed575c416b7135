/* The report of finished requests and tunnels; see include/sluice/audit.h. */
#include "sluice/audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sluice/log.h"

/* Writes the access line, escaping every field that came from the network. */
void audit_emit(const struct audit_record *r)
{
    char method[64], target[1024], sni[300], offered[300] = "", error[80] = "";

    if (r->offered[0] != '\0') {
        /* Quoted, like target: a name may hold spaces and '=', which must not make fields. */
        memcpy(offered, " offered=\"", 10);
        log_escape(offered + 10, sizeof(offered) - 11, r->offered, strlen(r->offered));
        strcat(offered, "\"");
    }
    if (r->error[0] != '\0')
        snprintf(error, sizeof(error), " error=%s", r->error);
    log_escape(method, sizeof(method), r->method, strlen(r->method));
    log_escape(target, sizeof(target), r->target, strlen(r->target));
    log_escape(sni, sizeof(sni), r->sni, strlen(r->sni));
    log_record("access client=%s method=%s target=\"%s\" status=%u sent=%" PRIu64
               " received=%" PRIu64 " ms=%" PRIu64
               " sni=%s term=%s tool=%s id=%s%s decision=%s rule=%s dst=%s"
               " country=%s asn=%" PRIu32 "%s",
               r->client, method, target, r->status, r->sent, r->received, r->duration_ms,
               sni[0] != '\0' ? sni : "-", r->term, r->tool, r->id_source, offered, r->decision,
               r->rule, r->dest_ip, r->country, r->asn, error);
}
