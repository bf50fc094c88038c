/* test_gguf_bad.c - malformed GGUF files: every container-level case of groups A, B and C of
 * ../shared/docs/BAD_INPUTS.md (one TEST per case id; docs/GGUF.md maps ids to tests and
 * statuses), plus truncation at every byte length in memory, mmap and read modes.
 *
 * Every case is built by hand with gguf_bytes.h (not with the library's writer) and checks:
 * the specific status, a NULL handle, a message naming the key/tensor/field (strstr), and that
 * the parse allocated at most 16 KiB + 8 x the input size (so huge declared counts and lengths
 * allocate nothing large). LSan checks that nothing leaks. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_bytes.h"
#include "quant.h"
#include "test.h"

static char tmp_dir[256];
static char why[640];

static const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmp_dir, name);
    return buf;
}

/* Opens bytes from memory and checks status, NULL handle, message and the allocation peak. */
static int expect_mem(const void *p, size_t n, const gguf_open_opts *o, coder_status want, const char *needle) {
    gguf_file *f = (gguf_file *)&why; /* must come back NULL */
    size_t base = coder_alloc_current_bytes();
    coder_alloc_peak_reset();
    coder_status st = gguf_open_memory(p, n, o, &f);
    size_t peak = coder_alloc_peak_bytes() - base;
    if (st == CODER_OK) gguf_close(f);
    if (st != want) {
        snprintf(why, sizeof why, "status %d, want %d: %s", st, want, coder_last_error());
        return 0;
    }
    if (want != CODER_OK && f != NULL) {
        snprintf(why, sizeof why, "handle not NULL after an error");
        return 0;
    }
    if (needle && !strstr(coder_last_error(), needle)) {
        snprintf(why, sizeof why, "message '%s' lacks '%s'", coder_last_error(), needle);
        return 0;
    }
    if (peak > 16384 + 8 * n) {
        snprintf(why, sizeof why, "parse allocated %zu bytes for a %zu-byte input", peak, n);
        return 0;
    }
    return 1;
}
#define EXPECT(b, want, needle) CHECK_MSG(expect_mem((b)->p, (b)->n, NULL, want, needle), "%s", why)
#define EXPECT_OK(b) EXPECT(b, CODER_OK, NULL)

/* Writes bytes to a file and opens it in mmap (mode 1) or read (mode 0) mode. */
static int expect_file(const void *p, size_t n, int mode, coder_status want, const char *needle) {
    const char *path = tmp_path("case.gguf");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n) || close(fd) != 0) {
        snprintf(why, sizeof why, "cannot write %s", path);
        return 0;
    }
    gguf_open_opts o = {.use_mmap = mode == 1};
    gguf_file *f = (gguf_file *)&why;
    coder_status st = gguf_open(path, &o, &f);
    if (st == CODER_OK) gguf_close(f);
    if (st != want || (want != CODER_OK && f != NULL) || (needle && !strstr(coder_last_error(), needle))) {
        snprintf(why, sizeof why, "file of %zu bytes, mode %d: status %d want %d, message '%s' (want '%s')", n, mode, st, want,
                 coder_last_error(), needle ? needle : "");
        return 0;
    }
    return 1;
}

/* ---- the base file ----------------------------------------------------------------------------
 * header v3 | general.architecture="llama" | general.alignment=32 | a.arr=["x","yz"] |
 * t0: F32 [8, 2] at 0 (64 bytes) | t1: Q8_0 [32] at 64 (34 bytes) | pad | data (ends at EOF). */
typedef struct {
    size_t kv1, kv2, info0, info1, data, t1_end;
} base_offsets;

static void build_base(gb *b, uint32_t version, base_offsets *o) {
    base_offsets tmp;
    if (!o) o = &tmp;
    gb_header(b, version, 2, 3);
    gb_kv_str(b, "general.architecture", "llama");
    o->kv1 = b->n;
    gb_kv_u32(b, "general.alignment", 32);
    o->kv2 = b->n;
    gb_str(b, "a.arr"); gb_u32(b, GGUF_TYPE_ARRAY); gb_u32(b, GGUF_TYPE_STRING); gb_u64(b, 2);
    gb_str(b, "x"); gb_str(b, "yz");
    o->info0 = b->n;
    gb_info(b, "t0", 2, (uint64_t[]){8, 2}, QT_F32, 0);
    o->info1 = b->n;
    gb_info(b, "t1", 1, (uint64_t[]){32}, QT_Q8_0, 64);
    gb_pad(b, 32);
    o->data = b->n;
    for (int i = 0; i < 98; i++) gb_u8(b, (uint8_t)(i * 7 + 1));
    o->t1_end = b->n;
}

/* A file with one KV: the caller appends the KV's bytes after this. */
static void kv_file(gb *b) { gb_header(b, 3, 0, 1); }

/* One tensor info + data_bytes of zeros after the padding. */
static void tensor_file(gb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset, size_t data_bytes) {
    gb_header(b, 3, 1, 0);
    gb_info(b, name, n_dims, ne, type, offset);
    gb_pad(b, 32);
    gb_zeros(b, data_bytes);
}

TEST(base_file_is_valid) {
    gb b = {0};
    base_offsets o;
    build_base(&b, 3, &o);
    gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(b.p, b.n, NULL, &f));
    const gguf_tensor *t1 = gguf_find_tensor(f, "t1");
    bool ok = gguf_tensor_count(f) == 2 && t1 && t1->nbytes == 34 && t1->data == b.p + o.data + 64 && gguf_data_offset(f) == o.data;
    gguf_close(f);
    gb_free(&b);
    CHECK(ok);
}

/* A1: 0-byte and 1..23-byte files. */
TEST(A1_tiny_files) {
    gb b = {0};
    build_base(&b, 3, NULL);
    CHECK_MSG(expect_mem(b.p, 0, NULL, CODER_ERR_TRUNCATED, "empty"), "%s", why);
    for (size_t n = 1; n < 24; n++)
        CHECK_MSG(expect_mem(b.p, n, NULL, CODER_ERR_TRUNCATED, "offset"), "n=%zu: %s", n, why);
    CHECK_MSG(expect_mem(b.p, 10, NULL, CODER_ERR_TRUNCATED, "tensor count at offset 8"), "%s", why);
    CHECK_MSG(expect_mem(b.p, 6, NULL, CODER_ERR_TRUNCATED, "version at offset 4"), "%s", why);
    CHECK_MSG(expect_file(b.p, 0, 0, CODER_ERR_TRUNCATED, "empty (0 bytes)"), "%s", why);
    CHECK_MSG(expect_file(b.p, 0, 1, CODER_ERR_TRUNCATED, "empty (0 bytes)"), "%s", why);
    gb_free(&b);
}

