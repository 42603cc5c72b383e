/* Progress lines: where a long operation (a VE's start or stop, a
 * migration) reports what it is doing, without knowing who listens. The
 * control socket's client (transport/control.h: vz_ctl_progress_sink), the
 * coordinator's order, a log or nobody (a NULL sink) can be on the other
 * end. */
#ifndef VZ_PROGRESS_H
#define VZ_PROGRESS_H

struct vz_progress {
	/* Called with one line, no trailing newline; never NULL in a sink. */
	void (*line)(void *arg, const char *line);
	void *arg;
};

/* Format one line and hand it to p; p NULL (or its line NULL): nothing. */
void vz_say(const struct vz_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
