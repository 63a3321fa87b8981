#define _POSIX_C_SOURCE 200809L
#include "mtl/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mtl/util.h"

#define FORMAT "mtl_dist checkpoint 1"

/* ---- small HDF5 helpers: each returns MTL_OK/MTL_ERR with err filled ---- */

static int attr_write(hid_t loc, const char *name, hid_t mem_type, hid_t file_type, hsize_t n,
                      const void *buf, const char *path, mtl_error *err) {
    hid_t space = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    hid_t a = space < 0 ? -1 : H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, mem_type, buf);
    if (a >= 0) H5Aclose(a);
    if (space >= 0) H5Sclose(space);
    return rc < 0 ? mtl_fail(err, path, "cannot write attribute %s", name) : MTL_OK;
}

static int attr_write_string(hid_t loc, const char *name, const char *value, const char *path,
                             mtl_error *err) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = attr_write(loc, name, t, t, 0, &value, path, err);
    H5Tclose(t);
    return rc;
}

static int attr_write_strings(hid_t loc, const char *name, const char *const *values, int n,
                              const char *path, mtl_error *err) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = attr_write(loc, name, t, t, (hsize_t)n, values, path, err);
    H5Tclose(t);
    return rc;
}

/* Open attribute `name` holding exactly n values (n == 0: a scalar). */
static int attr_open(hid_t loc, const char *name, hsize_t n, hid_t *a, hid_t *space,
                     const char *path, mtl_error *err) {
    *a = *space = -1;
    if (H5Aexists(loc, name) <= 0)
        return mtl_fail(err, path, "not a complete mtl_dist checkpoint: attribute %s missing",
                        name);
    *a = H5Aopen(loc, name, H5P_DEFAULT);
    *space = *a < 0 ? -1 : H5Aget_space(*a);
    hssize_t count = *space < 0 ? -1 : H5Sget_simple_extent_npoints(*space);
    if (count < 0 || (hsize_t)count != (n == 0 ? 1 : n))
        return mtl_fail(err, path, "attribute %s: expected %llu values", name,
                        (unsigned long long)(n == 0 ? 1 : n));
    return MTL_OK;
}

static void attr_close(hid_t a, hid_t space) {
    if (space >= 0) H5Sclose(space);
    if (a >= 0) H5Aclose(a);
}

/* Read a numeric attribute of exactly n elements (n == 0: scalar). */
static int attr_read(hid_t loc, const char *name, hid_t mem_type, hsize_t n, void *buf,
                     const char *path, mtl_error *err) {
    hid_t a, space;
    int rc = attr_open(loc, name, n, &a, &space, path, err);
    if (rc == MTL_OK && H5Aread(a, mem_type, buf) < 0)
        rc = mtl_fail(err, path, "attribute %s: cannot read", name);
    attr_close(a, space);
    return rc;
}

/* Read string attribute values (vlen or fixed) into out[i] (cap bytes each). */
static int attr_read_strings(hid_t loc, const char *name, int n, char *out, size_t cap,
                             const char *path, mtl_error *err) {
    hid_t a, space;
    int rc = attr_open(loc, name, (hsize_t)n, &a, &space, path, err);
    if (rc == MTL_OK) {
        int k = n == 0 ? 1 : n;
        char **vals = calloc((size_t)k, sizeof *vals);
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5T_CSET_UTF8);
        if (!vals || H5Aread(a, t, vals) < 0) {
            rc = mtl_fail(err, path, "attribute %s: cannot read strings", name);
        } else {
            for (int i = 0; i < k; i++) {
                if (!vals[i] || strlen(vals[i]) >= cap) {
                    rc = mtl_fail(err, path, "attribute %s: string %d too long", name, i);
                    break;
                }
                strcpy(out + (size_t)i * cap, vals[i]);
            }
            H5Dvlen_reclaim(t, space, H5P_DEFAULT, vals);
        }
        H5Tclose(t);
        free(vals);
    }
    attr_close(a, space);
    return rc;
}

/* Rows state_rank, state_rank + state_world, ... of a replicated sparse
 * table's optimizer state, the rows this rank owns (params.h), in the file
 * and in the rank's whole copy alike. */