/* A2: bad magic. */
TEST(A2_bad_magic) {
    static const struct { const char m[5]; const char *needle; } cases[] = {
        {"FUGG", "byte-reversed"}, {"GGML", "legacy GGML"}, {"GGJT", "legacy GGJT"}, {"lmgg", "legacy GGML"},
        {"tjgg", "legacy GGJT"}, {"\x7f" "ELF", "not a GGUF file: magic at offset 0 is '\\x7FELF'"}, {"GGUG", "not a GGUF file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gb b = {0};
        build_base(&b, 3, NULL);
        memcpy(b.p, cases[i].m, 4);
        int ok = expect_mem(b.p, b.n, NULL, CODER_ERR_FORMAT, cases[i].needle);
        gb_free(&b);
        CHECK_MSG(ok, "magic %zu: %s", i, why);
    }
    CHECK_MSG(expect_mem("GX", 2, NULL, CODER_ERR_FORMAT, "not a GGUF file"), "%s", why);
}

/* A3: versions. */
TEST(A3_versions) {
    static const struct { uint32_t v; const char *needle; } cases[] = {
        {0, "version 0 at offset 4"}, {1, "version 1"}, {4, "version 4 at offset 4"},
        {0xFFFFFFFFu, "version 4294967295"}, {0x03000000u, "big-endian file?"}, {0x02000000u, "big-endian file?"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gb b = {0};
        build_base(&b, cases[i].v, NULL);
        int ok = expect_mem(b.p, b.n, NULL, CODER_ERR_UNSUPPORTED, cases[i].needle);
        gb_free(&b);
        CHECK_MSG(ok, "version 0x%08X: %s", cases[i].v, why);
    }
    gb b = {0};
    build_base(&b, 2, NULL); /* v2 has the v3 layout */
    EXPECT_OK(&b);
    gb_free(&b);
}

/* A4: huge counts: LIMIT before any allocation; a count the bytes cannot hold: TRUNCATED. */
TEST(A4_huge_counts) {
    static const uint64_t counts[] = {UINT64_MAX, 1ull << 63, INT64_MAX, SIZE_MAX / 16 + 1, SIZE_MAX / 144 + 1, 65537};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        gb b = {0};
        build_base(&b, 3, NULL);
        gb_put64(&b, 16, counts[i]);
        CHECK_MSG(expect_mem(b.p, b.n, NULL, CODER_ERR_LIMIT, "KV count"), "n_kv %llu: %s", (unsigned long long)counts[i], why);
        gb_put64(&b, 16, 3);
        gb_put64(&b, 8, counts[i]);
        CHECK_MSG(expect_mem(b.p, b.n, NULL, CODER_ERR_LIMIT, "tensor count"), "n_tensors %llu: %s", (unsigned long long)counts[i], why);
        gb_free(&b);
    }
    gb b = {0};
    build_base(&b, 3, NULL);
    gb_put64(&b, 16, 60000); /* under the cap but needs 60000 x 14 bytes */
    EXPECT(&b, CODER_ERR_TRUNCATED, "60000 KVs and 2 tensor infos need at least");
    gb_put64(&b, 16, 3);
    gb_put64(&b, 8, 1000);
    EXPECT(&b, CODER_ERR_TRUNCATED, "1000 tensor infos need at least");
    /* the tensor cap is configurable */
    gb_put64(&b, 8, 2);
    gguf_open_opts o = {.max_tensors = 1};
    CHECK_MSG(expect_mem(b.p, b.n, &o, CODER_ERR_LIMIT, "tensor count 2 at offset 8 exceeds the cap of 1"), "%s", why);
    gb_free(&b);
}

/* A5: plausible counts, file ends inside a KV or a tensor info. */
TEST(A5_ends_inside_entry) {
    gb b = {0};
    base_offsets o;
    build_base(&b, 3, &o);
    /* Early cuts fail the header's minimum-size check (3 x 14 + 2 x 33 bytes after it) first. */
    CHECK_MSG(expect_mem(b.p, o.kv1 + 10, NULL, CODER_ERR_TRUNCATED, "3 KVs and 2 tensor infos need at least 108 bytes"), "%s", why);
    CHECK_MSG(expect_mem(b.p, o.kv2 + 40, NULL, CODER_ERR_TRUNCATED, "key 'a.arr'"), "%s", why);
    CHECK_MSG(expect_mem(b.p, o.info0 + 5, NULL, CODER_ERR_TRUNCATED, "tensor #0"), "%s", why);
    CHECK_MSG(expect_mem(b.p, o.info1 + 20, NULL, CODER_ERR_TRUNCATED, "tensor 't1' (#1"), "%s", why);
    gb_free(&b);
}

/* A6: key and string lengths: huge -> LIMIT (string cap), just past the end -> TRUNCATED. */
TEST(A6_string_lengths) {
    static const uint64_t lens[] = {UINT64_MAX, 1ull << 63, GGUF_MAX_STRING_LEN + 1};
    for (size_t i = 0; i < 3; i++) {
        gb b = {0};
        kv_file(&b);
        gb_u64(&b, lens[i]);
        gb_raw(&b, "abcdefgh", 8);
        CHECK_MSG(expect_mem(b.p, b.n, NULL, CODER_ERR_LIMIT, "key length"), "key len %llu: %s", (unsigned long long)lens[i], why);
        gb_free(&b);
        kv_file(&b);
        gb_str(&b, "s.v"); gb_u32(&b, GGUF_TYPE_STRING); gb_u64(&b, lens[i]); gb_raw(&b, "abcd", 4);
        CHECK_MSG(expect_mem(b.p, b.n, NULL, CODER_ERR_LIMIT, "key 's.v'"), "string len %llu: %s", (unsigned long long)lens[i], why);
        gb_free(&b);
    }
    gb b = {0};
    kv_file(&b);
    gb_u64(&b, 9); /* remaining + 1 */
    gb_raw(&b, "abcdefgh", 8);
    EXPECT(&b, CODER_ERR_TRUNCATED, "KV #0 (offset 24): string bytes at offset 32 needs 9 bytes but the file ends at 40");
    gb_free(&b);
    kv_file(&b);
    gb_str(&b, "s.v"); gb_u32(&b, GGUF_TYPE_STRING); gb_u64(&b, 5); gb_raw(&b, "abcd", 4);
    EXPECT(&b, CODER_ERR_TRUNCATED, "key 's.v'");
    gb_free(&b);
}

/* A7: empty key, embedded NUL, invalid UTF-8, control characters (bytes escaped in messages). */
TEST(A7_bad_keys) {
    static const struct { const char *k; size_t n; const char *needle; } cases[] = {
        {"", 0, "empty key at offset 24"}, {"a\0b", 3, "key 'a\\x00b'"}, {"k\xff", 2, "key 'k\\xFF'"},
        {"k\n", 2, "key 'k\\x0A'"}, {"\xc0\x80", 2, "key '\\xC0\\x80'"}, {"\xed\xa0\x80", 3, "key '\\xED\\xA0\\x80'"},
        {"k\x7f", 2, "key 'k\\x7F'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gb b = {0};
        kv_file(&b);
        gb_strn(&b, cases[i].k, cases[i].n);
        gb_u32(&b, GGUF_TYPE_UINT32);
        gb_u32(&b, 1);
        int ok = expect_mem(b.p, b.n, NULL, CODER_ERR_FORMAT, cases[i].needle);
        gb_free(&b);
        CHECK_MSG(ok, "case %zu: %s", i, why);
    }
    gb b = {0};
    kv_file(&b);
    gb_kv_u32(&b, "caf\xc3\xa9.\xe4\xb8\xad", 1); /* valid UTF-8 is fine */
    EXPECT_OK(&b);
    gb_free(&b);
}

/* A8: duplicate key. */
TEST(A8_duplicate_key) {
    gb b = {0};
    gb_header(&b, 3, 0, 3);
    gb_kv_u32(&b, "x.y", 1);
    gb_kv_u32(&b, "x.z", 2);
    gb_kv_str(&b, "x.y", "again");
    EXPECT(&b, CODER_ERR_FORMAT, "duplicate key 'x.y' (first at offset 24)");
    gb_free(&b);
}

/* A9: invalid value types. */
TEST(A9_bad_value_type) {
    static const uint32_t types[] = {13, 0x7FFFFFFF, 0xFFFFFFFF};
    for (size_t i = 0; i < 3; i++) {
        gb b = {0};
        kv_file(&b);
        gb_str(&b, "k.t");
        gb_u32(&b, types[i]);
        gb_u64(&b, 0);
        int ok = expect_mem(b.p, b.n, NULL, CODER_ERR_FORMAT, "key 'k.t' (KV #0 at offset 24): invalid value type");
        gb_free(&b);
        CHECK_MSG(ok, "type %u: %s", types[i], why);
    }
}

/* A10: nested or invalid array element type (no recursion: rejected on sight). */
TEST(A10_bad_array_type) {
    static const struct { uint32_t et; const char *needle; } cases[] = {
        {GGUF_TYPE_ARRAY, "nested array"}, {13, "invalid array element type 13"}, {0xFFFFFFFF, "invalid array element type"},
    };
    for (size_t i = 0; i < 3; i++) {
        gb b = {0};
        kv_file(&b);
        gb_str(&b, "k.a");
        gb_u32(&b, GGUF_TYPE_ARRAY);
        gb_u32(&b, cases[i].et);
        gb_u64(&b, 1);
        gb_u32(&b, GGUF_TYPE_UINT8); gb_u64(&b, 1); gb_u8(&b, 0);
        int ok = expect_mem(b.p, b.n, NULL, CODER_ERR_FORMAT, cases[i].needle);
        gb_free(&b);
        CHECK_MSG(ok, "%s", why);
    }
}

/* A11: huge array counts in a tiny file; string arrays running past EOF; bad BOOL elements. */
TEST(A11_huge_arrays) {
    gb b = {0};
    kv_file(&b);
    gb_str(&b, "k.a"); gb_u32(&b, GGUF_TYPE_ARRAY); gb_u32(&b, GGUF_TYPE_UINT8); gb_u64(&b, 1ull << 62); gb_u64(&b, 0);
    EXPECT(&b, CODER_ERR_LIMIT, "key 'k.a'");
    gb_free(&b);
    kv_file(&b);
    gb_str(&b, "k.a"); gb_u32(&b, GGUF_TYPE_ARRAY); gb_u32(&b, GGUF_TYPE_UINT32); gb_u64(&b, 1ull << 62); gb_u64(&b, 0);
    EXPECT(&b, CODER_ERR_FORMAT, "array count 4611686018427387904 at offset 43 times element size 4 overflows");
    gb_free(&b);
    kv_file(&b);
    gb_str(&b, "k.a"); gb_u32(&b, GGUF_TYPE_ARRAY); gb_u32(&b, GGUF_TYPE_UINT32); gb_u64(&b, 1000); gb_u64(&b, 0);
    EXPECT(&b, CODER_ERR_TRUNCATED, "key 'k.a' (KV #0 at offset 24): array elements at offset 51 needs 4000 bytes");
    gb_free(&b);
    kv_file(&b); /* string array, huge count (CVE-2024-21825) */
    gb_str(&b, "k.s"); gb_u32(&b, GGUF_TYPE_ARRAY); gb_u32(&b, GGUF_TYPE_STRING); gb_u64(&b, 1ull << 62); gb_str(&b, "a");
    EXPECT(&b, CODER_ERR_TRUNCATED, "key 'k.s' (KV #0 at offset 24): string array count 4611686018427387904 at offset 43");
    gb_free(&b);
    kv_file(&b); /* element lengths sum past EOF */
    gb_str(&b, "k.s"); gb_u32(&b, GGUF_TYPE_ARRAY); gb_u32(&b, GGUF_TYPE_STRING); gb_u64(&b, 3);
    gb_str(&b, "a"); gb_u64(&b, 100); gb_raw(&b, "bcdefghi", 8);
    EXPECT(&b, CODER_ERR_TRUNCATED, "element 1 (offset 60)");
    gb_free(&b);
    kv_file(&b);
    gb_str(&b, "k.b"); gb_u32(&b, GGUF_TYPE_ARRAY); gb_u32(&b, GGUF_TYPE_BOOL); gb_u64(&b, 3); gb_u8(&b, 0); gb_u8(&b, 1); gb_u8(&b, 2);
    EXPECT(&b, CODER_ERR_FORMAT, "BOOL element 2 at offset 53 is 2");
    gb_free(&b);
    kv_file(&b);
    gb_str(&b, "k.b"); gb_u32(&b, GGUF_TYPE_BOOL); gb_u8(&b, 7);
    EXPECT(&b, CODER_ERR_FORMAT, "key 'k.b' (KV #0 at offset 24): BOOL value 7 at offset 39");
    gb_free(&b);
}

/* A12: total metadata over the budget (four 1 MiB strings against a 3 MiB budget). */
TEST(A12_metadata_budget) {
    gb b = {0};
    gb_header(&b, 3, 0, 4);
    char *mib = malloc(1 << 20);
    memset(mib, 'x', 1 << 20);
    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof key, "big.%d", i);
        gb_str(&b, key);
        gb_u32(&b, GGUF_TYPE_STRING);
        gb_strn(&b, mib, 1 << 20);
    }
    free(mib);
    gguf_open_opts o = {.max_metadata_bytes = 3u << 20};
    CHECK_MSG(expect_mem(b.p, b.n, &o, CODER_ERR_LIMIT, "key 'big.2' (KV #2"), "%s", why);
    CHECK(strstr(coder_last_error(), "budget of 3145728 bytes"));
    CHECK_MSG(expect_mem(b.p, b.n, NULL, CODER_OK, NULL), "%s", why); /* default budget: fine */
    gb_free(&b);
}

