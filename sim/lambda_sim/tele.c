/* sim/lambda_sim/tele.c: Telemetry API subscribers, batching, freeze (see tele.h).
 * The only libcurl user in lambda-sim: it delivers batches to the extensions' listeners. */
#include "sim/lambda_sim/tele.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/str.h"
#include "sim/lambda_sim/util.h"

#define TELE_INIT_KEEP_MAX ((size_t)1024 * 1024)     /* init events kept for replay */
#define TELE_QUEUE_MAX     ((size_t)8 * 1024 * 1024) /* per subscriber, then events are dropped */
#define TELE_POST_TIMEOUT  2000L
#define TELE_RETRIES       3

struct tele_event {
    struct tele_event *next;
    unsigned category;
    size_t len;
    uint64_t queued_ns;
    char json[];
};

struct tele_sub {
    struct tele_sub *next;
    struct tele_hub *hub;
    char name[256];
    struct wire_subscription cfg;
    struct tele_event *head;
    struct tele_event *tail;
    unsigned items;
    size_t bytes;
    uint64_t dropped_records;
    uint64_t dropped_bytes;
    int in_flight;
    pthread_t thread;
};

struct tele_hub {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; broadcast on every change */
    int frozen;
    int in_init;
    int stopping;
    struct tele_event *kept; /* init events, oldest first */
    struct tele_event *kept_tail;
    size_t kept_bytes;
    struct tele_sub *subs;
};

static struct tele_event *event_new(unsigned category, const char *json, size_t len)
{
    struct tele_event *e = xmalloc(sizeof(*e) + len + 1);

    e->next = NULL;
    e->category = category;
    e->len = len;
    e->queued_ns = clock_mono_ns();
    memcpy(e->json, json, len + 1);
    return e;
}

static void free_list(struct tele_event *e)
{
    while (e) {
        struct tele_event *n = e->next;

        free(e);
        e = n;
    }
}

/* hub->mu held. */
static void sub_push(struct tele_sub *s, unsigned category, const char *json, size_t len)
{
    struct tele_event *e;

    if (!(s->cfg.types & category)) {
        return;
    }
    if (s->bytes + len > TELE_QUEUE_MAX) {
        s->dropped_records++;
        s->dropped_bytes += len;
        return;
    }
    e = event_new(category, json, len);
    if (s->tail) {
        s->tail->next = e;
    } else {
        s->head = e;
    }
    s->tail = e;
    s->items++;
    s->bytes += len;
}

struct tele_hub *tele_hub_new(void)
{
    struct tele_hub *hub = xcalloc(1, sizeof(*hub));

    pthread_mutex_init(&hub->mu, NULL);
    clock_cond_init(&hub->cv);
    hub->in_init = 1;
    return hub;
}

/* hub->mu held. */
static void emit_locked(struct tele_hub *hub, unsigned category, const char *json)
{
    size_t len = strlen(json);
    struct tele_sub *s;

    if (hub->in_init && hub->kept_bytes + len <= TELE_INIT_KEEP_MAX) {
        struct tele_event *e = event_new(category, json, len);

        if (hub->kept_tail) {
            hub->kept_tail->next = e;
        } else {
            hub->kept = e;
        }
        hub->kept_tail = e;
        hub->kept_bytes += len;
    }
    for (s = hub->subs; s; s = s->next) {
        sub_push(s, category, json, len);
    }
}

void tele_hub_emit(struct tele_hub *hub, unsigned category, char *json, int freeze_after)
{
    pthread_mutex_lock(&hub->mu);
    emit_locked(hub, category, json);
    if (freeze_after) {
        hub->frozen = 1;
    }
    pthread_cond_broadcast(&hub->cv);
    pthread_mutex_unlock(&hub->mu);
    free(json);
}

/* NOLINTNEXTLINE(readability-non-const-parameter): libcurl's write callback type */
static size_t discard_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

/* One POST of body; 1 on a 2xx answer. */
static int post_batch(CURL *curl, const struct tele_sub *s, const char *body, size_t len)
{
    char url[400];
    char resolve[96];
    struct curl_slist *res = NULL;
    struct curl_slist *hdrs = NULL;
    long status = 0;
    CURLcode rc;

    if (sim_fmt(url, sizeof(url), "http://%s:%u%s", s->cfg.host, s->cfg.port, s->cfg.path) != 0 ||
        sim_fmt(resolve, sizeof(resolve), "%s:%u:127.0.0.1", s->cfg.host, s->cfg.port) != 0) {
        return 0; /* a destination too long to name cannot be reached: the batch is not taken */
    }
    res = curl_slist_append(res, resolve);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_RESOLVE, res);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 500L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, TELE_POST_TIMEOUT);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(res);
    curl_slist_free_all(hdrs);
    return rc == CURLE_OK && status >= 200 && status < 300;
}

/* hub->mu held.  Takes the head of the queue as one batch body. */
static char *take_batch(struct tele_sub *s, size_t *len_out, unsigned *count_out)
{
    struct buf b = BUF_INIT(0);
    unsigned n = 0;

    if (s->dropped_records) {
        char *ev = wire_ev_logs_dropped(clock_real_ms(), s->dropped_bytes, s->dropped_records,
                                        "Some logs were dropped because the downstream consumer "
                                        "is slower than the logs production rate");

        if (s->cfg.types & WIRE_T_PLATFORM) {
            buf_putc(&b, '[');
            buf_puts(&b, ev);
            n++;
        }
        free(ev);
        s->dropped_records = 0;
        s->dropped_bytes = 0;
    }
    while (s->head && n < s->cfg.max_items &&
           (n == 0 || b.len + s->head->len + 2 <= s->cfg.max_bytes)) {
        struct tele_event *e = s->head;

        buf_putc(&b, n == 0 ? '[' : ',');
        buf_append(&b, e->json, e->len);
        s->head = e->next;
        if (!s->head) {
            s->tail = NULL;
        }
        s->items--;
        s->bytes -= e->len;
        free(e);
        n++;
    }
    buf_putc(&b, n == 0 ? '[' : ']');
    if (n == 0) {
        buf_putc(&b, ']');
    }
    *count_out = n;
    return buf_detach(&b, len_out);
}

