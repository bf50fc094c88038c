/* pretokenize.c - the pre-tokenizer regexes of FORMATS.md 4.4 as hand-written scanners.
 *
 * Semantics follow llama.cpp (the reference the test vectors come from): \s is Unicode
 * White_Space; \p{L}/\p{N}/\p{P} are the general categories; an invalid UTF-8 byte is one
 * "character" classed like U+FFFD (a symbol), so it joins punctuation/symbol runs and is never
 * dropped. The qwen2 and llama3 patterns share one scanner (llama.cpp's custom matcher for the
 * llama3 pattern is the same state machine); gpt-2 likewise. The multi-pass patterns use the
 * regex-split rule: in each fragment, leftmost-first matches and the gaps between them both
 * become fragments of the next pass.
 *
 * Explicit code point ranges in the no-\p{} passes (deepseek) exclude White_Space characters:
 * llama.cpp rewrites non-ASCII White_Space to U+000B before running those regexes, so U+3000
 * is only ever \s, never a member of [　-。]. */
#include "pretokenize.h"

#include <string.h>

#include "unicode.h"

#define PT_OUT 0xFFFFFFFFu /* "no character": past the end of the fragment */

typedef struct pt_ctx pt_ctx;
typedef coder_status (*pt_pass)(const pt_ctx *c, int level, size_t a, size_t b);

struct pt_ctx {
    const unsigned char *s;
    const pt_pass *passes;
    int n_passes;
    pretokenize_sink sink;
    void *user;
};

/* Hands s[a..b) to pass `level`, or to the sink after the last pass. Empty ranges vanish. */
static coder_status pt_emit(const pt_ctx *c, int level, size_t a, size_t b) {
    if (a >= b) return CODER_OK;
    if (level == c->n_passes) return c->sink(c->user, a, b);
    return c->passes[level](c, level, a, b);
}

/* The character at byte pos of a fragment ending at b: code point (PT_OUT past the end) and length. */
static inline uint32_t pt_cp(const unsigned char *s, size_t pos, size_t b, int *len) {
    if (pos >= b) { *len = 0; return PT_OUT; }
    if (s[pos] < 0x80) { *len = 1; return s[pos]; }
    return unicode_decode(s + pos, b - pos, len);
}
static inline uint8_t pt_flags(uint32_t cp) { return cp == PT_OUT ? 0 : unicode_flags(cp); }
static inline unsigned pt_lower(unsigned char ch) { return (ch >= 'A' && ch <= 'Z') ? ch + 32u : ch; }