/* A13: general.alignment values and types. */
TEST(A13_alignment) {
    static const uint32_t bad[] = {0, 3, 13, 24, 4, 1u << 31, 0xFFFFFFFFu, 1u << 21, 12};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gb b = {0};
        kv_file(&b);
        gb_kv_u32(&b, "general.alignment", bad[i]);
        int ok = expect_mem(b.p, b.n, NULL, CODER_ERR_FORMAT, "key general.alignment (offset 24) is");
        gb_free(&b);
        CHECK_MSG(ok, "alignment %u: %s", bad[i], why);
    }
    gb b = {0};
    kv_file(&b);
    gb_kv_i32(&b, "general.alignment", 32);
    EXPECT(&b, CODER_ERR_FORMAT, "key general.alignment (offset 24) has type INT32, expected UINT32");
    gb_free(&b);
    kv_file(&b);
    gb_kv_str(&b, "general.alignment", "32");
    EXPECT(&b, CODER_ERR_FORMAT, "has type STRING, expected UINT32");
    gb_free(&b);
    kv_file(&b);
    gb_str(&b, "general.alignment"); gb_u32(&b, GGUF_TYPE_ARRAY); gb_u32(&b, GGUF_TYPE_UINT32); gb_u64(&b, 1); gb_u32(&b, 32);
    EXPECT(&b, CODER_ERR_FORMAT, "has type ARRAY, expected UINT32");
    gb_free(&b);
    static const uint32_t good[] = {8, 64, 1u << 20};
    for (size_t i = 0; i < 3; i++) {
        kv_file(&b);
        gb_kv_u32(&b, "general.alignment", good[i]);
        gguf_file *f = NULL;
        coder_status st = gguf_open_memory(b.p, b.n, NULL, &f);
        bool ok = st == CODER_OK && gguf_alignment(f) == good[i] && gguf_data_offset(f) % good[i] == 0;
        gguf_close(f);
        gb_free(&b);
        CHECK_MSG(ok, "alignment %u: %d %s", good[i], st, coder_last_error());
    }
    /* a tensor offset that is a multiple of 32 but not of the declared 64 */
    gb_header(&b, 3, 1, 1);
    gb_kv_u32(&b, "general.alignment", 64);
    gb_info(&b, "t", 1, (uint64_t[]){8}, QT_F32, 32);
    gb_pad(&b, 64);
    gb_zeros(&b, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "tensor 't' (#0 at offset 57): data offset 32 (field at 82) is not a multiple of the alignment 64");
    gb_free(&b);
}

