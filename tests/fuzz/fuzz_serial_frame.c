/*
 * libFuzzer harness: the framed-PCM serial parser (kws_serial_frame.c) on arbitrary bytes.
 *
 * Byte by byte through kws_serial_frame_push. Checks: a completed frame has 1..MAX samples and
 * its CRC-16/CCITT-FALSE over the count and samples matches (recomputed here independently of
 * the parser's running CRC); frames + errors only grow; a frame that completes is exactly the
 * last 2 + 2 + 2*count + 2 bytes fed ("KW", count, samples, crc), and the parser's samples are
 * those bytes; the parser never indexes past its buffer (ASan would stop it).
 */
#include <stdint.h>
#include <stdlib.h>

#include "kws_serial_frame.h"

static uint16_t crc_of(const uint8_t *bytes, size_t n)
{
    uint16_t crc = 0xFFFFu;
    size_t i;
    for (i = 0; i < n; i++) {
        int bit;
        crc ^= (uint16_t)(bytes[i] << 8);
        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kws_serial_frame_t p;
    uint32_t frames = 0, errors = 0;
    size_t i;

    kws_serial_frame_init(&p);
    for (i = 0; i < size; i++) {
        int done = kws_serial_frame_push(&p, data[i]);
        if (p.frames < frames || p.errors < errors || p.received > KWS_SERIAL_FRAME_MAX) {
            abort();
        }
        if (done) {
            size_t count = p.count, frame_bytes = 6u + 2u * p.count, s;
            const uint8_t *start;
            if (done != 1 || count == 0u || count > KWS_SERIAL_FRAME_MAX ||
                p.frames != frames + 1u || i + 1u < frame_bytes) {
                abort();
            }
            start = data + i + 1u - frame_bytes;
            if (start[0] != 'K' || start[1] != 'W' ||
                (size_t)(start[2] | (start[3] << 8)) != count ||
                crc_of(start + 2, 2u + 2u * count) !=
                    (uint16_t)(data[i - 1] | (data[i] << 8))) {
                abort();
            }
            for (s = 0; s < count; s++) {
                if (p.samples[s] != (int16_t)(uint16_t)(start[4 + 2 * s] | (start[5 + 2 * s] << 8))) {
                    abort();
                }
            }
        } else if (p.frames != frames) {
            abort();
        }
        frames = p.frames;
        errors = p.errors;
    }
    if (kws_serial_crc16(0xFFFFu, 0x31u) != crc_of((const uint8_t *)"1", 1)) {
        abort();
    }
    return 0;
}
