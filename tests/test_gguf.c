/* test_gguf.c - GGUF round trips: hand-built bytes -> reader; writer -> reader in mmap and read
 * modes (every value and byte compared with the values put in); the streaming writer; copying a
 * vocab's tokenizer.* keys; known facts of the refdata files (cross-checked with an independent
 * Python parse when the test was written); typed getters; allocation failure at every site. */
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_bytes.h"
#include "quant.h"
#include "test.h"

static char tmp_dir[256];

static const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmp_dir, name);
    return buf;
}

/* Deterministic bytes (xorshift) so every tensor has distinct contents. */
static void fill_bytes(uint8_t *p, size_t n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        p[i] = (uint8_t)(x >> 24);
    }
}

/* ---- a hand-built file with one KV of each of the 13 types ------------------------------------ */

static void build_all_types(gb *b) {
    gb_header(b, 3, 0, 15);
    gb_str(b, "t.u8"); gb_u32(b, GGUF_TYPE_UINT8); gb_u8(b, 200);
    gb_str(b, "t.i8"); gb_u32(b, GGUF_TYPE_INT8); gb_u8(b, 0x80);                 /* -128 */
    gb_str(b, "t.u16"); gb_u32(b, GGUF_TYPE_UINT16); gb_u8(b, 0x34); gb_u8(b, 0x12); /* 0x1234 */
    gb_str(b, "t.i16"); gb_u32(b, GGUF_TYPE_INT16); gb_u8(b, 0xFE); gb_u8(b, 0xFF); /* -2 */
    gb_kv_u32(b, "t.u32", 4000000000u);
    gb_kv_i32(b, "t.i32", -7);
    gb_kv_f32(b, "t.f32", 1.5f);
    gb_str(b, "t.bool"); gb_u32(b, GGUF_TYPE_BOOL); gb_u8(b, 1);
    gb_str(b, "t.str"); gb_u32(b, GGUF_TYPE_STRING); gb_strn(b, "h\0\xc3\xa9", 4); /* NUL inside a value is fine */
    gb_str(b, "t.u64"); gb_u32(b, GGUF_TYPE_UINT64); gb_u64(b, 0xFFFFFFFFFFFFFFF0ull);
    gb_str(b, "t.i64"); gb_u32(b, GGUF_TYPE_INT64); gb_u64(b, (uint64_t)-5);
    double d = -2.25;
    uint64_t db;
    memcpy(&db, &d, 8);
    gb_str(b, "t.f64"); gb_u32(b, GGUF_TYPE_FLOAT64); gb_u64(b, db);
    gb_str(b, "t.arr_i16"); gb_u32(b, GGUF_TYPE_ARRAY); gb_u32(b, GGUF_TYPE_INT16); gb_u64(b, 3);
    gb_u8(b, 1); gb_u8(b, 0); gb_u8(b, 0xFF); gb_u8(b, 0xFF); gb_u8(b, 0); gb_u8(b, 0x80); /* 1, -1, -32768 */
    gb_str(b, "t.arr_str"); gb_u32(b, GGUF_TYPE_ARRAY); gb_u32(b, GGUF_TYPE_STRING); gb_u64(b, 3);
    gb_str(b, "a"); gb_str(b, ""); gb_str(b, "\xe4\xb8\xad");
    gb_str(b, "t.arr_empty"); gb_u32(b, GGUF_TYPE_ARRAY); gb_u32(b, GGUF_TYPE_FLOAT64); gb_u64(b, 0);
}