/* A14: type confusion on known keys: the getters say "key X has type Y, expected Z". The element
 * type of tokenizer arrays is checked by the tokenizer (E2) with the elem_type gguf_get_array returns. */
TEST(A14_type_confusion) {
    gb b = {0};
    gb_header(&b, 3, 0, 7);
    gb_kv_str(&b, "llama.block_count", "4");
    gb_str(&b, "tokenizer.ggml.scores"); gb_u32(&b, GGUF_TYPE_ARRAY); gb_u32(&b, GGUF_TYPE_UINT8); gb_u64(&b, 2); gb_u8(&b, 1); gb_u8(&b, 2);
    gb_str(&b, "tokenizer.ggml.token_type"); gb_u32(&b, GGUF_TYPE_ARRAY); gb_u32(&b, GGUF_TYPE_INT8); gb_u64(&b, 1); gb_u8(&b, 1);
    gb_kv_f32(&b, "tokenizer.ggml.bos_token_id", 1.0f);
    gb_kv_i32(&b, "tokenizer.ggml.eos_token_id", -1);
    gb_str(&b, "llama.context_length"); gb_u32(&b, GGUF_TYPE_BOOL); gb_u8(&b, 1);
    gb_kv_u32(&b, "llama.rope.freq_base", 10000);
    gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(b.p, b.n, NULL, &f));
    uint32_t u = 0; float x; const gguf_str *items; uint64_t n; uint32_t et; const void *data;
    struct { coder_status st; const char *needle; } r[7];
    r[0].st = gguf_get_u32(f, "llama.block_count", &u, true); r[0].needle = "key llama.block_count has type STRING, expected an integer";
    bool m0 = strstr(coder_last_error(), r[0].needle);
    r[1].st = gguf_get_str_array(f, "tokenizer.ggml.scores", &items, &n, true);
    bool m1 = strstr(coder_last_error(), "key tokenizer.ggml.scores has type ARRAY[UINT8], expected ARRAY[STRING]");
    r[2].st = gguf_get_array(f, "tokenizer.ggml.token_type", &et, &data, &n, true);
    bool m2 = r[2].st == CODER_OK && et == GGUF_TYPE_INT8 && n == 1; /* the tokenizer rejects INT8 (wants INT32) */
    r[3].st = gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &u, true);
    bool m3 = strstr(coder_last_error(), "key tokenizer.ggml.bos_token_id has type FLOAT32, expected");
    r[4].st = gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &u, true);
    bool m4 = strstr(coder_last_error(), "key tokenizer.ggml.eos_token_id has type INT32 with value -1, expected");
    r[5].st = gguf_get_u32(f, "llama.context_length", &u, true);
    bool m5 = strstr(coder_last_error(), "key llama.context_length has type BOOL, expected");
    r[6].st = gguf_get_f32(f, "llama.rope.freq_base", &x, true);
    bool m6 = strstr(coder_last_error(), "key llama.rope.freq_base has type UINT32, expected FLOAT32 or FLOAT64");
    gguf_close(f);
    gb_free(&b);
    CHECK(r[0].st == CODER_ERR_FORMAT && m0);
    CHECK(r[1].st == CODER_ERR_FORMAT && m1);
    CHECK(m2);
    CHECK(r[3].st == CODER_ERR_FORMAT && m3);
    CHECK(r[4].st == CODER_ERR_FORMAT && m4);
    CHECK(r[5].st == CODER_ERR_FORMAT && m5);
    CHECK(r[6].st == CODER_ERR_FORMAT && m6);
    CHECK(u == 0); /* never written on error */
}

