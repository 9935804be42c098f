/*
 * stats.h — counters and latency histograms, kept by the module that
 * sees the event and read by the metrics endpoint.  Plain numbers, no
 * locking: everything runs on the one event loop.
 */
#ifndef SESRELAY_STATS_H
#define SESRELAY_STATS_H

#include <stdint.h>

/* Upper bounds in seconds of the latency buckets (Prometheus "le"),
 * then +Inf. */
#define STATS_BUCKETS 12
extern const double stats_bucket_bounds[STATS_BUCKETS];

struct stats_histogram {
	uint64_t counts[STATS_BUCKETS + 1];	/* not cumulative; last: +Inf */
	uint64_t n;
	double sum;
};

void stats_observe(struct stats_histogram *h, double seconds);

#endif