/* Checks the values of build_all_types through the typed getters. */
/* n_kv: the expected KV count, or 0 when the t.* keys were copied into a larger file. */
static int check_all_types(const gguf_file *f, size_t n_kv, char *why, size_t cap) {
#define T_ASSERT(c) do { if (!(c)) { snprintf(why, cap, "line %d: %s (%s)", __LINE__, #c, coder_last_error()); return 0; } } while (0)
    uint32_t u32 = 0; int32_t i32 = 0; uint64_t u64 = 0; float f32 = 0; bool bo = false; gguf_str s = {0};
    T_ASSERT(n_kv == 0 || gguf_kv_count(f) == n_kv);
    T_ASSERT(gguf_get_u32(f, "t.u8", &u32, true) == CODER_OK && u32 == 200);
    T_ASSERT(gguf_get_i32(f, "t.i8", &i32, true) == CODER_OK && i32 == -128);
    T_ASSERT(gguf_get_u32(f, "t.u16", &u32, true) == CODER_OK && u32 == 0x1234);
    T_ASSERT(gguf_get_i32(f, "t.i16", &i32, true) == CODER_OK && i32 == -2);
    T_ASSERT(gguf_get_u32(f, "t.u32", &u32, true) == CODER_OK && u32 == 4000000000u);
    T_ASSERT(gguf_get_u64(f, "t.u32", &u64, true) == CODER_OK && u64 == 4000000000u);
    T_ASSERT(gguf_get_i32(f, "t.i32", &i32, true) == CODER_OK && i32 == -7);
    T_ASSERT(gguf_get_f32(f, "t.f32", &f32, true) == CODER_OK && f32 == 1.5f);
    T_ASSERT(gguf_get_bool(f, "t.bool", &bo, true) == CODER_OK && bo);
    T_ASSERT(gguf_get_str(f, "t.str", &s, true) == CODER_OK && s.len == 4 && memcmp(s.ptr, "h\0\xc3\xa9", 4) == 0);
    T_ASSERT(gguf_get_u64(f, "t.u64", &u64, true) == CODER_OK && u64 == 0xFFFFFFFFFFFFFFF0ull);
    T_ASSERT(gguf_get_i32(f, "t.i64", &i32, true) == CODER_OK && i32 == -5);
    T_ASSERT(gguf_get_f32(f, "t.f64", &f32, true) == CODER_OK && f32 == -2.25f);
    uint32_t et; const void *data; uint64_t n;
    T_ASSERT(gguf_get_array(f, "t.arr_i16", &et, &data, &n, true) == CODER_OK && et == GGUF_TYPE_INT16 && n == 3);
    int16_t v[3];
    memcpy(v, data, 6);
    T_ASSERT(v[0] == 1 && v[1] == -1 && v[2] == -32768);
    const gguf_str *items;
    T_ASSERT(gguf_get_str_array(f, "t.arr_str", &items, &n, true) == CODER_OK && n == 3);
    T_ASSERT(items[0].len == 1 && items[0].ptr[0] == 'a' && items[1].len == 0 && items[2].len == 3 &&
             memcmp(items[2].ptr, "\xe4\xb8\xad", 3) == 0);
    T_ASSERT(gguf_get_array(f, "t.arr_empty", &et, &data, &n, true) == CODER_OK && et == GGUF_TYPE_FLOAT64 && n == 0);
    T_ASSERT(gguf_kv_type(f, (size_t)gguf_find_key(f, "t.i64")) == GGUF_TYPE_INT64);
    T_ASSERT(n_kv == 0 || strcmp(gguf_kv_key(f, 0), "t.u8") == 0);
    return 1;
#undef T_ASSERT
}

TEST(hand_built_all_types) {
    gb b = {0};
    build_all_types(&b);
    gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(b.p, b.n, NULL, &f));
    char why[512] = "";
    int ok = check_all_types(f, 15, why, sizeof why);
    CHECK(gguf_tensor_count(f) == 0 && gguf_version(f) == 3 && gguf_alignment(f) == 32);
    gguf_close(f);
    gb_free(&b);
    CHECK_MSG(ok, "%s", why);
}

TEST(getters_type_rules) {
    gb b = {0};
    build_all_types(&b);
    gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(b.p, b.n, NULL, &f));
    uint32_t u32 = 77; int32_t i32; uint64_t u64; float f32; bool bo; gguf_str s; const gguf_str *items; uint64_t n;
    coder_status st[12];
    st[0] = gguf_get_u32(f, "t.i8", &u32, true);       /* -128 does not fit u32 */
    bool m0 = strstr(coder_last_error(), "key t.i8 has type INT8") != NULL;
    st[1] = gguf_get_u32(f, "t.u64", &u32, true);      /* too large */
    st[2] = gguf_get_i32(f, "t.u32", &i32, true);      /* 4e9 > INT32_MAX */
    st[3] = gguf_get_u64(f, "t.i64", &u64, true);      /* negative */
    st[4] = gguf_get_u32(f, "t.str", &u32, true);      /* string as int */
    bool m4 = strstr(coder_last_error(), "key t.str has type STRING, expected") != NULL;
    st[5] = gguf_get_u32(f, "t.bool", &u32, true);     /* bool is not an integer */
    st[6] = gguf_get_u32(f, "t.f32", &u32, true);      /* float is not an integer */
    st[7] = gguf_get_f32(f, "t.u32", &f32, true);      /* int is not a float */
    st[8] = gguf_get_bool(f, "t.u8", &bo, true);
    st[9] = gguf_get_str(f, "t.arr_str", &s, true);
    st[10] = gguf_get_str_array(f, "t.arr_i16", &items, &n, true);
    bool m10 = strstr(coder_last_error(), "key t.arr_i16 has type ARRAY[INT16], expected ARRAY[STRING]") != NULL;
    st[11] = gguf_get_u32(f, "no.such.key", &u32, true);
    bool m11 = strstr(coder_last_error(), "missing key no.such.key") != NULL;
    coder_status absent = gguf_get_u32(f, "no.such.key", &u32, false);
    gguf_close(f);
    gb_free(&b);
    for (int i = 0; i < 12; i++) CHECK_MSG(st[i] == CODER_ERR_FORMAT, "case %d: status %d", i, st[i]);
    CHECK(m0 && m4 && m10 && m11);
    CHECK(absent == CODER_OK && u32 == 77); /* untouched when absent and not required */
}

