/* mtl_dist: the trainer's entry point. Parses options, starts MPI, runs
 * training or prediction, and turns an error into one message and a
 * non-zero exit (see README.md for the exit statuses). */
#include <stdio.h>

#include "mtl/config.h"
#include "mtl/dist.h"
#include "mtl/export.h"
#include "mtl/train.h"

int main(int argc, char **argv) {
    /* before MPI starts, which can take a second under srun: a job script's
     * signal that comes meanwhile still means "checkpoint and stop" */
    mtl_install_signal_handlers();
    mtl_dist d;
    if (mtl_dist_init(&argc, &argv, &d) != 0) return MTL_EXIT_FAILURE;
    mtl_config cfg;
    mtl_error err = {{0}};
    int status = MTL_EXIT_OK;
    /* options are parsed identically on every rank: only rank 0 speaks */
    if (mtl_config_parse(&cfg, argc, argv, &err) != MTL_OK ||
        (cfg.command != MTL_CMD_HELP && cfg.command != MTL_CMD_VERSION &&
         mtl_config_validate(&cfg, &err) != MTL_OK)) {
        if (d.rank == 0) fprintf(stderr, "mtl_dist: %s\n", err.msg);
        status = MTL_EXIT_USAGE;
    } else if (cfg.command == MTL_CMD_HELP) {
        if (d.rank == 0) fputs(mtl_config_usage(), stdout);
    } else if (cfg.command == MTL_CMD_VERSION) {
        if (d.rank == 0) printf("mtl_dist %s\n", MTL_VERSION);
    } else if (cfg.command == MTL_CMD_EXPORT) {
        if (d.rank == 0 && mtl_export_onnx(cfg.checkpoint_path, cfg.onnx_path, &err) != MTL_OK) {
            fprintf(stderr, "mtl_dist: %s\n", err.msg);
            status = MTL_EXIT_FAILURE;
        }
    } else {
        status = cfg.command == MTL_CMD_PREDICT ? mtl_predict_run(&cfg, &d, &err)
                                                : mtl_train_run(&cfg, &d, &err);
        if (status != MTL_EXIT_OK && status != MTL_EXIT_INTERRUPTED && d.rank == 0)
            fprintf(stderr, "mtl_dist: %s\n", err.msg);
    }
    fflush(stdout);
    mtl_dist_finalize();
    return status;
}