static int state_spaces(hid_t d, const mtl_tensor *t, hid_t *file_space, hid_t *mem_space) {
    int64_t n = mtl_shard_rows(t->rows, t->state_rank, t->state_world);
    if (n == 0 || t->rows == 1) return 1; /* nothing of it here (row 0 is rank 0's) */
    hsize_t start[2] = {(hsize_t)t->state_rank, 0}, stride[2] = {(hsize_t)t->state_world, 1};
    hsize_t count[2] = {(hsize_t)n, 1}, block[2] = {1, (hsize_t)t->cols};
    hsize_t whole[2] = {(hsize_t)t->rows, (hsize_t)t->cols};
    *file_space = H5Dget_space(d);
    *mem_space = H5Screate_simple(2, whole, NULL);
    if (*file_space < 0 || *mem_space < 0 ||
        H5Sselect_hyperslab(*file_space, H5S_SELECT_SET, start, stride, count, block) < 0 ||
        H5Sselect_hyperslab(*mem_space, H5S_SELECT_SET, start, stride, count, block) < 0)
        return -1;
    return 0;
}

/* A row-sharded tensor's rows in the file: rows shard_rank, shard_rank +
 * shard_world, ... of the whole table (one strided hyperslab), and the
 * memory space of the rank's local rows; with `owned_state`, a replicated
 * sparse table's owned optimizer rows (state_spaces). Whole tensors:
 * H5S_ALL. */
static int shard_spaces(hid_t d, const mtl_tensor *t, int owned_state, hid_t *file_space,
                        hid_t *mem_space) {
    *file_space = *mem_space = H5S_ALL;
    if (owned_state && t->state_world > 1) return state_spaces(d, t, file_space, mem_space);
    if (t->shard_world <= 1) return 0;
    if (t->local_rows == 0) return 1; /* nothing of it here */
    hsize_t start[2] = {(hsize_t)t->shard_rank, 0}, stride[2] = {(hsize_t)t->shard_world, 1};
    hsize_t count[2] = {(hsize_t)t->local_rows, 1}, block[2] = {1, (hsize_t)t->cols};
    hsize_t local[2] = {(hsize_t)t->local_rows, (hsize_t)t->cols};
    *file_space = H5Dget_space(d);
    *mem_space = H5Screate_simple(2, local, NULL);
    if (*file_space < 0 || *mem_space < 0 ||
        H5Sselect_hyperslab(*file_space, H5S_SELECT_SET, start, stride, count, block) < 0)
        return -1;
    return 0;
}

static void close_spaces(hid_t file_space, hid_t mem_space) {
    if (file_space != H5S_ALL && file_space >= 0) H5Sclose(file_space);
    if (mem_space != H5S_ALL && mem_space >= 0) H5Sclose(mem_space);
}

/* this rank's rows (all of a whole tensor) into (write) or from dataset d: a
 * checkpoint written by any number of ranks holds whole tables, so a
 * row-sharded run resumes on another number of ranks by reading another
 * stride. owned_state: only the optimizer rows this rank owns of a
 * replicated sparse table (written by their owners). */
static int transfer_rows(hid_t d, const mtl_tensor *t, float *block, int write, int owned_state) {
    hid_t fs, ms;
    int sel = shard_spaces(d, t, owned_state, &fs, &ms);
    float *rows = block + t->offset;
    herr_t rc = sel < 0   ? -1
                : sel > 0 ? 0
                : write   ? H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, rows)
                          : H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, rows);
    close_spaces(fs, ms);
    return rc < 0 ? -1 : 0;
}

static int write_tensor(hid_t group, const mtl_tensor *t, const float *block, const char *path,
                        mtl_error *err) {
    hsize_t dims[2] = {(hsize_t)t->rows, (hsize_t)t->cols};
    int rank = t->rows == 1 ? 1 : 2;
    hid_t space = H5Screate_simple(rank, rank == 1 ? dims + 1 : dims, NULL);
    hid_t d = space < 0 ? -1
                        : H5Dcreate2(group, t->name, H5T_IEEE_F32LE, space, H5P_DEFAULT,
                                     H5P_DEFAULT, H5P_DEFAULT);
    int rc = d < 0 ? -1 : transfer_rows(d, t, (float *)block, 1, 0);
    if (d >= 0) H5Dclose(d);
    if (space >= 0) H5Sclose(space);
    return rc < 0 ? mtl_fail(err, path, "cannot write tensor %s", t->name) : MTL_OK;
}

