/*
 * libFuzzer harness: the generated recognizer (kws_recognizer.c) on arbitrary logits and times.
 *
 * Input: a sequence of records, each 1 byte of time step (0..255 ms; 255 jumps by 2^31 so the
 * uint32 clock wraps) followed by KWS_RECOGNIZER_LABELS int8 logits. Every push must return -1
 * or a keyword label (not starting with '_') with a Q15 score in [threshold, 32768]; two
 * detections must be at least KWS_RECOGNIZER_SUPPRESSION_MS apart (unsigned difference, as the
 * header specifies); the window sums must equal the sums of the ring rows; a NULL score pointer
 * is accepted. A reset in the middle (time byte 254) must forget everything.
 */
#include <stdint.h>
#include <stdlib.h>

#include "kws_recognizer.h"

static void check_sums(const kws_recognizer_t *r)
{
    uint32_t label, row;
    if (r->count > KWS_RECOGNIZER_WINDOW || r->next >= KWS_RECOGNIZER_WINDOW) {
        abort();
    }
    for (label = 0; label < KWS_RECOGNIZER_LABELS; label++) {
        uint32_t sum = 0;
        for (row = 0; row < r->count; row++) {
            uint32_t index = (r->next + KWS_RECOGNIZER_WINDOW - 1u - row) % KWS_RECOGNIZER_WINDOW;
            sum += r->ring[index][label];
        }
        if (sum != r->sums[label]) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kws_recognizer_t r;
    const size_t record = 1u + KWS_RECOGNIZER_LABELS;
    uint32_t t = 0, last = 0;
    int have_last = 0;
    size_t i;

    kws_recognizer_reset(&r);
    for (i = 0; i + record <= size; i += record) {
        uint8_t step = data[i];
        uint16_t score = 0xFFFFu;
        int label;
        if (step == 254u) {
            kws_recognizer_reset(&r);
            if (r.count != 0u || r.has_detection != 0u) {
                abort();
            }
            have_last = 0;
            continue;
        }
        t += step == 255u ? 0x80000000u : step;
        label = kws_recognizer_push(&r, (const int8_t *)(data + i + 1), t,
                                    (i / record) % 3u == 2u ? NULL : &score);
        if (label >= 0) {
            if (label >= (int)KWS_RECOGNIZER_LABELS || kws_labels[label][0] == '_') {
                abort();
            }
            if ((i / record) % 3u != 2u &&
                (score < KWS_RECOGNIZER_THRESHOLD_Q15 || score > 32768u)) {
                abort();
            }
            if (have_last && (uint32_t)(t - last) < KWS_RECOGNIZER_SUPPRESSION_MS) {
                abort();
            }
            last = t;
            have_last = 1;
        } else if (label != -1 || score != 0xFFFFu) {
            abort();
        }
        check_sums(&r);
    }
    return 0;
}
