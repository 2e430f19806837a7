/*
 * libFuzzer harness: the whole generated C core (kws_features + the native model + kws_recognizer
 * + kws_app) on arbitrary int16 audio in arbitrary block sizes.
 *
 * Input: byte 0 = number of block sizes (bits 0-2, plus one) and mode (bit 3), then that many
 * uint16 LE block sizes (mod 1200, zero allowed), then int16 LE audio. The audio goes through
 * kws_app_feed A) in the given block sizes, cycled; then, by the mode bit, either
 *   B) kws_app_feed in one call: A and B must report the same decisions (logits, times) and
 *      detections (label, score, time), as kws_app.h promises for any split, or
 *   C) the producer/consumer API: the same blocks through kws_app_write_audio with a
 *      kws_app_process only after every other block, so the ring overruns; accepted + dropped
 *      samples must add up.
 * Labels, scores and counters are checked for range on every callback.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws_app.h"

#define MAX_SAMPLES 8192
#define MAX_EVENTS 512
#define MAX_SIZES 8

typedef struct {
    uint32_t decisions, detections;
    int8_t logits[MAX_EVENTS][KWS_MODEL_LABELS];
    uint32_t decision_ms[MAX_EVENTS];
    int label[MAX_EVENTS];
    uint16_t score[MAX_EVENTS];
    uint32_t detection_ms[MAX_EVENTS];
} record_t;

static kws_app_t app;
static int16_t audio[MAX_SAMPLES];
static record_t rec_a, rec_b, rec_c;

static void on_decision(void *user, const int8_t *logits, uint32_t t_ms)
{
    record_t *r = (record_t *)user;
    if (r->decisions < MAX_EVENTS) {
        memcpy(r->logits[r->decisions], logits, KWS_MODEL_LABELS);
        r->decision_ms[r->decisions] = t_ms;
    }
    r->decisions++;
}

static void on_detection(void *user, int label, uint16_t score_q15, uint32_t t_ms)
{
    record_t *r = (record_t *)user;
    if (label < 0 || label >= (int)KWS_RECOGNIZER_LABELS || kws_labels[label][0] == '_' ||
        score_q15 < KWS_RECOGNIZER_THRESHOLD_Q15 || score_q15 > 32768u) {
        abort();
    }
    if (r->detections < MAX_EVENTS) {
        r->label[r->detections] = label;
        r->score[r->detections] = score_q15;
        r->detection_ms[r->detections] = t_ms;
    }
    r->detections++;
}

static void start(record_t *r)
{
    memset(r, 0, sizeof *r);
    kws_app_init(&app);
    kws_app_set_decision_hook(&app, on_decision, r);
}

static void finish(const record_t *r)
{
    if (app.decisions != r->decisions || app.detections != r->detections ||
        app.detections > app.decisions || app.write_pos - app.read_pos >= KWS_FEAT_HOP_SAMPLES) {
        abort();
    }
}

static int same(const record_t *x, const record_t *y)
{
    uint32_t d = x->decisions < MAX_EVENTS ? x->decisions : MAX_EVENTS;
    uint32_t e = x->detections < MAX_EVENTS ? x->detections : MAX_EVENTS;
    return x->decisions == y->decisions && x->detections == y->detections &&
           memcmp(x->logits, y->logits, d * KWS_MODEL_LABELS) == 0 &&
           memcmp(x->decision_ms, y->decision_ms, d * sizeof(uint32_t)) == 0 &&
           memcmp(x->label, y->label, e * sizeof(int)) == 0 &&
           memcmp(x->score, y->score, e * sizeof(uint16_t)) == 0 &&
           memcmp(x->detection_ms, y->detection_ms, e * sizeof(uint32_t)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t sizes[MAX_SIZES];
    size_t n_sizes, n, i, pos, k;
    size_t accepted = 0, any_size = 0;
    int overrun_mode;

    if (size < 1) {
        return 0;
    }
    n_sizes = (size_t)(data[0] & 7u) + 1u;
    overrun_mode = (data[0] & 8u) != 0u;
    if (size < 1u + 2u * n_sizes) {
        return 0;
    }
    for (i = 0; i < n_sizes; i++) {
        sizes[i] = (size_t)(data[1 + 2 * i] | (data[2 + 2 * i] << 8)) % 1200u;
    }
    data += 1u + 2u * n_sizes;
    size -= 1u + 2u * n_sizes;
    n = size / 2 > MAX_SAMPLES ? MAX_SAMPLES : size / 2;
    for (i = 0; i < n; i++) {
        audio[i] = (int16_t)(uint16_t)(data[2 * i] | (data[2 * i + 1] << 8));
    }

    /* A: the given block sizes (a zero-length feed is a no-op; all zero: A is skipped) */
    start(&rec_a);
    for (i = 0; i < n_sizes; i++) {
        any_size |= sizes[i];
    }
    for (pos = any_size ? 0u : n, k = 0; pos < n; k++) {
        size_t chunk = sizes[k % n_sizes];
        if (chunk > n - pos) {
            chunk = n - pos;
        }
        kws_app_feed(&app, audio + pos, chunk, on_detection, &rec_a);
        pos += chunk;
    }
    if (any_size && !overrun_mode) {
        finish(&rec_a);
        if (app.overruns != 0u || app.frames > n / KWS_FEAT_HOP_SAMPLES) {
            abort();
        }
        /* B: one call; same events */
        start(&rec_b);
        kws_app_feed(&app, audio, n, on_detection, &rec_b);
        finish(&rec_b);
        if (!same(&rec_a, &rec_b)) {
            abort();
        }
#ifdef FUZZ_VERBOSE
        fprintf(stderr, "samples %zu frames %u decisions %u detections %u\n", n, app.frames,
                rec_b.decisions, rec_b.detections);
#endif
    }

    if (!overrun_mode) {
        return 0;
    }
    /* C: producer and consumer, the consumer running only every other block (overruns) */
    start(&rec_c);
    for (pos = 0, k = 0; pos < n; k++) {
        size_t chunk = sizes[k % n_sizes] ? sizes[k % n_sizes] : 1u;
        if (chunk > n - pos) {
            chunk = n - pos;
        }
        accepted += kws_app_write_audio(&app, audio + pos, chunk);
        pos += chunk;
        if (k & 1u) {
            kws_app_process(&app, on_detection, &rec_c);
        }
    }
    kws_app_process(&app, on_detection, &rec_c);
    finish(&rec_c);
    if (accepted + app.overruns != n || app.write_pos != accepted ||
        app.frames > accepted / KWS_FEAT_HOP_SAMPLES) {
        abort();
    }
    return 0;
}
