/* Scope-exit cleanup attributes and ownership transfer helpers.
 * Every cleanup function accepts the "empty" value and is safe to run twice. */
#ifndef VZ_CLEANUP_H
#define VZ_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* The value of an fd variable that holds nothing: negative, so a cleanup
 * skips it, and a close() of it by mistake fails with EBADF. */
#define VZ_FD_INIT (-EBADF)

static inline void vz_freep(void *p)
{
	void **pp = p;
	free(*pp);
	*pp = NULL;
}

static inline void vz_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
	*fd = VZ_FD_INIT;
}

/* Kill with SIGKILL and reap a child that still runs when its scope
 * ends (a pid > 0); 0 and negative values mean "none". Keeps errno. */
static inline void vz_killp(pid_t *pid)
{
	if (*pid > 0) {
		int saved = errno;

		kill(*pid, SIGKILL);
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
			;
		errno = saved;
	}
	*pid = 0;
}

static inline void vz_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
	*f = NULL;
}

static inline void vz_closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
	*d = NULL;
}

#define _cleanup_free_ __attribute__((cleanup(vz_freep)))
/* Closes an fd >= 0; any negative value (VZ_FD_INIT, -1) is skipped. */
#define _cleanup_close_	   __attribute__((cleanup(vz_closep)))
#define _cleanup_pid_	   __attribute__((cleanup(vz_killp)))
#define _cleanup_fclose_   __attribute__((cleanup(vz_fclosep)))
#define _cleanup_closedir_ __attribute__((cleanup(vz_closedirp)))

/* Hand ownership of a pointer or fd out of a scope guarded by a cleanup. */
#define steal_ptr(p)                                                                                                   \
	({                                                                                                             \
		__typeof__(p) _tmp_ = (p);                                                                             \
		(p) = NULL;                                                                                            \
		_tmp_;                                                                                                 \
	})

static inline int steal_fd(int *fd)
{
	int tmp = *fd;
	*fd = VZ_FD_INIT;
	return tmp;
}

/* Hand a child out of a scope guarded by _cleanup_pid_. */
static inline pid_t steal_pid(pid_t *pid)
{
	pid_t tmp = *pid;
	*pid = 0;
	return tmp;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - __builtin_offsetof(type, member)))
#endif

#endif