/* ---- writer -> reader ---------------------------------------------------------------------- */

typedef struct {
    const char *name;
    uint32_t type, n_dims;
    uint64_t ne[4];
    uint64_t nbytes; /* computed by hand from FORMATS.md's table */
} spec;

static const spec specs[] = {
    {"tok_embd.weight", QT_F32, 2, {8, 3, 1, 1}, 8 * 3 * 4},
    {"a.f16", QT_F16, 1, {17, 1, 1, 1}, 34},
    {"blk.0.q8", QT_Q8_0, 2, {64, 2, 1, 1}, 2 * 2 * 34},
    {"blk.0.q4k", QT_Q4_K, 2, {256, 3, 1, 1}, 3 * 144},
    {"blk.0.q6k", QT_Q6_K, 3, {512, 1, 2, 1}, 2 * 2 * 210},
    {"i32.cube", QT_I32, 3, {5, 1, 2, 1}, 40},
    {"four.d", QT_BF16, 4, {2, 3, 2, 2}, 48},
};
#define N_SPECS (sizeof specs / sizeof specs[0])

static uint8_t *spec_data[N_SPECS];

static coder_status write_model(const char *path, uint32_t alignment, const gguf_file *src_kvs) {
    gguf_writer *w = NULL;
    TRY(gguf_writer_new(alignment, &w));
    coder_status st = CODER_OK;
    const uint8_t bools[3] = {1, 0, 1};
    const float fl[4] = {0.5f, -1.0f, 3.25f, 1e-7f};
    const int32_t ints[3] = {-1, 0, 2147483647};
    const gguf_str strs[4] = {{"alpha", 5}, {"", 0}, {"\xce\xb2\x00x", 4}, {"last", 4}};
    if (!st) st = gguf_writer_set_str(w, "general.architecture", "llama", 5);
    if (!st) st = gguf_writer_set_u32(w, "w.u32", 123456789u);
    if (!st) st = gguf_writer_set_i32(w, "w.i32", -42);
    if (!st) st = gguf_writer_set_u64(w, "w.u64", 1ull << 40);
    if (!st) st = gguf_writer_set_f32(w, "w.f32", -0.125f);
    if (!st) st = gguf_writer_set_bool(w, "w.bool", false);
    if (!st) st = gguf_writer_set_array(w, "w.arr_f32", GGUF_TYPE_FLOAT32, fl, 4);
    if (!st) st = gguf_writer_set_array(w, "w.arr_i32", GGUF_TYPE_INT32, ints, 3);
    if (!st) st = gguf_writer_set_array(w, "w.arr_bool", GGUF_TYPE_BOOL, bools, 3);
    if (!st) st = gguf_writer_set_str_array(w, "w.arr_str", strs, 4);
    if (!st && src_kvs) st = gguf_writer_copy_kvs(w, src_kvs, "t.");
    for (size_t i = 0; i < N_SPECS && !st; i++)
        st = gguf_writer_add_tensor(w, specs[i].name, specs[i].type, specs[i].n_dims, specs[i].ne, spec_data[i], NULL);
    if (!st) st = gguf_writer_write_file(w, path);
    gguf_writer_free(w);
    return st;
}

