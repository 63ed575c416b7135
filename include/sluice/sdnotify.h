/*
 * Readiness and state for a service manager, in the sd_notify protocol: one datagram to
 * the Unix socket $NOTIFY_SOCKET names (systemd's Type=notify).  Written here rather than
 * linked from libsystemd: it is one sendto(), and sluice runs where systemd does not.
 */
#ifndef SLUICE_SDNOTIFY_H
#define SLUICE_SDNOTIFY_H

/*
 * Sends state ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...", newline-separated)
 * when $NOTIFY_SOCKET is set.  Returns 1 when sent, 0 when there is no socket to tell, -1
 * when sending failed (errno).
 */
int sdnotify(const char *state);

#endif /* SLUICE_SDNOTIFY_H */
