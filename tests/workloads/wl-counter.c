/* wl-counter [-n tag]: timers and signal handlers. A counter bumped by the
 * main loop, SIGALRM ticks from setitimer (10 ms), SIGRTMIN ticks from a
 * POSIX timer (20 ms) and timerfd expirations (5 ms). Verify: the handlers
 * are still installed as set, every count went on rising after the
 * request, and none ever went backwards. */
#include <getopt.h>
#include <sys/time.h>
#include <sys/timerfd.h>

#include "wl.h"

static struct wl w;
static volatile sig_atomic_t alarm_ticks, rt_ticks;

static void on_alarm(int s)
{
	(void)s;
	alarm_ticks++;
}

static void on_rt(int s)
{
	(void)s;
	rt_ticks++;
}

struct counts {
	uint64_t loop, alarm, rt, tfd;
};

static struct counts now;
static int tfd;

static void step(void)
{
	uint64_t exp;

	now.loop++;
	now.alarm = (uint64_t)alarm_ticks;
	now.rt = (uint64_t)rt_ticks;
	if (read(tfd, &exp, sizeof(exp)) == sizeof(exp))
		now.tfd += exp;
	wl_sleep_us(1000);
}

static bool handler_is(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;

	return sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == fn && (sa.sa_flags & flags) == flags;
}

static void verify(void)
{
	struct counts a = now;
	uint64_t end = wl_now_ms() + 1000;

	wl_check_pid(&w);
	if (!handler_is(SIGALRM, on_alarm, SA_RESTART))
		wl_fail(&w, "SIGALRM handler lost");
	if (!handler_is(SIGRTMIN, on_rt, SA_RESTART))
		wl_fail(&w, "SIGRTMIN handler lost");
	while (wl_now_ms() < end &&
	       !(now.loop > a.loop && now.alarm > a.alarm + 2 && now.rt > a.rt + 1 && now.tfd > a.tfd + 4))
		step();
	if (now.loop <= a.loop)
		wl_fail(&w, "the loop stopped");
	if (now.alarm <= a.alarm + 2)
		wl_fail(&w, "setitimer ticks stopped (%llu then %llu)", (unsigned long long)a.alarm,
			(unsigned long long)now.alarm);
	if (now.rt <= a.rt + 1)
		wl_fail(&w, "POSIX timer ticks stopped");
	if (now.tfd <= a.tfd + 4) {
		struct itimerspec cur = { 0 };

		timerfd_gettime(tfd, &cur);
		wl_fail(&w, "timerfd stopped (%llu then %llu expirations; next in %ld.%09ld s, every %ld ns)",
			(unsigned long long)a.tfd, (unsigned long long)now.tfd, (long)cur.it_value.tv_sec,
			cur.it_value.tv_nsec, cur.it_interval.tv_nsec);
	}
	wl_answer(&w);
}

int main(int argc, char **argv)
{
	struct itimerval it = { { 0, 10000 }, { 0, 10000 } };
	struct itimerspec ts = { { 0, 5000000 }, { 0, 5000000 } };
	struct itimerspec pts = { { 0, 20000000 }, { 0, 20000000 } };
	struct sigevent sev = { 0 };
	struct sigaction sa = { 0 };
	struct counts last;
	timer_t timer;

	wl_start_args(&w, "wl-counter", argc, argv);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_rt;
	sigaction(SIGRTMIN, &sa, NULL);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGRTMIN;
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (tfd < 0 || timerfd_settime(tfd, 0, &ts, NULL) != 0)
		wl_abort(&w, "timerfd: %s", strerror(errno));
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0 || timer_settime(timer, 0, &pts, NULL) != 0)
		wl_abort(&w, "timer_create: %s", strerror(errno));
	if (setitimer(ITIMER_REAL, &it, NULL) != 0)
		wl_abort(&w, "setitimer: %s", strerror(errno));
	wl_ready(&w);
	last = now;
	while (!wl_stop) {
		step();
		if (now.loop < last.loop || now.alarm < last.alarm || now.rt < last.rt || now.tfd < last.tfd)
			wl_fail(&w, "a count went backwards");
		last = now;
		if (wl_check_req) {
			wl_check_req = 0;
			verify();
		}
	}
	return 0;
}
