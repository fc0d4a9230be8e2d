/* SPDX-License-Identifier: MIT */
/*
 * The journal's front: the calls the runtime makes, the lock they take,
 * and the writer thread that commits what they buffer. Producers fill
 * one buffer (journal-pending.c) while the writer commits the other
 * (journal-store.c), so that everything that arrives during one commit
 * shares the next: with durable appends waiting on their batch, that is
 * group commit, one fsync for all the producers of a batch.
 *
 * When a commit fails (a full disk, an I/O error) its transaction is
 * rolled back and nothing of it is lost silently: appends whose callers
 * wait (durable mode) are refused with the error; everything else is
 * kept, in order, and committed before anything newer at the next try.
 * In fast mode, where appends do not wait, the error is reported by the
 * appends that follow until a commit succeeds again.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "common-internal.h"
#include "hash-internal.h"
#include "histogram-internal.h"
#include "journal-internal.h"
#include "journal-pending-internal.h"
#include "journal-store-internal.h"

#define DEFAULT_FLUSH_NS (10 * EVFN__NS_PER_MS)
#define DEFAULT_SYNC_NS EVFN__NS_PER_SEC
#define DEFAULT_CHECKPOINT_PAGES 1024
#define DEFAULT_MAX_PENDING ((size_t)1 << 20)
/* Idempotency expiry and giving free pages back. */
#define HOUSEKEEP_NS EVFN__NS_PER_SEC
/* After a failed commit, the next try (sooner when new work arrives). */
#define RETRY_NS (100 * EVFN__NS_PER_MS)

/* A SYNC operation's id: checkpoint and truncate after the commit. */
#define SYNC_TRUNCATE 1

struct fn_name {
	UT_hash_handle hh;
	uint32_t id;
	char name[];
};

struct evfn__journal {
	pthread_mutex_t lock;
	pthread_cond_t wake;        /* the writer waits on it */
	pthread_cond_t done;        /* waiters, and appends waiting for room */
	struct evfn__journal_options o;
	char *vfs;                  /* o.vfs's copy */
	struct evfn__jstore *store; /* the writer's once started */
	struct evfn__jstore_marks open_marks; /* as read at open */
	struct evfn__jstore_marks marks;      /* as last committed */
	struct fn_name *names;      /* by name */
	struct fn_name **by_id;     /* by id - 1 */
	uint32_t n_ids, cap_ids;
	struct evfn__jpending bufs[2];
	struct evfn__jpending *cur; /* what producers fill */
	struct evfn__jpending retry; /* kept from failed commits; writer */
	size_t retry_n;             /* retry.n, for other threads */
	pthread_t writer;
	bool started, stopping, writer_idle;
	bool final_try;             /* stopping: the last commit was tried */
	int error;                  /* of the last commit */
	/* Monotonic deadlines of the writer (0: none): the retry of a failed
	 * commit, the fsync fast mode owes, housekeeping, the retry of a
	 * failed checkpoint. */
	int64_t retry_at, sync_at, housekeep_at, checkpoint_retry_at;
	struct evfn__hist delays;   /* call to commit; the writer records */
	struct evfn__journal_stats stats;
};

void
evfn__journal_options_init(struct evfn__journal_options *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = EVFN__JOURNAL_DURABLE;
	o->flush_ns = DEFAULT_FLUSH_NS;
	o->sync_ns = DEFAULT_SYNC_NS;
	o->checkpoint_pages = DEFAULT_CHECKPOINT_PAGES;
	o->max_pending = DEFAULT_MAX_PENDING;
}

static bool
options_valid(const struct evfn__journal_options *o)
{
	return (o->mode == EVFN__JOURNAL_DURABLE ||
	        o->mode == EVFN__JOURNAL_FAST) &&
	       o->flush_ns > 0 && o->flush_ns <= 60 * EVFN__NS_PER_SEC &&
	       o->sync_ns >= o->flush_ns &&
	       o->sync_ns <= 3600 * EVFN__NS_PER_SEC &&
	       o->checkpoint_pages >= 16 && o->max_pending >= 16;
}

