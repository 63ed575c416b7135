/*
 * The one place where a finished request or tunnel is reported: the access line in the
 * diagnostics log, and the record in each audit sink that is open: the audit trail
 * (auditlog.h), the Squid-format access log (squidlog.h), syslog (syslogsink.h).
 */
#ifndef SLUICE_AUDIT_H
#define SLUICE_AUDIT_H

#include "sluice/auditrec.h"

/*
 * Reports one finished request or tunnel: the access line, and every sink that is open.
 * The access line is written whatever the level while no audit trail is open; with the
 * trail open it is a diagnostic at notice, which -q quietens.
 */
void audit_emit(const struct audit_record *r);

/*
 * Reports what an exchange that goes on did so far (r->interim): to the audit trail only,
 * so that the access line, and whatever counts requests from it, still sees each once.
 */
void audit_emit_interim(const struct audit_record *r);

#endif /* SLUICE_AUDIT_H */