static int check_model(const gguf_file *f, uint32_t alignment, char *why, size_t cap) {
#define T_ASSERT(c) do { if (!(c)) { snprintf(why, cap, "line %d: %s (%s)", __LINE__, #c, coder_last_error()); return 0; } } while (0)
    uint32_t u32; int32_t i32; uint64_t u64, n; float f32; bool bo = true; gguf_str s;
    const void *data; uint32_t et; const gguf_str *items;
    T_ASSERT(gguf_version(f) == 3 && gguf_alignment(f) == alignment);
    T_ASSERT(gguf_get_str(f, "general.architecture", &s, true) == CODER_OK && s.len == 5 && !memcmp(s.ptr, "llama", 5));
    T_ASSERT(gguf_get_u32(f, "w.u32", &u32, true) == CODER_OK && u32 == 123456789u);
    T_ASSERT(gguf_get_i32(f, "w.i32", &i32, true) == CODER_OK && i32 == -42);
    T_ASSERT(gguf_get_u64(f, "w.u64", &u64, true) == CODER_OK && u64 == 1ull << 40);
    T_ASSERT(gguf_get_f32(f, "w.f32", &f32, true) == CODER_OK && f32 == -0.125f);
    T_ASSERT(gguf_get_bool(f, "w.bool", &bo, true) == CODER_OK && !bo);
    T_ASSERT(gguf_get_array(f, "w.arr_f32", &et, &data, &n, true) == CODER_OK && et == GGUF_TYPE_FLOAT32 && n == 4);
    float fl[4];
    memcpy(fl, data, 16);
    T_ASSERT(fl[0] == 0.5f && fl[1] == -1.0f && fl[2] == 3.25f && fl[3] == 1e-7f);
    T_ASSERT(gguf_get_array(f, "w.arr_i32", &et, &data, &n, true) == CODER_OK && et == GGUF_TYPE_INT32 && n == 3);
    int32_t in[3];
    memcpy(in, data, 12);
    T_ASSERT(in[0] == -1 && in[1] == 0 && in[2] == 2147483647);
    T_ASSERT(gguf_get_array(f, "w.arr_bool", &et, &data, &n, true) == CODER_OK && et == GGUF_TYPE_BOOL && n == 3);
    T_ASSERT(memcmp(data, "\1\0\1", 3) == 0);
    T_ASSERT(gguf_get_str_array(f, "w.arr_str", &items, &n, true) == CODER_OK && n == 4);
    T_ASSERT(items[0].len == 5 && !memcmp(items[0].ptr, "alpha", 5) && items[1].len == 0);
    T_ASSERT(items[2].len == 4 && !memcmp(items[2].ptr, "\xce\xb2\x00x", 4) && items[3].len == 4);
    T_ASSERT(gguf_tensor_count(f) == N_SPECS);
    /* gguf-py layout: tensors in order, each padded to the alignment. */
    uint64_t off = 0;
    for (size_t i = 0; i < N_SPECS; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        T_ASSERT(t && strcmp(t->name, specs[i].name) == 0);
        T_ASSERT(gguf_find_tensor(f, specs[i].name) == t);
        T_ASSERT(t->type == specs[i].type && t->n_dims == specs[i].n_dims);
        for (int j = 0; j < 4; j++) T_ASSERT(t->ne[j] == specs[i].ne[j]);
        T_ASSERT(t->n_elements == specs[i].ne[0] * specs[i].ne[1] * specs[i].ne[2] * specs[i].ne[3]);
        T_ASSERT(t->nbytes == specs[i].nbytes);
        T_ASSERT(t->offset == off);
        T_ASSERT(t->data == (const uint8_t *)gguf_file_bytes(f) + gguf_data_offset(f) + t->offset);
        T_ASSERT(((uintptr_t)t->data - (uintptr_t)gguf_file_bytes(f)) % alignment == 0);
        T_ASSERT(memcmp(t->data, spec_data[i], specs[i].nbytes) == 0);
        off += (specs[i].nbytes + alignment - 1) / alignment * alignment;
    }
    T_ASSERT(gguf_data_offset(f) % alignment == 0);
    T_ASSERT(gguf_file_size(f) == gguf_data_offset(f) + off);
    T_ASSERT(gguf_find_tensor(f, "absent") == NULL);
    return 1;
#undef T_ASSERT
}

static void make_spec_data(void) {
    for (size_t i = 0; i < N_SPECS; i++) {
        if (!spec_data[i]) spec_data[i] = malloc(specs[i].nbytes);
        fill_bytes(spec_data[i], specs[i].nbytes, (uint32_t)i + 1);
    }
}

