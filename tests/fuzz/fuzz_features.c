/*
 * libFuzzer harness: the generated log-mel front end (kws_features.c) on arbitrary int16 audio.
 *
 * Input: byte 0 picks a chunking seed and an output-buffer size, byte 1 the int8 quantization
 * (scale, zero point); the rest is int16 LE audio, fed in chunks of pseudo-random length (0 to
 * a few windows, including empty ones) through kws_features_feed, with too small a frame buffer
 * now and then (dropped-frame path). The same audio then goes through kws_features_push_hop
 * hop by hop on a second state, and both must give the same frames. Every log-mel value must be
 * finite and at least log(floor); quantize runs on each frame.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kws_features.h"

#define MAX_SAMPLES 8192
#define MAX_FRAMES (MAX_SAMPLES / KWS_FEAT_HOP_SAMPLES + 2)

static int16_t audio[MAX_SAMPLES];
static float frames[MAX_FRAMES * KWS_FEAT_MEL_BANDS];
static float hop_frames[MAX_FRAMES * KWS_FEAT_MEL_BANDS];

static void check_frame(const float *log_mel, float scale, int32_t zero_point)
{
    int8_t q[KWS_FEAT_MEL_BANDS];
    int band;
    for (band = 0; band < KWS_FEAT_MEL_BANDS; band++) {
        /* log(1e-8) = -18.42; float32 energies of int16 audio stay far below 1e30 */
        if (!isfinite(log_mel[band]) || log_mel[band] < -18.5f || log_mel[band] > 80.0f) {
            abort();
        }
    }
    kws_features_quantize(log_mel, scale, zero_point, q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kws_features_t state, hop_state;
    size_t n, pos, got = 0, hop_made = 0, i;
    uint32_t rng;
    float scale;
    int32_t zero_point;
    uint32_t hops;

    if (size < 2) {
        return 0;
    }
    rng = 0x9E3779B9u ^ data[0];
    scale = 0.01f + (float)(data[1] & 0x3Fu) * 0.05f;
    zero_point = (int32_t)(int8_t)data[1];
    data += 2;
    size -= 2;
    n = size / 2 > MAX_SAMPLES ? MAX_SAMPLES : size / 2;
    for (i = 0; i < n; i++) {
        audio[i] = (int16_t)(uint16_t)(data[2 * i] | (data[2 * i + 1] << 8));
    }

    kws_features_reset(&state);
    for (pos = 0; pos < n;) {
        size_t chunk, room, made;
        rng = rng * 1664525u + 1013904223u;
        chunk = (rng >> 8) % (2u * KWS_FEAT_WINDOW_SAMPLES + 1u);
        if (chunk > n - pos) {
            chunk = n - pos;
        }
        /* one time in eight: room for fewer frames than may complete (possibly none) */
        room = ((rng >> 28) & 7u) == 0u ? (rng >> 4) % 2u : MAX_FRAMES - got;
        if (room > MAX_FRAMES - got) {
            room = MAX_FRAMES - got;
        }
        made = kws_features_feed(&state, audio + pos, chunk, frames + got * KWS_FEAT_MEL_BANDS,
                                 room);
        if (made > room) {
            abort();
        }
        got += made;
        pos += chunk;
    }
    for (i = 0; i < got; i++) {
        check_frame(frames + i * KWS_FEAT_MEL_BANDS, scale, zero_point);
    }
    if (state.fill > KWS_FEAT_WINDOW_SAMPLES) {
        abort();
    }

    /* hop by hop on whole hops: same frame count as feed would give without drops */
    kws_features_reset(&hop_state);
    hops = (uint32_t)(n / KWS_FEAT_HOP_SAMPLES);
    {
        size_t made = 0;
        for (i = 0; i < hops; i++) {
            if (kws_features_push_hop(&hop_state, audio + i * KWS_FEAT_HOP_SAMPLES,
                                      hop_frames + made * KWS_FEAT_MEL_BANDS)) {
                check_frame(hop_frames + made * KWS_FEAT_MEL_BANDS, scale, zero_point);
                made++;
            }
        }
        hop_made = made;
    }
    /* without drops, feed in any chunking gives the frames push_hop gives */
    if (state.dropped_frames == 0u) {
        size_t common = got < hop_made ? got : hop_made;
        if (memcmp(frames, hop_frames, common * KWS_FEAT_MEL_BANDS * sizeof(float)) != 0) {
            abort();
        }
    }
    return 0;
}
