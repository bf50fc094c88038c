/* device.h - GPU discovery shared by the library and the CUDA backend (cuda/backend.cu). The
 * library builds and runs without CUDA: then, or when no device/driver is present, it says so once
 * through the log callback and runs on the CPU. */
#ifndef CODER_DEVICE_H
#define CODER_DEVICE_H

#include "core.h"

/* Number of usable CUDA devices (0 when built without CUDA, without a driver or without a GPU).
 * The first call logs the reason for 0 once (INFO) and the device name otherwise. Thread-safe. */
int device_count(void);
/* Why device_count() is 0 ("built without CUDA", the driver's error, ...); "" when a device exists. */
const char *device_unavailable_reason(void);

#ifdef CODER_HAVE_CUDA
/* Implemented in cuda/backend.cu. Returns the device count, or 0 with a reason in why. */
int cuda_device_probe(char *why, size_t why_cap, char *name, size_t name_cap);
#endif

#endif