TEST(write_read_round_trip) {
    make_spec_data();
    gb b = {0};
    build_all_types(&b);
    gguf_file *src = NULL;
    CHECK_OK(gguf_open_memory(b.p, b.n, NULL, &src));
    static const uint32_t aligns[] = {32, 64, 8};
    const char *path = tmp_path("rt.gguf");
    for (size_t a = 0; a < 3; a++) {
        CHECK_OK(write_model(path, aligns[a], src));
        for (int mode = 0; mode < 2; mode++) {
            gguf_open_opts o = {.use_mmap = mode == 1};
            gguf_file *f = NULL;
            CHECK_OK(gguf_open(path, &o, &f));
            char why[512] = "";
            int ok = check_model(f, aligns[a], why, sizeof why) && check_all_types(f, 0, why, sizeof why);
            /* general.alignment is written only when it is not the default */
            ok = ok && (gguf_find_key(f, "general.alignment") >= 0) == (aligns[a] != 32);
            gguf_close(f);
            CHECK_MSG(ok, "alignment %u mode %d: %s", aligns[a], mode, why);
        }
    }
    gguf_close(src);
    gb_free(&b);
}

/* Streaming form: tensors written in reverse order with pwrite. */
TEST(streaming_round_trip) {
    make_spec_data();
    const char *path = tmp_path("stream.gguf");
    gguf_writer *w = NULL;
    const uint32_t align = 64;
    const float fl[4] = {0.5f, -1.0f, 3.25f, 1e-7f};
    const int32_t ints[3] = {-1, 0, 2147483647};
    const uint8_t bools[3] = {1, 0, 1};
    const gguf_str strs[4] = {{"alpha", 5}, {"", 0}, {"\xce\xb2\x00x", 4}, {"last", 4}};
    CHECK_OK(gguf_writer_new(align, &w));
    CHECK_OK(gguf_writer_set_str(w, "general.architecture", "llama", 5));
    CHECK_OK(gguf_writer_set_u32(w, "w.u32", 123456789u));
    CHECK_OK(gguf_writer_set_i32(w, "w.i32", -42));
    CHECK_OK(gguf_writer_set_u64(w, "w.u64", 1ull << 40));
    CHECK_OK(gguf_writer_set_f32(w, "w.f32", -0.125f));
    CHECK_OK(gguf_writer_set_bool(w, "w.bool", false));
    CHECK_OK(gguf_writer_set_array(w, "w.arr_f32", GGUF_TYPE_FLOAT32, fl, 4));
    CHECK_OK(gguf_writer_set_array(w, "w.arr_i32", GGUF_TYPE_INT32, ints, 3));
    CHECK_OK(gguf_writer_set_array(w, "w.arr_bool", GGUF_TYPE_BOOL, bools, 3));
    CHECK_OK(gguf_writer_set_str_array(w, "w.arr_str", strs, 4));
    for (size_t i = 0; i < N_SPECS; i++) {
        size_t idx = 99;
        CHECK_OK(gguf_writer_add_tensor(w, specs[i].name, specs[i].type, specs[i].n_dims, specs[i].ne, NULL, &idx));
        CHECK(idx == i);
        CHECK(gguf_writer_tensor_nbytes(w, i) == specs[i].nbytes);
    }
    int fd = -1;
    CHECK_OK(gguf_writer_begin(w, path, &fd));
    CHECK(fd >= 0);
    CHECK_STATUS(gguf_writer_set_u32(w, "late.key", 1), CODER_ERR_STATE);
    CHECK_STATUS(gguf_writer_add_tensor(w, "late", QT_F32, 1, (uint64_t[]){1}, NULL, NULL), CODER_ERR_STATE);
    for (size_t k = N_SPECS; k-- > 0;) {
        uint64_t off = gguf_writer_tensor_file_offset(w, k);
        CHECK(off % align == 0);
        CHECK(pwrite(fd, spec_data[k], specs[k].nbytes, (off_t)off) == (ssize_t)specs[k].nbytes);
    }
    CHECK(gguf_writer_tensor_file_offset(w, N_SPECS) == UINT64_MAX);
    CHECK_OK(gguf_writer_end(w));
    gguf_writer_free(w);
    for (int mode = 0; mode < 2; mode++) {
        gguf_open_opts o = {.use_mmap = mode == 1};
        gguf_file *f = NULL;
        CHECK_OK(gguf_open(path, &o, &f));
        char why[512] = "";
        int ok = check_model(f, align, why, sizeof why);
        gguf_close(f);
        CHECK_MSG(ok, "mode %d: %s", mode, why);
    }
}