/* Contractions at s[pos] == '\'': match end or 0. llama3/qwen2 are case-insensitive, gpt-2 not. */
static size_t pt_contraction(const unsigned char *s, size_t pos, size_t b, bool icase) {
    if (pos + 1 >= b) return 0;
    unsigned c1 = icase ? pt_lower(s[pos + 1]) : s[pos + 1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + 2;
    if (pos + 2 >= b) return 0;
    unsigned c2 = icase ? pt_lower(s[pos + 2]) : s[pos + 2];
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return pos + 3;
    return 0;
}

/* End of the run of characters starting at pos whose flags intersect `want` and miss `avoid`. */
static size_t pt_run(const unsigned char *s, size_t pos, size_t b, uint8_t want, uint8_t avoid) {
    while (pos < b) {
        int n;
        uint8_t f = pt_flags(pt_cp(s, pos, b, &n));
        if (!(f & want) || (f & avoid)) break;
        pos += (size_t)n;
    }
    return pos;
}

/* Whitespace tail shared by the llama3 and gpt-2 scanners: \s*[\r\n]+ (llama3 only), \s+(?!\S),
 * \s+. Returns the end of the word starting at pos (pos is at a White_Space character). */
static size_t pt_whitespace(const unsigned char *s, size_t pos, size_t b, bool newline_rule) {
    size_t end = pos, last_start = pos, after_rn = 0, count = 0;
    while (end < b) {
        int n;
        uint32_t cp = pt_cp(s, end, b, &n);
        if (!(pt_flags(cp) & UNI_WS)) break;
        if (cp == '\r' || cp == '\n') after_rn = end + (size_t)n;
        last_start = end;
        end += (size_t)n;
        count++;
    }
    if (newline_rule && after_rn) return after_rn;       /* \s*[\r\n]+                          */
    if (count > 1 && end < b) return last_start;         /* \s+(?!\S): leave the last one       */
    return end;                                          /* \s+                                 */
}

/* qwen2 (max_digits 1) and llama3 (3):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+ */
static coder_status pt_llama3_like(const pt_ctx *c, int level, size_t a, size_t b, int max_digits) {
    const unsigned char *s = c->s;
    size_t pos = a;
    while (pos < b) {
        int n0, n1;
        uint32_t cp = pt_cp(s, pos, b, &n0);
        uint8_t f = pt_flags(cp);
        size_t end = 0;
        if (cp == '\'') end = pt_contraction(s, pos, b, true);
        if (!end && cp != '\r' && cp != '\n' && !(f & UNI_N)) {
            /* [^\r\n\p{L}\p{N}]?\p{L}+ : a letter here, or one prefix character then letters */
            if ((f & UNI_L) || (pt_flags(pt_cp(s, pos + (size_t)n0, b, &n1)) & UNI_L))
                end = pt_run(s, pos + (size_t)n0, b, UNI_L, 0);
        }
        if (!end && (f & UNI_N)) {
            end = pos + (size_t)n0;
            for (int k = 1; k < max_digits && end < b; k++) {
                int n;
                if (!(pt_flags(pt_cp(s, end, b, &n)) & UNI_N)) break;
                end += (size_t)n;
            }
        }
        if (!end) {
            /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
            size_t p = pos;
            uint8_t f2 = f;
            if (cp == ' ') { p = pos + 1; f2 = pt_flags(pt_cp(s, p, b, &n1)); }
            if (f2 && !(f2 & (UNI_WS | UNI_L | UNI_N))) {
                p = pt_run(s, p, b, 0xFF, UNI_WS | UNI_L | UNI_N);
                while (p < b && (s[p] == '\r' || s[p] == '\n')) p++;
                end = p;
            }
        }
        if (!end && (f & UNI_WS)) end = pt_whitespace(s, pos, b, true);
        if (!end) end = pos + (size_t)n0; /* unreachable: every class is covered above */
        TRY(pt_emit(c, level + 1, pos, end));
        pos = end;
    }
    return CODER_OK;
}
static coder_status pt_qwen2(const pt_ctx *c, int level, size_t a, size_t b) {
    return pt_llama3_like(c, level, a, b, 1);
}
static coder_status pt_llama3(const pt_ctx *c, int level, size_t a, size_t b) {
    return pt_llama3_like(c, level, a, b, 3);
}

/* gpt-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
 * (a lone whitespace character before a non-space is the unmatched gap: a word of its own) */
static coder_status pt_gpt2(const pt_ctx *c, int level, size_t a, size_t b) {
    const unsigned char *s = c->s;
    size_t pos = a;
    while (pos < b) {
        int n0, n1;
        uint32_t cp = pt_cp(s, pos, b, &n0);
        size_t end = 0;
        if (cp == '\'') end = pt_contraction(s, pos, b, false);
        if (!end) {
            size_t p = pos;
            uint8_t f2 = pt_flags(cp);
            if (cp == ' ') { p = pos + 1; f2 = pt_flags(pt_cp(s, p, b, &n1)); }
            if (f2 & UNI_L) end = pt_run(s, p, b, UNI_L, 0);
            else if (f2 & UNI_N) end = pt_run(s, p, b, UNI_N, 0);
            else if (f2 && !(f2 & UNI_WS)) end = pt_run(s, p, b, 0xFF, UNI_WS | UNI_L | UNI_N);
        }
        if (!end && (pt_flags(cp) & UNI_WS)) end = pt_whitespace(s, pos, b, false);
        if (!end) end = pos + (size_t)n0;
        TRY(pt_emit(c, level + 1, pos, end));
        pos = end;
    }
    return CODER_OK;
}

/* ---- the regex-split passes: a matcher returns the end of the match at pos, or 0 ---- */
typedef size_t (*pt_matcher)(const unsigned char *s, size_t pos, size_t b);

static coder_status pt_split_matches(const pt_ctx *c, int level, size_t a, size_t b, pt_matcher m) {
    const unsigned char *s = c->s;
    size_t gap = a, pos = a;
    while (pos < b) {
        size_t end = m(s, pos, b);
        if (end > pos) {
            TRY(pt_emit(c, level + 1, gap, pos));
            TRY(pt_emit(c, level + 1, pos, end));
            pos = gap = end;
        } else {
            int n;
            pt_cp(s, pos, b, &n);
            pos += (size_t)n;
        }
    }
    return pt_emit(c, level + 1, gap, b);
}

/* [\r\n] */
static size_t pt_m_rn(const unsigned char *s, size_t pos, size_t b) {
    (void)b;
    return (s[pos] == '\r' || s[pos] == '\n') ? pos + 1 : 0;
}
/* \p{N} */
static size_t pt_m_digit1(const unsigned char *s, size_t pos, size_t b) {
    int n;
    return (pt_flags(pt_cp(s, pos, b, &n)) & UNI_N) ? pos + (size_t)n : 0;
}
/* \p{N}+ */
static size_t pt_m_digits(const unsigned char *s, size_t pos, size_t b) {
    size_t e = pt_run(s, pos, b, UNI_N, 0);
    return e > pos ? e : 0;
}
/* [0-9][0-9][0-9] */
static size_t pt_m_ascii3(const unsigned char *s, size_t pos, size_t b) {
    if (b - pos < 3) return 0;
    for (int i = 0; i < 3; i++)
        if (s[pos + (size_t)i] < '0' || s[pos + (size_t)i] > '9') return 0;
    return pos + 3;
}

typedef bool (*pt_class)(uint32_t cp, uint8_t flags);

/* \s?X+ with X given as a predicate. */
static size_t pt_opt_ws_run(const unsigned char *s, size_t pos, size_t b, pt_class in) {
    int n0, n;
    uint32_t cp = pt_cp(s, pos, b, &n0);
    uint8_t f = pt_flags(cp);
    size_t p = pos;
    if (!in(cp, f)) {
        if (!(f & UNI_WS)) return 0;
        p = pos + (size_t)n0;
        uint32_t c1 = pt_cp(s, p, b, &n);
        if (c1 == PT_OUT || !in(c1, pt_flags(c1))) return 0;
    }
    while (p < b) {
        uint32_t cx = pt_cp(s, p, b, &n);
        if (!in(cx, pt_flags(cx))) break;
        p += (size_t)n;
    }
    return p;
}
/* X+ */
static size_t pt_run_of(const unsigned char *s, size_t pos, size_t b, pt_class in) {
    size_t p = pos;
    while (p < b) {
        int n;
        uint32_t cx = pt_cp(s, p, b, &n);
        if (!in(cx, pt_flags(cx))) break;
        p += (size_t)n;
    }
    return p > pos ? p : 0;
}

static bool pt_is_letter(uint32_t cp, uint8_t f) { (void)cp; return (f & UNI_L) != 0; }
static bool pt_is_punct(uint32_t cp, uint8_t f) { (void)cp; return (f & UNI_P) != 0; }

/* [\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}] = U+0800..U+9FA5, U+AC00..U+D7FF */
static bool pt_is_cjk(uint32_t cp, uint8_t f) {
    return !(f & UNI_WS) && ((cp >= 0x0800 && cp <= 0x9FA5) || (cp >= 0xAC00 && cp <= 0xD7FF));
}
/* default pass 1: [\p{P}\$\+<=>\^~\|] */
static bool pt_is_default_punct(uint32_t cp, uint8_t f) {
    return (f & UNI_P) || cp == '$' || cp == '+' || cp == '<' || cp == '=' || cp == '>' ||
           cp == '^' || cp == '~' || cp == '|';
}
/* deepseek-llm pass 3: [!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}] */
static bool pt_is_dsllm_punct(uint32_t cp, uint8_t f) {
    if (f & UNI_WS) return false;
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x7E) || (cp >= 0xFF01 && cp <= 0xFF0F) ||
           (cp >= 0xFF1A && cp <= 0xFF5E) || (cp >= 0x2018 && cp <= 0x201F) || (cp >= 0x3000 && cp <= 0x3002);
}