/* Adds a function name under id (at open, or for a new one). */
static int
name_add(struct evfn__journal *j, uint32_t id, const char *name)
{
	if (id > j->cap_ids) {
		uint32_t cap = EVFN__MAX(id, j->cap_ids ? j->cap_ids * 2 : 16);
		struct fn_name **v = evfn__realloc(j->by_id, cap * sizeof(*v));
		if (!v)
			return EVFN_ENOMEM;
		memset(v + j->cap_ids, 0, (cap - j->cap_ids) * sizeof(*v));
		j->by_id = v;
		j->cap_ids = cap;
	}
	size_t len = strlen(name) + 1;
	struct fn_name *e = evfn__malloc(sizeof(*e) + len);
	if (!e)
		return EVFN_ENOMEM;
	e->id = id;
	memcpy(e->name, name, len);
	bool evfn__hash_oom = false;
	HASH_ADD_KEYPTR(hh, j->names, e->name, len - 1, e);
	if (evfn__hash_oom) {
		evfn__free(e);
		return EVFN_ENOMEM;
	}
	j->by_id[id - 1] = e;
	j->n_ids = EVFN__MAX(j->n_ids, id);
	return 0;
}

static int
load_name(uint32_t id, const char *name, void *arg)
{
	return name_add(arg, id, name);
}

static void
names_free(struct evfn__journal *j)
{
	struct fn_name *e, *tmp;
	HASH_ITER(hh, j->names, e, tmp)
	{
		HASH_DEL(j->names, e);
		evfn__free(e);
	}
	evfn__free(j->by_id);
}

int
evfn__journal_open(struct evfn__journal **out, const char *path,
                   const struct evfn__journal_options *o)
{
	if (out)
		*out = NULL;
	struct evfn__journal_options defaults;
	if (!o) {
		evfn__journal_options_init(&defaults);
		o = &defaults;
	}
	if (!out || !path || !*path || !options_valid(o))
		return EVFN_EINVAL;
	struct evfn__journal *j = evfn__calloc(1, sizeof(*j));
	if (!j)
		return EVFN_ENOMEM;
	j->o = *o;
	if (o->vfs && !(j->vfs = evfn__strdup(o->vfs))) {
		evfn__free(j);
		return EVFN_ENOMEM;
	}
	j->o.vfs = j->vfs;
	/* Producers and workers hold the lock for a few dozen instructions:
	 * spinning briefly beats sleeping in the kernel. */
	pthread_mutexattr_t mattr;
	pthread_mutexattr_init(&mattr);
	pthread_mutexattr_settype(&mattr, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&j->lock, &mattr);
	pthread_mutexattr_destroy(&mattr);
	/* The writer sleeps until monotonic deadlines. */
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&j->wake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&j->done, NULL);
	j->cur = &j->bufs[0];
	int rc = evfn__jstore_open(&j->store, path, &j->o, &j->open_marks);
	if (rc == 0)
		rc = evfn__jstore_functions(j->store, load_name, j);
	if (rc < 0) {
		j->stopping = true;
		evfn__journal_close(j);
		return rc;
	}
	j->marks = j->open_marks;
	*out = j;
	return 0;
}

int
evfn__journal_fn_id(struct evfn__journal *j, const char *name, uint32_t *id)
{
	int rc = j && id ? evfn__check_name(name) : EVFN_EINVAL;
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&j->lock);
	struct fn_name *e;
	HASH_FIND_STR(j->names, name, e);
	if (e) {
		*id = e->id;
	} else if (j->stopping) {
		rc = EVFN_ESHUTDOWN;
	} else if (j->n_ids == UINT32_MAX) {
		rc = EVFN_ENOMEM;
	} else {
		struct evfn__jop op = {.kind = EVFN__JOP_FUNCTION,
		                       .fn = j->n_ids + 1,
		                       .text = evfn__strdup(name)};
		rc = op.text ? name_add(j, op.fn, name) : EVFN_ENOMEM;
		if (rc == 0 && (rc = evfn__jpending_push(j->cur, &op)) < 0) {
			/* Forget the name again: the id was never used. */
			e = j->by_id[op.fn - 1];
			HASH_DEL(j->names, e);
			evfn__free(e);
			j->by_id[--j->n_ids] = NULL;
		}
		if (rc < 0)
			evfn__free(op.text);
		else
			*id = op.fn;
	}
	pthread_mutex_unlock(&j->lock);
	return rc;
}

