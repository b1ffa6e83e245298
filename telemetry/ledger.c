/* telemetry/ledger.c: per-invocation records (contract in ledger.h).
 *
 * Open records live in `open[]`, oldest first.  Every state change is a step run by run_step():
 * under the lock it changes the state and moves every complete record out of `open[]` into a
 * local list; the sink is called on that list after the lock is released, so the EMF writer's
 * write(2) never runs under the ledger's mutex.
 */
#include "telemetry/ledger.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/str.h"

struct slot {
    struct ledger_record rec;
    int local_closed; /* no more facts expected (they are still taken while open) */
    int invoked;      /* INVOKE seen for it, or it is the init record */
    size_t fetch_cap, upstream_cap, keys_cap;
};

struct ledger {
    pthread_mutex_t mu;
    struct ledger_config cfg;
    struct slot **open; /* oldest first */
    size_t nopen;
    struct slot *current; /* where facts without a known id go; NULL once emitted */
    int invoked_once;
    int shutdown;
    int telemetry_off;
    int no_invokes;     /* ledger_invokes_off(): records come from the Telemetry API alone */
    unsigned init_work; /* init work begun and not ended: the init record stays open */
    char recent[LEDGER_RECENT][TELEMETRY_ID_MAX]; /* ids of emitted records, ring */
    size_t recent_next;
    uint64_t last_ms; /* latest wall time seen (INVOKE, event): stands in for a missing one */
    struct ledger_stats stats;
};

/* Records taken out of the ledger, to be sunk and freed without the lock. */
struct done {
    struct slot **s;
    size_t n, cap;
};

static struct slot *slot_new(const char *request_id, uint64_t ts_ms)
{
    struct slot *s = xcalloc(1, sizeof(*s));

    if (request_id) {
        size_t n = strlen(request_id);

        memcpy(s->rec.request_id, request_id, n + 1);
    }
    s->rec.invoke_ms = ts_ms;
    return s;
}

static void slot_free(struct slot *s)
{
    if (!s) {
        return;
    }
    free(s->rec.fetch_ms);
    free(s->rec.upstream_ms);
    free(s->rec.keys);
    free(s);
}

/* An init record that saw nothing is not worth a line. */
static int slot_empty_init(const struct slot *s)
{
    return s->rec.is_init && s->rec.counts.requests == 0 && s->rec.counts.upstream_calls == 0;
}

static int slot_complete(const struct ledger *l, const struct slot *s)
{
    if (l->no_invokes && !s->rec.is_init && (s->rec.has & LEDGER_HAS_REPORT)) {
        return 1; /* no INVOKE will ever close it: the report marks the invocation's end */
    }
    if (!s->local_closed) {
        return 0;
    }
    if (s->rec.is_init) {
        return l->init_work == 0;
    }
    return l->telemetry_off || (s->rec.has & LEDGER_HAS_REPORT);
}

static void remember_emitted(struct ledger *l, const char *id)
{
    if (!id[0]) {
        return;
    }
    memcpy(l->recent[l->recent_next], id, strlen(id) + 1);
    l->recent_next = (l->recent_next + 1) % LEDGER_RECENT;
}

static int recently_emitted(const struct ledger *l, const char *id)
{
    for (size_t i = 0; i < LEDGER_RECENT; i++) {
        if (l->recent[i][0] && strcmp(l->recent[i], id) == 0) {
            return 1;
        }
    }
    return 0;
}

static void done_push(struct done *d, struct slot *s)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 4;
        d->s = xrealloc(d->s, d->cap * sizeof(struct slot *));
    }
    d->s[d->n++] = s;
}

/* Removes open[i] and queues it for the sink (or frees an empty init record). */
static void take(struct ledger *l, size_t i, struct done *d)
{
    struct slot *s = l->open[i];

    memmove(&l->open[i], &l->open[i + 1], (l->nopen - i - 1) * sizeof(struct slot *));
    l->nopen--;
    if (l->current == s) {
        l->current = NULL;
    }
    remember_emitted(l, s->rec.request_id);
    if (slot_empty_init(s)) {
        slot_free(s);
        return;
    }
    l->stats.emitted++;
    done_push(d, s);
}