static int write_block(hid_t file, const char *group_name, const mtl_params *p, const float *block,
                       const char *path, mtl_error *err) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(file, group_name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (g < 0) return mtl_fail(err, path, "cannot create group %s", group_name);
    int rc = MTL_OK;
    for (int i = 0; i < p->n && rc == MTL_OK; i++)
        rc = write_tensor(g, &p->tensors[i], block, path, err);
    H5Gclose(g);
    return rc;
}

static int fsync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void parent_dir(const char *path, char *dir, size_t cap) {
    snprintf(dir, cap, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, cap, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
}

static int commit_file(const char *tmp, const char *path, mtl_error *err) {
    if (fsync_path(tmp) != 0) {
        unlink(tmp);
        return mtl_fail(err, path, "cannot flush to disk: %s", strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return mtl_fail(err, path, "cannot rename into place: %s", strerror(e));
    }
    char dir[1024];
    parent_dir(path, dir, sizeof dir);
    fsync_path(dir); /* make the rename itself durable; best effort */
    return MTL_OK;
}

static hid_t create_tmp(const char *path, char *tmp, size_t cap, mtl_error *err) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        mtl_fail(err, path, "is a directory");
        return -1;
    }
    snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        char dir[1024];
        parent_dir(path, dir, sizeof dir);
        mtl_fail(err, path, "cannot create file (is %s writable?)", dir);
    }
    return f;
}

/* ---- the numeric root attributes, described once for save and load ---- */

/* Where their values live while a checkpoint is written or read: in the
 * state itself, or staged as the int64 the file holds. */
typedef struct {
    mtl_ckpt_state *st;
    int64_t world, S, D, T, M;
    int64_t regression[MTL_MAX_TASKS], mean[MTL_MAX_FIELDS];
} attr_values;

typedef enum { ATTR_I64, ATTR_U64, ATTR_F64 } attr_type;
/* how many values: one (a scalar), a fixed 4, one per task, per
 * single-valued field, per multi-valued field */
typedef enum { ONE, FOUR, PER_TASK, PER_FIELD, PER_MULTI } attr_count;

typedef struct {
    const char *name;
    attr_type type;
    attr_count count;
    int in_state; /* the offset is into mtl_ckpt_state, else into attr_values */
    size_t offset;
    int multi; /* only in checkpoints of models with multi-valued fields */
} ckpt_attr;

#define IN_STATE(field) 1, offsetof(mtl_ckpt_state, field)
#define STAGED(field) 0, offsetof(attr_values, field)

/* Read in this order: the counts (S, D, and T from task_names) come first. */
static const ckpt_attr CKPT_ATTRS[] = {
    {"step", ATTR_I64, ONE, IN_STATE(step), 0},
    {"epoch", ATTR_I64, ONE, IN_STATE(epoch), 0},
    {"batch_in_epoch", ATTR_I64, ONE, IN_STATE(batch_in_epoch), 0},
    {"world_size", ATTR_I64, ONE, STAGED(world), 0},
    {"seed", ATTR_U64, ONE, IN_STATE(seed), 0},
    {"dropout_rng", ATTR_U64, FOUR, IN_STATE(dropout_rng), 0},
    {"best_metric", ATTR_F64, ONE, IN_STATE(best_metric), 0},
    {"best_epoch", ATTR_I64, ONE, IN_STATE(best_epoch), 0},
    {"bad_epochs", ATTR_I64, ONE, IN_STATE(bad_epochs), 0},
    {"S", ATTR_I64, ONE, STAGED(S), 0},
    {"D", ATTR_I64, ONE, STAGED(D), 0},
    {"train_loss_sum", ATTR_F64, PER_TASK, IN_STATE(train_loss_sum), 0},
    {"train_count", ATTR_F64, PER_TASK, IN_STATE(train_count), 0},
    {"task_regression", ATTR_I64, PER_TASK, STAGED(regression), 0},
    {"vocab_sizes", ATTR_I64, PER_FIELD, IN_STATE(shape.vocab_sizes), 0},
    {"M", ATTR_I64, ONE, STAGED(M), 1},
    {"multi_vocab_sizes", ATTR_I64, PER_MULTI, IN_STATE(shape.multi_vocab_sizes), 1},
    {"multi_mean", ATTR_I64, PER_MULTI, STAGED(mean), 1},
};
#define N_CKPT_ATTRS ((int)(sizeof CKPT_ATTRS / sizeof CKPT_ATTRS[0]))