const char *
evfn__journal_fn_name(struct evfn__journal *j, uint32_t id)
{
	pthread_mutex_lock(&j->lock);
	const char *name = id && id <= j->n_ids ? j->by_id[id - 1]->name : NULL;
	pthread_mutex_unlock(&j->lock);
	return name;
}

uint64_t
evfn__journal_last_seq(const struct evfn__journal *j)
{
	return j->open_marks.last_seq;
}

uint64_t
evfn__journal_last_dead_letter_id(const struct evfn__journal *j)
{
	return j->open_marks.last_dead_letter;
}

/* Recovery reads through the store before the writer owns it. */
static int
recovery_allowed(struct evfn__journal *j)
{
	pthread_mutex_lock(&j->lock);
	bool started = j->started;
	pthread_mutex_unlock(&j->lock);
	return started ? EVFN_EBUSY : 0;
}

struct named_recovery {
	struct evfn__journal *j;
	void *cb;
	void *arg;
};

static int
name_record(const struct evfn__journal_record *rec, void *arg)
{
	struct named_recovery *r = arg;
	struct evfn__journal_record named = *rec;
	named.fn_name = evfn__journal_fn_name(r->j, rec->fn);
	return ((evfn__journal_recover_cb)r->cb)(&named, r->arg);
}

int
evfn__journal_recover(struct evfn__journal *j, evfn__journal_recover_cb cb,
                      void *arg)
{
	if (!j || !cb)
		return EVFN_EINVAL;
	int rc = recovery_allowed(j);
	struct named_recovery r = {j, (void *)cb, arg};
	return rc < 0 ? rc : evfn__jstore_recover(j->store, name_record, &r);
}

static int
name_dead_letter(const struct evfn__journal_dead_letter *dl, void *arg)
{
	struct named_recovery *r = arg;
	struct evfn__journal_dead_letter named = *dl;
	named.fn_name = evfn__journal_fn_name(r->j, dl->fn);
	return ((evfn__journal_dead_letter_cb)r->cb)(&named, r->arg);
}

int
evfn__journal_recover_dead_letters(struct evfn__journal *j,
                                   evfn__journal_dead_letter_cb cb, void *arg)
{
	if (!j || !cb)
		return EVFN_EINVAL;
	int rc = recovery_allowed(j);
	struct named_recovery r = {j, (void *)cb, arg};
	return rc < 0 ? rc
	              : evfn__jstore_recover_dead_letters(j->store,
	                                                  name_dead_letter, &r);
}

static int
name_key(const struct evfn__journal_idempotency *k, void *arg)
{
	struct named_recovery *r = arg;
	struct evfn__journal_idempotency named = *k;
	named.fn_name = evfn__journal_fn_name(r->j, k->fn);
	return ((evfn__journal_idempotency_cb)r->cb)(&named, r->arg);
}

int
evfn__journal_recover_idempotency(struct evfn__journal *j, int64_t now_ns,
                                  evfn__journal_idempotency_cb cb, void *arg)
{
	if (!j || !cb)
		return EVFN_EINVAL;
	int rc = recovery_allowed(j);
	struct named_recovery r = {j, (void *)cb, arg};
	return rc < 0 ? rc
	              : evfn__jstore_recover_idempotency(j->store, now_ns,
	                                                 name_key, &r);
}

/* Whether a buffer holds anything to write (not all cancelled). */
static bool
has_writes(const struct evfn__jpending *p)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->ops[i].kind != EVFN__JOP_NONE &&
		    p->ops[i].kind != EVFN__JOP_SYNC)
			return true;
	return false;
}

/* One transaction: what failed before, then the batch, then the marks.
 * The writer's (or close's) only; no lock held. */
static int
commit_batch(struct evfn__journal *j, struct evfn__jpending *batch,
             struct evfn__jstore_marks *marks)
{
	*marks = j->marks;
	marks->last_seq = EVFN__MAX(marks->last_seq,
	                            EVFN__MAX(batch->max_seq,
	                                      j->retry.max_seq));
	marks->last_dead_letter = EVFN__MAX(
		marks->last_dead_letter,
		EVFN__MAX(batch->max_dead_letter, j->retry.max_dead_letter));
	/* Appends cancelled by their ends still advance the mark: their
	 * sequence numbers were used. */
	bool marks_moved = memcmp(marks, &j->marks, sizeof(*marks)) != 0;
	if (!marks_moved && !has_writes(batch) && !has_writes(&j->retry))
		return 0;
	int rc = evfn__jstore_begin(j->store);
	if (rc == 0)
		rc = evfn__jstore_apply(j->store, j->retry.ops, j->retry.n);
	if (rc == 0)
		rc = evfn__jstore_apply(j->store, batch->ops, batch->n);
	if (rc == 0 && marks_moved)
		rc = evfn__jstore_set_marks(j->store, marks);
	if (rc == 0)
		return evfn__jstore_commit(j->store);
	evfn__jstore_rollback(j->store);
	return rc;
}

