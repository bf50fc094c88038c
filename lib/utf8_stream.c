/* utf8_stream.c - streaming detokenizer: token bytes in, only complete UTF-8 characters out.
 * An incomplete sequence at the end of a push is held back (at most 3 bytes) until the next push
 * completes it; a maximal ill-formed subpart (Unicode 3.9, "U+FFFD substitution of maximal
 * subparts") becomes one U+FFFD. So the host never sees invalid UTF-8, and a character cut across
 * two tokens comes out whole, once. */
#include <string.h>

#include "tokenizer.h"

/* Classifies s[0..n) (n >= 1): > 0 = length of a complete valid character; 0 = a valid but
 * incomplete prefix (needs more bytes); < 0 = -(length of the maximal ill-formed subpart). */
static int utf8_stream_check(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return -1;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return 0;
        unsigned b = s[i];
        unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) return -i;
    }
    return len;
}

static size_t utf8_stream_fffd(char *out) {
    memcpy(out, "\xEF\xBF\xBD", 3);
    return 3;
}

size_t utf8_stream_push(utf8_stream *s, const char *bytes, size_t len, char *out) {
    const unsigned char *in = (const unsigned char *)bytes;
    size_t i = 0, o = 0;
    /* first finish what was held back, feeding input bytes one at a time */
    while (s->n_pending > 0) {
        int r = utf8_stream_check(s->pending, s->n_pending);
        if (r == 0) {
            if (i == len) return o;
            s->pending[s->n_pending++] = in[i++];
            continue;
        }
        size_t k = r > 0 ? (size_t)r : (size_t)-r;
        if (r > 0) { memcpy(out + o, s->pending, k); o += k; }
        else o += utf8_stream_fffd(out + o);
        memmove(s->pending, s->pending + k, s->n_pending - k);
        s->n_pending -= k;
    }
    while (i < len) {
        if (in[i] < 0x80) { out[o++] = (char)in[i++]; continue; }
        int r = utf8_stream_check(in + i, len - i);
        if (r == 0) { /* incomplete tail: hold it back */
            s->n_pending = len - i;
            memcpy(s->pending, in + i, s->n_pending);
            return o;
        }
        if (r > 0) { memcpy(out + o, in + i, (size_t)r); o += (size_t)r; i += (size_t)r; }
        else { o += utf8_stream_fffd(out + o); i += (size_t)-r; }
    }
    return o;
}

size_t utf8_stream_flush(utf8_stream *s, char *out) {
    size_t o = 0;
    if (s->n_pending > 0) o = utf8_stream_fffd(out); /* a valid prefix: one maximal subpart */
    s->n_pending = 0;
    return o;
}