/* A >2 GiB sparse file through the streaming form: 64-bit offsets end to end (mmap mode, so the
 * zero pages are never read). */
TEST(streaming_large_sparse) {
    const char *path = tmp_path("big.gguf");
    gguf_writer *w = NULL;
    const uint64_t big = (1ull << 31) + 32, small = 64;
    float vals[64];
    for (int i = 0; i < 64; i++) vals[i] = (float)i * 0.5f;
    CHECK_OK(gguf_writer_new(0, &w));
    CHECK_OK(gguf_writer_add_tensor(w, "big.i8", QT_I8, 1, &big, NULL, NULL));
    CHECK_OK(gguf_writer_add_tensor(w, "small.f32", QT_F32, 1, &small, NULL, NULL));
    int fd;
    coder_status st = gguf_writer_begin(w, path, &fd);
    if (st != CODER_OK) {
        gguf_writer_free(w);
        SKIP("cannot create a 2 GiB sparse file here: %s", coder_last_error());
    }
    uint64_t off = gguf_writer_tensor_file_offset(w, 1);
    CHECK(off > big);
    CHECK(pwrite(fd, vals, sizeof vals, (off_t)off) == (ssize_t)sizeof vals);
    CHECK_OK(gguf_writer_end(w));
    gguf_writer_free(w);
    gguf_open_opts o = {.use_mmap = true};
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &o, &f));
    const gguf_tensor *t = gguf_find_tensor(f, "small.f32");
    bool ok = t && t->offset == (big + 31) / 32 * 32 && memcmp(t->data, vals, sizeof vals) == 0 &&
              gguf_find_tensor(f, "big.i8")->nbytes == big && gguf_file_size(f) == off + 256;
    gguf_close(f);
    unlink(path);
    CHECK(ok);
}

TEST(writer_rejects_bad_calls) {
    gguf_writer *w = NULL;
    CHECK_STATUS(gguf_writer_new(12, &w), CODER_ERR_INVALID_ARG);
    CHECK(w == NULL);
    CHECK_STATUS(gguf_writer_new(1u << 21, &w), CODER_ERR_INVALID_ARG);
    CHECK_OK(gguf_writer_new(0, &w));
    CHECK_OK(gguf_writer_set_u32(w, "a.b", 1));
    CHECK_STATUS(gguf_writer_set_u32(w, "a.b", 2), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "duplicate key a.b"));
    CHECK_STATUS(gguf_writer_set_u32(w, "general.alignment", 64), CODER_ERR_INVALID_ARG);
    CHECK_STATUS(gguf_writer_set_u32(w, "", 1), CODER_ERR_INVALID_ARG);
    CHECK_STATUS(gguf_writer_set_u32(w, "bad\nkey", 1), CODER_ERR_INVALID_ARG);
    CHECK_STATUS(gguf_writer_set_array(w, "a.s", GGUF_TYPE_STRING, "x", 1), CODER_ERR_INVALID_ARG);
    CHECK_STATUS(gguf_writer_set_array(w, "a.b2", GGUF_TYPE_BOOL, "\2", 1), CODER_ERR_INVALID_ARG);
    uint64_t ne[2] = {33, 2};
    CHECK_STATUS(gguf_writer_add_tensor(w, "q", QT_Q4_0, 2, ne, NULL, NULL), CODER_ERR_INVALID_ARG);
    CHECK(strstr(coder_last_error(), "block size 32"));
    ne[0] = 32;
    CHECK_STATUS(gguf_writer_add_tensor(w, "q", QT_Q4_0, 5, ne, NULL, NULL), CODER_ERR_INVALID_ARG);
    CHECK_STATUS(gguf_writer_add_tensor(w, "q", 4, 2, ne, NULL, NULL), CODER_ERR_INVALID_ARG);
    CHECK_STATUS(gguf_writer_add_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123", QT_F32, 1, ne, NULL, NULL),
                 CODER_ERR_INVALID_ARG);
    CHECK_OK(gguf_writer_add_tensor(w, "q", QT_Q4_0, 2, ne, NULL, NULL));
    CHECK_STATUS(gguf_writer_add_tensor(w, "q", QT_Q4_0, 2, ne, NULL, NULL), CODER_ERR_INVALID_ARG);
    /* write_file needs every tensor's data */
    CHECK_STATUS(gguf_writer_write_file(w, tmp_path("nodata.gguf")), CODER_ERR_INVALID_ARG);
    CHECK_STATUS(gguf_writer_end(w), CODER_ERR_STATE);
    CHECK_STATUS(gguf_writer_begin(w, "/nonexistent-dir/x.gguf", NULL), CODER_ERR_IO);
    CHECK(strstr(coder_last_error(), "/nonexistent-dir/x.gguf"));
    gguf_writer_free(w);
    gguf_writer_free(NULL);
}