/* deepseek-llm pass 2 class: cased letters (FORMATS.md 4.4 CLASS_L), sorted ranges. */
static const uint32_t pt_dsllm_letters[][2] = {
    {0x0041, 0x005A}, {0x0061, 0x007A}, {0x00B5, 0x00B5}, {0x00C0, 0x00D6}, {0x00D8, 0x00F6}, {0x00F8, 0x01BA},
    {0x01BC, 0x01BF}, {0x01C4, 0x0293}, {0x0295, 0x02AF}, {0x0370, 0x0373}, {0x0376, 0x0377}, {0x037B, 0x037D},
    {0x037F, 0x037F}, {0x0386, 0x0386}, {0x0388, 0x038A}, {0x038C, 0x038C}, {0x038E, 0x03A1}, {0x03A3, 0x03F5},
    {0x03F7, 0x0481}, {0x048A, 0x052F}, {0x0531, 0x0556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD},
    {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15},
    {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4},
    {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC},
    {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124},
    {0x2126, 0x2126}, {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F},
    {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE},
    {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E},
    {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F},
    {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};

static bool pt_is_dsllm_letter(uint32_t cp, uint8_t f) {
    if ((f & UNI_WS) || cp >= UNICODE_INVALID_BASE) return false;
    size_t lo = 0, hi = sizeof pt_dsllm_letters / sizeof pt_dsllm_letters[0];
    while (lo < hi) { /* first range whose end >= cp */
        size_t mid = lo + (hi - lo) / 2;
        if (pt_dsllm_letters[mid][1] < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < sizeof pt_dsllm_letters / sizeof pt_dsllm_letters[0] && pt_dsllm_letters[lo][0] <= cp;
}

static size_t pt_m_ws_letters(const unsigned char *s, size_t p, size_t b) { return pt_opt_ws_run(s, p, b, pt_is_letter); }
static size_t pt_m_ws_punct(const unsigned char *s, size_t p, size_t b) { return pt_opt_ws_run(s, p, b, pt_is_punct); }
static size_t pt_m_ws_dsllm_letters(const unsigned char *s, size_t p, size_t b) { return pt_opt_ws_run(s, p, b, pt_is_dsllm_letter); }
static size_t pt_m_ws_dsllm_punct(const unsigned char *s, size_t p, size_t b) { return pt_opt_ws_run(s, p, b, pt_is_dsllm_punct); }
static size_t pt_m_cjk(const unsigned char *s, size_t p, size_t b) { return pt_run_of(s, p, b, pt_is_cjk); }
static size_t pt_m_default_punct(const unsigned char *s, size_t p, size_t b) { return pt_run_of(s, p, b, pt_is_default_punct); }

static coder_status pt_rn(const pt_ctx *c, int l, size_t a, size_t b) { return pt_split_matches(c, l, a, b, pt_m_rn); }
static coder_status pt_digit1(const pt_ctx *c, int l, size_t a, size_t b) { return pt_split_matches(c, l, a, b, pt_m_digit1); }
static coder_status pt_digits(const pt_ctx *c, int l, size_t a, size_t b) { return pt_split_matches(c, l, a, b, pt_m_digits); }
static coder_status pt_ascii3(const pt_ctx *c, int l, size_t a, size_t b) { return pt_split_matches(c, l, a, b, pt_m_ascii3); }
static coder_status pt_ws_letters(const pt_ctx *c, int l, size_t a, size_t b) { return pt_split_matches(c, l, a, b, pt_m_ws_letters); }
static coder_status pt_ws_punct(const pt_ctx *c, int l, size_t a, size_t b) { return pt_split_matches(c, l, a, b, pt_m_ws_punct); }
static coder_status pt_ws_dsllm_letters(const pt_ctx *c, int l, size_t a, size_t b) { return pt_split_matches(c, l, a, b, pt_m_ws_dsllm_letters); }
static coder_status pt_ws_dsllm_punct(const pt_ctx *c, int l, size_t a, size_t b) { return pt_split_matches(c, l, a, b, pt_m_ws_dsllm_punct); }
static coder_status pt_cjk(const pt_ctx *c, int l, size_t a, size_t b) { return pt_split_matches(c, l, a, b, pt_m_cjk); }
static coder_status pt_default_punct(const pt_ctx *c, int l, size_t a, size_t b) { return pt_split_matches(c, l, a, b, pt_m_default_punct); }

/* \s+$ : the trailing White_Space run of the fragment (one forward scan: no rescans, so a long
 * run followed by text stays linear). */
static coder_status pt_ws_at_end(const pt_ctx *c, int level, size_t a, size_t b) {
    size_t pos = a, tail = a;
    bool in_ws = false;
    while (pos < b) {
        int n;
        bool ws = (pt_flags(pt_cp(c->s, pos, b, &n)) & UNI_WS) != 0;
        if (ws && !in_ws) tail = pos;
        in_ws = ws;
        pos += (size_t)n;
    }
    if (!in_ws) return pt_emit(c, level + 1, a, b);
    TRY(pt_emit(c, level + 1, a, tail));
    return pt_emit(c, level + 1, tail, b);
}

static const pt_pass pt_passes_default[] = {pt_default_punct, pt_gpt2, pt_digits, pt_ascii3};
static const pt_pass pt_passes_qwen2[] = {pt_qwen2};
static const pt_pass pt_passes_llama3[] = {pt_llama3};
static const pt_pass pt_passes_gpt2[] = {pt_gpt2};
static const pt_pass pt_passes_starcoder[] = {pt_digit1, pt_gpt2};
static const pt_pass pt_passes_deepseek_coder[] = {pt_rn, pt_ws_letters, pt_ws_punct, pt_cjk, pt_digit1};
static const pt_pass pt_passes_deepseek_llm[] = {pt_rn, pt_ws_dsllm_letters, pt_ws_dsllm_punct,
                                                 pt_ws_at_end, pt_cjk, pt_digits};

coder_status pretokenize_split(pretokenize_type type, const char *text, size_t start, size_t end,
                               pretokenize_sink sink, void *user) {
    pt_ctx c = {(const unsigned char *)text, NULL, 0, sink, user};
#define PT_USE(arr) (c.passes = (arr), c.n_passes = (int)(sizeof(arr) / sizeof((arr)[0])))
    switch (type) {
    case PRETOK_QWEN2: PT_USE(pt_passes_qwen2); break;
    case PRETOK_LLAMA3: PT_USE(pt_passes_llama3); break;
    case PRETOK_GPT2: PT_USE(pt_passes_gpt2); break;
    case PRETOK_STARCODER: PT_USE(pt_passes_starcoder); break;
    case PRETOK_DEEPSEEK_CODER: PT_USE(pt_passes_deepseek_coder); break;
    case PRETOK_DEEPSEEK_LLM: PT_USE(pt_passes_deepseek_llm); break;
    default: PT_USE(pt_passes_default); break;
    }
#undef PT_USE
    return pt_emit(&c, 0, start, end);
}

typedef struct pt_name {
    const char *name;
    pretokenize_type type;
    bool ignore_merges, force_add_bos;
} pt_name;

/* tokenizer.ggml.pre values and their aliases (FORMATS.md 4.4). Only the Llama-3 names carry
 * llama.cpp's ignore_merges / add_bos defaults; dbrx and smaug-bpe share the regex only. */
static const pt_name pt_names[] = {
    {"default", PRETOK_DEFAULT, false, false},
    {"qwen2", PRETOK_QWEN2, false, false},
    {"deepseek-r1-qwen", PRETOK_QWEN2, false, false},
    {"megrez", PRETOK_QWEN2, false, false},
    {"stablelm2", PRETOK_QWEN2, false, false},
    {"hunyuan", PRETOK_QWEN2, false, false},
    {"llama-bpe", PRETOK_LLAMA3, true, true},
    {"llama3", PRETOK_LLAMA3, true, true},
    {"llama-v3", PRETOK_LLAMA3, true, true},
    {"falcon3", PRETOK_LLAMA3, true, true},
    {"dbrx", PRETOK_LLAMA3, false, false},
    {"smaug-bpe", PRETOK_LLAMA3, false, false},
    {"gpt-2", PRETOK_GPT2, false, false},
    {"phi-2", PRETOK_GPT2, false, false},
    {"mpt", PRETOK_GPT2, false, false},
    {"olmo", PRETOK_GPT2, false, false},
    {"jais", PRETOK_GPT2, false, false},
    {"starcoder", PRETOK_STARCODER, false, false},
    {"refact", PRETOK_STARCODER, false, false},
    {"command-r", PRETOK_STARCODER, false, false},
    {"smollm", PRETOK_STARCODER, false, false},
    {"codeshell", PRETOK_STARCODER, false, false},
    {"exaone", PRETOK_STARCODER, false, false},
    {"deepseek-coder", PRETOK_DEEPSEEK_CODER, false, false},
    {"deepseek-llm", PRETOK_DEEPSEEK_LLM, false, false},
};

bool pretokenize_lookup(const char *name, size_t len, pretokenize_info *out) {
    for (size_t i = 0; i < sizeof pt_names / sizeof pt_names[0]; i++) {
        if (strlen(pt_names[i].name) == len && memcmp(pt_names[i].name, name, len) == 0) {
            out->type = pt_names[i].type;
            out->ignore_merges = pt_names[i].ignore_merges;
            out->force_add_bos = pt_names[i].force_add_bos;
            return true;
        }
    }
    return false;
}
