/* The host layout under the VZ_ROOT prefix. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paths.h"

/* Computed once: migration workers call vz_root() from several threads,
 * and VZ_ROOT does not change while a process runs. */
static char root[4096];
static pthread_once_t root_once = PTHREAD_ONCE_INIT;

static void root_init(void)
{
	const char *env = getenv("VZ_ROOT");
	size_t len;

	if (!env || !*env)
		env = "/";
	snprintf(root, sizeof(root), "%s", env);
	len = strlen(root);
	while (len > 0 && root[len - 1] == '/')
		root[--len] = '\0';
}

const char *vz_root(void)
{
	pthread_once(&root_once, root_init);
	return root;
}

char *vz_path(char *buf, size_t len, const char *fmt, ...)
{
	char rel[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	n = snprintf(buf, len, "%s%s", vz_root(), rel);
	if (n < 0 || (size_t)n >= len)
		buf[0] = '\0';
	return buf;
}

char *vz_path_ve_conf(char *buf, size_t len, unsigned veid)
{
	return vz_path(buf, len, VZ_CONF_DIR "/%u.conf", veid);
}

char *vz_path_ve_private(char *buf, size_t len, unsigned veid)
{
	return vz_path(buf, len, VZ_PRIVATE_DIR "/%u", veid);
}

char *vz_path_ve_root(char *buf, size_t len, unsigned veid)
{
	return vz_path(buf, len, VZ_ROOT_DIR "/%u", veid);
}

char *vz_path_agent_sock(char *buf, size_t len)
{
	return vz_path(buf, len, VZ_AGENT_SOCK);
}

char *vz_path_template_cache(char *buf, size_t len, const char *name)
{
	return vz_path(buf, len, VZ_CACHE_DIR "/%s.tar.zst", name);
}