/* After a failed commit: keeps in j->retry, in order, what must still be
 * written. An append whose caller waits is refused instead (its caller
 * is told, and keeps the event). */
static void
keep_for_retry(struct evfn__journal *j, struct evfn__jpending *batch)
{
	for (size_t i = 0; i < batch->n; i++) {
		struct evfn__jop *op = &batch->ops[i];
		if (op->kind == EVFN__JOP_NONE || op->kind == EVFN__JOP_SYNC ||
		    (op->kind == EVFN__JOP_APPEND && op->waiter))
			continue;
		struct evfn__jop kept = *op;
		kept.waiter = NULL;
		if (evfn__jpending_push(&j->retry, &kept) < 0) {
			if (j->o.log_cb)
				j->o.log_cb(EVFN_ENOMEM,
				            "journal: out of memory keeping an "
				            "operation of a failed commit: it "
				            "is not journaled",
				            j->o.log_arg);
			continue;
		}
		/* The retry buffer owns them now. */
		op->text = NULL;
		op->blob = NULL;
		op->ev = NULL;
		op->kind = EVFN__JOP_NONE;
	}
}

/* What a batch asks of the checkpoint that follows its commit. */
static int
sync_request(const struct evfn__jpending *batch)
{
	int req = 0;
	if (!batch->waiters)
		return 0;
	for (size_t i = 0; i < batch->n; i++)
		if (batch->ops[i].kind == EVFN__JOP_SYNC)
			req = EVFN__MAX(req, 1 + (int)batch->ops[i].id);
	return req; /* 0 none, 1 sync, 2 sync and truncate */
}

/* Commits one batch taken from the producers, with its checkpoint, and
 * tells its waiters. Called with the lock held; drops it meanwhile. */
static void
process_batch(struct evfn__journal *j, struct evfn__jpending *batch)
{
	pthread_mutex_unlock(&j->lock);
	struct evfn__jstore_marks marks;
	int rc = commit_batch(j, batch, &marks);
	int64_t now = evfn__now_ns();
	bool fast = j->o.mode == EVFN__JOURNAL_FAST;
	int req = rc == 0 ? sync_request(batch) : 0;
	/* In fast mode a commit is not fsynced: a checkpoint fsyncs the
	 * log first, and is what a sync waits for. */
	if (req == 2 || (req == 1 && fast))
		rc = evfn__jstore_checkpoint(j->store, req == 2);
	if (batch->n)
		evfn__hist_record(&j->delays, now - batch->first_ns);
	pthread_mutex_lock(&j->lock);
	for (size_t i = 0; i < batch->n; i++) {
		struct evfn__jwaiter *w = batch->ops[i].waiter;
		if (w) {
			w->rc = rc;
			w->done = true;
		}
	}
	if (batch->waiters)
		pthread_cond_broadcast(&j->done);
	j->error = rc;
	j->stats.last_error = rc;
	if (rc == 0) {
		j->marks = marks;
		j->stats.commits++;
		j->stats.commit_delay_max_ns = EVFN__MAX(
			j->stats.commit_delay_max_ns, now - batch->first_ns);
		if (req)
			j->sync_at = 0;
		else if (fast && !j->sync_at)
			j->sync_at = now + j->o.sync_ns;
	} else {
		j->stats.commit_failures++;
	}
	j->stats.rows_written = evfn__jstore_rows(j->store);
	pthread_mutex_unlock(&j->lock);

	if (rc == 0) {
		evfn__jpending_reset(&j->retry);
		j->retry_at = 0;
	} else {
		keep_for_retry(j, batch);
		j->retry_at = now + RETRY_NS;
	}
	/* Releasing events may run a user's free callback: no lock. */
	evfn__jpending_reset(batch);
	pthread_mutex_lock(&j->lock);
	j->retry_n = j->retry.n;
}