static void *attr_where(const ckpt_attr *a, attr_values *v) {
    return (char *)(a->in_state ? (void *)v->st : (void *)v) + a->offset;
}

/* -1: not written (an empty per-field list) */
static hsize_t attr_n(const ckpt_attr *a, const attr_values *v) {
    switch (a->count) {
    case ONE:
        return 0;
    case FOUR:
        return 4;
    case PER_TASK:
        return (hsize_t)v->T;
    case PER_FIELD:
        return v->S > 0 ? (hsize_t)v->S : (hsize_t)-1;
    case PER_MULTI:
        return (hsize_t)v->M;
    }
    return 0;
}

static hid_t attr_mem_type(attr_type t) {
    return t == ATTR_I64 ? H5T_NATIVE_INT64 : t == ATTR_U64 ? H5T_NATIVE_UINT64 : H5T_NATIVE_DOUBLE;
}

static hid_t attr_file_type(attr_type t) {
    return t == ATTR_I64 ? H5T_STD_I64LE : t == ATTR_U64 ? H5T_STD_U64LE : H5T_IEEE_F64LE;
}

static void stage_values(attr_values *v, mtl_ckpt_state *st) {
    memset(v, 0, sizeof *v);
    v->st = st;
    const mtl_data_shape *sh = &st->shape;
    v->world = st->world_size;
    v->S = sh->S, v->D = sh->D, v->T = sh->T, v->M = sh->M;
    for (int t = 0; t < sh->T; t++) v->regression[t] = sh->task_regression[t];
    for (int j = 0; j < sh->M; j++) v->mean[j] = sh->multi_mean[j];
}

static int write_numeric_attrs(hid_t f, const mtl_ckpt_state *st, const char *path,
                               mtl_error *err) {
    attr_values v;
    stage_values(&v, (mtl_ckpt_state *)st); /* only read from */
    for (int i = 0; i < N_CKPT_ATTRS; i++) {
        const ckpt_attr *a = &CKPT_ATTRS[i];
        hsize_t n = attr_n(a, &v);
        if ((a->multi && v.M == 0) || n == (hsize_t)-1) continue;
        if (attr_write(f, a->name, attr_mem_type(a->type), attr_file_type(a->type), n,
                       attr_where(a, &v), path, err))
            return MTL_ERR;
    }
    return MTL_OK;
}

/* The attributes of CKPT_ATTRS[first..last) into v. */
static int read_numeric_attrs(hid_t f, attr_values *v, int first, int last, const char *path,
                              mtl_error *err) {
    for (int i = first; i < last; i++) {
        const ckpt_attr *a = &CKPT_ATTRS[i];
        hsize_t n = attr_n(a, v);
        if (n == (hsize_t)-1) continue;
        if (attr_read(f, a->name, attr_mem_type(a->type), n, attr_where(a, v), path, err))
            return MTL_ERR;
    }
    return MTL_OK;
}

int mtl_checkpoint_save(const char *path, const mtl_model *m, const float *best,
                        const mtl_ckpt_state *st, mtl_error *err) {
    char tmp[MTL_CKPT_TMP_MAX];
    if (mtl_checkpoint_begin(path, m, best, st, tmp, sizeof tmp, err)) return MTL_ERR;
    return mtl_checkpoint_commit(tmp, path, err);
}

/* the groups that hold a copy of the parameter layout, and their blocks */
static int layout_groups(const mtl_model *m, const float *best, const char **names,
                         const float **blocks) {
    const mtl_params *p = &m->params;
    names[0] = "params", blocks[0] = p->values;
    names[1] = "optimizer/m", blocks[1] = p->m;
    names[2] = "optimizer/v", blocks[2] = p->v;
    names[3] = "best", blocks[3] = best;
    return best ? 4 : 3;
}

int mtl_checkpoint_has_rank_rows(const mtl_model *m) {
    for (int i = 0; i < m->params.n; i++)
        if (m->params.tensors[i].shard_world > 1 || m->params.tensors[i].state_world > 1) return 1;
    return 0;
}

