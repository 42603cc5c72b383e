/* Every host path hangs off one prefix, VZ_ROOT (default "/"), so several
 * agents can share a machine in tests. These helpers build the OpenVZ
 * layout under it. Each writes into buf and returns buf (truncation is
 * impossible for sizes >= PATH_MAX and reported as "" otherwise). */
#ifndef VZ_PATHS_H
#define VZ_PATHS_H

#include <stddef.h>

/* The prefix without a trailing slash ("" for "/"), read from VZ_ROOT at
 * the first call and fixed from then on (thread-safe). */
const char *vz_root(void);
/* VZ_ROOT + the formatted absolute path. */
char *vz_path(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define VZ_GLOBAL_CONF	"/etc/vz/vz.conf"
#define VZ_CONF_DIR	"/etc/vz/conf"
#define VZ_PRIVATE_DIR	"/vz/private"
#define VZ_ROOT_DIR	"/vz/root"
#define VZ_TEMPLATE_DIR "/vz/template"
#define VZ_CACHE_DIR	"/vz/template/cache"
#define VZ_DUMP_DIR	"/vz/dump"
#define VZ_RUN_DIR	"/run/vz"
#define VZ_LOCK_DIR	"/vz/lock"
#define VZ_LOG_FILE	"/var/log/vzctl.log"
#define VZ_AGENT_SOCK	"/run/vz/agent.sock"

char *vz_path_ve_conf(char *buf, size_t len, unsigned veid);
char *vz_path_ve_private(char *buf, size_t len, unsigned veid);
char *vz_path_ve_root(char *buf, size_t len, unsigned veid);
char *vz_path_agent_sock(char *buf, size_t len);
char *vz_path_template_cache(char *buf, size_t len, const char *name);

#endif