/* Checkpoints and housekeeping the writer owes, at now. Lock held;
 * dropped meanwhile. */
/* Whether the log holds enough to checkpoint (not sooner than a retry
 * interval after a checkpoint that failed). */
static bool
wal_full(struct evfn__journal *j, int64_t now)
{
	return evfn__jstore_wal_pages(j->store) >= j->o.checkpoint_pages &&
	       now >= j->checkpoint_retry_at;
}

static bool
maintenance_due(struct evfn__journal *j, int64_t now)
{
	return wal_full(j, now) || (j->sync_at && now >= j->sync_at) ||
	       now >= j->housekeep_at;
}

static void
maintain(struct evfn__journal *j, int64_t now)
{
	bool full = wal_full(j, now);
	bool sync_due = j->sync_at && now >= j->sync_at;
	bool housekeep_due = now >= j->housekeep_at;
	if (sync_due || full)
		j->sync_at = 0;
	if (housekeep_due)
		j->housekeep_at = now + HOUSEKEEP_NS;
	pthread_mutex_unlock(&j->lock);
	/* Failures are reported through the log; what is committed stays in
	 * the log meanwhile, and a failed checkpoint is tried again later. */
	bool checkpointed = false;
	if (full || sync_due) {
		checkpointed = evfn__jstore_checkpoint(j->store, false) == 0;
		j->checkpoint_retry_at = checkpointed ? 0 : now + RETRY_NS;
	}
	if (housekeep_due)
		(void)evfn__jstore_housekeep(j->store, evfn__wall_ns());
	pthread_mutex_lock(&j->lock);
	if (checkpointed)
		j->stats.checkpoints++;
	j->stats.rows_written = evfn__jstore_rows(j->store);
}

/* Whether the writer should take the producers' buffer now; otherwise
 * *until is when to look again. */
static bool
batch_due(struct evfn__journal *j, int64_t now, int64_t *until)
{
	const struct evfn__jpending *p = j->cur;
	*until = j->housekeep_at;
	if (j->sync_at)
		*until = EVFN__MIN(*until, j->sync_at);
	if (j->retry.n) {
		if (j->stopping ? !j->final_try : now >= j->retry_at)
			return true;
		*until = EVFN__MIN(*until, j->retry_at);
	}
	if (p->n == 0)
		return false;
	/* Only a waiting caller (a durable append, a sync) forces a commit:
	 * what nobody waits for (an attempt's start, a retry, an end) rides
	 * with the next one, or goes at the flush interval, in either mode. */
	if (p->waiters || j->stopping || p->n >= j->o.max_pending / 2)
		return true;
	int64_t flush_at = p->first_ns + j->o.flush_ns;
	if (now >= flush_at)
		return true;
	*until = EVFN__MIN(*until, flush_at);
	return false;
}