int mtl_checkpoint_add_rows(const char *tmp, const mtl_model *m, const float *best,
                            mtl_error *err) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return mtl_fail(err, tmp, "cannot open the checkpoint being written");
    const char *names[4];
    const float *blocks[4];
    int n = layout_groups(m, best, names, blocks), rc = MTL_OK;
    for (int g = 0; g < n && rc == MTL_OK; g++)
        for (int i = 0; i < m->params.n && rc == MTL_OK; i++) {
            const mtl_tensor *t = &m->params.tensors[i];
            int owned_state = (g == 1 || g == 2) && t->state_world > 1; /* optimizer/m, v */
            if (t->shard_world <= 1 && !owned_state) continue;
            char name[256];
            snprintf(name, sizeof name, "%s/%s", names[g], t->name);
            hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
            if (d < 0 || transfer_rows(d, t, (float *)blocks[g], 1, owned_state) < 0)
                rc = mtl_fail(err, tmp, "cannot write rows of /%s", name);
            if (d >= 0) H5Dclose(d);
        }
    if (H5Fclose(f) < 0 && rc == MTL_OK) rc = mtl_fail(err, tmp, "cannot close (disk full?)");
    return rc;
}

int mtl_checkpoint_begin(const char *path, const mtl_model *m, const float *best,
                         const mtl_ckpt_state *st, char *tmp, size_t tmp_cap, mtl_error *err) {
    hid_t f = create_tmp(path, tmp, tmp_cap, err);
    if (f < 0) return MTL_ERR;
    int rc = MTL_OK;
    const mtl_data_shape *sh = &st->shape;
    const char *names[MTL_MAX_TASKS];
    for (int t = 0; t < sh->T; t++) names[t] = sh->task_names[t];
    rc = rc ? rc : attr_write_string(f, "format", FORMAT, path, err);
    rc = rc ? rc : write_numeric_attrs(f, st, path, err);
    rc = rc ? rc : attr_write_string(f, "config", st->config, path, err);
    rc = rc ? rc : attr_write_strings(f, "task_names", names, sh->T, path, err);
    if (sh->S > 0 && st->sparse_names)
        rc = rc ? rc
                : attr_write_strings(f, "sparse_names", (const char *const *)st->sparse_names,
                                     sh->S, path, err);
    if (sh->D > 0 && st->dense_names)
        rc = rc ? rc
                : attr_write_strings(f, "dense_names", (const char *const *)st->dense_names, sh->D,
                                     path, err);
    const char *groups[4];
    const float *blocks[4];
    int n_groups = layout_groups(m, best, groups, blocks);
    for (int g = 0; g < n_groups; g++)
        rc = rc ? rc : write_block(f, groups[g], &m->params, blocks[g], path, err);
    if (m->buffers.n > 0)
        rc = rc ? rc : write_block(f, "buffers", &m->buffers, m->buffers.values, path, err);
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0 && rc == MTL_OK)
        rc = mtl_fail(err, path, "cannot flush (disk full?)");
    if (H5Fclose(f) < 0 && rc == MTL_OK) rc = mtl_fail(err, path, "cannot close (disk full?)");
    if (rc != MTL_OK) {
        unlink(tmp);
        return MTL_ERR;
    }
    return MTL_OK;
}

int mtl_checkpoint_commit(const char *tmp, const char *path, mtl_error *err) {
    return commit_file(tmp, path, err);
}

static hid_t open_checkpoint(const char *path, mtl_error *err) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    struct stat st;
    if (stat(path, &st) != 0) {
        mtl_fail(err, path, "cannot open checkpoint: %s", strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        mtl_fail(err, path, "is a directory, not a checkpoint file");
        return -1;
    }
    if (H5Fis_hdf5(path) <= 0) {
        mtl_fail(err, path, "not an HDF5 file (truncated or corrupt checkpoint?)");
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) mtl_fail(err, path, "cannot open as HDF5 (truncated or corrupt checkpoint?)");
    return f;
}

/* The number of tasks: the length of task_names. */
static int64_t count_tasks(hid_t f) {
    hid_t a = H5Aopen(f, "task_names", H5P_DEFAULT);
    hid_t sp = a < 0 ? -1 : H5Aget_space(a);
    int64_t T = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (sp >= 0) H5Sclose(sp);
    if (a >= 0) H5Aclose(a);
    return T;
}