/* Known facts of the refdata model (checked with an independent Python parse of the file). */
TEST(refdata_tiny_llama) {
    const char *rd = test_refdata();
    if (!rd) SKIP("refdata not found (set CODER_REFDATA)");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/tiny-llama-q4_k_m.gguf", rd);
    for (int mode = 0; mode < 2; mode++) {
        gguf_open_opts o = {.use_mmap = mode == 1};
        gguf_file *f = NULL;
        CHECK_OK(gguf_open(path, &o, &f));
        gguf_str arch = {0};
        uint32_t blocks = 0, vocab = 0, ftype = 0;
        const gguf_str *tokens = NULL;
        uint64_t n_tokens = 0, n_scores = 0;
        uint32_t et = 0;
        const void *scores;
        CHECK(gguf_version(f) == 3 && gguf_kv_count(f) == 24 && gguf_tensor_count(f) == 39);
        CHECK(gguf_file_size(f) == 13869024 && gguf_data_offset(f) == 726240);
        CHECK_OK(gguf_get_str(f, "general.architecture", &arch, true));
        CHECK(arch.len == 5 && memcmp(arch.ptr, "llama", 5) == 0);
        CHECK_OK(gguf_get_u32(f, "llama.block_count", &blocks, true));
        CHECK_OK(gguf_get_u32(f, "llama.vocab_size", &vocab, true));
        CHECK_OK(gguf_get_u32(f, "general.file_type", &ftype, true));
        CHECK(blocks == 4 && vocab == 32000 && ftype == 15);
        CHECK_OK(gguf_get_str_array(f, "tokenizer.ggml.tokens", &tokens, &n_tokens, true));
        CHECK(n_tokens == vocab);
        CHECK(tokens[1].len == 3 && memcmp(tokens[1].ptr, "<s>", 3) == 0);
        CHECK_OK(gguf_get_array(f, "tokenizer.ggml.scores", &et, &scores, &n_scores, true));
        CHECK(et == GGUF_TYPE_FLOAT32 && n_scores == n_tokens);
        int n_q4k = 0, n_f32 = 0, n_q6k = 0;
        for (size_t i = 0; i < gguf_tensor_count(f); i++) {
            uint32_t ty = gguf_tensor_at(f, i)->type;
            n_q4k += ty == QT_Q4_K;
            n_f32 += ty == QT_F32;
            n_q6k += ty == QT_Q6_K;
        }
        CHECK(n_q4k == 25 && n_f32 == 9 && n_q6k == 5);
        const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
        CHECK(emb && emb->type == QT_Q4_K && emb->n_dims == 2 && emb->ne[0] == 256 && emb->ne[1] == 32000);
        CHECK(emb->offset == 6721024 && emb->nbytes == 32000ull * 144);
        const gguf_tensor *out = gguf_find_tensor(f, "output.weight");
        CHECK(out && out->type == QT_Q6_K && out->offset == 0 && out->nbytes == 32000ull * 210);
        gguf_close(f);
    }
}

/* A vocab file (0 tensors, no padding after the KVs): facts, then copy its tokenizer.* keys into
 * a new file and compare every token and merge with the source. */
