/* fuzz_gguf.c - libFuzzer target for the GGUF reader (gguf_open_memory over the input bytes).
 * On success every typed getter is called on every key and every tensor's bytes are touched:
 * an accepted file must have all of them inside the input (ASan sees any read outside it). */
#include <stdint.h>

#include "fuzz_common.h"
#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f = (gguf_file *)0x1;
    coder_status st = gguf_open_memory(data, size, NULL, &f);
    fuzz_check_status(st, "gguf_open_memory");
    if (st != CODER_OK) {
        if (f != NULL) abort();
        return 0;
    }
    volatile unsigned sink = 0;
    for (size_t i = 0; i < gguf_kv_count(f); i++) {
        const char *key = gguf_kv_key(f, i);
        if (gguf_find_key(f, key) != (long)i) abort();     /* keys are unique */
        uint32_t u32; int32_t i32; uint64_t u64; float f32; bool b; gguf_str s;
        uint32_t et; const void *arr; uint64_t cnt; const gguf_str *items;
        fuzz_check_status(gguf_get_u32(f, key, &u32, true), "gguf_get_u32");
        fuzz_check_status(gguf_get_i32(f, key, &i32, true), "gguf_get_i32");
        fuzz_check_status(gguf_get_u64(f, key, &u64, true), "gguf_get_u64");
        fuzz_check_status(gguf_get_f32(f, key, &f32, true), "gguf_get_f32");
        fuzz_check_status(gguf_get_bool(f, key, &b, true), "gguf_get_bool");
        if (gguf_get_str(f, key, &s, true) == CODER_OK && s.len) sink += (uint8_t)s.ptr[s.len - 1];
        if (gguf_get_array(f, key, &et, &arr, &cnt, true) == CODER_OK && cnt) {
            size_t es = gguf_type_size(et);
            sink += ((const uint8_t *)arr)[cnt * es - 1];
        }
        if (gguf_get_str_array(f, key, &items, &cnt, true) == CODER_OK)
            for (uint64_t j = 0; j < cnt; j++)
                if (items[j].len) sink += (uint8_t)items[j].ptr[items[j].len - 1];
        uint32_t type; const void *raw; uint64_t len;
        fuzz_check_status(gguf_kv_raw(f, i, &type, &raw, &len), "gguf_kv_raw");
    }
    for (size_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (gguf_find_tensor(f, t->name) != t) abort();
        const uint8_t *p = t->data;
        if (p < data || t->nbytes == 0 || t->nbytes > size || p + t->nbytes > data + size) abort();
        sink += p[0] + p[t->nbytes - 1];
    }
    (void)sink;
    gguf_close(f);
    return 0;
}