static int attr_index(const char *name) {
    for (int i = 0; i < N_CKPT_ATTRS; i++)
        if (strcmp(CKPT_ATTRS[i].name, name) == 0) return i;
    return N_CKPT_ATTRS;
}

int mtl_checkpoint_load_state(const char *path, mtl_ckpt_state *st, mtl_error *err) {
    memset(st, 0, sizeof *st);
    hid_t f = open_checkpoint(path, err);
    if (f < 0) return MTL_ERR;
    char format[64] = "";
    int rc = attr_read_strings(f, "format", 0, format, sizeof format, path, err);
    if (rc == MTL_OK && strcmp(format, FORMAT) != 0)
        rc = mtl_fail(err, path, "not an mtl_dist checkpoint (format '%s')", format);
    attr_values v;
    stage_values(&v, st);
    /* the scalars, then the counts they give, then what is counted */
    int counted = attr_index("train_loss_sum"), multi = attr_index("M");
    rc = rc ? rc : read_numeric_attrs(f, &v, 0, counted, path, err);
    if (rc == MTL_OK) {
        v.T = count_tasks(f);
        /* D and world_size are stored as int64 and held as int */
        if (v.T < 1 || v.T > MTL_MAX_TASKS || v.S < 0 || v.S > MTL_MAX_FIELDS || v.D < 0 ||
            v.D > INT_MAX || v.world < 0 || v.world > INT_MAX)
            rc = mtl_fail(err, path, "corrupt checkpoint: bad shape attributes");
    }
    rc = rc ? rc : read_numeric_attrs(f, &v, counted, multi, path, err);
    /* multi-valued fields: absent in checkpoints of models without them */
    if (rc == MTL_OK && H5Aexists(f, "M") > 0) {
        rc = read_numeric_attrs(f, &v, multi, multi + 1, path, err);
        if (rc == MTL_OK && (v.M < 0 || v.M + v.S > MTL_MAX_FIELDS))
            rc = mtl_fail(err, path, "corrupt checkpoint: bad shape attributes");
        rc = rc ? rc : read_numeric_attrs(f, &v, multi + 1, N_CKPT_ATTRS, path, err);
    }
    mtl_data_shape *sh = &st->shape;
    if (rc == MTL_OK) {
        st->world_size = (int)v.world;
        sh->S = (int)v.S, sh->D = (int)v.D, sh->T = (int)v.T, sh->M = (int)v.M;
        for (int t = 0; t < sh->T; t++) sh->task_regression[t] = (int)v.regression[t];
        for (int j = 0; j < sh->M; j++) sh->multi_mean[j] = v.mean[j] != 0;
    }
    rc = rc ? rc
            : attr_read_strings(f, "task_names", sh->T, &sh->task_names[0][0],
                                sizeof sh->task_names[0], path, err);
    rc = rc ? rc : attr_read_strings(f, "config", 0, st->config, sizeof st->config, path, err);
    H5Fclose(f);
    return rc;
}