static void *
writer_main(void *arg)
{
	struct evfn__journal *j = arg;
	pthread_mutex_lock(&j->lock);
	for (;;) {
		int64_t now = evfn__now_ns(), until;
		/* Before the next batch: under a load that always has one
		 * ready, checkpoints must still happen. */
		if (maintenance_due(j, now) && !j->stopping) {
			maintain(j, now);
			continue;
		}
		if (batch_due(j, now, &until)) {
			struct evfn__jpending *batch = j->cur;
			j->cur = batch == &j->bufs[0] ? &j->bufs[1] : &j->bufs[0];
			j->stats.appends += batch->appends;
			j->stats.appends_cancelled += batch->cancelled;
			/* Appends waiting for room may go on. */
			if (batch->n >= j->o.max_pending)
				pthread_cond_broadcast(&j->done);
			if (j->stopping)
				j->final_try = true;
			process_batch(j, batch);
			continue;
		}
		/* Stopping: done once the buffer is empty and what failed
		 * before was tried once more. */
		if (j->stopping && j->cur->n == 0 &&
		    (j->retry.n == 0 || j->final_try))
			break;
		if (j->checkpoint_retry_at)
			until = EVFN__MIN(until, j->checkpoint_retry_at);
		j->writer_idle = true;
		struct timespec ts = {.tv_sec = until / EVFN__NS_PER_SEC,
		                      .tv_nsec = until % EVFN__NS_PER_SEC};
		pthread_cond_timedwait(&j->wake, &j->lock, &ts);
		j->writer_idle = false;
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

int
evfn__journal_start(struct evfn__journal *j)
{
	if (!j)
		return EVFN_EINVAL;
	pthread_mutex_lock(&j->lock);
	int rc = 0;
	if (j->started || j->stopping) {
		rc = j->started ? EVFN_EALREADY : EVFN_ESHUTDOWN;
	} else {
		j->housekeep_at = evfn__now_ns() + HOUSEKEEP_NS;
		if (pthread_create(&j->writer, NULL, writer_main, j) != 0)
			rc = EVFN_ENOMEM;
		else
			j->started = true;
	}
	pthread_mutex_unlock(&j->lock);
	return rc;
}

/* Wakes the writer, if it sleeps, for what was just buffered: at once for
 * a waiter; otherwise only when the buffer was empty (its flush deadline
 * starts now) or has filled. Lock held. */
static void
wake_writer(struct evfn__journal *j, size_t n_before, bool waiting)
{
	if (!j->writer_idle)
		return;
	if (waiting || n_before == 0 || j->cur->n >= j->o.max_pending / 2)
		pthread_cond_signal(&j->wake);
}

/* Common refusals of the calls that buffer; lock held. */
static int
buffer_refusal(struct evfn__journal *j)
{
	return j->stopping ? EVFN_ESHUTDOWN : 0;
}

/* Waits for a batch's commit; lock held. */
static int
wait_for(struct evfn__journal *j, struct evfn__jwaiter *w)
{
	while (!w->done)
		pthread_cond_wait(&j->done, &j->lock);
	return w->rc;
}

/* Whether the entries name events and functions this journal knows;
 * lock held. */
static bool
entries_valid(const struct evfn__journal *j,
              const struct evfn__journal_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!e[i].seq || !e[i].ev || !e[i].fns || !e[i].n_fns)
			return false;
		for (size_t f = 0; f < e[i].n_fns; f++)
			if (e[i].fns[f] == 0 || e[i].fns[f] > j->n_ids)
				return false;
	}
	return true;
}

/* Buffers one invocation's append; lock held. */
static int
push_append(struct evfn__journal *j, const struct evfn__journal_entry *e,
            uint32_t fn, struct evfn__jwaiter *w)
{
	static const struct evfn__journal_state waiting;
	const struct evfn__journal_state *st = e->st ? e->st : &waiting;
	struct evfn__jop op = {.seq = e->seq, .fn = fn,
	                       .kind = EVFN__JOP_APPEND, .st = *st,
	                       .fanout = e->n_fns > 1, .waiter = w};
	op.st.last_error = NULL;
	if (st->last_error && !(op.text = evfn__strdup(st->last_error)))
		return EVFN_ENOMEM;
	op.ev = evfn_event_ref(e->ev);
	int rc = evfn__jpending_push(j->cur, &op);
	if (rc < 0) {
		evfn__free(op.text);
		evfn_event_unref(op.ev); /* the caller holds another */
	}
	return rc;
}

