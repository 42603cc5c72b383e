/* A process's identity from /proc (see proc.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "proc.h"
#include "util.h"

#ifndef KCMP_VM
#define KCMP_VM 1 /* linux/kcmp.h */
#endif

/* The innermost namespace's pid is the last of status's NSpid line. */
static int nspid_last(char *status, int fallback)
{
	char *s = strstr(status, "\nNSpid:"), *end, *last = NULL;

	if (!s)
		return fallback;
	end = strchr(s + 1, '\n');
	if (end)
		*end = '\0';
	for (char *q = s + 7; *q; q++)
		if ((*q >= '0' && *q <= '9') && (q[-1] == ' ' || q[-1] == '\t'))
			last = q;
	return last ? atoi(last) : fallback;
}

int vz_proc_stat(pid_t pid, struct vz_proc_stat *st)
{
	_cleanup_free_ char *stat = NULL;
	char path[64], *s, *tok, *save = NULL;
	int field = 2, ret;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	ret = vz_read_file(path, &stat, NULL, 4096);
	if (ret < 0)
		return ret;
	/* The name may hold anything, ")" included: the last one ends it.
	 * After it come fields 3 (state), 4 (ppid) ... 22 (starttime). */
	s = strrchr(stat, ')');
	if (!s)
		return -EIO;
	for (tok = strtok_r(s + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (++field == 3)
			st->state = tok[0];
		else if (field == 4)
			st->ppid = (pid_t)atoi(tok);
		else if (field == 22) {
			st->starttime = strtoull(tok, NULL, 10);
			break;
		}
	}
	return field == 22 ? 0 : -EIO;
}

int vz_proc_identity(pid_t pid, struct vz_proc_id *id)
{
	_cleanup_free_ char *status = NULL;
	struct vz_proc_stat st;
	char path[64];
	int ret;

	ret = vz_proc_stat(pid, &st);
	if (ret < 0)
		return ret;
	id->state = st.state;
	id->starttime = st.starttime;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	ret = vz_read_file(path, &status, NULL, 16384);
	if (ret < 0)
		return ret;
	id->vpid = nspid_last(status, (int)pid);
	return 0;
}

int vz_proc_vpid(pid_t pid)
{
	struct vz_proc_id id;
	int ret = vz_proc_identity(pid, &id);

	return ret < 0 ? ret : id.vpid;
}

int vz_proc_each_thread(const pid_t *pids, size_t n, int (*fn)(pid_t pid, pid_t tid, void *arg), void *arg)
{
	int ret = 0;

	for (size_t i = 0; i < n && ret == 0; i++) {
		char path[64];
		DIR *d;
		struct dirent *de;

		snprintf(path, sizeof(path), "/proc/%d/task", (int)pids[i]);
		d = opendir(path);
		while (d && ret == 0 && (de = readdir(d))) {
			pid_t tid = atoi(de->d_name);

			if (tid > 0)
				ret = fn(pids[i], tid, arg);
		}
		if (d)
			closedir(d);
	}
	return ret;
}

bool vz_proc_same_mm(pid_t a, pid_t b)
{
	return syscall(SYS_kcmp, a, b, KCMP_VM, 0, 0) == 0;
}
