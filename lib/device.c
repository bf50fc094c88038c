/* device.c - one-time GPU discovery with a single clear log message about the choice. */
#include <pthread.h>
#include <stdio.h>

#include "device.h"

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int probed_count;

static void probe(void) {
#ifdef CODER_HAVE_CUDA
    char why[256] = "", name[256] = "";
    probed_count = cuda_device_probe(why, sizeof why, name, sizeof name);
    if (probed_count > 0)
        LOG_INFO("CUDA: %d device(s), device 0: %s", probed_count, name);
    else
        LOG_INFO("CUDA: no usable GPU (%s); running on the CPU", why);
#else
    probed_count = 0;
    LOG_INFO("built without CUDA; running on the CPU");
#endif
}

int device_count(void) {
    pthread_once(&probe_once, probe);
    return probed_count;
}
