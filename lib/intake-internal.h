/* SPDX-License-Identifier: MIT */
/*
 * The intake: a bounded multi-producer, single-consumer ring of pointers
 * in which a producer reserves room for one item or for a batch with one
 * atomic operation, and the consumer takes what was filled, in order.
 * It holds pointers and counts; what the items are, who runs them and how
 * a consumer sleeps are its users' business: admission's fast path keeps
 * a function's plain events in one (admit.c, dispatch.c).
 *
 * The contract:
 *   - Bound. At no instant do more than `bound` items occupy the intake
 *     (an item occupies it from its reservation until the consumer takes
 *     it). A reservation of n is refused only if, at one instant during
 *     the call, the items in the intake plus n exceeded the bound: a
 *     refusal is never spurious.
 *   - All or nothing. A reservation of n items gets n consecutive slots
 *     or none; nobody else's items come between them.
 *   - Order. The consumer takes items in reservation order; a slot
 *     reserved and not yet filled stops the take there (it never skips
 *     ahead), and an item filled as NULL (a reservation given up after
 *     it was made) is stepped over, never returned.
 *   - Exactly once. Every filled item is returned by exactly one take.
 *   - Wake-ups (libdispatch's rule). A reservation reports `was_empty`
 *     when it took the intake from empty to non-empty; only then is the
 *     consumer owed a wake-up, which the producer gives after filling its
 *     slots. A take that reports `drained` left the intake empty: the
 *     consumer may sleep, and the next reservation will report was_empty.
 *     A take that reports !drained left items reserved behind it (filled
 *     or about to be): no wake-up will come for them, so the consumer
 *     must take again (a producer is a few instructions from filling a
 *     reserved slot, unless it was preempted there: yield, then retry).
 *
 * Threads: any number of threads may reserve and fill; one thread at a
 * time may take (the consumer; several takers need a lock around take).
 * Reservation and take are lock-free; fill is one store per item.
 */
#ifndef EVFN_INTAKE_INTERNAL_H
#define EVFN_INTAKE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evfn__intake;

/* The largest bound: positions are 32-bit counters, and the occupancy
 * (tail - head) must stay below half their range to be unambiguous. */
#define EVFN__INTAKE_BOUND_MAX (UINT32_C(1) << 30)

/* What a successful reservation hands its producer. */
struct evfn__intake_ticket {
	uint32_t pos;   /* the first reserved position */
	uint32_t n;     /* how many were reserved */
	bool was_empty; /* the intake was empty before: wake the consumer
	                 * once the slots are filled */
};

/* Makes an intake for at most `bound` items (1..EVFN__INTAKE_BOUND_MAX;
 * the ring is the next power of two). Returns 0, EVFN_EINVAL for a bound
 * out of range or NULL out, EVFN_ENOMEM. */
int evfn__intake_new(struct evfn__intake **out, uint32_t bound);

/* The same with the positions starting at `start` rather than 0: tests
 * reach the wrap of the 32-bit positions with it. */
int evfn__intake_new_at(struct evfn__intake **out, uint32_t bound,
                        uint32_t start);

/* Frees the intake; the items still in it are the caller's (take them
 * first). NULL is a no-op. No thread may use it any more. */
void evfn__intake_free(struct evfn__intake *q);

/* Reserves n consecutive slots (n >= 1), all or none. Returns 0 and fills
 * *t; EVFN_EQUEUEFULL when the items in the intake plus n exceed the
 * bound (always, when n exceeds the bound); EVFN_EINVAL for n == 0. Every
 * reserved slot must then be filled, exactly once, with evfn__intake_fill
 * (NULL to give it up), or the consumer stops there for good. Any
 * thread. */
int evfn__intake_reserve(struct evfn__intake *q, uint32_t n,
                         struct evfn__intake_ticket *t);

/* Fills slot i (0..t->n - 1) of a reservation with item; NULL gives the
 * slot up (the consumer steps over it). The store releases: what the
 * producer wrote to the item before is visible to the consumer that takes
 * it. The thread that reserved, or one it handed the ticket to. */
void evfn__intake_fill(struct evfn__intake *q,
                       const struct evfn__intake_ticket *t, uint32_t i,
                       void *item);

/* Takes up to max filled items in order into out[], stopping at the
 * first reserved slot not yet filled, and frees their room. Returns how
 * many were taken; *drained (may be NULL) tells whether the intake was
 * empty when they left it (see the contract above). The consumer only. */
size_t evfn__intake_take(struct evfn__intake *q, void **out, size_t max,
                         bool *drained);

/* How many items occupy the intake now (reserved, filled or not, and
 * not yet taken): a snapshot, exact when nobody races. Any thread. */
uint32_t evfn__intake_count(const struct evfn__intake *q);

#endif /* EVFN_INTAKE_INTERNAL_H */
