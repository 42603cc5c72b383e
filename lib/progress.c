/* Progress lines handed to whatever sink the caller chose. */
#include <stdarg.h>
#include <stdio.h>

#include "progress.h"

void vz_say(const struct vz_progress *p, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!p || !p->line)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	p->line(p->arg, line);
}
