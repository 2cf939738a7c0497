/* A module that does nothing: bench/overhead loads it to tell what Redis
 * charges for any loaded module from what zksync adds. */
#include "redismodule.h"

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    return RedisModule_Init(ctx, "empty", 1, REDISMODULE_APIVER_1);
}