TEST(refdata_vocab_copy) {
    const char *rd = test_refdata();
    if (!rd) SKIP("refdata not found (set CODER_REFDATA)");
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-qwen2.gguf", rd);
    gguf_file *v = NULL;
    CHECK_OK(gguf_open(path, NULL, &v));
    const gguf_str *tok, *tok2, *mer, *mer2;
    uint64_t nt, nt2, nm, nm2;
    uint32_t eos = 0;
    CHECK(gguf_tensor_count(v) == 0 && gguf_kv_count(v) == 21);
    CHECK_OK(gguf_get_str_array(v, "tokenizer.ggml.tokens", &tok, &nt, true));
    CHECK_OK(gguf_get_str_array(v, "tokenizer.ggml.merges", &mer, &nm, true));
    CHECK_OK(gguf_get_u32(v, "tokenizer.ggml.eos_token_id", &eos, true));
    CHECK(nt == 151936 && nm == 151387 && eos == 151645);
    CHECK(tok[0].len == 1 && tok[0].ptr[0] == '!');
    gguf_writer *w = NULL;
    CHECK_OK(gguf_writer_new(0, &w));
    CHECK_OK(gguf_writer_set_str(w, "general.architecture", "qwen2", 5));
    CHECK_OK(gguf_writer_copy_kvs(w, v, "tokenizer."));
    const float one = 1.0f;
    const uint64_t ne1 = 1;
    CHECK_OK(gguf_writer_add_tensor(w, "x", QT_F32, 1, &ne1, &one, NULL));
    const char *out = tmp_path("vocab_copy.gguf");
    CHECK_OK(gguf_writer_write_file(w, out));
    gguf_writer_free(w);
    gguf_file *c = NULL;
    CHECK_OK(gguf_open(out, NULL, &c));
    CHECK(gguf_kv_count(c) == 1 + 10); /* architecture + the 10 tokenizer.* keys */
    CHECK(gguf_find_key(c, "qwen2.block_count") < 0);
    CHECK_OK(gguf_get_str_array(c, "tokenizer.ggml.tokens", &tok2, &nt2, true));
    CHECK_OK(gguf_get_str_array(c, "tokenizer.ggml.merges", &mer2, &nm2, true));
    CHECK(nt2 == nt && nm2 == nm);
    for (uint64_t i = 0; i < nt; i++) CHECK_MSG(tok2[i].len == tok[i].len && !memcmp(tok2[i].ptr, tok[i].ptr, tok[i].len), "token %llu", (unsigned long long)i);
    for (uint64_t i = 0; i < nm; i++) CHECK_MSG(mer2[i].len == mer[i].len && !memcmp(mer2[i].ptr, mer[i].ptr, mer[i].len), "merge %llu", (unsigned long long)i);
    gguf_str tmpl, tmpl2;
    CHECK_OK(gguf_get_str(v, "tokenizer.chat_template", &tmpl, true));
    CHECK_OK(gguf_get_str(c, "tokenizer.chat_template", &tmpl2, true));
    CHECK(tmpl.len == tmpl2.len && !memcmp(tmpl.ptr, tmpl2.ptr, tmpl.len));
    gguf_close(c);
    gguf_close(v);
}

/* Allocation failure at every site of open (memory) and of writing: NOMEM, nothing leaked (LSan). */
TEST(alloc_failure_every_site) {
    make_spec_data();
    gb b = {0};
    build_all_types(&b);
    gguf_file *src = NULL;
    CHECK_OK(gguf_open_memory(b.p, b.n, NULL, &src));
    const char *path = tmp_path("af.gguf");
    int n_fail = 0;
    for (long n = 0;; n++) {
        coder_alloc_fail_after(n);
        coder_status st = write_model(path, 32, src);
        coder_alloc_fail_after(-1);
        if (st == CODER_OK) break;
        CHECK_MSG(st == CODER_ERR_NOMEM, "write, allocation %ld: status %d (%s)", n, st, coder_last_error());
        n_fail++;
    }
    CHECK(n_fail > 10);
    size_t size;
    void *bytes = test_read_file(path, &size);
    CHECK(bytes);
    n_fail = 0;
    for (long n = 0;; n++) {
        gguf_file *f = (gguf_file *)&n;
        coder_alloc_fail_after(n);
        coder_status st = gguf_open_memory(bytes, size, NULL, &f);
        coder_alloc_fail_after(-1);
        if (st == CODER_OK) {
            gguf_close(f);
            break;
        }
        CHECK_MSG(st == CODER_ERR_NOMEM && f == NULL, "open, allocation %ld: status %d (%s)", n, st, coder_last_error());
        n_fail++;
    }
    CHECK(n_fail > 10);
    free(bytes);
    gguf_close(src);
    gb_free(&b);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/coder_test_gguf_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(hand_built_all_types);
    RUN(getters_type_rules);
    RUN(write_read_round_trip);
    RUN(streaming_round_trip);
    RUN(streaming_large_sparse);
    RUN(writer_rejects_bad_calls);
    RUN(refdata_tiny_llama);
    RUN(refdata_vocab_copy);
    RUN(alloc_failure_every_site);
    for (size_t i = 0; i < N_SPECS; i++) free(spec_data[i]);
    const char *names[] = {"rt.gguf", "stream.gguf", "big.gguf", "vocab_copy.gguf", "af.gguf", "nodata.gguf"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(tmp_path(names[i]));
    rmdir(tmp_dir);
    return test_summary();
}