static int read_block(hid_t f, const char *group, const mtl_params *p, float *block,
                      const char *path, mtl_error *err) {
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    if (g < 0) return mtl_fail(err, path, "corrupt checkpoint: group /%s missing", group);
    int rc = MTL_OK;
    for (int i = 0; i < p->n && rc == MTL_OK; i++) {
        const mtl_tensor *t = &p->tensors[i];
        if (H5Lexists(g, t->name, H5P_DEFAULT) <= 0) {
            rc = mtl_fail(err, path, "/%s/%s missing (checkpoint of another model?)", group,
                          t->name);
            break;
        }
        hid_t d = H5Dopen2(g, t->name, H5P_DEFAULT);
        hid_t sp = d < 0 ? -1 : H5Dget_space(d);
        hssize_t npts = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
        /* the shape, not only the count: [6 x 4] is not [8 x 3] (written as
         * [rows, cols], vectors as 1-D [cols]) */
        hsize_t dims[2] = {0, 0};
        int ndims = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
        if (ndims >= 1 && ndims <= 2) H5Sget_simple_extent_dims(sp, dims, NULL);
        int shape_ok = (ndims == 2 && dims[0] == (hsize_t)t->rows && dims[1] == (hsize_t)t->cols) ||
                       (ndims == 1 && t->rows == 1 && dims[0] == (hsize_t)t->cols);
        if (npts != (hssize_t)(t->rows * t->cols)) {
            rc = mtl_fail(err, path, "/%s/%s: %lld values, the model needs %zu (%lld x %lld)",
                          group, t->name, (long long)npts, (size_t)(t->rows * t->cols),
                          (long long)t->rows, (long long)t->cols);
        } else if (!shape_ok) {
            char shape[64];
            if (ndims == 2)
                snprintf(shape, sizeof shape, "[%llu x %llu]", (unsigned long long)dims[0],
                         (unsigned long long)dims[1]);
            else if (ndims == 1)
                snprintf(shape, sizeof shape, "[%llu]", (unsigned long long)dims[0]);
            else
                snprintf(shape, sizeof shape, "of rank %d", ndims);
            rc = mtl_fail(err, path,
                          "/%s/%s: shape %s, the model needs [%lld x %lld] (checkpoint of "
                          "another model?)",
                          group, t->name, shape, (long long)t->rows, (long long)t->cols);
        } else if (transfer_rows(d, t, block, 0, 0) < 0) {
            rc = mtl_fail(err, path, "/%s/%s: cannot read (truncated or corrupt checkpoint?)",
                          group, t->name);
        }
        if (sp >= 0) H5Sclose(sp);
        if (d >= 0) H5Dclose(d);
        for (size_t k = 0; rc == MTL_OK && k < t->size; k++)
            if (!isfinite(block[t->offset + k]))
                rc = mtl_fail(err, path, "/%s/%s: value %zu is not finite", group, t->name, k);
    }
    H5Gclose(g);
    return rc;
}

int mtl_checkpoint_load_tensors(const char *path, mtl_model *m, int with_optimizer, float *best,
                                int *has_best, mtl_error *err) {
    hid_t f = open_checkpoint(path, err);
    if (f < 0) return MTL_ERR;
    int rc = read_block(f, "params", &m->params, m->params.values, path, err);
    mtl_params_changed(&m->params);
    if (rc == MTL_OK && with_optimizer) {
        rc = read_block(f, "optimizer/m", &m->params, m->params.m, path, err);
        rc = rc ? rc : read_block(f, "optimizer/v", &m->params, m->params.v, path, err);
    }
    if (rc == MTL_OK && m->buffers.n > 0)
        rc = read_block(f, "buffers", &m->buffers, m->buffers.values, path, err);
    if (has_best) *has_best = 0;
    if (rc == MTL_OK && best && H5Lexists(f, "best", H5P_DEFAULT) > 0) {
        rc = read_block(f, "best", &m->params, best, path, err);
        if (has_best) *has_best = rc == MTL_OK;
    }
    H5Fclose(f);
    return rc;
}

int mtl_checkpoint_load_names(const char *path, const char *attr, int n, char **block,
                              mtl_error *err) {
    *block = NULL;
    hid_t f = open_checkpoint(path, err);
    if (f < 0) return MTL_ERR;
    int rc = MTL_OK;
    if (n > 0 && H5Aexists(f, attr) > 0) {
        *block = mtl_alloc((size_t)n, MTL_NAME_MAX, attr, err);
        rc = *block ? attr_read_strings(f, attr, n, *block, MTL_NAME_MAX, path, err) : MTL_ERR;
        if (rc != MTL_OK) {
            free(*block);
            *block = NULL;
        }
    }
    H5Fclose(f);
    return rc;
}

int mtl_checkpoint_open_model(const char *path, int max_batch, mtl_model **out, mtl_ckpt_state *st,
                              mtl_error *err) {
    *out = NULL;
    mtl_config cfg;
    mtl_config_defaults(&cfg);
    int rc = mtl_checkpoint_load_state(path, st, err);
    rc = rc ? rc : mtl_config_apply_text(&cfg, st->config, path, err);
    rc = rc ? rc : mtl_model_create(out, &cfg, &st->shape, max_batch, err);
    rc = rc ? rc : mtl_checkpoint_load_tensors(path, *out, 0, NULL, NULL, err);
    if (rc != MTL_OK) {
        mtl_model_free(*out);
        *out = NULL;
    }
    return rc;
}