/* A15 (container part): a missing required key; a 100 KB value is returned intact (the
 * architecture check itself belongs to the model loader). */
TEST(A15_architecture_key) {
    gb b = {0};
    kv_file(&b);
    char *big = malloc(100000);
    memset(big, 'a', 100000);
    gb_str(&b, "general.name"); gb_u32(&b, GGUF_TYPE_STRING); gb_strn(&b, big, 100000);
    free(big);
    gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(b.p, b.n, NULL, &f));
    gguf_str s = {0};
    coder_status st = gguf_get_str(f, "general.architecture", &s, true);
    bool m = strstr(coder_last_error(), "missing key general.architecture") != NULL;
    coder_status st2 = gguf_get_str(f, "general.name", &s, true);
    gguf_close(f);
    gb_free(&b);
    CHECK(st == CODER_ERR_FORMAT && m);
    CHECK(st2 == CODER_OK && s.len == 100000);
}

/* B1: tensor names. */
TEST(B1_tensor_names) {
    char n64[65], n63[64];
    memset(n64, 'n', 64); n64[64] = 0;
    memset(n63, 'n', 63); n63[63] = 0;
    gb b = {0};
    tensor_file(&b, "", 1, (uint64_t[]){8}, QT_F32, 0, 32);
    EXPECT(&b, CODER_ERR_FORMAT, "tensor #0 (offset 24): empty tensor name");
    gb_free(&b);
    tensor_file(&b, n64, 1, (uint64_t[]){8}, QT_F32, 0, 32);
    EXPECT(&b, CODER_ERR_FORMAT, "name length 64 at offset 24; tensor names must be shorter than 64 bytes");
    gb_free(&b);
    tensor_file(&b, n63, 1, (uint64_t[]){8}, QT_F32, 0, 32);
    EXPECT_OK(&b);
    gb_free(&b);
    tensor_file(&b, "x", 1, (uint64_t[]){8}, QT_F32, 0, 32);
    gb_put64(&b, 24, 1ull << 63);
    EXPECT(&b, CODER_ERR_FORMAT, "name length 9223372036854775808");
    gb_free(&b);
    tensor_file(&b, "t\xff", 1, (uint64_t[]){8}, QT_F32, 0, 32);
    EXPECT(&b, CODER_ERR_FORMAT, "name 't\\xFF' at offset 32");
    gb_free(&b);
    tensor_file(&b, "t\001", 1, (uint64_t[]){8}, QT_F32, 0, 32);
    EXPECT(&b, CODER_ERR_FORMAT, "name 't\\x01'");
    gb_free(&b);
}

/* B2: duplicate tensor name. (Across shards: shards are refused, see C3.) */
TEST(B2_duplicate_tensor) {
    gb b = {0};
    gb_header(&b, 3, 2, 0);
    gb_info(&b, "w", 1, (uint64_t[]){8}, QT_F32, 0);
    gb_info(&b, "w", 1, (uint64_t[]){8}, QT_F32, 32);
    gb_pad(&b, 32);
    gb_zeros(&b, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "duplicate tensor name 'w' (also tensor #0)");
    gb_free(&b);
}

/* B3: n_dims out of 1..4 (nothing is written past ne[4]: ASan would see it). */
TEST(B3_n_dims) {
    static const uint32_t bad[] = {0, 5, 8, 9, 0xFFFFFFFF};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gb b = {0};
        gb_header(&b, 3, 1, 0);
        gb_str(&b, "t");
        gb_u32(&b, bad[i]);
        for (int j = 0; j < 9; j++) gb_u64(&b, 1);
        gb_u32(&b, QT_F32);
        gb_u64(&b, 0);
        gb_pad(&b, 32);
        gb_zeros(&b, 64);
        char needle[64];
        snprintf(needle, sizeof needle, "n_dims = %u at offset 33; must be 1..4", bad[i]);
        int ok = expect_mem(b.p, b.n, NULL, CODER_ERR_FORMAT, needle);
        gb_free(&b);
        CHECK_MSG(ok, "%s", why);
    }
}

/* B4: negative or zero dimensions (zero is rejected: no empty tensors, no division by zero). */
TEST(B4_bad_dims) {
    gb b = {0};
    tensor_file(&b, "t", 2, (uint64_t[]){8, (uint64_t)-3}, QT_F32, 0, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "tensor 't' (#0 at offset 24): ne[1] = -3 at offset 45 is negative");
    gb_free(&b);
    tensor_file(&b, "t", 2, (uint64_t[]){8, 0}, QT_F32, 0, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "ne[1] = 0 at offset 45");
    gb_free(&b);
    tensor_file(&b, "t", 1, (uint64_t[]){0}, QT_Q4_0, 0, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "ne[0] = 0");
    gb_free(&b);
}

/* B5: element-count overflow. */
TEST(B5_element_overflow) {
    static const uint64_t shapes[][2] = {{INT64_MAX, 2}, {1ull << 32, 1ull << 32}, {4ull * INT32_MAX, 4ull * INT32_MAX}};
    for (size_t i = 0; i < 3; i++) {
        gb b = {0};
        tensor_file(&b, "t", 2, shapes[i], QT_I8, 0, 64);
        int ok = expect_mem(b.p, b.n, NULL, CODER_ERR_FORMAT, "tensor 't' (#0 at offset 24): element count");
        gb_free(&b);
        CHECK_MSG(ok, "shape %zu: %s", i, why);
    }
}

