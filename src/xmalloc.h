/*
 * xmalloc.h — allocators that never return NULL.
 *
 * Memory exhaustion is not a condition sesrelay can handle usefully: every
 * allocator here logs and aborts instead of returning NULL.  wipe_free()
 * clears a secret before releasing it so that it does not linger in freed
 * heap memory (and in a core dump).
 */
#ifndef SESRELAY_XMALLOC_H
#define SESRELAY_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
int xasprintf(char **out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Zero the NUL-terminated secret s (may be NULL) and free it. */
void wipe_free(char *s);
/* Zero n bytes at p in a way the compiler cannot optimise away. */
void wipe(void *p, size_t n);
/* No core dumps for this process: the derived SMTP password lives in
 * memory for as long as the process runs. */
void no_core_dumps(void);

#endif
