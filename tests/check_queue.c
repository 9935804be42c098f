/*
 * check_queue.c — the retry backoff (queue_backoff): doubling from
 * retry_min to retry_max, with jitter, and never outside the two.
 */
#include <stdlib.h>

#include <check.h>

#include "queue.h"

static const struct {
	unsigned min, max, attempts;
	unsigned lo, mid, hi;	/* at u = 0, 0.5, 1 */
} cases[] = {
	{ 5, 1200, 1, 5, 5, 6 },		/* 4 .. 6, but not below 5 */
	{ 5, 1200, 2, 8, 10, 12 },
	{ 5, 1200, 3, 16, 20, 24 },
	{ 5, 1200, 8, 512, 640, 768 },
	{ 5, 1200, 9, 960, 1200, 1200 },	/* 960 .. 1440, at most 1200 */
	{ 5, 1200, 40, 960, 1200, 1200 },
	{ 5, 1200, 4000000000u, 960, 1200, 1200 },
	{ 2, 2, 1, 2, 2, 2 },			/* was 1 .. 2 */
	{ 2, 2, 5, 2, 2, 2 },
	{ 1, 1, 1, 1, 1, 1 },
	{ 1, 30, 1, 1, 1, 1 },
	{ 10, 15, 2, 12, 15, 15 },		/* 12 .. 18, at most 15 */
	{ 30 * 86400, 30 * 86400, 3, 30 * 86400, 30 * 86400, 30 * 86400 },
};

START_TEST(test_backoff)
{
	unsigned got[3];
	for (int j = 0; j < 3; j++)
		got[j] = queue_backoff(cases[_i].min, cases[_i].max,
		    cases[_i].attempts, j / 2.0);
	ck_assert_msg(got[0] == cases[_i].lo && got[1] == cases[_i].mid &&
	    got[2] == cases[_i].hi, "retry %u..%u, attempt %u: %u %u %u, "
	    "expected %u %u %u", cases[_i].min, cases[_i].max,
	    cases[_i].attempts, got[0], got[1], got[2], cases[_i].lo,
	    cases[_i].mid, cases[_i].hi);
}
END_TEST

/* Whatever the draw, within [retry_min, retry_max]. */
START_TEST(test_bounds)
{
	static const unsigned mm[][2] = { { 1, 1 }, { 1, 2 }, { 2, 3 },
	    { 5, 1200 }, { 7, 7 }, { 100, 101 } };
	for (size_t k = 0; k < sizeof(mm) / sizeof(mm[0]); k++)
		for (unsigned n = 1; n < 16; n++)
			for (int j = 0; j <= 100; j++) {
				unsigned d = queue_backoff(mm[k][0], mm[k][1],
				    n, j / 100.0);
				ck_assert_msg(d >= mm[k][0] && d <= mm[k][1],
				    "retry %u..%u, attempt %u, u %.2f: %u",
				    mm[k][0], mm[k][1], n, j / 100.0, d);
			}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = tcase_create("backoff");
	tcase_add_loop_test(tc, test_backoff, 0,
	    sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_bounds);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