/* B6: the element count fits int64 but the byte size does not (F32: 2^64 bytes; Q8_K: between
 * INT64_MAX and UINT64_MAX). */
TEST(B6_byte_size_overflow) {
    gb b = {0};
    tensor_file(&b, "t", 2, (uint64_t[]){1ull << 61, 2}, QT_F32, 0, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "byte size of F32");
    gb_free(&b);
    tensor_file(&b, "q", 1, (uint64_t[]){15ull << 59}, QT_Q8_K, 0, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "byte size of Q8_K [8646911284551352320, 1, 1, 1] (offset 24) overflows int64");
    gb_free(&b);
}

/* B7: sizes within the alignment of the 64-bit limits (the GGML_PAD wrap). */
TEST(B7_size_near_limit) {
    gb b = {0};
    tensor_file(&b, "t", 1, (uint64_t[]){UINT64_MAX - 16}, QT_I8, 0, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "is negative");
    gb_free(&b);
    tensor_file(&b, "t", 1, (uint64_t[]){(uint64_t)INT64_MAX - 7}, QT_I8, 32, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "data offset 32 + size 9223372036854775800 overflows int64");
    gb_free(&b);
    tensor_file(&b, "t", 1, (uint64_t[]){(uint64_t)INT64_MAX - 7}, QT_I8, 0, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "tensor 't' (#0): data offset 64 + 0 + size 9223372036854775800 overflows int64");
    gb_free(&b);
}

/* B8: tensor types: unknown ids, removed ids, and a known type we cannot run (accepted here; the
 * model loader decides per backend). */
TEST(B8_tensor_types) {
    static const struct { uint32_t t; coder_status st; const char *needle; } cases[] = {
        {40, CODER_ERR_UNSUPPORTED, "unknown tensor type 40 at offset 45"}, {41, CODER_ERR_UNSUPPORTED, "unknown tensor type 41"},
        {0xFFFFFFFF, CODER_ERR_FORMAT, "invalid tensor type 4294967295"}, {4, CODER_ERR_FORMAT, "tensor type 4 at offset 45 is a removed"},
        {5, CODER_ERR_FORMAT, "removed"}, {31, CODER_ERR_FORMAT, "removed"}, {37, CODER_ERR_FORMAT, "removed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gb b = {0};
        tensor_file(&b, "t", 1, (uint64_t[]){256}, cases[i].t, 0, 1024);
        int ok = expect_mem(b.p, b.n, NULL, cases[i].st, cases[i].needle);
        gb_free(&b);
        CHECK_MSG(ok, "type %u: %s", cases[i].t, why);
    }
    gb b = {0};
    tensor_file(&b, "iq", 1, (uint64_t[]){512}, 16 /* IQ2_XXS */, 0, 132);
    gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(b.p, b.n, NULL, &f));
    bool ok = gguf_tensor_at(f, 0)->nbytes == 132;
    gguf_close(f);
    gb_free(&b);
    CHECK(ok);
}

/* B9: ne[0] not a multiple of the block size. */
TEST(B9_block_multiple) {
    gb b = {0};
    tensor_file(&b, "q", 2, (uint64_t[]){33, 2}, QT_Q4_0, 0, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "tensor 'q' (#0 at offset 24): ne[0] = 33 is not a multiple of the Q4_0 block size 32");
    gb_free(&b);
    tensor_file(&b, "k", 1, (uint64_t[]){32}, QT_Q4_K, 0, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "Q4_K block size 256");
    gb_free(&b);
}

/* B10: offsets: unaligned, UINT64_MAX, sum overflow, overlapping; out of order and gaps allowed. */
TEST(B10_offsets) {
    gb b = {0};
    tensor_file(&b, "t", 1, (uint64_t[]){8}, QT_F32, 8, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "data offset 8 (field at 49) is not a multiple of the alignment 32");
    gb_free(&b);
    tensor_file(&b, "t", 1, (uint64_t[]){8}, QT_F32, UINT64_MAX, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "data offset 18446744073709551615");
    gb_free(&b);
    tensor_file(&b, "t", 1, (uint64_t[]){8}, QT_F32, UINT64_MAX - 31, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "overflows int64");
    gb_free(&b);
    gb_header(&b, 3, 2, 0);
    gb_info(&b, "a", 1, (uint64_t[]){16}, QT_F32, 0);   /* [0, 64)  */
    gb_info(&b, "b", 1, (uint64_t[]){8}, QT_F32, 32);   /* [32, 64) */
    gb_pad(&b, 32);
    gb_zeros(&b, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "tensor 'b' (data [32, 64)) overlaps tensor 'a' (data [0, 64))");
    gb_free(&b);
    /* out of order with a gap: accepted, pointers follow the offsets */
    gb_header(&b, 3, 2, 0);
    gb_info(&b, "late", 1, (uint64_t[]){8}, QT_F32, 128);
    gb_info(&b, "early", 1, (uint64_t[]){8}, QT_F32, 0);
    gb_pad(&b, 32);
    size_t data = b.n;
    gb_zeros(&b, 160);
    gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(b.p, b.n, NULL, &f));
    bool ok = gguf_find_tensor(f, "late")->data == b.p + data + 128 && gguf_find_tensor(f, "early")->data == b.p + data;
    gguf_close(f);
    gb_free(&b);
    CHECK(ok);
}

/* B11: two I8 tensors of 0x7FFFFFFFFFFFFFC0 bytes (the DATA_MEM_SIZE_OVERFLOW construction). */
TEST(B11_accumulated_overflow) {
    gb b = {0};
    gb_header(&b, 3, 2, 0);
    gb_info(&b, "a", 1, (uint64_t[]){0x7FFFFFFFFFFFFFC0ull}, QT_I8, 0);
    gb_info(&b, "b", 1, (uint64_t[]){0x7FFFFFFFFFFFFFC0ull}, QT_I8, 0x7FFFFFFFFFFFFFC0ull);
    gb_pad(&b, 32);
    gb_zeros(&b, 64);
    EXPECT(&b, CODER_ERR_FORMAT, "tensor 'b' (#1 at offset 57): data offset 9223372036854775744 + size 9223372036854775744 overflows int64");
    gb_free(&b);
}

