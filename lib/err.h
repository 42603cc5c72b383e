/* The one error contract: functions return 0 or a negative errno and take
 * `struct vz_err *err` last. vz_error() records a message with the errno's
 * text appended (as crun's error objects do) and returns the negative value;
 * vz_error_msg() records a message that says everything itself (a protocol
 * or validation failure, no system call behind it). Callers add context
 * with vz_error_wrap(). Messages start with a capital letter, have no
 * trailing period and never format strerror() themselves: `make lint`
 * rejects a strerror() inside a vz_error* call. */
#ifndef VZ_ERR_H
#define VZ_ERR_H

#include <stddef.h>

/* OpenVZ vzctl exit codes (vzctl(8)), carried with an error so that the CLI
 * exits as OpenVZ users expect. */
enum vz_exit {
	VZ_EXIT_OK = 0,
	VZ_EXIT_UBC = 1,	     /* Failed to set a beancounter parameter */
	VZ_EXIT_CPU = 2,	     /* Failed to set a fair-scheduler parameter */
	VZ_EXIT_SYSTEM = 3,	     /* Generic system error */
	VZ_EXIT_RESOURCE = 6,	     /* Not enough system resources */
	VZ_EXIT_EXEC = 8,	     /* Command run by vzctl exec failed */
	VZ_EXIT_LOCKED = 9,	     /* VE locked by another operation */
	VZ_EXIT_NOVZCONF = 10,	     /* vz.conf not found */
	VZ_EXIT_PERM = 12,	     /* Permission denied */
	VZ_EXIT_NOCONF = 14,	     /* VE config file not found */
	VZ_EXIT_TIMEOUT = 15,	     /* Timeout */
	VZ_EXIT_CHKPNT = 16,	     /* Checkpoint failed */
	VZ_EXIT_RESTORE = 17,	     /* Restore failed */
	VZ_EXIT_INVAL = 20,	     /* Invalid command line parameter */
	VZ_EXIT_BADVAL = 21,	     /* Invalid value for a parameter */
	VZ_EXIT_NOTEMPLATE_ARG = 29, /* OS template not specified */
	VZ_EXIT_NOTRUNNING = 31,     /* VE not running */
	VZ_EXIT_RUNNING = 32,	     /* VE already running */
	VZ_EXIT_STOP = 33,	     /* Unable to stop VE */
	VZ_EXIT_IPADD = 34,	     /* Unable to add an IP address */
	VZ_EXIT_NOTMOUNTED = 40,     /* VE not mounted */
	VZ_EXIT_MOUNTED = 41,	     /* VE already mounted */
	VZ_EXIT_NOPRIVATE = 43,	     /* Private area not found */
	VZ_EXIT_EXISTS = 44,	     /* Private area already exists */
	VZ_EXIT_NOSPACE = 46,	     /* Not enough disk space */
	VZ_EXIT_BROKEN = 47,	     /* Bad VE: no /sbin/init or /bin/sh */
	VZ_EXIT_CREATE = 48,	     /* Unable to create the private area */
	VZ_EXIT_MOUNT = 50,	     /* Unable to mount */
	VZ_EXIT_UMOUNT = 51,	     /* Unable to unmount */
	VZ_EXIT_DESTROY = 52,	     /* Unable to delete the VE */
	VZ_EXIT_IPINUSE = 78,	     /* IP address already in use */
	VZ_EXIT_NOTEMPLATE = 91,     /* OS template not found */
	VZ_EXIT_VETH = 130,	     /* Error setting the veth interface */
	VZ_EXIT_SAVECONF = 139,	     /* Error saving the VE config */
};

struct vz_err {
	int errnum;    /* positive errno of the first failure */
	int exit_code; /* enum vz_exit, VZ_EXIT_SYSTEM when unset */
	char msg[1024];
};

/* Record "fmt...: <strerror(errnum)>" with errno errnum (a negative value
 * counts as its absolute value; 0 means EINVAL) and return -errnum. A later
 * call replaces the message; use vz_error_wrap() to add context. */
int vz_error(struct vz_err *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Record "fmt..." alone, with errno errnum, and return -errnum. */
int vz_error_msg(struct vz_err *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* vz_error() and vz_error_msg() with an OpenVZ exit code. */
int vz_error_exit(struct vz_err *err, int exit_code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int vz_error_exit_msg(struct vz_err *err, int exit_code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefix the recorded message with "fmt...: " and return -err->errnum. */
int vz_error_wrap(struct vz_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Forget a recorded error. */
void vz_err_clear(struct vz_err *err);

#endif
