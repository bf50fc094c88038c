/* device.c - one-time GPU discovery with a single clear log message about the choice. */
#include <pthread.h>
#include <stdio.h>

#include "device.h"

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int probed_count;
static char probed_why[256];   /* written once inside pthread_once, read-only afterwards */

static void probe(void) {
#ifdef CODER_HAVE_CUDA
    char name[256] = "";
    probed_count = cuda_device_probe(probed_why, sizeof probed_why, name, sizeof name);
    if (probed_count > 0)
        LOG_INFO("CUDA: %d device(s), device 0: %s", probed_count, name);
    else
        LOG_INFO("CUDA: no usable GPU (%s); running on the CPU", probed_why);
#else
    probed_count = 0;
    snprintf(probed_why, sizeof probed_why, "built without CUDA");
    LOG_INFO("built without CUDA; running on the CPU");
#endif
}

int device_count(void) {
    pthread_once(&probe_once, probe);
    return probed_count;
}

const char *device_unavailable_reason(void) {
    pthread_once(&probe_once, probe);
    return probed_count > 0 ? "" : probed_why;
}