/* C1: truncation at the named boundaries, in memory, mmap and read modes. */
TEST(C1_truncated_tensors) {
    gb b = {0};
    base_offsets o;
    build_base(&b, 3, &o);
    const struct { size_t n; const char *needle; } cuts[] = {
        {b.n - 1, "tensor 't1' (#1) occupies file bytes [320, 354) but the file is only 353 bytes"},
        {b.n / 2, "tensor 't0' (#0 at offset 150): ne at offset 172"},
        {o.data, "tensor 't0' (#0) occupies file bytes [256, 320) but the file is only 256 bytes"},
        {o.data + 64, "tensor 't1' (#1)"},
    };
    CHECK(o.data == 256 && b.n == 354); /* hand-computed: 24 + 45 + 33 + 48 + 42 + 34 = 226, padded to 256 */
    for (size_t i = 0; i < 4; i++) {
        CHECK_MSG(expect_mem(b.p, cuts[i].n, NULL, CODER_ERR_TRUNCATED, cuts[i].needle), "%s", why);
        for (int mode = 0; mode < 2; mode++)
            CHECK_MSG(expect_file(b.p, cuts[i].n, mode, CODER_ERR_TRUNCATED, cuts[i].needle), "%s", why);
    }
    gb_free(&b);
}

/* C1: every length 0..size-1 of the base file (its last tensor ends at EOF), in all three modes. */
TEST(C1_truncate_every_length) {
    gb b = {0};
    build_base(&b, 3, NULL);
    for (size_t n = 0; n < b.n; n++) {
        CHECK_MSG(expect_mem(b.p, n, NULL, CODER_ERR_TRUNCATED, NULL), "n=%zu: %s", n, why);
        CHECK_MSG(coder_last_error()[0] != 0, "n=%zu: empty message", n);
        for (int mode = 0; mode < 2; mode++) CHECK_MSG(expect_file(b.p, n, mode, CODER_ERR_TRUNCATED, NULL), "%s", why);
    }
    CHECK_MSG(expect_mem(b.p, b.n, NULL, CODER_OK, NULL), "%s", why);
    gb_free(&b);
}

/* C1: a writer-made file ends with the last tensor's padding: cuts inside that padding still
 * hold every tensor, so they open (documented); every shorter cut is TRUNCATED. */
TEST(C1_truncate_writer_file) {
    gguf_writer *w = NULL;
    const uint64_t ne[2] = {32, 3};
    uint8_t q[3 * 34];
    for (size_t i = 0; i < sizeof q; i++) q[i] = (uint8_t)i;
    CHECK_OK(gguf_writer_new(0, &w));
    CHECK_OK(gguf_writer_set_str(w, "general.architecture", "llama", 5));
    CHECK_OK(gguf_writer_set_str_array(w, "k.s", (gguf_str[]){{"ab", 2}, {"c", 1}}, 2));
    CHECK_OK(gguf_writer_add_tensor(w, "a", QT_Q8_0, 2, ne, q, NULL));
    CHECK_OK(gguf_writer_add_tensor(w, "b", QT_Q8_0, 1, ne, q, NULL));
    const char *path = tmp_path("w.gguf");
    CHECK_OK(gguf_writer_write_file(w, path));
    uint64_t end_b = gguf_writer_tensor_file_offset(w, 1) + gguf_writer_tensor_nbytes(w, 1);
    gguf_writer_free(w);
    size_t size;
    uint8_t *bytes = test_read_file(path, &size);
    CHECK(bytes && size > end_b && size % 32 == 0);
    for (size_t n = 0; n < size; n++) {
        coder_status want = n >= end_b ? CODER_OK : CODER_ERR_TRUNCATED;
        CHECK_MSG(expect_mem(bytes, n, NULL, want, NULL), "n=%zu: %s", n, why);
        for (int mode = 0; mode < 2; mode++) CHECK_MSG(expect_file(bytes, n, mode, want, NULL), "%s", why);
    }
    free(bytes);
}

/* C2: trailing garbage after the data is accepted. */
TEST(C2_trailing_garbage) {
    gb b = {0};
    base_offsets o;
    build_base(&b, 3, &o);
    for (int i = 0; i < 1000; i++) gb_u8(&b, (uint8_t)(i * 31));
    gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(b.p, b.n, NULL, &f));
    bool ok = gguf_tensor_count(f) == 2 && gguf_find_tensor(f, "t1")->data == b.p + o.data + 64;
    gguf_close(f);
    gb_free(&b);
    CHECK(ok);
}

/* C3: split shards are refused; inconsistent split keys are malformed. */
TEST(C3_split_keys) {
    gb b = {0};
    gb_header(&b, 3, 0, 2);
    gb_kv_u16(&b, "split.no", 1);
    gb_kv_u16(&b, "split.count", 3);
    EXPECT(&b, CODER_ERR_UNSUPPORTED, "split GGUF shard 2 of 3 (split.no, split.count); merge the shards first");
    gb_free(&b);
    gb_header(&b, 3, 0, 2);
    gb_kv_u16(&b, "split.no", 3);
    gb_kv_u16(&b, "split.count", 3);
    EXPECT(&b, CODER_ERR_FORMAT, "key split.no = 3 is out of range for split.count = 3");
    gb_free(&b);
    gb_header(&b, 3, 0, 1);
    gb_kv_u16(&b, "split.count", 0);
    EXPECT(&b, CODER_ERR_FORMAT, "key split.count is 0");
    gb_free(&b);
    gb_header(&b, 3, 0, 1);
    gb_kv_u16(&b, "split.no", 0);
    EXPECT(&b, CODER_ERR_FORMAT, "key split.no is present without split.count");
    gb_free(&b);
    gb_header(&b, 3, 0, 1);
    gb_kv_str(&b, "split.count", "2");
    EXPECT(&b, CODER_ERR_FORMAT, "key split.count has type STRING, expected");
    gb_free(&b);
    gb_header(&b, 3, 0, 2); /* a "split" of one file is just a file */
    gb_kv_u16(&b, "split.no", 0);
    gb_kv_u16(&b, "split.count", 1);
    EXPECT_OK(&b);
    gb_free(&b);
}

/* C4: read mode copies the file, so truncating it after gguf_open changes nothing we see (an mmap
 * would SIGBUS on the missing pages). */
