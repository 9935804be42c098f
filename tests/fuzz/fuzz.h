/*
 * fuzz.h — shared by the fuzz targets (tests/fuzz/fuzz_*.c).
 *
 * Each target defines LLVMFuzzerTestOneInput().  With ./configure
 * --enable-fuzz (clang) it is linked with libFuzzer (`make fuzz`); in every
 * build it is also linked with replay_main.c into tests/fuzz/replay_<name>,
 * which `make check` runs over tests/fuzz/regress/<name>/ and the seed
 * corpus, so a crash once found stays fixed in the normal gcc build too.
 *
 * A broken invariant is reported with FUZZ_CHECK, which aborts: libFuzzer
 * and the replay driver both treat that as a crash.
 */
#ifndef SESRELAY_FUZZ_H
#define SESRELAY_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant broken: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

#endif
