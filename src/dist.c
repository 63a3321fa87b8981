#include "mtl/dist.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(const mtl_dist *d, int rc, const char *what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING + 128], text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    snprintf(msg, sizeof msg, "%s failed: %s", what, text);
    mtl_dist_abort(d, 3, msg);
}

int mtl_dist_init(int *argc, char ***argv, mtl_dist *d) {
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "mtl_dist: MPI_Init failed\n");
        return -1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->world);
    MPI_Comm node;
    d->local_world = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_size(node, &d->local_world);
        MPI_Comm_free(&node);
    }
    return 0;
}

void mtl_dist_finalize(void) {
    MPI_Finalize();
}

void mtl_dist_abort(const mtl_dist *d, int code, const char *msg) {
    if (d->world > 1)
        fprintf(stderr, "mtl_dist: rank %d: %s\n", d->rank, msg);
    else
        fprintf(stderr, "mtl_dist: %s\n", msg);
    fflush(stderr);
    if (d->world > 1) MPI_Abort(MPI_COMM_WORLD, code);
    MPI_Finalize();
    exit(code);
}

double mtl_dist_time(void) {
    return MPI_Wtime();
}

/* MPI counts are int: refuse, rather than truncate, larger messages */
static void check_count(const mtl_dist *d, size_t n, const char *what) {
    if (n <= (size_t)INT_MAX) return;
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %zu elements exceed MPI's int count", what, n);
    mtl_dist_abort(d, 3, msg);
}

void mtl_dist_sum_floats(const mtl_dist *d, float *buf, size_t n) {
    if (d->world == 1) return;
    check_count(d, n, "allreduce");
    check(d, MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce of gradients");
}

void mtl_dist_sum_doubles(const mtl_dist *d, double *buf, size_t n) {
    if (d->world == 1) return;
    check(d, MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce");
}

void mtl_dist_sum_doubles_start(const mtl_dist *d, double *buf, size_t n, mtl_dist_pending *p) {
    _Static_assert(sizeof(MPI_Request) <= sizeof p->request, "MPI_Request does not fit");
    p->active = 0;
    if (d->world == 1) return;
    check(d,
          MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD,
                         (MPI_Request *)(void *)p->request),
          "MPI_Iallreduce");
    p->active = 1;
}

void mtl_dist_wait(const mtl_dist *d, mtl_dist_pending *p) {
    if (!p->active) return;
    check(d, MPI_Wait((MPI_Request *)(void *)p->request, MPI_STATUS_IGNORE), "MPI_Wait");
    p->active = 0;
}

int mtl_dist_max_int(const mtl_dist *d, int v) {
    if (d->world == 1) return v;
    check(d, MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    return v;
}

void mtl_dist_bcast_floats(const mtl_dist *d, float *buf, size_t n, int root) {
    if (d->world == 1) return;
    check(d, MPI_Bcast(buf, (int)n, MPI_FLOAT, root, MPI_COMM_WORLD), "MPI_Bcast");
}

void mtl_dist_bcast_bytes(const mtl_dist *d, void *buf, size_t n, int root) {
    if (d->world == 1) return;
    check(d, MPI_Bcast(buf, (int)n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
}

/* Variable-length gather to rank 0 of n items of type t (size elem bytes). */
static void gather_to_root(const mtl_dist *d, const void *send, int64_t n, void *recv,
                           int64_t recv_capacity, MPI_Datatype t, size_t elem) {
    if (d->world == 1) {
        int64_t k = n < recv_capacity ? n : recv_capacity;
        if (k > 0) memcpy(recv, send, (size_t)k * elem);
        return;
    }
    check_count(d, (size_t)n, "gather");
    check_count(d, (size_t)recv_capacity, "gather");
    int count = (int)n;
    int *counts = NULL, *displs = NULL;
    if (d->rank == 0) {
        counts = malloc((size_t)d->world * sizeof *counts);
        displs = malloc((size_t)d->world * sizeof *displs);
        if (!counts || !displs) mtl_dist_abort(d, 3, "out of memory gathering evaluation rows");
    }
    check(d, MPI_Gather(&count, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Gather");
    if (d->rank == 0) {
        int64_t off = 0;
        for (int r = 0; r < d->world; r++) {
            displs[r] = (int)off;
            off += counts[r];
        }
        if (off > recv_capacity)
            mtl_dist_abort(d, 3, "gathered more evaluation rows than expected");
    }
    check(d, MPI_Gatherv(send, count, t, recv, counts, displs, t, 0, MPI_COMM_WORLD),
          "MPI_Gatherv");
    free(counts);
    free(displs);
}

void mtl_dist_gather_floats(const mtl_dist *d, const float *send, int64_t n, float *recv,
                            int64_t recv_capacity) {
    gather_to_root(d, send, n, recv, recv_capacity, MPI_FLOAT, sizeof(float));
}

void mtl_dist_gather_int64s(const mtl_dist *d, const int64_t *send, int64_t n, int64_t *recv,
                            int64_t recv_capacity) {
    gather_to_root(d, send, n, recv, recv_capacity, MPI_INT64_T, sizeof(int64_t));
}

void mtl_dist_barrier(const mtl_dist *d) {
    if (d->world == 1) return;
    check(d, MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

void mtl_dist_allgather_ints(const mtl_dist *d, const int *send, int n, int *recv) {
    if (d->world == 1) {
        for (int i = 0; i < n; i++) recv[i] = send[i];
        return;
    }
    check(d, MPI_Allgather(send, n, MPI_INT, recv, n, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
}

/* counts and displacements of a packed rank-after-rank buffer, as MPI's ints */
static void layout(const mtl_dist *d, const int64_t *bytes, int *counts, int *displs) {
    int64_t off = 0;
    for (int r = 0; r < d->world; r++) {
        check_count(d, (size_t)bytes[r], "alltoallv");
        check_count(d, (size_t)off, "alltoallv");
        counts[r] = (int)bytes[r];
        displs[r] = (int)off;
        off += bytes[r];
    }
}

void mtl_dist_allgatherv_bytes(const mtl_dist *d, const void *send, void *recv,
                               const int64_t *bytes_of, int *scratch) {
    int *counts = scratch, *displs = scratch + d->world;
    layout(d, bytes_of, counts, displs);
    check(d,
          MPI_Allgatherv(send, counts[d->rank], MPI_BYTE, recv, counts, displs, MPI_BYTE,
                         MPI_COMM_WORLD),
          "MPI_Allgatherv of embedding gradient rows");
}

void mtl_dist_alltoall_ints(const mtl_dist *d, const int *send, int n, int *recv) {
    if (d->world == 1) {
        for (int i = 0; i < n; i++) recv[i] = send[i];
        return;
    }
    check(d, MPI_Alltoall(send, n, MPI_INT, recv, n, MPI_INT, MPI_COMM_WORLD), "MPI_Alltoall");
}

void mtl_dist_alltoallv_bytes(const mtl_dist *d, const void *send, const int64_t *send_bytes,
                              void *recv, const int64_t *recv_bytes, int *scratch) {
    int P = d->world;
    layout(d, send_bytes, scratch, scratch + P);
    layout(d, recv_bytes, scratch + 2 * P, scratch + 3 * P);
    check(d,
          MPI_Alltoallv(send, scratch, scratch + P, MPI_BYTE, recv, scratch + 2 * P,
                        scratch + 3 * P, MPI_BYTE, MPI_COMM_WORLD),
          "MPI_Alltoallv of embedding rows");
}
