/* Levelled logging to stderr and, once vz_log_open() is called, to a file.
 * Each .c file may define LOG_PREFIX before including this header; lines
 * carry time, level, prefix and, for errors, file:line. */
#ifndef VZ_LOG_H
#define VZ_LOG_H

#include <errno.h>

enum vz_log_level { VZ_LOG_ERR = 0, VZ_LOG_WARN, VZ_LOG_INFO, VZ_LOG_DEBUG };

#ifndef LOG_PREFIX
#define LOG_PREFIX ""
#endif

/* Program name used in lines written to stderr ("vzagent", "vzctl"). */
void vz_log_init(const char *ident, enum vz_log_level level, int to_stderr);
/* Also append to path (created 0600). Returns 0 or -errno. */
int vz_log_open(const char *path);
void vz_log_set_level(enum vz_log_level level);
enum vz_log_level vz_log_level_from_string(const char *s);

void vz_log(enum vz_log_level level, const char *prefix, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define pr_err(fmt, ...)   vz_log(VZ_LOG_ERR, LOG_PREFIX, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...)  vz_log(VZ_LOG_WARN, LOG_PREFIX, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...)  vz_log(VZ_LOG_INFO, LOG_PREFIX, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) vz_log(VZ_LOG_DEBUG, LOG_PREFIX, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
/* pr_err with ": <strerror(errno)>" appended. */
#define pr_perror(fmt, ...)                                                                                            \
	do {                                                                                                           \
		int _e_ = errno;                                                                                       \
		vz_log(VZ_LOG_ERR, LOG_PREFIX, __FILE__, __LINE__, fmt ": %s", ##__VA_ARGS__, strerror(_e_));          \
		errno = _e_;                                                                                           \
	} while (0)

#endif
