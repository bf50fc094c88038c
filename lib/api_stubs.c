/* api_stubs.c - temporary: public entry points whose implementation lands with later work.
 * Each function moves to its real file (api_model.c, api_tokens.c, ...) and leaves this one. */
#include "core.h"
