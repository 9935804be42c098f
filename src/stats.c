/* stats.c — see stats.h. */
#include "stats.h"

const double stats_bucket_bounds[STATS_BUCKETS] = {
	0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30
};

void
stats_observe(struct stats_histogram *h, double seconds)
{
	int i = 0;
	while (i < STATS_BUCKETS && seconds > stats_bucket_bounds[i])
		i++;
	h->counts[i]++;
	h->n++;
	h->sum += seconds;
}
