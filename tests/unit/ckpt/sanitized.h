/* Under AddressSanitizer (make SAN=1) a child forked from a test carries
 * ASan's shadow memory: terabytes of mappings that the tracker would scan
 * and read as if they were a VE's memory. The tests that track such a
 * child skip there, saying so; the tracker still runs under the
 * sanitizers in the integration tests, on the processes of VEs. */
#ifndef VZ_TEST_SANITIZED_H
#define VZ_TEST_SANITIZED_H

#include <criterion/criterion.h>

#if defined(__SANITIZE_ADDRESS__)
#define SKIP_IF_SANITIZED()                                                                                            \
	cr_skip_test("built with ASan: a forked child's shadow memory is terabytes for the tracker to read")
#else
#define SKIP_IF_SANITIZED()                                                                                            \
	do {                                                                                                           \
	} while (0)
#endif

#endif