static void abs_deadline(struct timespec *ts, uint64_t mono_ns)
{
    ts->tv_sec = (time_t)(mono_ns / 1000000000u);
    ts->tv_nsec = (long)(mono_ns % 1000000000u);
}

static void *sub_main(void *arg)
{
    struct tele_sub *s = arg;
    struct tele_hub *hub = s->hub;
    CURL *curl = curl_easy_init();

    pthread_mutex_lock(&hub->mu);
    while (!hub->stopping) {
        uint64_t now = clock_mono_ns();
        uint64_t due;
        char *body;
        size_t len;
        unsigned count;
        int ok = 0;
        int attempt;

        if (hub->frozen || (!s->head && !s->dropped_records)) {
            pthread_cond_wait(&hub->cv, &hub->mu);
            continue;
        }
        due = s->head ? s->head->queued_ns + (uint64_t)s->cfg.timeout_ms * 1000000u : now;
        if (s->items < s->cfg.max_items && s->bytes < s->cfg.max_bytes && now < due) {
            struct timespec ts;

            abs_deadline(&ts, due);
            pthread_cond_timedwait(&hub->cv, &hub->mu, &ts);
            continue;
        }
        body = take_batch(s, &len, &count);
        if (count == 0) {
            free(body); /* only a drop notice, and this subscriber does not take platform */
            continue;
        }
        s->in_flight = 1;
        pthread_mutex_unlock(&hub->mu);
        for (attempt = 0; attempt < TELE_RETRIES && !ok; attempt++) {
            if (attempt) {
                struct timespec d = {0, 50000000L * attempt};

                nanosleep(&d, NULL);
            }
            ok = curl && post_batch(curl, s, body, len);
        }
        pthread_mutex_lock(&hub->mu);
        s->in_flight = 0;
        if (!ok) {
            LOG_WARN("lambda-sim", "telemetry: %s did not accept a batch of %u events; dropped",
                     s->name, count);
            s->dropped_records += count;
            s->dropped_bytes += len;
        }
        free(body);
        pthread_cond_broadcast(&hub->cv);
    }
    pthread_mutex_unlock(&hub->mu);
    curl_easy_cleanup(curl);
    return NULL;
}

void tele_hub_subscribe(struct tele_hub *hub, const char *name, const struct wire_subscription *sub)
{
    struct tele_sub *s;
    struct tele_event *e;
    char *ev;
    int fresh = 0;

    pthread_mutex_lock(&hub->mu);
    for (s = hub->subs; s; s = s->next) {
        if (strcmp(s->name, name) == 0) {
            break;
        }
    }
    if (!s) {
        s = xcalloc(1, sizeof(*s));
        s->hub = hub;
        str_copy_trunc(s->name, sizeof(s->name), name);
        fresh = 1;
    }
    s->cfg = *sub;
    if (fresh) {
        for (e = hub->kept; e; e = e->next) {
            sub_push(s, e->category, e->json, e->len);
        }
        s->next = hub->subs;
        hub->subs = s;
        if (pthread_create(&s->thread, NULL, sub_main, s) != 0) {
            abort(); /* out of resources */
        }
    }
    ev = wire_ev_subscription(clock_real_ms(), name, sub->types);
    emit_locked(hub, WIRE_T_PLATFORM, ev);
    free(ev);
    pthread_cond_broadcast(&hub->cv);
    pthread_mutex_unlock(&hub->mu);
}

void tele_hub_end_init(struct tele_hub *hub)
{
    pthread_mutex_lock(&hub->mu);
    hub->in_init = 0;
    free_list(hub->kept);
    hub->kept = NULL;
    hub->kept_tail = NULL;
    hub->kept_bytes = 0;
    pthread_mutex_unlock(&hub->mu);
}

void tele_hub_freeze(struct tele_hub *hub, int frozen)
{
    pthread_mutex_lock(&hub->mu);
    hub->frozen = frozen;
    pthread_cond_broadcast(&hub->cv);
    pthread_mutex_unlock(&hub->mu);
}

unsigned tele_hub_pending(struct tele_hub *hub)
{
    unsigned n = 0;
    struct tele_sub *s;

    pthread_mutex_lock(&hub->mu);
    for (s = hub->subs; s; s = s->next) {
        n += s->items + (unsigned)s->in_flight;
    }
    pthread_mutex_unlock(&hub->mu);
    return n;
}

void tele_hub_free(struct tele_hub *hub)
{
    struct tele_sub *s;

    if (!hub) {
        return;
    }
    pthread_mutex_lock(&hub->mu);
    hub->stopping = 1;
    pthread_cond_broadcast(&hub->cv);
    pthread_mutex_unlock(&hub->mu);
    for (s = hub->subs; s; s = s->next) {
        pthread_join(s->thread, NULL);
    }
    while (hub->subs) {
        s = hub->subs;
        hub->subs = s->next;
        free_list(s->head);
        free(s);
    }
    free_list(hub->kept);
    pthread_cond_destroy(&hub->cv);
    pthread_mutex_destroy(&hub->mu);
    free(hub);
}