int
evfn__journal_append_many(struct evfn__journal *j,
                          const struct evfn__journal_entry *entries, size_t n)
{
	if (!j || !entries || n == 0)
		return EVFN_EINVAL;
	bool durable = j->o.mode == EVFN__JOURNAL_DURABLE;
	struct evfn__jwaiter w = {0};
	pthread_mutex_lock(&j->lock);
	int rc = buffer_refusal(j);
	if (rc == 0 && !entries_valid(j, entries, n))
		rc = EVFN_EINVAL;
	if (rc == 0 && durable && !j->started)
		rc = EVFN_ENOTRUNNING;
	/* Fast mode: refused while what failed waits for its retry (the
	 * disk is full), so that the backlog cannot grow; accepted again
	 * once a commit succeeds, or when nothing waits (a failed
	 * checkpoint loses nothing). */
	if (rc == 0 && !durable && j->retry_n)
		rc = j->error;
	/* Fast mode: the writer fell behind the disk by max_pending. */
	while (rc == 0 && j->cur->n >= j->o.max_pending) {
		wake_writer(j, 1, true);
		pthread_cond_wait(&j->done, &j->lock);
		rc = buffer_refusal(j);
	}
	size_t n_before = j->cur->n;
	for (size_t i = 0; rc == 0 && i < n; i++)
		for (size_t f = 0; rc == 0 && f < entries[i].n_fns; f++)
			rc = push_append(j, &entries[i], entries[i].fns[f],
			                 durable ? &w : NULL);
	if (rc < 0) {
		/* Take back what this call buffered: all or nothing. */
		evfn__jpending_truncate(j->cur, n_before);
	} else {
		wake_writer(j, n_before, durable);
		if (durable)
			rc = wait_for(j, &w);
	}
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int
evfn__journal_append(struct evfn__journal *j, uint64_t seq,
                     const evfn_event *ev, const uint32_t *fns, size_t n,
                     const struct evfn__journal_state *st)
{
	struct evfn__journal_entry e = {seq, ev, fns, n, st};
	return evfn__journal_append_many(j, &e, 1);
}

int
evfn__journal_update(struct evfn__journal *j, uint64_t seq, uint32_t fn,
                     const struct evfn__journal_state *st)
{
	if (!j || !st || seq == 0 || fn == 0)
		return EVFN_EINVAL;
	pthread_mutex_lock(&j->lock);
	size_t n_before = j->cur->n;
	int rc = buffer_refusal(j);
	if (rc == 0)
		rc = evfn__jpending_update(j->cur, seq, fn, st);
	if (rc == 0)
		wake_writer(j, n_before, false);
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int
evfn__journal_end(struct evfn__journal *j, uint64_t seq, uint32_t fn,
                  enum evfn__journal_end how)
{
	if (!j || seq == 0 || fn == 0 || how < EVFN__JEND_SUCCEEDED ||
	    how > EVFN__JEND_DISCARDED)
		return EVFN_EINVAL;
	struct evfn__jdrop drop = {0};
	pthread_mutex_lock(&j->lock);
	size_t n_before = j->cur->n;
	int rc = buffer_refusal(j);
	if (rc == 0)
		rc = evfn__jpending_end(j->cur, seq, fn, how, &drop);
	if (rc == 0)
		wake_writer(j, n_before, false);
	pthread_mutex_unlock(&j->lock);
	evfn__jdrop_release(&drop);
	return rc;
}

int
evfn__journal_dead_letter(struct evfn__journal *j, uint64_t seq, uint32_t fn,
                          const struct evfn__journal_dead_letter *dl)
{
	if (!j || !dl || !dl->ev || dl->id == 0 || fn == 0)
		return EVFN_EINVAL;
	struct evfn__jop op = {
		.seq = seq,
		.id = dl->id,
		.fn = fn,
		.kind = EVFN__JOP_DEAD_LETTER,
		.st = {.attempts = dl->attempts,
		       .last_code = dl->code,
		       .first_attempt_ns = dl->first_attempt_ns,
		       .last_attempt_ns = dl->last_attempt_ns},
	};
	if (dl->error && !(op.text = evfn__strdup(dl->error)))
		return EVFN_ENOMEM;
	op.ev = evfn_event_ref(dl->ev);
	struct evfn__jdrop drop = {0};
	pthread_mutex_lock(&j->lock);
	size_t n_before = j->cur->n;
	int rc = buffer_refusal(j);
	if (rc == 0)
		rc = seq ? evfn__jpending_supersede(j->cur, &op, &drop)
		         : evfn__jpending_push(j->cur, &op);
	if (rc == 0)
		wake_writer(j, n_before, false);
	pthread_mutex_unlock(&j->lock);
	if (rc < 0) {
		evfn__free(op.text);
		evfn_event_unref(op.ev);
	}
	evfn__jdrop_release(&drop);
	return rc;
}

/* Buffers an operation that names no invocation. */
static int
buffer_plain(struct evfn__journal *j, struct evfn__jop *op)
{
	pthread_mutex_lock(&j->lock);
	size_t n_before = j->cur->n;
	int rc = buffer_refusal(j);
	if (rc == 0)
		rc = evfn__jpending_push(j->cur, op);
	if (rc == 0)
		wake_writer(j, n_before, false);
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int
evfn__journal_dead_letter_delete(struct evfn__journal *j, uint64_t id)
{
	if (!j || id == 0)
		return EVFN_EINVAL;
	struct evfn__jop op = {.id = id, .kind = EVFN__JOP_DEAD_LETTER_DELETE};
	return buffer_plain(j, &op);
}

int
evfn__journal_dead_letter_purge(struct evfn__journal *j)
{
	if (!j)
		return EVFN_EINVAL;
	struct evfn__jop op = {.kind = EVFN__JOP_DEAD_LETTER_PURGE};
	return buffer_plain(j, &op);
}

int
evfn__journal_idempotency_put(struct evfn__journal *j, uint32_t fn,
                              const char *key, const void *resp,
                              size_t resp_len, int64_t expires_ns)
{
	if (!j || fn == 0 || !key || !*key || (!resp && resp_len))
		return EVFN_EINVAL;
	struct evfn__jop op = {.fn = fn, .id = (uint64_t)expires_ns,
	                       .kind = EVFN__JOP_IDEMPOTENCY,
	                       .text = evfn__strdup(key),
	                       .blob_len = resp_len};
	if (resp_len && (op.blob = evfn__malloc(resp_len)))
		memcpy(op.blob, resp, resp_len);
	int rc = op.text && (op.blob || !resp_len) ? buffer_plain(j, &op)
	                                            : EVFN_ENOMEM;
	if (rc < 0) {
		evfn__free(op.text);
		evfn__free(op.blob);
	}
	return rc;
}

/* Buffers a SYNC operation and waits for its commit. */
static int
sync_with(struct evfn__journal *j, uint64_t how)
{
	if (!j)
		return EVFN_EINVAL;
	struct evfn__jwaiter w = {0};
	struct evfn__jop op = {.id = how, .kind = EVFN__JOP_SYNC, .waiter = &w};
	pthread_mutex_lock(&j->lock);
	int rc = buffer_refusal(j);
	if (rc == 0 && !j->started)
		rc = EVFN_ENOTRUNNING;
	if (rc == 0)
		rc = evfn__jpending_push(j->cur, &op);
	if (rc == 0) {
		wake_writer(j, 0, true);
		rc = wait_for(j, &w);
	}
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int
evfn__journal_sync(struct evfn__journal *j)
{
	return sync_with(j, 0);
}

int
evfn__journal_checkpoint(struct evfn__journal *j)
{
	return sync_with(j, SYNC_TRUNCATE);
}

void
evfn__journal_stats_get(struct evfn__journal *j,
                        struct evfn__journal_stats *out)
{
	pthread_mutex_lock(&j->lock);
	*out = j->stats;
	out->pending = j->cur->n + j->retry_n;
	/* What the producers' buffer counted so far. */
	out->appends += j->cur->appends;
	out->appends_cancelled += j->cur->cancelled;
	pthread_mutex_unlock(&j->lock);
}

void
evfn__journal_commit_delays(struct evfn__journal *j, uint64_t *counts)
{
	uint64_t sum;
	memset(counts, 0, EVFN__HIST_BUCKETS * sizeof(*counts));
	evfn__hist_merge(counts, &sum, &j->delays);
}

int
evfn__journal_close(struct evfn__journal *j)
{
	if (!j)
		return 0;
	pthread_mutex_lock(&j->lock);
	j->stopping = true;
	bool started = j->started;
	pthread_cond_signal(&j->wake);
	pthread_cond_broadcast(&j->done);
	if (!started && j->store && (j->cur->n || j->retry.n)) {
		/* Never started: what was buffered (function names) is
		 * committed here. */
		struct evfn__jpending *batch = j->cur;
		j->cur = &j->bufs[1];
		process_batch(j, batch);
	}
	pthread_mutex_unlock(&j->lock);
	if (started)
		pthread_join(j->writer, NULL);
	int rc = j->error;
	if (j->retry.n && j->o.log_cb)
		j->o.log_cb(rc, "journal: closed with operations it could not "
		                "commit: they are not journaled",
		            j->o.log_arg);
	if (rc == 0 && j->store)
		rc = evfn__jstore_checkpoint(j->store, true);
	evfn__jstore_close(j->store);
	evfn__jpending_free(&j->bufs[0]);
	evfn__jpending_free(&j->bufs[1]);
	evfn__jpending_free(&j->retry);
	names_free(j);
	pthread_cond_destroy(&j->done);
	pthread_cond_destroy(&j->wake);
	pthread_mutex_destroy(&j->lock);
	evfn__free(j->vfs);
	evfn__free(j);
	return rc;
}