int mtl_predictions_save(const char *path, const float *pred, int64_t n, int cols,
                         const char *const *names, mtl_error *err) {
    char tmp[1200];
    hid_t f = create_tmp(path, tmp, sizeof tmp, err);
    if (f < 0) return MTL_ERR;
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)cols};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t d = space < 0 ? -1
                        : H5Dcreate2(f, "predictions", H5T_IEEE_F32LE, space, H5P_DEFAULT,
                                     H5P_DEFAULT, H5P_DEFAULT);
    int rc = MTL_OK;
    if (d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, pred) < 0)
        rc = mtl_fail(err, path, "cannot write /predictions");
    if (rc == MTL_OK) rc = attr_write_strings(d, "names", names, cols, path, err);
    if (d >= 0) H5Dclose(d);
    if (space >= 0) H5Sclose(space);
    if (H5Fclose(f) < 0 && rc == MTL_OK) rc = mtl_fail(err, path, "cannot close (disk full?)");
    if (rc != MTL_OK) {
        unlink(tmp);
        return MTL_ERR;
    }
    return commit_file(tmp, path, err);
}

/* ---- the checkpoint directory: ckpt-<step>.h5 files ---- */

void mtl_checkpoint_path(const char *dir, int64_t step, char *out, size_t cap) {
    snprintf(out, cap, "%s/ckpt-%09lld.h5", dir, (long long)step);
}

static int is_checkpoint_name(const char *name, int64_t *step) {
    long long s = 0;
    int end = 0;
    if (sscanf(name, "ckpt-%lld.h5%n", &s, &end) != 1 || name[end] != '\0') return 0;
    *step = s;
    return 1;
}

#define MAX_CHECKPOINTS 4096

/* The steps of the ckpt-<step>.h5 files in dir; -1 if dir cannot be read. */
static int list_checkpoints(const char *dir, int64_t *steps) {
    DIR *dp = opendir(dir);
    if (!dp) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && n < MAX_CHECKPOINTS) {
        int64_t s;
        if (is_checkpoint_name(e->d_name, &s)) steps[n++] = s;
    }
    closedir(dp);
    return n;
}

int mtl_checkpoint_find_latest(const char *dir, char *out, size_t cap, int verbose,
                               mtl_error *err) {
    int64_t steps[MAX_CHECKPOINTS];
    int n = list_checkpoints(dir, steps);
    if (n < 0)
        return mtl_fail(err, dir, "--resume latest: cannot open checkpoint directory: %s",
                        strerror(errno));
    for (;;) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (steps[i] >= 0 && (best < 0 || steps[i] > steps[best])) best = i;
        if (best < 0) break;
        mtl_checkpoint_path(dir, steps[best], out, cap);
        mtl_ckpt_state st;
        mtl_error e2;
        if (mtl_checkpoint_load_state(out, &st, &e2) == MTL_OK) return MTL_OK;
        if (verbose) fprintf(stderr, "mtl_dist: skipping %s\n", e2.msg);
        steps[best] = -1;
    }
    return mtl_fail(err, dir, "--resume latest: no complete checkpoint in this directory");
}

/* Temporaries of runs that were killed while writing (never read back);
 * this process's own are left alone. */
static void remove_stale_temporaries(const char *dir) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    char mine[64];
    snprintf(mine, sizeof mine, ".tmp.%ld", (long)getpid());
    struct dirent *e;
    while ((e = readdir(dp))) {
        const char *tmp = strstr(e->d_name, ".h5.tmp.");
        if (strncmp(e->d_name, "ckpt-", 5) == 0 && tmp && !strstr(e->d_name, mine)) {
            char path[MTL_PATH_MAX + 300];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(dp);
}

void mtl_checkpoint_prune(const char *dir, int keep) {
    int64_t steps[MAX_CHECKPOINTS];
    int n = list_checkpoints(dir, steps);
    if (n < 0) return;
    remove_stale_temporaries(dir);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++) newer += steps[j] > steps[i];
        if (newer >= keep) {
            char path[MTL_PATH_MAX + 32];
            mtl_checkpoint_path(dir, steps[i], path, sizeof path);
            unlink(path);
        }
    }
}

int mtl_checkpoint_dir_create(const char *dir, mtl_error *err) {
    struct stat sb;
    if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
        return mtl_fail(err, dir, "--checkpoint-dir: not a directory");
    return mtl_mkdir_p(dir, "checkpoint directory", err);
}