TEST(C4_truncated_after_open) {
    gb b = {0};
    base_offsets o;
    build_base(&b, 3, &o);
    const char *path = tmp_path("c4.gguf");
    FILE *fp = fopen(path, "wb");
    CHECK(fp && fwrite(b.p, 1, b.n, fp) == b.n && fclose(fp) == 0);
    gguf_open_opts ro = {.use_mmap = false};
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &ro, &f));
    CHECK(truncate(path, 0) == 0);
    const gguf_tensor *t0 = gguf_find_tensor(f, "t0"), *t1 = gguf_find_tensor(f, "t1");
    bool ok = t0 && t1 && memcmp(t0->data, b.p + o.data, 64) == 0 && memcmp(t1->data, b.p + o.data + 64, 34) == 0 &&
              memcmp(gguf_file_bytes(f), b.p, b.n) == 0;
    gguf_str s = {0};
    ok = ok && gguf_get_str(f, "general.architecture", &s, true) == CODER_OK && s.len == 5;
    gguf_close(f);
    gb_free(&b);
    CHECK(ok);
}

/* C6: paths that are not readable regular files. */
TEST(C6_bad_paths) {
    gguf_file *f = (gguf_file *)&why;
    CHECK_STATUS(gguf_open(NULL, NULL, &f), CODER_ERR_INVALID_ARG);
    CHECK(f == NULL && strstr(coder_last_error(), "path is NULL"));
    CHECK_STATUS(gguf_open("", NULL, &f), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "path is empty"));
    CHECK_STATUS(gguf_open("x", NULL, NULL), CODER_ERR_INVALID_ARG);
    for (int mode = 0; mode < 2; mode++) {
        gguf_open_opts o = {.use_mmap = mode == 1};
        CHECK_STATUS(gguf_open(tmp_dir, &o, &f), CODER_ERR_IO);
        CHECK(f == NULL && strstr(coder_last_error(), "is a directory") && strstr(coder_last_error(), tmp_dir));
        CHECK_STATUS(gguf_open("/dev/zero", &o, &f), CODER_ERR_IO);
        CHECK(strstr(coder_last_error(), "'/dev/zero' is not a regular file"));
        CHECK_STATUS(gguf_open("/dev/urandom", &o, &f), CODER_ERR_IO);
        CHECK(strstr(coder_last_error(), "'/dev/urandom' is not a regular file"));
        const char *fifo = tmp_path("fifo");
        unlink(fifo);
        CHECK(mkfifo(fifo, 0600) == 0);
        CHECK_STATUS(gguf_open(fifo, &o, &f), CODER_ERR_IO); /* no writer: must not block */
        CHECK(strstr(coder_last_error(), "not a regular file") && strstr(coder_last_error(), "fifo"));
        unlink(fifo);
        const char *link = tmp_path("dangling");
        unlink(link);
        CHECK(symlink("/nonexistent/target.gguf", link) == 0);
        CHECK_STATUS(gguf_open(link, &o, &f), CODER_ERR_IO);
        CHECK(strstr(coder_last_error(), "cannot open") && strstr(coder_last_error(), "dangling"));
        unlink(link);
        CHECK_STATUS(gguf_open("/nonexistent/model.gguf", &o, &f), CODER_ERR_IO);
        CHECK(strstr(coder_last_error(), "cannot open '/nonexistent/model.gguf': No such file"));
        CHECK_STATUS(gguf_open("/nonexistent/\xff\xfe.gguf", &o, &f), CODER_ERR_IO);
        CHECK(strstr(coder_last_error(), "/nonexistent/\\xFF\\xFE.gguf"));
        char *longp = malloc(5001);
        memset(longp, 'p', 5000);
        longp[0] = '/';
        longp[5000] = 0;
        CHECK_STATUS(gguf_open(longp, &o, &f), CODER_ERR_IO);
        free(longp);
        CHECK(strstr(coder_last_error(), "/ppppppppp"));
        const char *empty = tmp_path("empty.gguf");
        FILE *fp = fopen(empty, "wb");
        CHECK(fp && fclose(fp) == 0);
        CHECK_STATUS(gguf_open(empty, &o, &f), CODER_ERR_TRUNCATED);
        CHECK(strstr(coder_last_error(), "empty.gguf' is empty (0 bytes)"));
        unlink(empty);
        if (geteuid() != 0) { /* root reads anything */
            gb b = {0};
            build_base(&b, 3, NULL);
            const char *locked = tmp_path("locked.gguf");
            fp = fopen(locked, "wb");
            CHECK(fp && fwrite(b.p, 1, b.n, fp) == b.n && fclose(fp) == 0);
            gb_free(&b);
            CHECK(chmod(locked, 0) == 0);
            CHECK_STATUS(gguf_open(locked, &o, &f), CODER_ERR_IO);
            CHECK(strstr(coder_last_error(), "Permission denied"));
            unlink(locked);
        }
    }
}

/* After all of the above, a valid file still opens (no poisoned state). */
TEST(valid_after_bad) {
    gb b = {0};
    build_base(&b, 3, NULL);
    EXPECT_OK(&b);
    CHECK_MSG(expect_file(b.p, b.n, 0, CODER_OK, NULL), "%s", why);
    CHECK_MSG(expect_file(b.p, b.n, 1, CODER_OK, NULL), "%s", why);
    gb_free(&b);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/coder_test_gguf_bad_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(base_file_is_valid);
    RUN(A1_tiny_files);
    RUN(A2_bad_magic);
    RUN(A3_versions);
    RUN(A4_huge_counts);
    RUN(A5_ends_inside_entry);
    RUN(A6_string_lengths);
    RUN(A7_bad_keys);
    RUN(A8_duplicate_key);
    RUN(A9_bad_value_type);
    RUN(A10_bad_array_type);
    RUN(A11_huge_arrays);
    RUN(A12_metadata_budget);
    RUN(A13_alignment);
    RUN(A14_type_confusion);
    RUN(A15_architecture_key);
    RUN(B1_tensor_names);
    RUN(B2_duplicate_tensor);
    RUN(B3_n_dims);
    RUN(B4_bad_dims);
    RUN(B5_element_overflow);
    RUN(B6_byte_size_overflow);
    RUN(B7_size_near_limit);
    RUN(B8_tensor_types);
    RUN(B9_block_multiple);
    RUN(B10_offsets);
    RUN(B11_accumulated_overflow);
    RUN(C1_truncated_tensors);
    RUN(C1_truncate_every_length);
    RUN(C1_truncate_writer_file);
    RUN(C2_trailing_garbage);
    RUN(C3_split_keys);
    RUN(C4_truncated_after_open);
    RUN(C6_bad_paths);
    RUN(valid_after_bad);
    const char *names[] = {"case.gguf", "w.gguf", "c4.gguf"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(tmp_path(names[i]));
    rmdir(tmp_dir);
    return test_summary();
}
