/* Logging: one sink to stderr, an optional log file, levels. When stderr
 * is systemd's journal, each line there starts with its syslog priority. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static struct {
	char ident[32];
	enum vz_log_level level;
	int to_stderr;
	bool journal; /* stderr is the journal: lines start with "<N>" */
	int fd;
} logger = { "vz", VZ_LOG_INFO, 1, false, -1 };

static const char *level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };
/* sd-daemon(3)'s prefixes: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const char *const journal_prio[] = { "<3>", "<4>", "<6>", "<7>" };

/* systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it connects to
 * a service's stderr; stderr redirected elsewhere since no longer matches. */
static bool stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void vz_log_init(const char *ident, enum vz_log_level level, int to_stderr)
{
	snprintf(logger.ident, sizeof(logger.ident), "%s", ident);
	logger.level = level;
	logger.to_stderr = to_stderr;
	logger.journal = to_stderr && stderr_is_journal();
}

int vz_log_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	if (logger.fd >= 0)
		close(logger.fd);
	logger.fd = fd;
	return 0;
}

void vz_log_set_level(enum vz_log_level level)
{
	logger.level = level;
}

enum vz_log_level vz_log_level_from_string(const char *s)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (enum vz_log_level)i;
	return VZ_LOG_INFO;
}

void vz_log(enum vz_log_level level, const char *prefix, const char *file, int line, const char *fmt, ...)
{
	char msg[2048], where[128] = "", stamp[64];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int saved = errno;

	if (level > logger.level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (level == VZ_LOG_ERR)
		snprintf(where, sizeof(where), " (%s:%d)", file, line);
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);

	if (logger.fd >= 0)
		dprintf(logger.fd, "%s.%03ld %s[%d] %-5s %s%s%s\n", stamp, (long)tv.tv_usec / 1000, logger.ident,
			(int)getpid(), level_names[level], prefix, msg, where);
	if (logger.to_stderr)
		fprintf(stderr, "%s%s: %s%s%s\n", logger.journal ? journal_prio[level] : "", logger.ident, prefix, msg,
			logger.level >= VZ_LOG_DEBUG ? where : "");
	errno = saved;
}
