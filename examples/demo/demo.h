/* SPDX-License-Identifier: MIT */
/*
 * The shared state of the demo host and the one entry point of each of its
 * parts: payments (a signed webhook chained to an SQLite ledger), uploads
 * (a watched directory, a resize step, a publish step, a cleanup
 * schedule), reports (an asynchronous API with a status lookup), a flaky
 * downstream, the load generator and the final summary.
 * Each part lives in the .c file of the same name.
 */
#ifndef EVFN_DEMO_H
#define EVFN_DEMO_H

/* The bearer token of the status page's dead-letter actions (a demo: a
 * real host takes it from its configuration). */
#define DEMO_STATUS_TOKEN "demo-token"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <evfn.h>

/* The webhook's endpoint secret, known to the server and to the load
 * generator that plays Stripe. */
#define DEMO_STRIPE_SECRET "whsec_demo_0123456789abcdef"

struct demo_reports; /* reports.c */
struct demo_load;    /* loadgen.c */

struct demo {
	evfn_rt *rt;
	evfn_http *http;
	int port;

	/* One mkdtemp() directory holds everything the run writes. */
	char root[64];
	char inbox[96];   /* watched: uploads arrive here */
	char staging[96]; /* uploads are written here, then renamed */
	char outbox[96];  /* published thumbnails */
	char db[96];      /* the SQLite ledger */

	evfn_trigger *watch;
	evfn_trigger *cleanup;
	struct demo_reports *reports;

	/* --crash (crash.c): which run of the host this is (1, killed; 2,
	 * after the restart), 0 for a plain demo; the journal is then
	 * durable, the directory shared by both runs, and the load's ids
	 * (payments, file names) start at id_base, different per run. */
	int crash_run;
	unsigned id_base;
	struct demo_witness *witness;

	/* Counters the handlers keep for the summary. */
	atomic_uint_fast64_t published;
	atomic_uint_fast64_t cleaned;
};

/* Every function the demo registers, in the order the summary prints. */
extern const char *const demo_functions[];
extern const size_t demo_function_count;

/* Each setup registers its functions (and routes or triggers) on d->rt;
 * it returns 0 or a negative EVFN_E* code. */
int demo_payments_setup(struct demo *d);
int demo_uploads_setup(struct demo *d);
int demo_reports_setup(struct demo *d);
int demo_flaky_setup(struct demo *d);

/* Stop the triggers of the upload pipeline (before the drain). */
void demo_uploads_stop(struct demo *d);
/* Free the report table (after the runtime). */
void demo_reports_free(struct demo *d);
/* The ledger's worker hooks, for every function that reads or writes it
 * (payments.c); and its summary through the calling worker's connection. */
int demo_ledger_hooks(evfn_fn_options *o);
int demo_ledger_summary(evfn_ctx *ctx, int64_t *count, int64_t *cents);
/* Number of payments in the ledger, and their sum in cents; -1 on error. */
int64_t demo_ledger_count(const struct demo *d, int64_t *cents);

/* Load generator: threads that drive every part until stopped. */
int demo_load_start(struct demo *d, struct demo_load **out);
void demo_load_stop(struct demo_load *l);
void demo_load_print(const struct demo_load *l);
void demo_load_free(struct demo_load *l);

/* Seconds on the monotonic clock. */
double demo_now_s(void);
/* Removes a run's directory (only one under /tmp/evfn-demo.). */
void demo_remove_tree(const char *root);

/* --crash, the parent: runs the host twice (self --crash-host DIR RUN)
 * on one directory, SIGKILLing run 1 midway, and prints what happened to
 * every event across both runs. Returns the exit status: 0 when every
 * accepted event was accounted for. */
int demo_crash_main(const char *self, double seconds);
/* --crash, the host: its witness file (open before the runtime starts),
 * the event log that writes it, pausing every function before a restart
 * so that what the journal gave back can be counted, then the start of
 * the witness (that count, resuming, the sampler), and its finish after
 * the drain. */
int demo_witness_open(struct demo *d);
void demo_witness_record(const evfn_record *rec, void *arg);
int demo_witness_pause_all(struct demo *d);
int demo_witness_start(struct demo *d);
void demo_witness_finish(struct demo *d);

/* Per-function table and cost view; returns true when every event is
 * accounted for. */
bool demo_summary_print(struct demo *d, double seconds);
/* Events of a snapshot accepted but not ended yet: running, queued,
 * waiting for a retry or for their delay. */
uint64_t demo_pending(const evfn_stats *s);

#endif /* EVFN_DEMO_H */
