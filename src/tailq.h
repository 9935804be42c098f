/* tailq.h — <sys/queue.h> plus the _SAFE iterator glibc lacks. */
#ifndef SESRELAY_TAILQ_H
#define SESRELAY_TAILQ_H

#include <sys/queue.h>

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST((head));				\
	    (var) != NULL && ((tvar) = TAILQ_NEXT((var), field), 1);	\
	    (var) = (tvar))
#endif

#endif
