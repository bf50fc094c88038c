/* unicode.c - code point classes (binary search over the generated ranges) and the GPT-2
 * byte <-> code point table (FORMATS.md 4.3). */
#include "unicode.h"

uint8_t unicode_flags_slow(uint32_t cp) {
    if (cp >= UNICODE_INVALID_BASE) return UNI_S; /* an invalid byte: classed like U+FFFD */
    /* last range whose start <= cp; range 0 starts at 0 */
    uint32_t lo = 0, hi = unicode_n_ranges;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (unicode_range_start[mid] <= cp) lo = mid;
        else hi = mid;
    }
    return unicode_range_flags[lo];
}

int unicode_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Printable bytes 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF map to themselves; the other 68 bytes, in
 * increasing order, to U+0100 + k. */
static int unicode_byte_is_direct(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t unicode_byte_to_cpt(uint8_t b) {
    if (unicode_byte_is_direct(b)) return b;
    /* k = number of non-direct bytes below b */
    uint32_t k;
    if (b <= 0x20) k = b;                       /* 0x00-0x20: k 0..32   */
    else if (b <= 0xA0) k = 33 + (b - 0x7F);    /* 0x7F-0xA0: k 33..66  */
    else k = 67;                                /* 0xAD                 */
    return 0x100 + k;
}

int unicode_cpt_to_byte(uint32_t cp) {
    if (cp < 0x100) return unicode_byte_is_direct(cp) ? (int)cp : -1;
    if (cp > 0x143) return -1;
    uint32_t k = cp - 0x100;
    if (k <= 32) return (int)k;
    if (k <= 66) return (int)(0x7F + (k - 33));
    return 0xAD;
}
