/* Scope-exit cleanup attributes and ownership transfer helpers.
 * Every cleanup function accepts the "empty" value and is safe to run twice. */
#ifndef VZ_CLEANUP_H
#define VZ_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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
	*fd = -EBADF;
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
#define _cleanup_close_ __attribute__((cleanup(vz_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(vz_fclosep)))
#define _cleanup_closedir_ __attribute__((cleanup(vz_closedirp)))

/* Hand ownership of a pointer or fd out of a scope guarded by a cleanup. */
#define steal_ptr(p)                          \
	({                                    \
		__typeof__(p) _tmp_ = (p);    \
		(p) = NULL;                   \
		_tmp_;                        \
	})

static inline int steal_fd(int *fd)
{
	int tmp = *fd;
	*fd = -EBADF;
	return tmp;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - __builtin_offsetof(type, member)))
#endif

#endif