static void take_complete(struct ledger *l, struct done *d)
{
    size_t i = 0;

    while (i < l->nopen) {
        if (slot_complete(l, l->open[i])) {
            take(l, i, d);
        } else {
            i++;
        }
    }
}

/* Called after the lock is released. */
static void sink_all(const struct ledger_config *cfg, struct done *d)
{
    for (size_t i = 0; i < d->n; i++) {
        if (cfg->sink) {
            cfg->sink(&d->s[i]->rec, cfg->sink_ctx);
        }
        slot_free(d->s[i]);
    }
    free(d->s);
    d->s = NULL;
    d->n = d->cap = 0;
}

/* A change of state, made under the lock; records it takes out go to d. */
typedef enum stash_err (*step_fn)(struct ledger *l, const void *arg, struct done *d);

/* Every public change goes through here: the step runs under the lock, every record it completed
 * is moved out, and they reach the sink after the lock is released.  Returns the step's result. */
static enum stash_err run_step(struct ledger *l, step_fn step, const void *arg)
{
    struct done d = {0};
    enum stash_err rc;

    pthread_mutex_lock(&l->mu);
    rc = step(l, arg, &d);
    take_complete(l, &d);
    pthread_mutex_unlock(&l->mu);
    sink_all(&l->cfg, &d);
    return rc;
}

static struct slot *find(const struct ledger *l, const char *id)
{
    for (size_t i = 0; i < l->nopen; i++) {
        if (!l->open[i]->rec.is_init && strcmp(l->open[i]->rec.request_id, id) == 0) {
            return l->open[i];
        }
    }
    return NULL;
}

/* Adds s as the newest open record, evicting the oldest (never the current one) to stay within
 * max_open.  Only this function adds, so nopen <= max_open on entry and one eviction makes room;
 * evicting before s is added also means s itself can never be the one evicted. */
static void add_open(struct ledger *l, struct slot *s, struct done *d)
{
    if (l->nopen >= l->cfg.max_open) {
        /* max_open >= 2, so when the oldest is the current record there is a second one. */
        size_t victim = l->open[0] == l->current ? 1 : 0;
        struct slot *v = l->open[victim];

        v->local_closed = 1;
        if (!(v->rec.has & LEDGER_HAS_REPORT) && !v->rec.is_init) {
            v->rec.evicted = 1;
            l->stats.evicted++;
        }
        take(l, victim, d);
    }
    l->open = xrealloc(l->open, (l->nopen + 1) * sizeof(struct slot *));
    l->open[l->nopen++] = s;
}

struct ledger *ledger_new(const struct ledger_config *cfg, uint64_t now_ms)
{
    struct ledger *l = xcalloc(1, sizeof(*l));
    struct slot *init;
    struct done d = {0};

    if (cfg) {
        l->cfg = *cfg;
    }
    if (l->cfg.max_open == 0) {
        l->cfg.max_open = LEDGER_OPEN_DEFAULT;
    }
    if (l->cfg.max_open < 2) {
        l->cfg.max_open = 2; /* the current record plus one awaiting its report */
    }
    pthread_mutex_init(&l->mu, NULL);
    l->last_ms = now_ms;
    init = slot_new(NULL, now_ms);
    init->rec.is_init = 1;
    init->invoked = 1;
    add_open(l, init, &d);
    l->current = init;
    return l;
}

