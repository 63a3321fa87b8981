/* MTL_HOT marks the element-wise loops of the training step (activations,
 * mixture, embeddings, losses, optimizer). Without -DMTL_NATIVE=ON the build
 * is portable x86-64 (SSE2), which leaves AVX2/AVX-512 unused on the loops
 * the compiler vectorizes; target_clones compiles each such function for
 * x86-64, x86-64-v3 (AVX2+FMA) and x86-64-v4 (AVX-512) and picks the best one
 * for the CPU at load time. Other compilers/targets: a plain function. */
#ifndef MTL_HOT_H
#define MTL_HOT_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && \
    !defined(MTL_NATIVE_BUILD) && !defined(__SANITIZE_ADDRESS__)
#define MTL_HOT __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define MTL_HOT
#endif

#endif
