/* The trainer and the predictor: what `mtl_dist` and `mtl_dist predict` run
 * on every rank. */
#ifndef MTL_TRAIN_H
#define MTL_TRAIN_H

#include "mtl/config.h"
#include "mtl/dist.h"
#include "mtl/error.h"

/* Exit statuses of mtl_dist (documented in README.md). */
enum {
    MTL_EXIT_OK = 0,
    MTL_EXIT_FAILURE = 1,     /* bad data, divergence, I/O */
    MTL_EXIT_USAGE = 2,       /* bad option or config */
    MTL_EXIT_INTERRUPTED = 75 /* SIGTERM/SIGUSR1: checkpoint written, resume with --resume */
};

/* Train as configured. Collective: every rank calls it. Returns an exit
 * status; on failure err holds the message (rank 0 prints it; a failure on
 * one rank alone aborts the job from inside with the rank named). */
int mtl_train_run(const mtl_config *cfg, const mtl_dist *d, mtl_error *err);
/* mtl_dist predict --checkpoint F --data F --predict-out P */
int mtl_predict_run(const mtl_config *cfg, const mtl_dist *d, mtl_error *err);

/* Install SIGTERM/SIGUSR1 handlers: the first asks for a checkpoint and a
 * clean stop after the current step, the second exits at once. */
void mtl_install_signal_handlers(void);

#endif
