/* Data parallelism over MPI: every MPI call of the project lives in dist.c.
 * Collectives are on MPI_COMM_WORLD; a failing call aborts the job (MPI's
 * default error handler is replaced by MPI_ERRORS_RETURN and the result is
 * checked, so the message names the rank and the operation). */
#ifndef MTL_DIST_H
#define MTL_DIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, world;
    int local_world; /* ranks on this machine (sharing its memory) */
} mtl_dist;

/* MPI_Init_thread (funneled) and rank/world. Returns 0, or -1 if MPI failed
 * to start (message printed). */
int mtl_dist_init(int *argc, char ***argv, mtl_dist *d);
void mtl_dist_finalize(void);
/* Print "mtl_dist: rank R: msg" to stderr and end the whole job with
 * MPI_Abort(code). With one rank this exits like a normal failure. */
void mtl_dist_abort(const mtl_dist *d, int code, const char *msg) __attribute__((noreturn));
double mtl_dist_time(void);

/* In-place sums over all ranks. */
void mtl_dist_sum_floats(const mtl_dist *d, float *buf, size_t n);
void mtl_dist_sum_doubles(const mtl_dist *d, double *buf, size_t n);
/* Non-blocking in-place sum of doubles (small counts while the forward runs). */
typedef struct {
    int active;
    _Alignas(16) unsigned char request[64]; /* an MPI_Request, kept opaque here */
} mtl_dist_pending;
void mtl_dist_sum_doubles_start(const mtl_dist *d, double *buf, size_t n, mtl_dist_pending *p);
void mtl_dist_wait(const mtl_dist *d, mtl_dist_pending *p);
/* Max over ranks of an int flag (a stop request, a local failure). */
int mtl_dist_max_int(const mtl_dist *d, int v);
void mtl_dist_bcast_floats(const mtl_dist *d, float *buf, size_t n, int root);
void mtl_dist_bcast_bytes(const mtl_dist *d, void *buf, size_t n, int root);
/* Gather variable-length float arrays to rank 0: recv (rank 0 only) gets the
 * ranks' arrays one after another; counts are in floats. */
void mtl_dist_gather_floats(const mtl_dist *d, const float *send, int64_t n, float *recv,
                            int64_t recv_capacity);
/* The same for int64 items (group ids of evaluated rows, for GAUC). */
void mtl_dist_gather_int64s(const mtl_dist *d, const int64_t *send, int64_t n, int64_t *recv,
                            int64_t recv_capacity);
void mtl_dist_barrier(const mtl_dist *d);
/* Every rank's n ints, rank after rank, into recv [world x n]. */
void mtl_dist_allgather_ints(const mtl_dist *d, const int *send, int n, int *recv);
/* Personalized exchange: send[r * n .. +n) ints to rank r; recv[r * n ..)
 * from rank r. */
void mtl_dist_alltoall_ints(const mtl_dist *d, const int *send, int n, int *recv);
/* send_bytes[r] bytes to rank r (send packed rank after rank), recv_bytes[r]
 * from rank r into recv (likewise); scratch holds 4 x world ints. */
void mtl_dist_alltoallv_bytes(const mtl_dist *d, const void *send, const int64_t *send_bytes,
                              void *recv, const int64_t *recv_bytes, int *scratch);
/* Every rank's bytes, rank after rank, into recv: bytes_of[r] from rank r
 * (the same array on every rank; this rank sends bytes_of[rank] from send).
 * scratch holds 2 x world ints, so nothing is allocated in a step. */
void mtl_dist_allgatherv_bytes(const mtl_dist *d, const void *send, void *recv,
                               const int64_t *bytes_of, int *scratch);

#endif
