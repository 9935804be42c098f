/*
 * fuzz_smtp_data.c — the DATA stream reader (smtp_data_feed) fed the same
 * bytes twice: in one piece, and in pieces of pseudo-random sizes (the
 * first input byte picks the size range and seeds the sizes).
 *
 * Invariants: every call consumes at most what it is given, and all of it
 * unless the end was reached; both feedings give the same output, flags,
 * end and count; the output is never longer than the input; after the end
 * nothing more is consumed; the end is a real CRLF "." CRLF; the output of
 * a finished message ends with CRLF; a finished message without bare
 * CR/LF flags has no bare CR or LF in its output, and the bytes missing
 * from the output are exactly the final ".\r\n" and one stuffed dot per
 * line; the long-line flag is set exactly when an output line exceeds
 * SMTP_LINE_MAX (CRLF included).
 */
#include <string.h>

#include "fuzz.h"
#include "smtp_parse.h"

struct sink {
	char *buf;
	size_t len, cap;
};

static void
sink_emit(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;

	FUZZ_CHECK(n > 0);
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2;
		if ((s->buf = realloc(s->buf, s->cap)) == NULL)
			abort();
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

struct run {
	struct smtp_data_reader r;
	struct sink out;
	size_t consumed;
	int done;
};

/* Feed in[0..n) in pieces of 1..maxpiece bytes (0: all at once). */
static void
feed(struct run *run, const char *in, size_t n, size_t maxpiece,
    uint32_t seed)
{
	size_t pos = 0;

	memset(run, 0, sizeof(*run));
	smtp_data_init(&run->r);
	do {
		size_t piece = n - pos, used;
		char *copy;

		if (maxpiece > 0) {
			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			if (piece > 1 + seed % maxpiece)
				piece = 1 + seed % maxpiece;
		}
		/* each piece in its own exact-size buffer (ASan) */
		if ((copy = malloc(piece > 0 ? piece : 1)) == NULL)
			abort();
		memcpy(copy, in + pos, piece);
		used = smtp_data_feed(&run->r, copy, piece, sink_emit,
		    &run->out, &run->done);
		free(copy);
		FUZZ_CHECK(used <= piece);
		if (!run->done)
			FUZZ_CHECK(used == piece);
		pos += used;
	} while (!run->done && pos < n);
	run->consumed = pos;

	if (run->done) {
		int done = 0;

		FUZZ_CHECK(smtp_data_feed(&run->r, "x\r\n.\r\n", 6, sink_emit,
		    &run->out, &done) == 0);
		FUZZ_CHECK(done == 1);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t pieces[] = { 1, 2, 3, 7, 64, 4096 };
	const char *in = (const char *)data + 1;
	struct run whole, split;
	size_t n, maxpiece, i, start, dots, longest = 0;
	unsigned clean_flags;

	if (size < 1)
		return 0;
	n = size - 1;
	maxpiece = pieces[data[0] % (sizeof(pieces) / sizeof(pieces[0]))];

	feed(&whole, in, n, 0, 0);
	feed(&split, in, n, maxpiece, 0x9e3779b9u ^ data[0] ^ (uint32_t)n);

	FUZZ_CHECK(whole.done == split.done);
	FUZZ_CHECK(whole.consumed == split.consumed);
	FUZZ_CHECK(whole.r.flags == split.r.flags);
	FUZZ_CHECK(whole.r.total == split.r.total);
	FUZZ_CHECK(whole.out.len == split.out.len);
	FUZZ_CHECK(whole.out.len == 0 ||
	    memcmp(whole.out.buf, split.out.buf, whole.out.len) == 0);
	FUZZ_CHECK(whole.r.total == whole.out.len);
	FUZZ_CHECK(whole.out.len <= whole.consumed);
	FUZZ_CHECK(whole.consumed <= n);
	if (!whole.done)
		FUZZ_CHECK(whole.consumed == n);

	const char *out = whole.out.buf;
	size_t olen = whole.out.len, used = whole.consumed;

	if (whole.done) {
		FUZZ_CHECK(used >= 3 && memcmp(in + used - 3, ".\r\n", 3) == 0);
		FUZZ_CHECK(used == 3 || (used >= 5 &&
		    memcmp(in + used - 5, "\r\n", 2) == 0));
		FUZZ_CHECK(olen == 0 || (olen >= 2 &&
		    memcmp(out + olen - 2, "\r\n", 2) == 0));
	}

	/* Output lines (split at CRLF only, as the reader counts them). */
	for (i = 0, start = 0; i <= olen; i++) {
		if (i == olen || (out[i] == '\r' && i + 1 < olen &&
		    out[i + 1] == '\n')) {
			size_t seg = i - start;

			/* a CR at the very end may yet be a CRLF: the reader
			 * has not counted it */
			if (i == olen && !whole.done && seg > 0 &&
			    out[olen - 1] == '\r')
				seg--;
			if (seg > longest)
				longest = seg;
			start = i + 2;
			i++;
		}
	}
	FUZZ_CHECK(((whole.r.flags & SMTP_DATA_LONG_LINE) != 0) ==
	    (longest + 2 > SMTP_LINE_MAX));

	clean_flags = SMTP_DATA_BARE_LF | SMTP_DATA_BARE_CR |
	    SMTP_DATA_LOOSE_END;
	/* (only once finished: before, a trailing CR or ".\r" is pending) */
	if (whole.done && (whole.r.flags & clean_flags) == 0) {
		for (i = 0; i < olen; i++) {
			if (out[i] == '\r')
				FUZZ_CHECK(i + 1 < olen && out[i + 1] == '\n');
			if (out[i] == '\n')
				FUZZ_CHECK(i > 0 && out[i - 1] == '\r');
		}
		/* one stuffed dot per line of the input that starts with "." */
		size_t body = used - 3;
		for (i = 0, dots = 0; i < body; i++)
			if (in[i] == '.' && (i == 0 || (i >= 2 &&
			    in[i - 1] == '\n' && in[i - 2] == '\r')))
				dots++;
		FUZZ_CHECK(olen + dots == body);
	}
	free(whole.out.buf);
	free(split.out.buf);
	return 0;
}