void ledger_free(struct ledger *l)
{
    if (!l) {
        return;
    }
    for (size_t i = 0; i < l->nopen; i++) {
        slot_free(l->open[i]);
    }
    free(l->open);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* Closes the local half of the current record (and of the init record). */
static void close_local(struct ledger *l)
{
    for (size_t i = 0; i < l->nopen; i++) {
        if (l->open[i] == l->current || l->open[i]->rec.is_init) {
            l->open[i]->local_closed = 1;
        }
    }
}

struct invoke {
    const char *request_id;
    uint64_t deadline_ms, now_ms;
};

static enum stash_err step_invoke(struct ledger *l, const void *arg, struct done *d)
{
    const struct invoke *in = arg;
    struct slot *s;

    if (l->shutdown) {
        return STASH_ESTATE;
    }
    close_local(l); /* the previous invocation's, and the init record's at the first INVOKE */
    if (in->now_ms > l->last_ms) {
        l->last_ms = in->now_ms;
    }
    s = find(l, in->request_id);
    if (s && s->invoked) {
        /* The same INVOKE twice: keep the record as it is, make it current again. */
        s->local_closed = 0;
        l->current = s;
        return STASH_OK;
    }
    if (s) {
        /* Opened by an early platform event: adopt it. */
        s->rec.invoke_ms = in->now_ms;
    } else {
        s = slot_new(in->request_id, in->now_ms);
        add_open(l, s, d);
    }
    s->invoked = 1;
    s->rec.deadline_ms = in->deadline_ms;
    s->rec.cold_start = !l->invoked_once;
    l->invoked_once = 1;
    l->current = s;
    return STASH_OK;
}

enum stash_err ledger_on_invoke(struct ledger *l, const char *request_id, uint64_t deadline_ms,
                                uint64_t now_ms)
{
    struct invoke in = {request_id, deadline_ms, now_ms};
    size_t n;

    if (!request_id) {
        return STASH_EINVAL;
    }
    n = strlen(request_id);
    if (n == 0 || n >= TELEMETRY_ID_MAX) {
        return STASH_EINVAL;
    }
    return run_step(l, step_invoke, &in);
}

static void push_value(double **arr, size_t *n, size_t *cap, uint64_t *dropped, double v)
{
    if (!isfinite(v) || v < 0) {
        return;
    }
    if (*n >= LEDGER_LAT_MAX) {
        (*dropped)++;
        return;
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        if (*cap > LEDGER_LAT_MAX) {
            *cap = LEDGER_LAT_MAX;
        }
        *arr = xrealloc(*arr, *cap * sizeof(**arr));
    }
    (*arr)[(*n)++] = v;
}

static void count_facts(struct ledger_counts *c, const struct facts *f)
{
    unsigned recorded = f->ncalls_recorded < FACTS_MAX_CALLS ? f->ncalls_recorded : FACTS_MAX_CALLS;

    c->requests += f->outcome != FACTS_AHEAD;
    c->refreshes += f->refreshes;
    switch (f->outcome) {
    case FACTS_HIT:
        c->hits++;
        break;
    case FACTS_MISS:
        c->misses++;
        break;
    case FACTS_BYPASS:
        c->misses++;
        c->bypass++;
        break;
    case FACTS_STALE:
        c->stale++;
        break;
    case FACTS_WAITED:
        c->waits++;
        break;
    case FACTS_LOCAL:
    case FACTS_AHEAD:
        break;
    }
    c->upstream_calls += f->ncalls;
    if (f->service == FACTS_SVC_SECRETS_MANAGER) {
        c->sm_calls += f->ncalls;
    } else if (f->service == FACTS_SVC_SSM) {
        c->ssm_calls += f->ncalls;
    }
    for (unsigned i = 0; i < recorded; i++) {
        c->upstream_errors += f->calls[i].error ? 1 : 0;
        c->upstream_throttles += f->calls[i].throttled ? 1 : 0;
    }
}

static void count_key(struct slot *s, const struct facts *f)
{
    struct ledger_record *r = &s->rec;
    size_t n = strnlen(f->name, FACTS_NAME_MAX);
    struct ledger_key *k = NULL;

    if (f->service == FACTS_SVC_NONE) {
        return;
    }
    if (n == 0 || n >= FACTS_NAME_MAX || !str_printable(f->name, n)) {
        r->keys_dropped++;
        return;
    }
    for (size_t i = 0; i < r->nkeys; i++) {
        if (r->keys[i].service == f->service && strcmp(r->keys[i].name, f->name) == 0) {
            k = &r->keys[i];
            break;
        }
    }
    if (!k) {
        if (r->nkeys >= LEDGER_KEYS_MAX) {
            r->keys_dropped++;
            return;
        }
        if (r->nkeys == s->keys_cap) {
            s->keys_cap = s->keys_cap ? s->keys_cap * 2 : 4;
            r->keys = xrealloc(r->keys, s->keys_cap * sizeof(*r->keys));
        }
        k = &r->keys[r->nkeys++];
        memset(k, 0, sizeof(*k));
        k->service = f->service;
        memcpy(k->name, f->name, n + 1);
    }
    count_facts(&k->counts, f);
}

/* No-INVOKE mode: a record opened for an invocation counts as invoked (it takes facts by id),
 * and the environment's first one is its cold start. */
static void mark_invoked(struct ledger *l, struct slot *s)
{
    s->invoked = 1;
    s->rec.cold_start = !l->invoked_once;
    l->invoked_once = 1;
}

static struct slot *find_init(const struct ledger *l)
{
    for (size_t i = 0; i < l->nopen; i++) {
        if (l->open[i]->rec.is_init) {
            return l->open[i];
        }
    }
    return NULL;
}

/* The record facts go to: the init record for init work while it is open, else the open one
 * their request id names, else the current one (NULL once every record is out). */
static struct slot *facts_slot(struct ledger *l, const struct facts *f, struct done *d)
{
    struct slot *s = NULL;

    if (f->phase == FACTS_PHASE_INIT) {
        s = find_init(l);
        if (s) {
            return s;
        }
    }

    if (f->request_id[0] && strnlen(f->request_id, sizeof(f->request_id)) < sizeof(f->request_id)) {
        s = find(l, f->request_id);
        if (!s && l->no_invokes && !l->shutdown && !recently_emitted(l, f->request_id)) {
            /* No INVOKE names invocations here: the caller's id opens its record, which its
             * report completes. */
            s = slot_new(NULL, l->last_ms);
            str_copy_trunc(s->rec.request_id, sizeof(s->rec.request_id), f->request_id);
            mark_invoked(l, s);
            add_open(l, s, d); /* may evict a record, which d takes to the sink */
        }
    }
    return s ? s : l->current;
}

static enum stash_err step_facts(struct ledger *l, const void *arg, struct done *d)
{
    const struct facts *f = arg;
    unsigned recorded = f->ncalls_recorded < FACTS_MAX_CALLS ? f->ncalls_recorded : FACTS_MAX_CALLS;
    struct slot *s = facts_slot(l, f, d);

    if (!s) {
        l->stats.facts_after_shutdown++;
        return STASH_OK;
    }
    count_facts(&s->rec.counts, f);
    if (f->outcome != FACTS_LOCAL && f->outcome != FACTS_AHEAD) {
        push_value(&s->rec.fetch_ms, &s->rec.nfetch, &s->fetch_cap, &s->rec.fetch_dropped,
                   f->latency_ms);
    }
    for (unsigned i = 0; i < recorded; i++) {
        push_value(&s->rec.upstream_ms, &s->rec.nupstream, &s->upstream_cap,
                   &s->rec.upstream_dropped, f->calls[i].ms);
    }
    if (l->cfg.per_key) {
        count_key(s, f);
    }
    return STASH_OK;
}

void ledger_on_facts(struct ledger *l, const struct facts *f)
{
    if (f) {
        (void)run_step(l, step_facts, f);
    }
}

static enum stash_err step_init_work(struct ledger *l, const void *arg, struct done *d)
{
    const int *begin = arg;

    (void)d;
    if (*begin) {
        l->init_work++;
    } else if (l->init_work > 0) {
        l->init_work--; /* the last end lets take_complete() emit a closed init record */
    }
    return STASH_OK;
}

void ledger_init_work_begin(struct ledger *l)
{
    static const int begin = 1;

    (void)run_step(l, step_init_work, &begin);
}

void ledger_init_work_end(struct ledger *l)
{
    static const int end = 0;

    (void)run_step(l, step_init_work, &end);
}

static void apply_runtime_done(struct ledger_record *r, const struct telemetry_event *ev)
{
    const struct telemetry_span *sp;

    r->has |= LEDGER_HAS_RUNTIME_DONE;
    if (ev->has & TELEMETRY_HAS_DURATION) {
        r->runtime_duration_ms = ev->duration_ms;
        r->has |= LEDGER_HAS_RUNTIME_DURATION;
    }
    if (ev->has & TELEMETRY_HAS_PRODUCED_BYTES) {
        r->produced_bytes = ev->produced_bytes;
        r->has |= LEDGER_HAS_PRODUCED_BYTES;
    }
    sp = telemetry_event_span(ev, "responseLatency");
    if (sp) {
        r->response_latency_ms = sp->duration_ms;
        r->has |= LEDGER_HAS_RESPONSE_LATENCY;
    }
    sp = telemetry_event_span(ev, "responseDuration");
    if (sp) {
        r->response_duration_ms = sp->duration_ms;
        r->has |= LEDGER_HAS_RESPONSE_DURATION;
    }
    sp = telemetry_event_span(ev, "runtimeOverhead");
    if (sp) {
        r->runtime_overhead_ms = sp->duration_ms;
        r->has |= LEDGER_HAS_RUNTIME_OVERHEAD;
    }
    if (!(r->has & LEDGER_HAS_REPORT) && ev->status != TELEMETRY_STATUS_NONE) {
        r->status = ev->status;
    }
}

/* Copies one metric when the event carried it. */
static void take_metric(struct ledger_record *r, unsigned ev_has, unsigned ev_bit, double v,
                        unsigned rec_bit, double *dst)
{
    if (ev_has & ev_bit) {
        *dst = v;
        r->has |= rec_bit;
    }
}

static void apply_report(struct ledger_record *r, const struct telemetry_event *ev)
{
    const struct telemetry_span *sp;

    r->has |= LEDGER_HAS_REPORT;
    take_metric(r, ev->has, TELEMETRY_HAS_DURATION, ev->duration_ms, LEDGER_HAS_DURATION,
                &r->duration_ms);
    take_metric(r, ev->has, TELEMETRY_HAS_BILLED, ev->billed_duration_ms, LEDGER_HAS_BILLED,
                &r->billed_duration_ms);
    take_metric(r, ev->has, TELEMETRY_HAS_INIT_DURATION, ev->init_duration_ms,
                LEDGER_HAS_INIT_DURATION, &r->init_duration_ms);
    take_metric(r, ev->has, TELEMETRY_HAS_RESTORE_DURATION, ev->restore_duration_ms,
                LEDGER_HAS_RESTORE_DURATION, &r->restore_duration_ms);
    take_metric(r, ev->has, TELEMETRY_HAS_MAX_MEMORY, ev->max_memory_used_mb, LEDGER_HAS_MAX_MEMORY,
                &r->max_memory_used_mb);
    take_metric(r, ev->has, TELEMETRY_HAS_MEMORY_SIZE, ev->memory_size_mb, LEDGER_HAS_MEMORY_SIZE,
                &r->memory_size_mb);
    sp = telemetry_event_span(ev, "extensionOverhead");
    if (sp) {
        r->extension_overhead_ms = sp->duration_ms;
        r->has |= LEDGER_HAS_EXT_OVERHEAD;
    }
    r->status = ev->status;
}

/* Applies one event; the caller holds the lock and collects completions afterwards. */
static void on_event_locked(struct ledger *l, const struct telemetry_event *ev, struct done *d)
{
    struct slot *s;

    if (ev->type != TELEMETRY_RUNTIME_DONE && ev->type != TELEMETRY_REPORT) {
        return;
    }
    if (!ev->request_id[0]) {
        return;
    }
    if (ev->time_ms > l->last_ms) {
        l->last_ms = ev->time_ms;
    }
    s = find(l, ev->request_id);
    if (!s) {
        if (recently_emitted(l, ev->request_id)) {
            l->stats.late_events++;
            return;
        }
        /* The listener beat the main thread to this INVOKE (or, with no INVOKE at all, this
         * is how the invocation becomes known): open the record now. */
        s = slot_new(NULL, ev->time_ms ? ev->time_ms : l->last_ms);
        str_copy_trunc(s->rec.request_id, sizeof(s->rec.request_id), ev->request_id);
        if (l->no_invokes) {
            mark_invoked(l, s);
        }
        add_open(l, s, d);
    }
    if (ev->tenant_id[0]) {
        str_copy_trunc(s->rec.tenant_id, sizeof(s->rec.tenant_id), ev->tenant_id);
    }
    if (ev->type == TELEMETRY_RUNTIME_DONE) {
        apply_runtime_done(&s->rec, ev);
    } else {
        apply_report(&s->rec, ev);
    }
}

static enum stash_err step_event(struct ledger *l, const void *arg, struct done *d)
{
    on_event_locked(l, arg, d);
    return STASH_OK;
}

void ledger_on_event(struct ledger *l, const struct telemetry_event *ev)
{
    if (ev) {
        (void)run_step(l, step_event, ev);
    }
}

static enum stash_err step_batch(struct ledger *l, const void *arg, struct done *d)
{
    const struct telemetry_batch *b = arg;

    for (size_t i = 0; i < b->n; i++) {
        on_event_locked(l, &b->events[i], d);
    }
    return STASH_OK;
}

void ledger_on_batch(struct ledger *l, const struct telemetry_batch *b)
{
    if (b) {
        (void)run_step(l, step_batch, b);
    }
}

static enum stash_err step_telemetry_off(struct ledger *l, const void *arg, struct done *d)
{
    (void)arg;
    (void)d;
    l->telemetry_off = 1;
    return STASH_OK;
}

void ledger_telemetry_off(struct ledger *l)
{
    (void)run_step(l, step_telemetry_off, NULL);
}

static enum stash_err step_invokes_off(struct ledger *l, const void *arg, struct done *d)
{
    (void)arg;
    (void)d;
    l->no_invokes = 1;
    return STASH_OK;
}

void ledger_invokes_off(struct ledger *l)
{
    (void)run_step(l, step_invokes_off, NULL);
}

static enum stash_err step_shutdown(struct ledger *l, const void *arg, struct done *d)
{
    (void)arg;
    (void)d;
    l->shutdown = 1;
    close_local(l);
    return STASH_OK;
}

void ledger_on_shutdown(struct ledger *l)
{
    (void)run_step(l, step_shutdown, NULL);
}

static enum stash_err step_flush(struct ledger *l, const void *arg, struct done *d)
{
    (void)arg;
    while (l->nopen > 0) {
        l->open[0]->local_closed = 1;
        take(l, 0, d);
    }
    return STASH_OK;
}

void ledger_flush(struct ledger *l)
{
    (void)run_step(l, step_flush, NULL);
}

void ledger_stats(struct ledger *l, struct ledger_stats *out)
{
    pthread_mutex_lock(&l->mu);
    *out = l->stats;
    out->open = l->nopen;
    out->awaiting_report = 0;
    for (size_t i = 0; i < l->nopen; i++) {
        const struct slot *s = l->open[i];

        /* Without INVOKE no local half ever closes: every open invocation still owes its
         * report. */
        if ((s->local_closed || l->no_invokes) && !s->rec.is_init &&
            !(s->rec.has & LEDGER_HAS_REPORT)) {
            out->awaiting_report++;
        }
    }
    pthread_mutex_unlock(&l->mu);
}
