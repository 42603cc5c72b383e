/* lib/expo.c: Prometheus' text format (label escaping, unlimited as +Inf,
 * cumulative histogram buckets), and lib/metrics_http.c's address parser. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "expo.h"
#include "metrics_http.h"

static char *page(void (*fn)(FILE *f))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_not_null(f);
	fn(f);
	cr_assert_eq(fclose(f), 0);
	return buf;
}

static void samples(FILE *f)
{
	vz_expo_family(f, "vz_x", "gauge", "A help\nwith \\ in it");
	vz_expo_u64(f, "vz_x", (const char *const[]){ "ctid", "101", "resource", "a\"b\\c\nd", NULL }, 7);
	vz_expo_u64(f, "vz_x", NULL, UINT64_MAX);
	vz_expo_double(f, "vz_y", (const char *const[]){ "host", "h1", NULL }, 0.25);
}

Test(expo, escapes_labels_and_help_and_writes_unlimited_as_inf)
{
	char *p = page(samples);

	cr_assert_str_eq(p, "# HELP vz_x A help\\nwith \\\\ in it\n"
			    "# TYPE vz_x gauge\n"
			    "vz_x{ctid=\"101\",resource=\"a\\\"b\\\\c\\nd\"} 7\n"
			    "vz_x +Inf\n"
			    "vz_y{host=\"h1\"} 0.25\n");
	free(p);
}

static void histogram(FILE *f)
{
	static const double bounds[] = { 0.1, 1 };
	struct vz_hist h = vz_hist_make(bounds, 2);

	vz_hist_observe(&h, 0.05);
	vz_hist_observe(&h, 0.1);
	vz_hist_observe(&h, 0.5);
	vz_hist_observe(&h, 3);
	vz_expo_hist(f, "vz_h", (const char *const[]){ "side", "source", NULL }, &h);
}

Test(expo, histogram_buckets_are_cumulative_with_inf_sum_and_count)
{
	char *p = page(histogram);

	cr_assert_str_eq(p, "vz_h_bucket{side=\"source\",le=\"0.1\"} 2\n"
			    "vz_h_bucket{side=\"source\",le=\"1\"} 3\n"
			    "vz_h_bucket{side=\"source\",le=\"+Inf\"} 4\n"
			    "vz_h_sum{side=\"source\"} 3.65\n"
			    "vz_h_count{side=\"source\"} 4\n");
	free(p);
}

Test(metrics_http, parses_host_and_port_and_refuses_the_rest)
{
	char host[64];
	unsigned port;

	cr_assert_eq(vz_metrics_addr_parse("127.0.0.1:9720", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 9720);
	cr_assert_eq(vz_metrics_addr_parse("[::1]:80", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "::1");
	cr_assert_eq(port, 80);
	cr_assert_eq(vz_metrics_addr_parse("127.0.0.1", host, sizeof(host), &port), -EINVAL);
	cr_assert_eq(vz_metrics_addr_parse("127.0.0.1:0", host, sizeof(host), &port), -EINVAL);
	cr_assert_eq(vz_metrics_addr_parse("127.0.0.1:65536", host, sizeof(host), &port), -EINVAL);
	cr_assert_eq(vz_metrics_addr_parse(":9720", host, sizeof(host), &port), -EINVAL);
	cr_assert_eq(vz_metrics_addr_parse("::1:9720", host, sizeof(host), &port), -EINVAL);
	cr_assert_eq(vz_metrics_addr_parse("[::1]9720", host, sizeof(host), &port), -EINVAL);
	cr_assert_eq(vz_metrics_addr_parse("h:97x", host, sizeof(host), &port), -EINVAL);
}

Test(metrics_http, setting_absent_is_the_default_empty_is_off_bad_is_one_error)
{
	struct vz_conf c = { 0 };
	struct vz_err err = { 0 };
	char out[128];

	cr_assert_eq(vz_conf_parse(&c, "", 0, &err), 0);
	cr_assert_eq(vz_metrics_conf(&c, "vz.conf", "127.0.0.1:9720", out, sizeof(out), &err), 0);
	cr_assert_str_eq(out, "127.0.0.1:9720");
	vz_conf_free(&c);
	cr_assert_eq(vz_conf_parse(&c, "METRICS_LISTEN=\"\"\n", 18, &err), 0);
	cr_assert_eq(vz_metrics_conf(&c, "vz.conf", "127.0.0.1:9720", out, sizeof(out), &err), 0);
	cr_assert_str_eq(out, "");
	vz_conf_free(&c);
	cr_assert_eq(vz_conf_parse(&c, "METRICS_LISTEN=\"9720\"\n", 22, &err), 0);
	cr_assert_eq(vz_metrics_conf(&c, "vz.conf", "127.0.0.1:9720", out, sizeof(out), &err), -EINVAL);
	cr_assert_eq(err.exit_code, VZ_EXIT_BADVAL);
	cr_assert_str_eq(err.msg,
			 "vz.conf: METRICS_LISTEN must be ADDRESS:PORT (as 127.0.0.1:9720) or empty, not '9720'");
	vz_conf_free(&c);
}

Test(metrics_http, routes_requests_by_their_first_line)
{
	bool head;

	cr_assert_eq(vz_metrics_route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &head), 200);
	cr_assert(!head);
	cr_assert_eq(vz_metrics_route("HEAD /metrics?x=1 HTTP/1.0\n\n", &head), 200);
	cr_assert(head);
	cr_assert_eq(vz_metrics_route("GET / HTTP/1.1\r\n\r\n", &head), 404);
	cr_assert_eq(vz_metrics_route("GET /metricsx HTTP/1.1\r\n\r\n", &head), 404);
	cr_assert_eq(vz_metrics_route("POST /metrics HTTP/1.1\r\n\r\n", &head), 405);
	cr_assert_eq(vz_metrics_route("garbage\r\n\r\n", &head), 400);
	cr_assert_eq(vz_metrics_route("GET /metrics HTTP/2.0\r\n\r\n", &head), 400);
	cr_assert_eq(vz_metrics_route("GET /metrics HTTP/1.1 extra\r\n\r\n", &head), 400);
	cr_assert_eq(vz_metrics_route("get /metrics HTTP/1.1\r\n\r\n", &head), 400);
	cr_assert_eq(vz_metrics_route("", &head), 400);
}
