/* Datasets: the HDF5 layout described in include/mtl/data.h and
 * data/README.md, a sharded reader, a chunked writer, mini-batch gathering
 * and the per-epoch shuffle.
 *
 * The reader is deliberately strict: every user error (wrong dtype, wrong
 * rank, a category id outside its vocabulary, a NaN feature) is reported with
 * the file, the dataset and the first offending global row, because the
 * alternative is a silent out-of-bounds embedding lookup or a NaN loss many
 * hours later. HDF5's own error stack printing is switched off so that users
 * see only our message. */
#define _POSIX_C_SOURCE 200809L

#include "mtl/data.h"

#include <assert.h>
#include <errno.h>
#include <float.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mtl/layers.h"
#include "mtl/util.h"

/* ------------------------------------------------------------------------- */
/* sharding */

void mtl_shard_range(int64_t n, int rank, int world, int64_t *begin, int64_t *count) {
    if (n <= 0 || world <= 0 || rank < 0 || rank >= world) {
        *begin = n > 0 ? n : 0;
        *count = 0;
        return;
    }
    int64_t base = n / world, extra = n % world;
    *begin = rank * base + (rank < extra ? rank : extra);
    *count = base + (rank < extra ? 1 : 0);
}

/* ------------------------------------------------------------------------- */
/* small helpers */

static void close_id(hid_t *id, herr_t (*fn)(hid_t)) {
    if (*id >= 0) fn(*id);
    *id = H5I_INVALID_HID;
}

static void free_strs(char **s, int64_t n) {
    if (!s) return;
    for (int64_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* An enum of two members valued 0 and 1 over an integer type: numpy's bool
 * as h5py stores it. */
static int is_bool_enum(hid_t t) {
    if (H5Tget_class(t) != H5T_ENUM || H5Tget_nmembers(t) != 2) return 0;
    hid_t base = H5Tget_super(t);
    if (base < 0) return 0;
    int ok = H5Tget_size(base) <= 8;
    long long v[2] = {-1, -1};
    for (unsigned i = 0; i < 2 && ok; i++) {
        unsigned char buf[8] = {0}; /* the member's value, then converted in place */
        ok = H5Tget_member_value(t, i, buf) >= 0 &&
             H5Tconvert(base, H5T_NATIVE_LLONG, 1, buf, NULL, H5P_DEFAULT) >= 0;
        memcpy(&v[i], buf, sizeof v[i]);
    }
    H5Tclose(base);
    return ok && ((v[0] == 0 && v[1] == 1) || (v[0] == 1 && v[1] == 0));
}

/* "int64", "float32", "string"... for messages about a wrong dtype. */
static void describe_type(hid_t t, char *buf, size_t len) {
    H5T_class_t c = H5Tget_class(t);
    size_t bits = H5Tget_size(t) * 8;
    switch (c) {
    case H5T_INTEGER:
        snprintf(buf, len, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", bits);
        break;
    case H5T_FLOAT:
        snprintf(buf, len, "float%zu", bits);
        break;
    case H5T_STRING:
        snprintf(buf, len, "string");
        break;
    case H5T_COMPOUND:
        snprintf(buf, len, "compound");
        break;
    case H5T_ENUM:
        snprintf(buf, len, "%s", is_bool_enum(t) ? "bool" : "enum");
        break;
    case H5T_ARRAY:
        snprintf(buf, len, "array");
        break;
    case H5T_VLEN:
        snprintf(buf, len, "vlen");
        break;
    case H5T_OPAQUE:
        snprintf(buf, len, "opaque");
        break;
    case H5T_BITFIELD:
        snprintf(buf, len, "bitfield");
        break;
    case H5T_REFERENCE:
        snprintf(buf, len, "reference");
        break;
    default:
        snprintf(buf, len, "unknown type");
        break;
    }
}

/* HDF5 looks for filter plugins (LZF, Blosc, ...: launch/install-deps.sh
 * installs Debian's) in HDF5_PLUGIN_PATH when it is set, and only otherwise
 * in the directory it was built with: a user's HDF5_PLUGIN_PATH for some
 * other plugin would hide Debian's. So that directory is searched last in any
 * case, and directories of the path that do not exist are dropped (HDF5 1.10
 * gives up the whole search at the first one it cannot open). One thread
 * calls HDF5 at a time (see train.c), so a plain flag does. */
static void add_default_plugin_dir(void) {
#ifdef H5_DEFAULT_PLUGINDIR
    static int done;
    if (done) return;
    done = 1;
    unsigned n = 0;
    if (H5PLsize(&n) < 0) return;
    int have_default = 0;
    for (unsigned i = n; i-- > 0;) {
        char dir[4096];
        ssize_t len = H5PLget(i, dir, sizeof dir);
        if (len <= 0 || (size_t)len >= sizeof dir) continue;
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            H5PLremove(i);
        else if (strcmp(dir, H5_DEFAULT_PLUGINDIR) == 0)
            have_default = 1;
    }
    if (!have_default) H5PLappend(H5_DEFAULT_PLUGINDIR);
#endif
}

/* Common checks before handing a path to HDF5: a missing file or a directory
 * gets a plain message instead of an HDF5 error stack. */
static int open_h5(hid_t *file, const char *path, mtl_error *err) {
    *file = H5I_INVALID_HID;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    add_default_plugin_dir();
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return mtl_fail(err, path, "no such file");
        return mtl_fail(err, path, "%s", strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return mtl_fail(err, path, "is a directory");
    FILE *f = fopen(path, "rb");
    if (!f) return mtl_fail(err, path, "cannot read: %s", strerror(errno));
    fclose(f);
    if (H5Fis_hdf5(path) <= 0) return mtl_fail(err, path, "not an HDF5 file");
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0) return mtl_fail(err, path, "cannot open HDF5 file (corrupt or truncated?)");
    return MTL_OK;
}

/* Read a 1-D array of strings (an attribute when is_attr, else a dataset) into
 * freshly allocated C strings. Accepts variable-length strings (UTF-8 or
 * ASCII, what h5py writes for str) and fixed-length ones (numpy 'S' arrays). */
static int read_strings(hid_t obj, int is_attr, char ***out, int64_t *n_out, const char *path,
                        const char *what, mtl_error *err) {
    *out = NULL;
    *n_out = 0;
    int rc = MTL_ERR;
    hid_t ftype = is_attr ? H5Aget_type(obj) : H5Dget_type(obj);
    hid_t space = is_attr ? H5Aget_space(obj) : H5Dget_space(obj);
    hid_t mtype = H5I_INVALID_HID;
    char **vbuf = NULL;
    char *fbuf = NULL;
    char **strs = NULL;
    int64_t n = 0;
    if (ftype < 0 || space < 0) {
        mtl_fail(err, path, "%s: cannot read type/shape", what);
        goto done;
    }
    hssize_t np = H5Sget_simple_extent_npoints(space);
    if (np < 0) {
        mtl_fail(err, path, "%s: cannot read shape", what);
        goto done;
    }
    n = (int64_t)np;
    if (H5Tget_class(ftype) != H5T_STRING) {
        /* h5py stores an empty Python list as an empty float64 array; with no
         * entries there is nothing to misread, so let it pass. */
        if (n == 0) {
            rc = MTL_OK;
            goto done;
        }
        char tname[64];
        describe_type(ftype, tname, sizeof tname);
        mtl_fail(err, path, "%s: must be strings (got %s)", what, tname);
        goto done;
    }
    strs = mtl_alloc((size_t)n, sizeof(char *), what, err);
    if (!strs) goto done;
    if (n == 0) {
        rc = MTL_OK;
        goto done;
    }
    H5T_cset_t cset = H5Tget_cset(ftype);
    htri_t is_var = H5Tis_variable_str(ftype);
    if (is_var < 0 || cset < 0) {
        mtl_fail(err, path, "%s: cannot read string type", what);
        goto done;
    }
    mtype = H5Tcopy(H5T_C_S1);
    if (mtype < 0) {
        mtl_fail(err, path, "%s: H5Tcopy failed", what);
        goto done;
    }
    if (is_var) {
        if (H5Tset_size(mtype, H5T_VARIABLE) < 0 || H5Tset_cset(mtype, cset) < 0) {
            mtl_fail(err, path, "%s: cannot build string type", what);
            goto done;
        }
        vbuf = mtl_alloc((size_t)n, sizeof(char *), what, err);
        if (!vbuf) goto done;
        herr_t r = is_attr ? H5Aread(obj, mtype, vbuf)
                           : H5Dread(obj, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, vbuf);
        if (r < 0) {
            mtl_fail(err, path, "%s: cannot read strings", what);
            free(vbuf); /* nothing was allocated by HDF5 */
            vbuf = NULL;
            goto done;
        }
        int ok = 1;
        for (int64_t i = 0; i < n && ok; i++) {
            strs[i] = mtl_strdup(vbuf[i], err);
            if (!strs[i]) ok = 0;
        }
#if H5_VERSION_GE(1, 12, 0)
        H5Treclaim(mtype, space, H5P_DEFAULT, vbuf);
#else
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, vbuf);
#endif
        if (!ok) goto done;
    } else {
        size_t len = H5Tget_size(ftype);
        H5T_str_t pad = H5Tget_strpad(ftype);
        if (len == 0 || H5Tset_size(mtype, len) < 0 || H5Tset_cset(mtype, cset) < 0 ||
            H5Tset_strpad(mtype, H5T_STR_NULLPAD) < 0) {
            mtl_fail(err, path, "%s: cannot build string type", what);
            goto done;
        }
        fbuf = mtl_alloc((size_t)n, len, what, err);
        if (!fbuf) goto done;
        herr_t r = is_attr ? H5Aread(obj, mtype, fbuf)
                           : H5Dread(obj, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, fbuf);
        if (r < 0) {
            mtl_fail(err, path, "%s: cannot read strings", what);
            goto done;
        }
        for (int64_t i = 0; i < n; i++) {
            const char *src = fbuf + (size_t)i * len;
            size_t k = 0;
            while (k < len && src[k] != '\0') k++;
            if (pad == H5T_STR_SPACEPAD)
                while (k > 0 && src[k - 1] == ' ') k--;
            strs[i] = mtl_alloc(k + 1, 1, what, err);
            if (!strs[i]) goto done;
            memcpy(strs[i], src, k);
        }
    }
    rc = MTL_OK;
done:
    if (rc == MTL_OK) {
        *out = strs;
        *n_out = n;
    } else {
        free_strs(strs, n);
    }
    free(vbuf);
    free(fbuf);
    close_id(&mtype, H5Tclose);
    close_id(&space, H5Sclose);
    close_id(&ftype, H5Tclose);
    return rc;
}

/* The "names" attribute of dataset `d` (/name): exactly `cols` strings. */
static int read_names(hid_t d, const char *name, int cols, char ***out, const char *path,
                      mtl_error *err) {
    *out = NULL;
    htri_t ex = H5Aexists(d, "names");
    if (ex < 0) return mtl_fail(err, path, "/%s: cannot look up attribute names", name);
    if (!ex) {
        if (cols == 0) return MTL_OK;
        return mtl_fail(err, path, "/%s: attribute names missing (need %d strings, one per column)",
                        name, cols);
    }
    hid_t a = H5Aopen(d, "names", H5P_DEFAULT);
    if (a < 0) return mtl_fail(err, path, "/%s: cannot open attribute names", name);
    char what[64];
    snprintf(what, sizeof what, "/%s: attribute names", name);
    char **strs = NULL;
    int64_t n = 0;
    int rc = read_strings(a, 1, &strs, &n, path, what, err);
    H5Aclose(a);
    if (rc != MTL_OK) return rc;
    if (n != cols) {
        free_strs(strs, n);
        return mtl_fail(err, path, "/%s: attribute names has %lld entries but /%s has %d columns",
                        name, (long long)n, name, cols);
    }
    if (cols == 0) {
        free_strs(strs, n);
        strs = NULL;
    }
    *out = strs;
    return MTL_OK;
}

/* /sparse's vocab_sizes attribute: S integers, each > 0. Any integer storage
 * is accepted (numpy defaults to int64, but int32 on some platforms). */
static int read_vocab_sizes(hid_t d, int S, char **names, int64_t **out, const char *path,
                            mtl_error *err) {
    *out = NULL;
    htri_t ex = H5Aexists(d, "vocab_sizes");
    if (ex < 0) return mtl_fail(err, path, "/sparse: cannot look up attribute vocab_sizes");
    if (!ex) {
        if (S == 0) return MTL_OK;
        return mtl_fail(
            err, path, "/sparse: attribute vocab_sizes missing (need %d int64, one per column)", S);
    }
    int rc = MTL_ERR;
    hid_t a = H5Aopen(d, "vocab_sizes", H5P_DEFAULT);
    hid_t t = H5I_INVALID_HID, sp = H5I_INVALID_HID;
    int64_t *v = NULL;
    if (a < 0) {
        mtl_fail(err, path, "/sparse: cannot open attribute vocab_sizes");
        goto done;
    }
    t = H5Aget_type(a);
    sp = H5Aget_space(a);
    if (t < 0 || sp < 0) {
        mtl_fail(err, path, "/sparse: cannot read attribute vocab_sizes");
        goto done;
    }
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    if (np != S) {
        mtl_fail(err, path,
                 "/sparse: attribute vocab_sizes has %lld entries but /sparse has %d "
                 "columns",
                 (long long)np, S);
        goto done;
    }
    if (S == 0) {
        rc = MTL_OK;
        goto done;
    }
    if (H5Tget_class(t) != H5T_INTEGER) {
        char tname[64];
        describe_type(t, tname, sizeof tname);
        mtl_fail(err, path, "/sparse: attribute vocab_sizes must be int64 (got %s)", tname);
        goto done;
    }
    v = mtl_alloc((size_t)S, sizeof(int64_t), "vocab_sizes", err);
    if (!v) goto done;
    if (H5Aread(a, H5T_NATIVE_INT64, v) < 0) {
        mtl_fail(err, path, "/sparse: cannot read attribute vocab_sizes");
        goto done;
    }
    for (int s = 0; s < S; s++) {
        if (v[s] <= 0) {
            mtl_fail(err, path, "/sparse: vocab_sizes[%d] (%s) is %lld, must be > 0", s,
                     names ? names[s] : "?", (long long)v[s]);
            goto done;
        }
    }
    *out = v;
    v = NULL;
    rc = MTL_OK;
done:
    free(v);
    close_id(&sp, H5Sclose);
    close_id(&t, H5Tclose);
    close_id(&a, H5Aclose);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* element types and compression filters of the row datasets */

/* What a row dataset is read as: int32 ids (/sparse) or float32 values. */
enum { WANT_INT32, WANT_FLOAT32 };

/* How a dataset's values reach memory: straight when the file holds the
 * wanted type (int32 / float32, either byte order: what mtl_prep writes), else
 * through a bounce buffer of the widest type of their kind, value by value
 * with a range check (read_values). SRC_BAD: a type that is refused. */
typedef enum { SRC_BAD, SRC_DIRECT, SRC_INT, SRC_UINT, SRC_FLOAT, SRC_BOOL } src_kind;

/* Ids: any integer type (or bool). Values: any float, integer or bool type. */
static src_kind classify_type(hid_t t, int want) {
    H5T_class_t c = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    if (c == H5T_INTEGER && sz <= 8) {
        int sgn = H5Tget_sign(t) == H5T_SGN_2;
        if (want == WANT_INT32 && sz == 4 && sgn) return SRC_DIRECT;
        return sgn ? SRC_INT : SRC_UINT;
    }
    if (c == H5T_FLOAT && want == WANT_FLOAT32) return sz == 4 ? SRC_DIRECT : SRC_FLOAT;
    if (c == H5T_ENUM && is_bool_enum(t)) return SRC_BOOL;
    return SRC_BAD;
}

/* Filters h5py users compress with that are not built into libhdf5: the name
 * for messages and the Debian 12 package with the plugin (NULL: none;
 * launch/install-deps.sh installs the others). */
static const struct {
    H5Z_filter_t id;
    const char *name, *package;
} PLUGIN_FILTERS[] = {
    {307, "bzip2", "hdf5-filter-plugin"},
    {32000, "lzf", "hdf5-plugin-lzf"},
    {32001, "blosc", "hdf5-filter-plugin-blosc-serial"},
    {32004, "lz4", "hdf5-filter-plugin"},
    {32008, "bitshuffle", "bitshuffle"},
    {32013, "zfp", "hdf5-filter-plugin-zfp-serial"},
    {32015, "zstd", NULL},
    {32017, "sz", NULL},
    {32026, "blosc2", NULL},
};

/* After a failed read: is a filter of /name's pipeline unavailable (HDF5
 * loads a plugin on the first ask)? Then say which and what provides it,
 * rather than letting the file look corrupt. Not checked before reading:
 * h5py marks filters optional, and a chunk its writer could not compress is
 * stored as it is, so a file can name a filter it does not need. */
static int check_filters(hid_t d, const char *name, const char *path, mtl_error *err) {
    hid_t dcpl = H5Dget_create_plist(d);
    if (dcpl < 0) return mtl_fail(err, path, "/%s: cannot read creation properties", name);
    int nf = H5Pget_nfilters(dcpl);
    int rc = nf < 0 ? mtl_fail(err, path, "/%s: cannot read filters", name) : MTL_OK;
    for (int i = 0; i < nf && rc == MTL_OK; i++) {
        unsigned flags = 0;
        size_t nvalues = 0;
        char stored[128] = "";
        H5Z_filter_t id =
            H5Pget_filter2(dcpl, (unsigned)i, &flags, &nvalues, NULL, sizeof stored, stored, NULL);
        if (id < 0) {
            rc = mtl_fail(err, path, "/%s: cannot read filter %d", name, i);
        } else if (H5Zfilter_avail(id) <= 0) {
            const char *fname = stored[0] ? stored : "unknown", *package = NULL;
            for (size_t k = 0; k < sizeof PLUGIN_FILTERS / sizeof PLUGIN_FILTERS[0]; k++)
                if (PLUGIN_FILTERS[k].id == id) {
                    fname = PLUGIN_FILTERS[k].name;
                    package = PLUGIN_FILTERS[k].package;
                }
            if (package)
                rc = mtl_fail(err, path,
                              "/%s: compressed with filter %d (%s), which this HDF5 "
                              "installation lacks: install %s",
                              name, (int)id, fname, package);
            else
                rc = mtl_fail(err, path,
                              "/%s: compressed with filter %d (%s), which this HDF5 "
                              "installation lacks: Debian has no package for it; put its HDF5 "
                              "plugin in a directory named by HDF5_PLUGIN_PATH, or rewrite the "
                              "file with gzip or lzf",
                              name, (int)id, fname);
        }
    }
    H5Pclose(dcpl);
    return rc;
}

/* Open /name if it exists (required: error when missing), check its rank and
 * element type, and return its dims. *d stays invalid when absent. */
static int open_checked(hid_t file, const char *name, int required, int rank, int want, hid_t *d,
                        hsize_t dims[2], const char *path, mtl_error *err) {
    *d = H5I_INVALID_HID;
    dims[0] = dims[1] = 0;
    htri_t ex = H5Lexists(file, name, H5P_DEFAULT);
    if (ex < 0) return mtl_fail(err, path, "/%s: cannot look up", name);
    if (!ex) return required ? mtl_fail(err, path, "/%s missing", name) : MTL_OK;
    /* No chunk cache: rows are read once, in order, and a cached 1 MiB chunk
     * per dataset would be most of a small job's memory. */
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl >= 0) H5Pset_chunk_cache(dapl, 0, 0, H5D_CHUNK_CACHE_W0_DEFAULT);
    *d = H5Dopen2(file, name, dapl >= 0 ? dapl : H5P_DEFAULT);
    if (dapl >= 0) H5Pclose(dapl);
    if (*d < 0) return mtl_fail(err, path, "/%s: is not a dataset", name);
    hid_t sp = H5Dget_space(*d);
    if (sp < 0) return mtl_fail(err, path, "/%s: cannot read shape", name);
    int nd = H5Sget_simple_extent_ndims(sp);
    if (rank == 0 && (nd == 1 || nd == 2)) rank = nd; /* /weights: [N] or [N, T] */
    if (rank == 0) {
        H5Sclose(sp);
        return mtl_fail(err, path, "/%s: must be [N] or [N, T] (got rank %d)", name, nd);
    }
    if (nd != rank) {
        H5Sclose(sp);
        if (rank == 2)
            return mtl_fail(err, path, "/%s: must be 2-D [N, %s] (got rank %d)", name,
                            name[0] == 's'   ? "S"
                            : name[0] == 'd' ? "D"
                                             : "T",
                            nd);
        return mtl_fail(err, path, "/%s: must be 1-D [N] (got rank %d)", name, nd);
    }
    herr_t r = H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    if (r < 0) return mtl_fail(err, path, "/%s: cannot read shape", name);
    if (rank == 2 && dims[1] > INT_MAX)
        return mtl_fail(err, path, "/%s: too many columns (%llu)", name,
                        (unsigned long long)dims[1]);
    hid_t t = H5Dget_type(*d);
    if (t < 0) return mtl_fail(err, path, "/%s: cannot read dtype", name);
    src_kind kind = classify_type(t, want);
    char tname[64];
    describe_type(t, tname, sizeof tname);
    H5Tclose(t);
    if (kind == SRC_BAD)
        return mtl_fail(err, path, "/%s: dtype must be %s (got %s)", name,
                        want == WANT_INT32 ? "an integer type" : "a float, integer or bool type",
                        tname);
    return MTL_OK;
}

/* Read rows [begin, begin+n) x all `cols` columns of a 1-D (cols == 0 means
 * rank 1) or 2-D dataset into buf. */
static int read_rows(hid_t d, int rank, hsize_t begin, hsize_t n, hsize_t cols, hid_t memtype,
                     void *buf, const char *name, const char *path, mtl_error *err) {
    if (n == 0 || (rank == 2 && cols == 0)) return MTL_OK;
    int rc = MTL_ERR;
    hsize_t start[2] = {begin, 0}, count[2] = {n, cols};
    hid_t fs = H5Dget_space(d);
    hid_t ms = H5Screate_simple(rank, count, NULL);
    if (fs < 0 || ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
        mtl_fail(err, path, "/%s: cannot select rows %llu..%llu", name, (unsigned long long)begin,
                 (unsigned long long)(begin + n - 1));
        goto done;
    }
    if (H5Dread(d, memtype, ms, fs, H5P_DEFAULT, buf) < 0) {
        if (check_filters(d, name, path, err) == MTL_OK) /* else: the filter is named */
            mtl_fail(err, path, "/%s: cannot read rows %llu..%llu (corrupt file?)", name,
                     (unsigned long long)begin, (unsigned long long)(begin + n - 1));
        goto done;
    }
    rc = MTL_OK;
done:
    close_id(&ms, H5Sclose);
    close_id(&fs, H5Sclose);
    return rc;
}

/* Values converted per round of read_values: 512 KiB of 8-byte bounce
 * buffer, whatever the shard's size. */
enum { BOUNCE_VALUES = 65536 };

/* "row R, column C (name)" of a 2-D dataset, "row R" of a 1-D one. */
static void cell_name(char *buf, size_t len, int rank, int64_t row, int col, char *const *names) {
    if (rank == 1)
        snprintf(buf, len, "row %lld", (long long)row);
    else
        snprintf(buf, len, "row %lld, column %d (%s)", (long long)row, col,
                 names ? names[col] : "?");
}

/* Convert m values of a bounce buffer (int64, uint64, double, or bool enum
 * elements of esz bytes) to int32 or float32 at out. The first value is row
 * row0, column 0; a value that does not fit is an error naming its cell. */
static int convert_values(src_kind kind, int want, const void *src, size_t esz, size_t m, int rank,
                          int cols, void *out, int64_t row0, char *const *names, const char *name,
                          const char *path, mtl_error *err) {
    const int64_t *si = src;
    const uint64_t *su = src;
    const double *sf = src;
    const unsigned char *sb = src;
    char cell[160];
    for (size_t i = 0; i < m; i++) {
        int bad = 0;
        if (want == WANT_INT32) {
            int64_t v = 0;
            if (kind == SRC_INT) {
                v = si[i];
                bad = v < INT32_MIN || v > INT32_MAX;
            } else if (kind == SRC_UINT) {
                bad = su[i] > INT32_MAX;
                v = (int64_t)(bad ? 0 : su[i]);
            } else {
                for (size_t b = 0; b < esz; b++) v |= sb[i * esz + b] != 0;
            }
            if (bad) {
                cell_name(cell, sizeof cell, rank, row0 + (int64_t)(i / (size_t)cols),
                          (int)(i % (size_t)cols), names);
                char val[32];
                if (kind == SRC_INT)
                    snprintf(val, sizeof val, "%lld", (long long)si[i]);
                else
                    snprintf(val, sizeof val, "%llu", (unsigned long long)su[i]);
                return mtl_fail(err, path,
                                "/%s: %s: value %s does not fit int32, the trainer's id type "
                                "(ids are 0..vocab_sizes-1)",
                                name, cell, val);
            }
            ((int32_t *)out)[i] = (int32_t)v;
        } else {
            double v;
            if (kind == SRC_INT)
                v = (double)si[i];
            else if (kind == SRC_UINT)
                v = (double)su[i];
            else if (kind == SRC_FLOAT)
                v = sf[i];
            else {
                v = 0;
                for (size_t b = 0; b < esz; b++) v = sb[i * esz + b] ? 1 : v;
            }
            float f = (float)v;
            if (isinf(f) && !isinf(v)) {
                cell_name(cell, sizeof cell, rank, row0 + (int64_t)(i / (size_t)cols),
                          (int)(i % (size_t)cols), names);
                return mtl_fail(err, path, "/%s: %s: value %g overflows float32 (max %g)", name,
                                cell, v, (double)FLT_MAX);
            }
            ((float *)out)[i] = f;
        }
    }
    return MTL_OK;
}

/* Read rows [begin, begin+n) (global rows) of a 1-D (cols 1) or 2-D dataset
 * into out as int32 ids or float32 values, from whatever type open_checked
 * accepted. The wanted type is read straight into out, as HDF5 converts it
 * (byte order); any other goes through a bounce buffer of int64, uint64 or
 * double, BOUNCE_VALUES at a time, and is checked value by value: HDF5's own
 * conversion would clamp an id beyond int32 or a value beyond float32 without
 * a word. Non-finite values pass through for the callers' checks. */
static int read_values(hid_t d, int rank, int64_t begin, int64_t n, int cols, int want, void *out,
                       char *const *names, const char *name, const char *path, mtl_error *err) {
    if (n <= 0 || cols <= 0) return MTL_OK;
    hid_t ft = H5Dget_type(d);
    if (ft < 0) return mtl_fail(err, path, "/%s: cannot read dtype", name);
    src_kind kind = classify_type(ft, want);
    hid_t bool_type = kind == SRC_BOOL ? H5Tget_native_type(ft, H5T_DIR_ASCEND) : H5I_INVALID_HID;
    H5Tclose(ft);
    hid_t mt = kind == SRC_DIRECT  ? (want == WANT_INT32 ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT)
               : kind == SRC_INT   ? H5T_NATIVE_INT64
               : kind == SRC_UINT  ? H5T_NATIVE_UINT64
               : kind == SRC_FLOAT ? H5T_NATIVE_DOUBLE
                                   : bool_type;
    if (kind == SRC_BAD || mt < 0) {
        close_id(&bool_type, H5Tclose);
        return mtl_fail(err, path, "/%s: unsupported dtype", name);
    }
    if (kind == SRC_DIRECT)
        return read_rows(d, rank, (hsize_t)begin, (hsize_t)n, (hsize_t)cols, mt, out, name, path,
                         err);
    size_t esz = H5Tget_size(mt), osz = want == WANT_INT32 ? sizeof(int32_t) : sizeof(float);
    int64_t step = BOUNCE_VALUES / cols > 0 ? BOUNCE_VALUES / cols : 1;
    if (step > n) step = n;
    int rc = MTL_ERR;
    void *buf = mtl_alloc((size_t)step * (size_t)cols, esz > 8 ? esz : 8, "conversion buffer", err);
    if (buf) {
        rc = MTL_OK;
        for (int64_t r = 0; r < n && rc == MTL_OK; r += step) {
            int64_t k = n - r < step ? n - r : step;
            size_t m = (size_t)k * (size_t)cols;
            rc = read_rows(d, rank, (hsize_t)(begin + r), (hsize_t)k, (hsize_t)cols, mt, buf, name,
                           path, err);
            if (rc == MTL_OK)
                rc = convert_values(kind, want, buf, esz, m, rank, cols,
                                    (char *)out + (size_t)r * (size_t)cols * osz, begin + r, names,
                                    name, path, err);
        }
    }
    free(buf);
    close_id(&bool_type, H5Tclose);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* value validation, shared by the reader and the writer. `row0` is the global
 * index of the first row, `path` what the message is about. */

static int check_sparse(const int32_t *x, int64_t n, int S, const int64_t *vocab,
                        char *const *names, int64_t row0, const char *path, mtl_error *err) {
    for (int64_t i = 0; i < n; i++)
        for (int s = 0; s < S; s++) {
            int32_t v = x[i * S + s];
            if (v < 0 || v >= vocab[s])
                return mtl_fail(err, path,
                                "/sparse: row %lld, column %d (%s): value %d outside 0..%lld "
                                "(vocab_sizes)",
                                (long long)(row0 + i), s, names ? names[s] : "?", (int)v,
                                (long long)(vocab[s] - 1));
        }
    return MTL_OK;
}

static int check_dense(const float *x, int64_t n, int D, char *const *names, int64_t row0,
                       const char *path, mtl_error *err) {
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < D; j++) {
            float v = x[i * D + j];
            if (!isfinite(v))
                return mtl_fail(err, path,
                                "/dense: row %lld, column %d (%s): value %s is not finite "
                                "(impute missing values before writing)",
                                (long long)(row0 + i), j, names ? names[j] : "?",
                                isnan(v) ? "NaN"
                                : v > 0  ? "Inf"
                                         : "-Inf");
        }
    return MTL_OK;
}

static int check_labels(const float *x, int64_t n, int T, char *const *names, int64_t row0,
                        const char *path, mtl_error *err) {
    for (int64_t i = 0; i < n; i++)
        for (int t = 0; t < T; t++) {
            float v = x[i * T + t];
            if (isinf(v))
                return mtl_fail(err, path,
                                "/labels: row %lld, column %d (%s): value %s (labels must be "
                                "finite, or NaN for a missing label)",
                                (long long)(row0 + i), t, names ? names[t] : "?",
                                v > 0 ? "Inf" : "-Inf");
        }
    return MTL_OK;
}

/* /weights is [N] (one weight for every task) or [N, T] (one per task). */
static int weight_columns(hid_t d, const hsize_t dims[2], int T, int *cols, const char *path,
                          mtl_error *err) {
    hid_t sp = H5Dget_space(d);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    close_id(&sp, H5Sclose);
    if (nd == 2 && dims[1] != (hsize_t)T)
        return mtl_fail(err, path, "/weights: has %llu columns; must be [N] or [N, T] with T = %d",
                        (unsigned long long)dims[1], T);
    *cols = nd == 2 ? T : 1;
    return MTL_OK;
}

/* n rows of cols weights each ([N] or [N, T]) */
static int check_weights(const float *w, int64_t n, int cols, int64_t row0, const char *path,
                         mtl_error *err) {
    for (int64_t i = 0; i < n * cols; i++) {
        float v = w[i];
        if (isfinite(v) && v >= 0) continue;
        char col[32] = "";
        if (cols > 1) snprintf(col, sizeof col, ", column %d", (int)(i % cols));
        if (!isfinite(v))
            return mtl_fail(err, path, "/weights: row %lld%s: value %s is not finite",
                            (long long)(row0 + i / cols), col,
                            isnan(v) ? "NaN"
                            : v > 0  ? "Inf"
                                     : "-Inf");
        return mtl_fail(err, path, "/weights: row %lld%s: value %g is negative",
                        (long long)(row0 + i / cols), col, (double)v);
    }
    return MTL_OK;
}

/* ------------------------------------------------------------------------- */
/* multi-valued fields: /multi/<field> with ids [nnz] and offsets [N+1] */

/* A scalar attribute of a /multi group: vocab_size (an integer) or pooling
 * (a string: "sum" or "mean"). */
static int read_multi_attrs(hid_t g, const char *gname, int64_t *vocab, int *mean, const char *path,
                            mtl_error *err) {
    if (H5Aexists(g, "vocab_size") <= 0)
        return mtl_fail(err, path, "%s: attribute vocab_size missing (int64)", gname);
    if (H5Aexists(g, "pooling") <= 0)
        return mtl_fail(err, path, "%s: attribute pooling missing (\"sum\" or \"mean\")", gname);
    hid_t a = H5Aopen(g, "vocab_size", H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    hid_t sp = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
    int ok = t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_INTEGER &&
             H5Sget_simple_extent_npoints(sp) == 1 && H5Aread(a, H5T_NATIVE_INT64, vocab) >= 0;
    close_id(&sp, H5Sclose);
    close_id(&t, H5Tclose);
    close_id(&a, H5Aclose);
    if (!ok) return mtl_fail(err, path, "%s: attribute vocab_size must be one integer", gname);
    if (*vocab <= 0 || *vocab > (int64_t)INT32_MAX + 1)
        return mtl_fail(err, path, "%s: vocab_size is %lld, must be 1..2147483648 (ids are int32)",
                        gname, (long long)*vocab);
    char what[340], **strs = NULL;
    int64_t n = 0;
    snprintf(what, sizeof what, "%s: attribute pooling", gname);
    a = H5Aopen(g, "pooling", H5P_DEFAULT);
    if (a < 0) return mtl_fail(err, path, "%s: cannot open", what);
    int rc = read_strings(a, 1, &strs, &n, path, what, err);
    H5Aclose(a);
    if (rc != MTL_OK) return rc;
    *mean = n == 1 && strcmp(strs[0], "mean") == 0;
    ok = n == 1 && (*mean || strcmp(strs[0], "sum") == 0);
    if (!ok)
        mtl_fail(err, path, "%s is '%s', must be \"sum\" or \"mean\"", what, n > 0 ? strs[0] : "");
    free_strs(strs, n);
    return ok ? MTL_OK : MTL_ERR;
}

/* Read rows [begin, begin + n) of a 1-D integer dataset as int64 (HDF5
 * converts any integer type exactly, except uint64 beyond int64, which then
 * fails the offsets' checks). */
static int read_i64(hid_t d, int64_t begin, int64_t n, int64_t *out, const char *name,
                    const char *path, mtl_error *err) {
    return read_rows(d, 1, (hsize_t)begin, (hsize_t)n, 1, H5T_NATIVE_INT64, out, name, path, err);
}

/* Field j of /multi: its header (name, vocab_size, pooling, the datasets'
 * shapes and end points) and, with rows, offsets [begin, begin + count] and
 * the ids they cover, validated. */
static int load_multi_field(mtl_dataset *ds, hid_t file, int j, const char *fname, int64_t N,
                            int with_rows, int64_t begin, int64_t count, const char *path,
                            mtl_error *err) {
    char gname[300], oname[320], iname[320];
    snprintf(gname, sizeof gname, "/multi/%s", fname);
    snprintf(oname, sizeof oname, "multi/%s/offsets", fname);
    snprintf(iname, sizeof iname, "multi/%s/ids", fname);
    if (!(ds->multi_names[j] = mtl_strdup(fname, err))) return MTL_ERR;
    int rc = MTL_ERR;
    hid_t g = H5Gopen2(file, gname, H5P_DEFAULT), d_off = H5I_INVALID_HID, d_ids = H5I_INVALID_HID;
    hsize_t doff[2], dids[2];
    if (g < 0) {
        mtl_fail(err, path, "%s: is not a group (want ids and offsets datasets)", gname);
        goto done;
    }
    if (read_multi_attrs(g, gname, &ds->multi_vocab[j], &ds->multi_mean[j], path, err) ||
        open_checked(file, oname, 1, 1, WANT_INT32, &d_off, doff, path, err) ||
        open_checked(file, iname, 1, 1, WANT_INT32, &d_ids, dids, path, err))
        goto done;
    if ((int64_t)doff[0] != N + 1) {
        mtl_fail(err, path, "/%s: has %llu entries, must be N + 1 = %lld (N = /labels rows)", oname,
                 (unsigned long long)doff[0], (long long)(N + 1));
        goto done;
    }
    int64_t nnz = (int64_t)dids[0], ends[2];
    if (read_i64(d_off, 0, 1, &ends[0], oname, path, err) ||
        read_i64(d_off, N, 1, &ends[1], oname, path, err))
        goto done;
    if (ends[0] != 0) {
        mtl_fail(err, path, "/%s: row 0: offsets[0] is %lld, must be 0", oname, (long long)ends[0]);
        goto done;
    }
    if (ends[1] != nnz) {
        mtl_fail(err, path, "/%s: offsets[N] = offsets[%lld] is %lld, must be len(ids) = %lld",
                 oname, (long long)N, (long long)ends[1], (long long)nnz);
        goto done;
    }
    if (!with_rows) {
        rc = MTL_OK;
        goto done;
    }
    int64_t *o = ds->multi_off[j] = mtl_alloc((size_t)count + 1, sizeof(int64_t), "offsets", err);
    if (!o || read_i64(d_off, begin, count + 1, o, oname, path, err)) goto done;
    for (int64_t i = 0; i <= count; i++) {
        if (o[i] < 0 || o[i] > nnz) {
            mtl_fail(err, path, "/%s: row %lld: offset %lld outside 0..%lld (len(ids))", oname,
                     (long long)(begin + i), (long long)o[i], (long long)nnz);
            goto done;
        }
        if (i < count && o[i + 1] < o[i]) {
            mtl_fail(err, path,
                     "/%s: row %lld: negative length %lld (offsets[%lld] = %lld < offsets[%lld] = "
                     "%lld; offsets must not decrease)",
                     oname, (long long)(begin + i), (long long)(o[i + 1] - o[i]),
                     (long long)(begin + i + 1), (long long)o[i + 1], (long long)(begin + i),
                     (long long)o[i]);
            goto done;
        }
    }
    int64_t first = o[0], len = o[count] - o[0];
    int32_t *ids = ds->multi_ids[j] = mtl_alloc((size_t)len + 1, sizeof(int32_t), "ids", err);
    if (!ids || read_values(d_ids, 1, first, len, 1, WANT_INT32, ids, NULL, iname, path, err))
        goto done;
    int64_t vocab = ds->multi_vocab[j], max_len = 0;
    for (int64_t i = 0; i < count; i++) {
        for (int64_t k = o[i] - first; k < o[i + 1] - first; k++)
            if (ids[k] < 0 || ids[k] >= vocab) {
                mtl_fail(err, path, "/%s: row %lld: id %d (ids[%lld]) outside 0..%lld (vocab_size)",
                         iname, (long long)(begin + i), (int)ids[k], (long long)(first + k),
                         (long long)(vocab - 1));
                goto done;
            }
        if (o[i + 1] - o[i] > max_len) max_len = o[i + 1] - o[i];
    }
    for (int64_t i = 0; i <= count; i++) o[i] -= first;
    ds->multi_max_len[j] = max_len;
    rc = MTL_OK;
done:
    close_id(&d_ids, H5Dclose);
    close_id(&d_off, H5Dclose);
    close_id(&g, H5Gclose);
    return rc;
}

/* Every field of /multi (absent: none), in name order. */
static int load_multi(mtl_dataset *ds, hid_t file, int64_t N, int with_rows, int64_t begin,
                      int64_t count, const char *path, mtl_error *err) {
    htri_t ex = H5Lexists(file, "multi", H5P_DEFAULT);
    if (ex < 0) return mtl_fail(err, path, "/multi: cannot look up");
    if (!ex) return MTL_OK;
    hid_t g = H5Gopen2(file, "multi", H5P_DEFAULT);
    if (g < 0) return mtl_fail(err, path, "/multi: is not a group");
    H5G_info_t info;
    int rc = MTL_ERR;
    if (H5Gget_info(g, &info) < 0) {
        mtl_fail(err, path, "/multi: cannot list");
        goto done;
    }
    if ((int64_t)info.nlinks + ds->S > MTL_MAX_FIELDS) {
        mtl_fail(err, path, "/multi: %d fields and %d in /sparse (at most %d in all)",
                 (int)info.nlinks, ds->S, MTL_MAX_FIELDS);
        goto done;
    }
    int M = (int)info.nlinks;
    ds->multi_names = mtl_alloc((size_t)M + 1, sizeof(char *), "multi names", err);
    ds->multi_vocab = mtl_alloc((size_t)M + 1, sizeof(int64_t), "multi vocab", err);
    ds->multi_mean = mtl_alloc((size_t)M + 1, sizeof(int), "multi pooling", err);
    ds->multi_off = mtl_alloc((size_t)M + 1, sizeof(int64_t *), "multi offsets", err);
    ds->multi_ids = mtl_alloc((size_t)M + 1, sizeof(int32_t *), "multi ids", err);
    ds->multi_max_len = mtl_alloc((size_t)M + 1, sizeof(int64_t), "multi lengths", err);
    if (!ds->multi_names || !ds->multi_vocab || !ds->multi_mean || !ds->multi_off ||
        !ds->multi_ids || !ds->multi_max_len)
        goto done;
    ds->M = M;
    for (int j = 0; j < M; j++) {
        char name[256];
        ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, (hsize_t)j, name,
                                         sizeof name, H5P_DEFAULT);
        if (len < 0 || (size_t)len >= sizeof name) {
            mtl_fail(err, path, "/multi: cannot read the name of field %d (too long?)", j);
            goto done;
        }
        if (load_multi_field(ds, file, j, name, N, with_rows, begin, count, path, err)) goto done;
    }
    rc = MTL_OK;
done:
    H5Gclose(g);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* reader */

void mtl_dataset_free(mtl_dataset *ds) {
    if (!ds) return;
    free(ds->path);
    free(ds->sparse);
    free(ds->sparse_u8);
    free(ds->sparse_u16);
    free(ds->dense);
    free(ds->labels);
    free(ds->weights);
    free(ds->groups);
    free(ds->vocab_sizes);
    free_strs(ds->sparse_names, ds->S);
    free_strs(ds->dense_names, ds->D);
    free_strs(ds->task_names, ds->T);
    for (int j = 0; j < ds->M; j++) {
        free(ds->multi_off ? ds->multi_off[j] : NULL);
        free(ds->multi_ids ? ds->multi_ids[j] : NULL);
    }
    free_strs(ds->multi_names, ds->M);
    free(ds->multi_vocab);
    free(ds->multi_mean);
    free(ds->multi_off);
    free(ds->multi_ids);
    free(ds->multi_max_len);
    memset(ds, 0, sizeof *ds);
}

/* The rows this call reads, [*begin, *begin + *count): rank's shard of
 * `world`, or, with range_begin >= 0, the rows [range_begin, range_begin +
 * range_count) (cut at the end of the file); with part set, those rows are the
 * dataset (ds->first, ds->n_total) and rank reads its shard of them. */
static int rows_to_read(mtl_dataset *ds, int rank, int world, int64_t range_begin,
                        int64_t range_count, int part, int64_t *begin_out, int64_t *count_out,
                        const char *path, mtl_error *err) {
    int64_t begin, count;
    if (range_begin >= 0) {
        if (range_begin > ds->n_total || range_count < 0 ||
            (part && range_count > ds->n_total - range_begin)) {
            return mtl_fail(err, path, "rows %lld..%lld requested, the file has %lld",
                            (long long)range_begin, (long long)(range_begin + range_count),
                            (long long)ds->n_total);
        }
        begin = range_begin;
        count = range_count < ds->n_total - begin ? range_count : ds->n_total - begin;
        if (part) {
            ds->first = begin;
            ds->n_total = count;
            int64_t b;
            mtl_shard_range(count, rank, world, &b, &count);
            begin += b;
        }
    } else {
        mtl_shard_range(ds->n_total, rank, world, &begin, &count);
    }
    *begin_out = begin;
    *count_out = count;
    return MTL_OK;
}

/* /sparse rows [begin, begin + count), checked against the vocabularies; with
 * compact, held in 1 or 2 bytes per id when the vocabularies allow (read and
 * checked as int32 a chunk at a time). */
static int read_sparse_rows(mtl_dataset *ds, hid_t d_sp, int64_t begin, int64_t count, int compact,
                            const char *path, mtl_error *err) {
    size_t n = (size_t)count;
    int64_t max_vocab = 0;
    for (int s = 0; s < ds->S; s++)
        if (ds->vocab_sizes[s] > max_vocab) max_vocab = ds->vocab_sizes[s];
    int width = !compact || ds->S == 0 ? 4 : max_vocab <= 256 ? 1 : max_vocab <= 65536 ? 2 : 4;
    if (width == 1)
        ds->sparse_u8 = mtl_alloc(n * (size_t)ds->S, 1, "sparse rows", err);
    else if (width == 2)
        ds->sparse_u16 = mtl_alloc(n * (size_t)ds->S, 2, "sparse rows", err);
    else
        ds->sparse = mtl_alloc(n * (size_t)ds->S, sizeof(int32_t), "sparse rows", err);
    if (!ds->sparse && !ds->sparse_u8 && !ds->sparse_u16) return MTL_ERR;
    if (width < 4) { /* compact ids: read and check int32 rows a chunk at a time */
        const int64_t chunk = 8192;
        int32_t *tmp =
            mtl_alloc((size_t)chunk * (size_t)ds->S, sizeof(int32_t), "sparse rows", err);
        if (!tmp) return MTL_ERR;
        for (int64_t r = 0; r < count; r += chunk) {
            int64_t k = count - r < chunk ? count - r : chunk;
            if (read_values(d_sp, 2, begin + r, k, ds->S, WANT_INT32, tmp, ds->sparse_names,
                            "sparse", path, err) ||
                check_sparse(tmp, k, ds->S, ds->vocab_sizes, ds->sparse_names, begin + r, path,
                             err)) {
                free(tmp);
                return MTL_ERR;
            }
            size_t off = (size_t)r * (size_t)ds->S, m = (size_t)k * (size_t)ds->S;
            if (width == 1)
                for (size_t i = 0; i < m; i++) ds->sparse_u8[off + i] = (uint8_t)tmp[i];
            else
                for (size_t i = 0; i < m; i++) ds->sparse_u16[off + i] = (uint16_t)tmp[i];
        }
        free(tmp);
        return MTL_OK;
    }
    return read_values(d_sp, 2, begin, count, ds->S, WANT_INT32, ds->sparse, ds->sparse_names,
                       "sparse", path, err) ||
                   check_sparse(ds->sparse, count, ds->S, ds->vocab_sizes, ds->sparse_names, begin,
                                path, err)
               ? MTL_ERR
               : MTL_OK;
}

/* The header, and with with_rows the rows that rows_to_read names, each
 * dataset validated. */
static int load_impl(mtl_dataset *ds, const char *path, int rank, int world, int with_rows,
                     int64_t range_begin, int64_t range_count, int part, int compact,
                     mtl_error *err) {
    memset(ds, 0, sizeof *ds);
    if (world < 1 || rank < 0 || rank >= world)
        return mtl_fail(err, path, "bad shard: rank %d of world %d", rank, world);
    hid_t file, d_sp = H5I_INVALID_HID, d_de = H5I_INVALID_HID, d_la = H5I_INVALID_HID,
                d_we = H5I_INVALID_HID, d_gr = H5I_INVALID_HID;
    if (open_h5(&file, path, err) != MTL_OK) return MTL_ERR;
    int rc = MTL_ERR;
    hsize_t dsp[2], dde[2], dla[2], dwe[2], dgr[2];
    if (open_checked(file, "labels", 1, 2, WANT_FLOAT32, &d_la, dla, path, err) ||
        open_checked(file, "sparse", 0, 2, WANT_INT32, &d_sp, dsp, path, err) ||
        open_checked(file, "dense", 0, 2, WANT_FLOAT32, &d_de, dde, path, err) ||
        open_checked(file, "weights", 0, 0, WANT_FLOAT32, &d_we, dwe, path, err) ||
        open_checked(file, "groups", 0, 1, WANT_INT32, &d_gr, dgr, path, err))
        goto done;
    hsize_t N = dla[0];
    /* /labels defines N; every other dataset must agree row for row. */
    struct {
        hid_t d;
        const char *name;
        hsize_t rows;
    } others[4] = {{d_sp, "sparse", dsp[0]},
                   {d_de, "dense", dde[0]},
                   {d_we, "weights", dwe[0]},
                   {d_gr, "groups", dgr[0]}};
    for (int k = 0; k < 4; k++)
        if (others[k].d >= 0 && others[k].rows != N) {
            mtl_fail(err, path, "/labels has %llu rows but /%s has %llu", (unsigned long long)N,
                     others[k].name, (unsigned long long)others[k].rows);
            goto done;
        }
    if (N == 0) {
        mtl_fail(err, path, "no rows");
        goto done;
    }
    if (dla[1] == 0) {
        mtl_fail(err, path, "/labels: has 0 columns (need at least one task)");
        goto done;
    }
    ds->n_total = (int64_t)N;
    int64_t N_file = (int64_t)N; /* n_total becomes a part's rows */
    ds->S = d_sp >= 0 ? (int)dsp[1] : 0;
    ds->D = d_de >= 0 ? (int)dde[1] : 0;
    ds->T = (int)dla[1];
    ds->has_groups = d_gr >= 0;
    if (d_we >= 0 && weight_columns(d_we, dwe, ds->T, &ds->weight_cols, path, err)) goto done;
    ds->path = mtl_strdup(path, err);
    if (!ds->path) goto done;
    if (d_sp >= 0 && (read_names(d_sp, "sparse", ds->S, &ds->sparse_names, path, err) ||
                      read_vocab_sizes(d_sp, ds->S, ds->sparse_names, &ds->vocab_sizes, path, err)))
        goto done;
    if (d_de >= 0 && read_names(d_de, "dense", ds->D, &ds->dense_names, path, err)) goto done;
    if (read_names(d_la, "labels", ds->T, &ds->task_names, path, err)) goto done;
    if (!with_rows) {
        rc = load_multi(ds, file, ds->n_total, 0, 0, 0, path, err);
        goto done;
    }

    int64_t begin = 0, count = 0;
    if (rows_to_read(ds, rank, world, range_begin, range_count, part, &begin, &count, path, err))
        goto done;
    ds->row_begin = begin;
    ds->n_rows = count;
    size_t n = (size_t)count;
    if (read_sparse_rows(ds, d_sp, begin, count, compact, path, err)) goto done;
    ds->dense = mtl_alloc(n * (size_t)ds->D, sizeof(float), "dense rows", err);
    ds->labels = mtl_alloc(n * (size_t)ds->T, sizeof(float), "label rows", err);
    if (!ds->dense || !ds->labels) goto done;
    if (d_we >= 0) {
        ds->weights = mtl_alloc(n * (size_t)ds->weight_cols, sizeof(float), "weight rows", err);
        if (!ds->weights) goto done;
    }
    if (d_gr >= 0) { /* group ids are only compared for equality: any int64 works */
        ds->groups = mtl_alloc(n + 1, sizeof(int64_t), "group rows", err);
        if (!ds->groups || read_i64(d_gr, begin, count, ds->groups, "groups", path, err)) goto done;
    }
    if (read_values(d_de, 2, begin, count, ds->D, WANT_FLOAT32, ds->dense, ds->dense_names, "dense",
                    path, err) ||
        read_values(d_la, 2, begin, count, ds->T, WANT_FLOAT32, ds->labels, ds->task_names,
                    "labels", path, err) ||
        (d_we >= 0 && read_values(d_we, ds->weight_cols > 1 ? 2 : 1, begin, count, ds->weight_cols,
                                  WANT_FLOAT32, ds->weights, NULL, "weights", path, err)))
        goto done;
    if (check_dense(ds->dense, count, ds->D, ds->dense_names, begin, path, err) ||
        check_labels(ds->labels, count, ds->T, ds->task_names, begin, path, err) ||
        (ds->weights && check_weights(ds->weights, count, ds->weight_cols, begin, path, err)))
        goto done;
    rc = load_multi(ds, file, N_file, 1, begin, count, path, err);
done:
    close_id(&d_gr, H5Dclose);
    close_id(&d_we, H5Dclose);
    close_id(&d_la, H5Dclose);
    close_id(&d_de, H5Dclose);
    close_id(&d_sp, H5Dclose);
    if (H5Fclose(file) < 0 && rc == MTL_OK) rc = mtl_fail(err, path, "cannot close file");
    if (rc != MTL_OK) mtl_dataset_free(ds);
    return rc;
}

int mtl_dataset_load(mtl_dataset *ds, const char *path, int rank, int world, mtl_error *err) {
    return load_impl(ds, path, rank, world, 1, -1, 0, 0, 0, err);
}

int mtl_dataset_load_compact(mtl_dataset *ds, const char *path, int rank, int world,
                             mtl_error *err) {
    return load_impl(ds, path, rank, world, 1, -1, 0, 0, 1, err);
}

int mtl_dataset_load_part(mtl_dataset *ds, const char *path, int64_t first, int64_t count, int rank,
                          int world, int compact, mtl_error *err) {
    return load_impl(ds, path, rank, world, 1, first, count, 1, compact, err);
}

int mtl_dataset_load_rows(mtl_dataset *ds, const char *path, int64_t begin, int64_t count,
                          mtl_error *err) {
    return load_impl(ds, path, 0, 1, 1, begin, count, 0, 0, err);
}

int mtl_dataset_load_header(mtl_dataset *ds, const char *path, mtl_error *err) {
    return load_impl(ds, path, 0, 1, 0, -1, 0, 0, 0, err);
}

/* ------------------------------------------------------------------------- */
/* /meta
 *
 *   /meta                 group, attrs n_sparse int64, n_dense int64
 *   /meta/vocab/<s>       vlen UTF-8 string [vocab_len[s]], s = 0..n_sparse-1
 *   /meta/dense_min       float64 [n_dense]
 *   /meta/dense_max       float64 [n_dense]
 *   /meta attr hash_buckets  int64 [n_sparse], only when a field is hashed:
 *                         N > 0 for a field hashed into N buckets (its vocab
 *                         has 0 entries), 0 for a vocabulary field
 */

void mtl_meta_free(mtl_meta *meta) {
    if (!meta) return;
    if (meta->vocab)
        for (int s = 0; s < meta->S; s++) free_strs(meta->vocab[s], meta->vocab_len[s]);
    free(meta->vocab);
    free(meta->vocab_len);
    free(meta->hash_buckets);
    free(meta->dense_min);
    free(meta->dense_max);
    memset(meta, 0, sizeof *meta);
}

static int read_scalar_i64(hid_t obj, const char *name, int64_t *v, const char *path,
                           mtl_error *err) {
    htri_t ex = H5Aexists(obj, name);
    if (ex <= 0) return mtl_fail(err, path, "/meta: attribute %s missing", name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return mtl_fail(err, path, "/meta: cannot open attribute %s", name);
    herr_t r = H5Aread(a, H5T_NATIVE_INT64, v);
    H5Aclose(a);
    if (r < 0) return mtl_fail(err, path, "/meta: cannot read attribute %s", name);
    return MTL_OK;
}

/* /meta/<name>, n float64 values, into a new array *out (allocated only once
 * the file is known to hold n values, so a corrupt n_dense costs nothing). */
static int read_f64_vec(hid_t g, const char *name, int64_t n, double **out, const char *path,
                        mtl_error *err) {
    htri_t ex = H5Lexists(g, name, H5P_DEFAULT);
    if (ex <= 0) return mtl_fail(err, path, "/meta/%s missing", name);
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) return mtl_fail(err, path, "/meta/%s: is not a dataset", name);
    int rc = MTL_ERR;
    hid_t sp = H5Dget_space(d);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (np != n) {
        mtl_fail(err, path, "/meta/%s: has %lld values, expected %lld (n_dense)", name,
                 (long long)np, (long long)n);
    } else if (!(*out = mtl_alloc((size_t)n, sizeof(double), name, err))) {
        /* message filled */
    } else if (n > 0 && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0) {
        mtl_fail(err, path, "/meta/%s: cannot read", name);
    } else {
        rc = MTL_OK;
    }
    close_id(&sp, H5Sclose);
    H5Dclose(d);
    return rc;
}

/* The optional hash_buckets attribute of /meta (absent: every field 0). */
static int read_hash_buckets(hid_t g, int64_t S, int64_t *out, const char *path, mtl_error *err) {
    htri_t ex = H5Aexists(g, "hash_buckets");
    if (ex < 0) return mtl_fail(err, path, "/meta: cannot look up attribute hash_buckets");
    if (ex == 0) return MTL_OK;
    hid_t a = H5Aopen(g, "hash_buckets", H5P_DEFAULT);
    if (a < 0) return mtl_fail(err, path, "/meta: cannot open attribute hash_buckets");
    hid_t sp = H5Aget_space(a);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    close_id(&sp, H5Sclose);
    int rc = MTL_OK;
    if (np != S)
        rc = mtl_fail(err, path, "/meta: attribute hash_buckets has %lld entries, expected %lld",
                      (long long)np, (long long)S);
    else if (S > 0 && H5Aread(a, H5T_NATIVE_INT64, out) < 0)
        rc = mtl_fail(err, path, "/meta: cannot read attribute hash_buckets");
    H5Aclose(a);
    for (int64_t s = 0; s < S && rc == MTL_OK; s++)
        if (out[s] < 0 || out[s] > INT32_MAX)
            rc = mtl_fail(err, path, "/meta: hash_buckets[%lld] is %lld, not in 0..%d",
                          (long long)s, (long long)out[s], INT32_MAX);
    return rc;
}

int mtl_meta_load(mtl_meta *meta, const char *path, mtl_error *err) {
    memset(meta, 0, sizeof *meta);
    hid_t file;
    if (open_h5(&file, path, err) != MTL_OK) return MTL_ERR;
    int rc = MTL_ERR;
    hid_t g = H5I_INVALID_HID, gv = H5I_INVALID_HID;
    htri_t ex = H5Lexists(file, "meta", H5P_DEFAULT);
    if (ex < 0) {
        mtl_fail(err, path, "/meta: cannot look up");
        goto done;
    }
    if (!ex) { /* no fitted encoding stored: an empty meta, not an error */
        rc = MTL_OK;
        goto done;
    }
    g = H5Gopen2(file, "meta", H5P_DEFAULT);
    if (g < 0) {
        mtl_fail(err, path, "/meta: is not a group");
        goto done;
    }
    int64_t S, D;
    if (read_scalar_i64(g, "n_sparse", &S, path, err) ||
        read_scalar_i64(g, "n_dense", &D, path, err))
        goto done;
    /* n_sparse sizes arrays walked on cleanup: bounded like the dataset's
     * fields, or a corrupt count costs gigabytes (a fuzz corpus file) */
    if (S < 0 || S > MTL_MAX_FIELDS || D < 0 || D > INT_MAX) {
        mtl_fail(err, path, "/meta: bad n_sparse %lld (0..%d) / n_dense %lld", (long long)S,
                 MTL_MAX_FIELDS, (long long)D);
        goto done;
    }
    meta->vocab_len = mtl_alloc((size_t)S, sizeof(int64_t), "meta vocab_len", err);
    meta->vocab = mtl_alloc((size_t)S, sizeof(char **), "meta vocab", err);
    meta->hash_buckets = mtl_alloc((size_t)S, sizeof(int64_t), "meta hash_buckets", err);
    if (!meta->vocab_len || !meta->vocab || !meta->hash_buckets) goto done;
    meta->S = (int)S;
    meta->D = (int)D;
    if (read_hash_buckets(g, S, meta->hash_buckets, path, err)) goto done;
    if (S > 0) {
        if (H5Lexists(g, "vocab", H5P_DEFAULT) <= 0 ||
            (gv = H5Gopen2(g, "vocab", H5P_DEFAULT)) < 0) {
            mtl_fail(err, path, "/meta/vocab missing");
            goto done;
        }
        for (int s = 0; s < meta->S; s++) {
            char name[32], what[64];
            snprintf(name, sizeof name, "%d", s);
            snprintf(what, sizeof what, "/meta/vocab/%d", s);
            if (H5Lexists(gv, name, H5P_DEFAULT) <= 0) {
                mtl_fail(err, path, "%s missing", what);
                goto done;
            }
            hid_t d = H5Dopen2(gv, name, H5P_DEFAULT);
            if (d < 0) {
                mtl_fail(err, path, "%s: is not a dataset", what);
                goto done;
            }
            int r = read_strings(d, 0, &meta->vocab[s], &meta->vocab_len[s], path, what, err);
            H5Dclose(d);
            if (r != MTL_OK) goto done;
        }
    }
    if (read_f64_vec(g, "dense_min", D, &meta->dense_min, path, err) ||
        read_f64_vec(g, "dense_max", D, &meta->dense_max, path, err))
        goto done;
    rc = MTL_OK;
done:
    close_id(&gv, H5Gclose);
    close_id(&g, H5Gclose);
    if (H5Fclose(file) < 0 && rc == MTL_OK) rc = mtl_fail(err, path, "cannot close file");
    if (rc != MTL_OK) mtl_meta_free(meta);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* writer */

struct mtl_writer {
    char *path, *tmp_path;
    hid_t file;
    hid_t d_sparse, d_dense, d_labels, d_weights; /* d_weights invalid when none */
    int S, D, T;
    int weight_cols; /* 0: no /weights, 1: [N], T: [N, T] */
    int64_t n;       /* rows written so far */
    int64_t *vocab_sizes;
    char **sparse_names, **dense_names, **task_names; /* for error messages */
    /* multi-valued fields: field j's offsets and ids datasets, its rows and
     * ids written so far */
    int M;
    hid_t *d_moff, *d_mids;
    int64_t *m_rows, *m_nnz, *m_vocab;
    char **m_names;
};

/* A vlen UTF-8 string type, what h5py reads back as str. */
/* Object creation properties without modification times, so the same inputs
 * give byte-identical files (HDF5 stamps every object by default). */
static hid_t untimed(hid_t cls) {
    hid_t pl = H5Pcreate(cls);
    if (pl >= 0 && H5Pset_obj_track_times(pl, 0) < 0) {
        H5Pclose(pl);
        return H5I_INVALID_HID;
    }
    return pl;
}

static hid_t vlen_utf8(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* A 1-D dataspace of n elements (n may be 0: h5py reads that back as an
 * empty array, where an H5S_NULL space would come back as h5py.Empty). */
static hid_t space_1d(hsize_t n) {
    return H5Screate_simple(1, &n, NULL);
}

static int write_str_attr(hid_t obj, const char *name, const char *const *strs, int n,
                          const char *path, mtl_error *err) {
    int rc = MTL_ERR;
    hid_t t = vlen_utf8(), sp = space_1d((hsize_t)n), a = H5I_INVALID_HID;
    const char **tmp = mtl_alloc((size_t)n, sizeof(char *), "names", err);
    if (!tmp) goto done;
    for (int i = 0; i < n; i++) tmp[i] = strs[i] ? strs[i] : "";
    if (t < 0 || sp < 0 || (a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        (n > 0 && H5Awrite(a, t, tmp) < 0)) {
        mtl_fail(err, path, "cannot write attribute %s", name);
        goto done;
    }
    rc = MTL_OK;
done:
    free(tmp);
    close_id(&a, H5Aclose);
    close_id(&sp, H5Sclose);
    close_id(&t, H5Tclose);
    return rc;
}

static int write_i64_attr(hid_t obj, const char *name, const int64_t *v, int n, int scalar,
                          const char *path, mtl_error *err) {
    hid_t sp = scalar ? H5Screate(H5S_SCALAR) : space_1d((hsize_t)n);
    hid_t a = sp >= 0 ? H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT)
                      : H5I_INVALID_HID;
    int ok = a >= 0 && ((!scalar && n == 0) || H5Awrite(a, H5T_NATIVE_INT64, v) >= 0);
    close_id(&a, H5Aclose);
    close_id(&sp, H5Sclose);
    return ok ? MTL_OK : mtl_fail(err, path, "cannot write attribute %s", name);
}

/* A scalar vlen UTF-8 string attribute (h5py reads it back as str). */
static int write_scalar_str_attr(hid_t obj, const char *name, const char *value, const char *path,
                                 mtl_error *err) {
    hid_t t = vlen_utf8(), sp = H5Screate(H5S_SCALAR);
    hid_t a = t >= 0 && sp >= 0 ? H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)
                                : H5I_INVALID_HID;
    int ok = a >= 0 && H5Awrite(a, t, &value) >= 0;
    close_id(&a, H5Aclose);
    close_id(&sp, H5Sclose);
    close_id(&t, H5Tclose);
    return ok ? MTL_OK : mtl_fail(err, path, "cannot write attribute %s", name);
}

/* An empty, extendable dataset [0, cols] (rank 2) or [0] (rank 1), chunked by
 * rows. Chunks are kept <= ~1 MiB so a chunk being filled by successive
 * appends stays in HDF5's default chunk cache. */
static hid_t create_rows_dataset(hid_t file, const char *name, hid_t type, int rank, int cols) {
    hsize_t dims[2] = {0, (hsize_t)cols};
    /* A zero-width fixed dimension cannot be chunked; make it unlimited. */
    hsize_t maxdims[2] = {H5S_UNLIMITED, cols > 0 ? (hsize_t)cols : H5S_UNLIMITED};
    hsize_t width = cols > 0 ? (hsize_t)cols : 1;
    hsize_t rows = 8192;
    while (rows > 64 && rows * width * 4 > (1u << 20)) rows /= 2;
    hsize_t chunk[2] = {rows, width};
    hid_t sp = H5Screate_simple(rank, dims, maxdims);
    hid_t pl = untimed(H5P_DATASET_CREATE);
    hid_t d = H5I_INVALID_HID;
    if (sp >= 0 && pl >= 0 && H5Pset_chunk(pl, rank, chunk) >= 0)
        d = H5Dcreate2(file, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    close_id(&pl, H5Pclose);
    close_id(&sp, H5Sclose);
    return d;
}

static void writer_free(mtl_writer *w) {
    free(w->path);
    free(w->tmp_path);
    free(w->vocab_sizes);
    free_strs(w->sparse_names, w->S);
    free_strs(w->dense_names, w->D);
    free_strs(w->task_names, w->T);
    free(w->d_moff);
    free(w->d_mids);
    free(w->m_rows);
    free(w->m_nnz);
    free(w->m_vocab);
    free_strs(w->m_names, w->M);
    free(w);
}

static void writer_close_handles(mtl_writer *w) {
    close_id(&w->d_sparse, H5Dclose);
    close_id(&w->d_dense, H5Dclose);
    close_id(&w->d_labels, H5Dclose);
    close_id(&w->d_weights, H5Dclose);
    for (int j = 0; j < w->M; j++) {
        close_id(&w->d_moff[j], H5Dclose);
        close_id(&w->d_mids[j], H5Dclose);
    }
    close_id(&w->file, H5Fclose);
}

void mtl_writer_abort(mtl_writer *w) {
    if (!w) return;
    writer_close_handles(w);
    if (w->tmp_path) unlink(w->tmp_path);
    writer_free(w);
}

static int copy_names(char ***dst, const char *const *src, int n, mtl_error *err) {
    *dst = NULL;
    if (n == 0) return MTL_OK;
    *dst = mtl_alloc((size_t)n, sizeof(char *), "names", err);
    if (!*dst) return MTL_ERR;
    for (int i = 0; i < n; i++)
        if (!((*dst)[i] = mtl_strdup(src ? src[i] : NULL, err))) return MTL_ERR;
    return MTL_OK;
}

int mtl_writer_open(mtl_writer **out, const char *path, int S, const char *const *sparse_names,
                    const int64_t *vocab_sizes, int D, const char *const *dense_names, int T,
                    const char *const *task_names, int weight_cols, mtl_error *err) {
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (S < 0 || D < 0 || T < 1)
        return mtl_fail(err, path, "writer: bad shape S=%d D=%d T=%d (need S, D >= 0, T >= 1)", S,
                        D, T);
    if (weight_cols != 0 && weight_cols != 1 && weight_cols != T)
        return mtl_fail(err, path, "writer: %d weight columns (0, 1 or T = %d)", weight_cols, T);
    if (S > 0 && !vocab_sizes) return mtl_fail(err, path, "writer: vocab_sizes is NULL");
    for (int s = 0; s < S; s++)
        if (vocab_sizes[s] <= 0)
            return mtl_fail(err, path, "writer: vocab_sizes[%d] is %lld, must be > 0", s,
                            (long long)vocab_sizes[s]);
    mtl_writer *w = mtl_alloc(1, sizeof *w, "writer", err);
    if (!w) return MTL_ERR;
    w->file = w->d_sparse = w->d_dense = w->d_labels = w->d_weights = H5I_INVALID_HID;
    w->S = S;
    w->D = D;
    w->T = T;
    size_t plen = strlen(path);
    w->path = mtl_strdup(path, err);
    w->tmp_path = mtl_alloc(plen + 5, 1, "tmp path", err);
    w->vocab_sizes = mtl_alloc((size_t)S, sizeof(int64_t), "vocab_sizes", err);
    if (!w->path || !w->tmp_path || !w->vocab_sizes) goto fail_nofile;
    snprintf(w->tmp_path, plen + 5, "%s.tmp", path);
    if (S > 0) memcpy(w->vocab_sizes, vocab_sizes, (size_t)S * sizeof(int64_t));
    if (copy_names(&w->sparse_names, sparse_names, S, err) ||
        copy_names(&w->dense_names, dense_names, D, err) ||
        copy_names(&w->task_names, task_names, T, err))
        goto fail_nofile;

    /* Object headers of HDF5 >= 1.8 so that big names attributes go to dense
     * attribute storage instead of hitting the 64 KiB object-header limit. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0) {
        close_id(&fapl, H5Pclose);
        mtl_fail(err, path, "writer: cannot set up file access properties");
        goto fail_nofile;
    }
    hid_t fcpl = untimed(H5P_FILE_CREATE);
    w->file = fcpl < 0 ? H5I_INVALID_HID : H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (w->file < 0) {
        mtl_fail(err, w->tmp_path,
                 "cannot create HDF5 file (does the directory exist and is it writable?)");
        goto fail_nofile;
    }
    w->d_sparse = create_rows_dataset(w->file, "sparse", H5T_STD_I32LE, 2, S);
    w->d_dense = create_rows_dataset(w->file, "dense", H5T_IEEE_F32LE, 2, D);
    w->d_labels = create_rows_dataset(w->file, "labels", H5T_IEEE_F32LE, 2, T);
    w->weight_cols = weight_cols;
    if (weight_cols)
        w->d_weights = create_rows_dataset(w->file, "weights", H5T_IEEE_F32LE,
                                           weight_cols > 1 ? 2 : 1, weight_cols);
    if (w->d_sparse < 0 || w->d_dense < 0 || w->d_labels < 0 || (weight_cols && w->d_weights < 0)) {
        mtl_fail(err, w->tmp_path, "cannot create datasets");
        goto fail;
    }
    if (write_str_attr(w->d_sparse, "names", (const char *const *)w->sparse_names, S, w->tmp_path,
                       err) ||
        write_i64_attr(w->d_sparse, "vocab_sizes", w->vocab_sizes, S, 0, w->tmp_path, err) ||
        write_str_attr(w->d_dense, "names", (const char *const *)w->dense_names, D, w->tmp_path,
                       err) ||
        write_str_attr(w->d_labels, "names", (const char *const *)w->task_names, T, w->tmp_path,
                       err))
        goto fail;
    *out = w;
    return MTL_OK;
fail:
    mtl_writer_abort(w);
    return MTL_ERR;
fail_nofile:
    writer_free(w);
    return MTL_ERR;
}

/* Append n rows x cols of buf after the first `row0` rows of d. */
static int append_rows(hid_t d, int rank, hsize_t row0, hsize_t n, hsize_t cols, hid_t memtype,
                       const void *buf, const char *name, const char *path, mtl_error *err) {
    hsize_t newdims[2] = {row0 + n, cols};
    if (H5Dset_extent(d, newdims) < 0)
        return mtl_fail(err, path, "/%s: cannot extend to %llu rows", name,
                        (unsigned long long)(row0 + n));
    if (rank == 2 && cols == 0) return MTL_OK;
    int rc = MTL_ERR;
    hsize_t start[2] = {row0, 0}, count[2] = {n, cols};
    hid_t fs = H5Dget_space(d);
    hid_t ms = H5Screate_simple(rank, count, NULL);
    if (fs < 0 || ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dwrite(d, memtype, ms, fs, H5P_DEFAULT, buf) < 0)
        mtl_fail(err, path, "/%s: cannot write rows %llu..%llu (disk full?)", name,
                 (unsigned long long)row0, (unsigned long long)(row0 + n - 1));
    else
        rc = MTL_OK;
    close_id(&ms, H5Sclose);
    close_id(&fs, H5Sclose);
    return rc;
}

int mtl_writer_append(mtl_writer *w, const int32_t *sparse, const float *dense, const float *labels,
                      const float *weights, int64_t n, mtl_error *err) {
    if (n < 0) return mtl_fail(err, w->path, "writer: negative row count %lld", (long long)n);
    if (n == 0) return MTL_OK;
    if ((w->S > 0 && !sparse) || (w->D > 0 && !dense) || !labels || (w->d_weights >= 0 && !weights))
        return mtl_fail(err, w->path, "writer: missing input array for append");
    /* Validate with the reader's rules, so a file we write always loads. */
    if (check_sparse(sparse, n, w->S, w->vocab_sizes, w->sparse_names, w->n, w->path, err) ||
        check_dense(dense, n, w->D, w->dense_names, w->n, w->path, err) ||
        check_labels(labels, n, w->T, w->task_names, w->n, w->path, err) ||
        (w->d_weights >= 0 && check_weights(weights, n, w->weight_cols, w->n, w->path, err)))
        return MTL_ERR;
    hsize_t r0 = (hsize_t)w->n, k = (hsize_t)n;
    if (append_rows(w->d_sparse, 2, r0, k, (hsize_t)w->S, H5T_NATIVE_INT32, sparse, "sparse",
                    w->tmp_path, err) ||
        append_rows(w->d_dense, 2, r0, k, (hsize_t)w->D, H5T_NATIVE_FLOAT, dense, "dense",
                    w->tmp_path, err) ||
        append_rows(w->d_labels, 2, r0, k, (hsize_t)w->T, H5T_NATIVE_FLOAT, labels, "labels",
                    w->tmp_path, err) ||
        (w->d_weights >= 0 &&
         append_rows(w->d_weights, w->weight_cols > 1 ? 2 : 1, r0, k, (hsize_t)w->weight_cols,
                     H5T_NATIVE_FLOAT, weights, "weights", w->tmp_path, err)))
        return MTL_ERR;
    w->n += n;
    return MTL_OK;
}

int mtl_writer_add_multi(mtl_writer *w, int M, const char *const *names, const int64_t *vocab,
                         const int *mean, mtl_error *err) {
    if (w->M > 0 || w->n > 0)
        return mtl_fail(err, w->path, "writer: multi-valued fields are declared once, first");
    if (M < 0 || M + w->S > MTL_MAX_FIELDS)
        return mtl_fail(err, w->path, "writer: %d multi-valued fields (at most %d - S)", M,
                        MTL_MAX_FIELDS);
    if (M == 0) return MTL_OK;
    w->d_moff = mtl_alloc((size_t)M, sizeof(hid_t), "writer", err);
    w->d_mids = mtl_alloc((size_t)M, sizeof(hid_t), "writer", err);
    w->m_rows = mtl_alloc((size_t)M, sizeof(int64_t), "writer", err);
    w->m_nnz = mtl_alloc((size_t)M, sizeof(int64_t), "writer", err);
    w->m_vocab = mtl_alloc((size_t)M, sizeof(int64_t), "writer", err);
    if (!w->d_moff || !w->d_mids || !w->m_rows || !w->m_nnz || !w->m_vocab ||
        copy_names(&w->m_names, names, M, err))
        return MTL_ERR;
    for (int j = 0; j < M; j++) w->d_moff[j] = w->d_mids[j] = H5I_INVALID_HID;
    w->M = M;
    hid_t gcpl = untimed(H5P_GROUP_CREATE);
    hid_t g = H5Gcreate2(w->file, "multi", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    int rc = g < 0 ? mtl_fail(err, w->tmp_path, "/multi: cannot create group") : MTL_OK;
    for (int j = 0; j < M && rc == MTL_OK; j++) {
        w->m_vocab[j] = vocab[j];
        if (vocab[j] <= 0 || vocab[j] > (int64_t)INT32_MAX + 1) {
            rc = mtl_fail(err, w->path, "writer: /multi/%s: vocab_size %lld outside 1..2^31",
                          names[j], (long long)vocab[j]);
            break;
        }
        hid_t f = H5Gcreate2(g, names[j], H5P_DEFAULT, gcpl, H5P_DEFAULT);
        const char *pool = mean[j] ? "mean" : "sum";
        int64_t zero = 0;
        if (f >= 0) {
            w->d_moff[j] = create_rows_dataset(f, "offsets", H5T_STD_I64LE, 1, 1);
            w->d_mids[j] = create_rows_dataset(f, "ids", H5T_STD_I32LE, 1, 1);
        }
        if (f < 0 || w->d_moff[j] < 0 || w->d_mids[j] < 0)
            rc = mtl_fail(err, w->tmp_path, "/multi/%s: cannot create", names[j]);
        else if (write_i64_attr(f, "vocab_size", &vocab[j], 1, 1, w->tmp_path, err) ||
                 write_scalar_str_attr(f, "pooling", pool, w->tmp_path, err) ||
                 append_rows(w->d_moff[j], 1, 0, 1, 1, H5T_NATIVE_INT64, &zero, names[j],
                             w->tmp_path, err))
            rc = MTL_ERR;
        close_id(&f, H5Gclose);
    }
    close_id(&g, H5Gclose);
    close_id(&gcpl, H5Pclose);
    return rc;
}

int mtl_writer_append_multi(mtl_writer *w, int field, const int64_t *off, const int32_t *ids,
                            int64_t n, mtl_error *err) {
    if (field < 0 || field >= w->M)
        return mtl_fail(err, w->path, "writer: no multi-valued field %d", field);
    if (n <= 0) return MTL_OK;
    const char *name = w->m_names[field];
    if (off[0] != 0) return mtl_fail(err, w->path, "writer: /multi/%s: off[0] must be 0", name);
    int64_t *shifted = mtl_alloc((size_t)n, sizeof(int64_t), "offsets", err);
    if (!shifted) return MTL_ERR;
    int rc = MTL_OK;
    for (int64_t i = 0; i < n && rc == MTL_OK; i++) {
        int64_t row = w->m_rows[field] + i;
        if (off[i + 1] < off[i])
            rc = mtl_fail(err, w->path, "/multi/%s/offsets: row %lld: negative length", name,
                          (long long)row);
        for (int64_t k = off[i]; k < off[i + 1] && rc == MTL_OK; k++)
            if (ids[k] < 0 || ids[k] >= w->m_vocab[field])
                rc = mtl_fail(err, w->path,
                              "/multi/%s/ids: row %lld: id %d outside 0..%lld (vocab_size)", name,
                              (long long)row, (int)ids[k], (long long)(w->m_vocab[field] - 1));
        shifted[i] = w->m_nnz[field] + off[i + 1];
    }
    if (rc == MTL_OK)
        rc = append_rows(w->d_mids[field], 1, (hsize_t)w->m_nnz[field], (hsize_t)off[n], 1,
                         H5T_NATIVE_INT32, ids, name, w->tmp_path, err);
    if (rc == MTL_OK)
        rc = append_rows(w->d_moff[field], 1, (hsize_t)w->m_rows[field] + 1, (hsize_t)n, 1,
                         H5T_NATIVE_INT64, shifted, name, w->tmp_path, err);
    free(shifted);
    if (rc == MTL_OK) {
        w->m_nnz[field] += off[n];
        w->m_rows[field] += n;
    }
    return rc;
}

static int write_meta(hid_t file, const mtl_meta *m, const char *path, mtl_error *err) {
    if (m->S < 0 || m->D < 0 || (m->S > 0 && (!m->vocab || !m->vocab_len)) ||
        (m->D > 0 && (!m->dense_min || !m->dense_max)))
        return mtl_fail(err, path, "/meta: inconsistent meta (S=%d D=%d)", m->S, m->D);
    int rc = MTL_ERR;
    hid_t gcpl = untimed(H5P_GROUP_CREATE), dcpl = untimed(H5P_DATASET_CREATE);
    hid_t g = H5Gcreate2(file, "meta", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    hid_t gv = g >= 0 ? H5Gcreate2(g, "vocab", H5P_DEFAULT, gcpl, H5P_DEFAULT) : H5I_INVALID_HID;
    hid_t t = vlen_utf8();
    const char **tmp = NULL;
    if (g < 0 || gv < 0 || t < 0) {
        mtl_fail(err, path, "/meta: cannot create group");
        goto done;
    }
    int64_t S = m->S, D = m->D;
    if (write_i64_attr(g, "n_sparse", &S, 1, 1, path, err) ||
        write_i64_attr(g, "n_dense", &D, 1, 1, path, err))
        goto done;
    int hashed = 0; /* the attribute only when a field is hashed: other files stay as before */
    for (int s = 0; s < m->S && m->hash_buckets; s++) hashed |= m->hash_buckets[s] != 0;
    if (hashed && write_i64_attr(g, "hash_buckets", m->hash_buckets, m->S, 0, path, err)) goto done;
    for (int s = 0; s < m->S; s++) {
        int64_t n = m->vocab_len[s];
        char name[32];
        snprintf(name, sizeof name, "%d", s);
        free(tmp);
        tmp = mtl_alloc((size_t)n, sizeof(char *), "meta vocab", err);
        if (!tmp) goto done;
        for (int64_t i = 0; i < n; i++) tmp[i] = m->vocab[s][i] ? m->vocab[s][i] : "";
        hid_t sp = space_1d((hsize_t)n);
        hid_t d =
            sp >= 0 ? H5Dcreate2(gv, name, t, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT) : H5I_INVALID_HID;
        int ok = d >= 0 && (n == 0 || H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp) >= 0);
        close_id(&d, H5Dclose);
        close_id(&sp, H5Sclose);
        if (!ok) {
            mtl_fail(err, path, "/meta/vocab/%d: cannot write", s);
            goto done;
        }
    }
    const char *vec_names[2] = {"dense_min", "dense_max"};
    const double *vecs[2] = {m->dense_min, m->dense_max};
    for (int k = 0; k < 2; k++) {
        hid_t sp = space_1d((hsize_t)D);
        hid_t d = sp >= 0 ? H5Dcreate2(g, vec_names[k], H5T_IEEE_F64LE, sp, H5P_DEFAULT, dcpl,
                                       H5P_DEFAULT)
                          : H5I_INVALID_HID;
        int ok = d >= 0 && (D == 0 || H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                               vecs[k]) >= 0);
        close_id(&d, H5Dclose);
        close_id(&sp, H5Sclose);
        if (!ok) {
            mtl_fail(err, path, "/meta/%s: cannot write", vec_names[k]);
            goto done;
        }
    }
    rc = MTL_OK;
done:
    free(tmp);
    close_id(&t, H5Tclose);
    close_id(&gv, H5Gclose);
    close_id(&g, H5Gclose);
    close_id(&gcpl, H5Pclose);
    close_id(&dcpl, H5Pclose);
    return rc;
}

int mtl_writer_close(mtl_writer *w, const mtl_meta *meta, mtl_error *err) {
    if (!w) return mtl_fail(err, NULL, "mtl_writer_close: NULL writer");
    if (meta && write_meta(w->file, meta, w->tmp_path, err) != MTL_OK) {
        mtl_writer_abort(w);
        return MTL_ERR;
    }
    /* Close every object before the file so H5Fclose really flushes and
     * closes it (and reports a failed flush, e.g. a full disk). */
    close_id(&w->d_sparse, H5Dclose);
    close_id(&w->d_dense, H5Dclose);
    close_id(&w->d_labels, H5Dclose);
    close_id(&w->d_weights, H5Dclose);
    for (int j = 0; j < w->M; j++) {
        if (w->m_rows[j] != w->n) {
            mtl_fail(err, w->tmp_path, "/multi/%s: %lld rows written, /labels has %lld",
                     w->m_names[j], (long long)w->m_rows[j], (long long)w->n);
            mtl_writer_abort(w);
            return MTL_ERR;
        }
        close_id(&w->d_moff[j], H5Dclose);
        close_id(&w->d_mids[j], H5Dclose);
    }
    herr_t r = H5Fclose(w->file);
    w->file = H5I_INVALID_HID;
    if (r < 0) {
        mtl_fail(err, w->tmp_path, "cannot close HDF5 file (disk full?)");
        mtl_writer_abort(w);
        return MTL_ERR;
    }
    if (rename(w->tmp_path, w->path) != 0) {
        mtl_fail(err, w->path, "cannot rename %s into place: %s", w->tmp_path, strerror(errno));
        mtl_writer_abort(w);
        return MTL_ERR;
    }
    writer_free(w);
    return MTL_OK;
}

int mtl_dataset_save(const mtl_dataset *ds, const char *path, const mtl_meta *meta,
                     mtl_error *err) {
    if (ds->S > 0 && !ds->sparse)
        return mtl_fail(err, path, "cannot save a dataset loaded with compact ids");
    mtl_writer *w;
    if (mtl_writer_open(&w, path, ds->S, (const char *const *)ds->sparse_names, ds->vocab_sizes,
                        ds->D, (const char *const *)ds->dense_names, ds->T,
                        (const char *const *)ds->task_names, ds->weights ? ds->weight_cols : 0,
                        err) != MTL_OK)
        return MTL_ERR;
    int rc = mtl_writer_add_multi(w, ds->M, (const char *const *)ds->multi_names, ds->multi_vocab,
                                  ds->multi_mean, err);
    if (rc == MTL_OK)
        rc = mtl_writer_append(w, ds->sparse, ds->dense, ds->labels, ds->weights, ds->n_rows, err);
    for (int j = 0; j < ds->M && rc == MTL_OK; j++)
        rc = mtl_writer_append_multi(w, j, ds->multi_off[j], ds->multi_ids[j], ds->n_rows, err);
    if (rc != MTL_OK) {
        mtl_writer_abort(w);
        return MTL_ERR;
    }
    return mtl_writer_close(w, meta, err);
}

/* ------------------------------------------------------------------------- */
/* mini-batches */

int mtl_batch_alloc(mtl_batch *b, int capacity, int S, int D, int T, mtl_error *err) {
    memset(b, 0, sizeof *b);
    if (capacity < 1 || S < 0 || D < 0 || T < 0)
        return mtl_fail(err, NULL, "mtl_batch_alloc: bad shape capacity=%d S=%d D=%d T=%d",
                        capacity, S, D, T);
    size_t c = (size_t)capacity;
    b->sparse = mtl_alloc(c * (size_t)S, sizeof(int32_t), "batch sparse", err);
    b->dense = mtl_alloc(c * (size_t)D, sizeof(float), "batch dense", err);
    b->labels = mtl_alloc(c * (size_t)T, sizeof(float), "batch labels", err);
    b->weights = mtl_alloc(c * (size_t)T, sizeof(float), "batch weights", err);
    if (!b->sparse || !b->dense || !b->labels || !b->weights) {
        mtl_batch_free(b);
        return MTL_ERR;
    }
    b->capacity = capacity;
    b->S = S;
    b->D = D;
    b->T = T;
    return MTL_OK;
}

void mtl_batch_free(mtl_batch *b) {
    if (!b) return;
    free(b->sparse);
    free(b->dense);
    free(b->labels);
    free(b->weights);
    for (int j = 0; j < b->M; j++) free(b->multi_ids[j]);
    free(b->multi_ids);
    free(b->multi_cap);
    free(b->multi_off);
    memset(b, 0, sizeof *b);
}

int mtl_batch_alloc_multi(mtl_batch *b, int M, mtl_error *err) {
    if (M <= 0) return MTL_OK;
    b->multi_ld = b->capacity + 1;
    b->multi_off =
        mtl_alloc((size_t)M * (size_t)b->multi_ld, sizeof(int32_t), "batch offsets", err);
    b->multi_ids = mtl_alloc((size_t)M, sizeof(int32_t *), "batch ids", err);
    b->multi_cap = mtl_alloc((size_t)M, sizeof(int64_t), "batch ids", err);
    if (!b->multi_off || !b->multi_ids || !b->multi_cap) return MTL_ERR;
    b->M = M;
    return MTL_OK;
}

int mtl_batch_reserve(mtl_batch *b, const mtl_dataset *ds, mtl_error *err) {
    assert(b->M == ds->M);
    for (int j = 0; j < b->M; j++) {
        /* offsets within a batch are int32: a batch holds < 2^31 ids */
        int64_t need = (int64_t)b->capacity * ds->multi_max_len[j];
        if (need > INT32_MAX)
            return mtl_fail(err, ds->path, "/multi/%s: lists of %lld ids make a batch too large",
                            ds->multi_names[j], (long long)ds->multi_max_len[j]);
        if (need <= b->multi_cap[j]) continue;
        int32_t *p = realloc(b->multi_ids[j], (size_t)need * sizeof(int32_t));
        if (!p)
            return mtl_fail(err, ds->path, "/multi/%s: batch ids: out of memory",
                            ds->multi_names[j]);
        b->multi_ids[j] = p;
        b->multi_cap[j] = need;
    }
    return MTL_OK;
}

void mtl_batch_gather(mtl_batch *b, const mtl_dataset *ds, const int64_t *rows, int n) {
    assert(n >= 0 && n <= b->capacity);
    assert(b->S == ds->S && b->D == ds->D && b->T == ds->T);
    size_t S = (size_t)ds->S, D = (size_t)ds->D, T = (size_t)ds->T;
    for (int i = 0; i < n; i++) {
        int64_t r = rows[i];
        assert(r >= 0 && r < ds->n_rows);
        /* shuffled rows are cache misses: ask for a later row's data early */
        if (i + 8 < n) {
            size_t ahead = (size_t)rows[i + 8];
            if (ds->sparse) __builtin_prefetch(ds->sparse + ahead * S);
            if (ds->sparse_u8) __builtin_prefetch(ds->sparse_u8 + ahead * S);
            if (ds->sparse_u16) __builtin_prefetch(ds->sparse_u16 + ahead * S);
            if (D) __builtin_prefetch(ds->dense + ahead * D);
            __builtin_prefetch(ds->labels + ahead * T);
        }
        size_t ri = (size_t)r, bi = (size_t)i;
        /* loops rather than memcpy: rows are tens of bytes, a libc call each costs more */
        if (ds->sparse)
            for (size_t j = 0; j < S; j++) b->sparse[bi * S + j] = ds->sparse[ri * S + j];
        else if (ds->sparse_u8)
            for (size_t j = 0; j < S; j++) b->sparse[bi * S + j] = ds->sparse_u8[ri * S + j];
        else
            for (size_t j = 0; j < S; j++) b->sparse[bi * S + j] = ds->sparse_u16[ri * S + j];
        for (size_t j = 0; j < D; j++) b->dense[bi * D + j] = ds->dense[ri * D + j];
        for (size_t j = 0; j < T; j++) b->labels[bi * T + j] = ds->labels[ri * T + j];
        float *w = b->weights + bi * T; /* [N] weights: the row's for every task */
        if (!ds->weights)
            for (size_t j = 0; j < T; j++) w[j] = 1.0f;
        else if (ds->weight_cols == 1)
            for (size_t j = 0; j < T; j++) w[j] = ds->weights[ri];
        else
            for (size_t j = 0; j < T; j++) w[j] = ds->weights[ri * T + j];
    }
    /* lists after the batch's ids so far (o[0]: 0, or where a view starts) */
    for (int j = 0; j < ds->M; j++) {
        int32_t *o = b->multi_off + (size_t)j * (size_t)b->multi_ld, *out = b->multi_ids[j];
        const int64_t *off = ds->multi_off[j];
        const int32_t *ids = ds->multi_ids[j];
        for (int i = 0; i < n; i++) {
            int64_t a = off[rows[i]], e = off[rows[i] + 1];
            int32_t at = o[i];
            assert(at + (e - a) <= b->multi_cap[j]);
            for (int64_t k = a; k < e; k++) out[at++] = ids[k];
            o[i + 1] = at;
        }
    }
    b->n = n;
}

mtl_batch mtl_batch_rows(const mtl_batch *b, int first, int n) {
    mtl_batch v = *b;
    v.sparse += (size_t)first * (size_t)b->S;
    v.dense += (size_t)first * (size_t)b->D;
    v.labels += (size_t)first * (size_t)b->T;
    v.weights += (size_t)first * (size_t)b->T;
    if (v.grad_rows) v.grad_rows += (size_t)first * (size_t)b->S;
    if (v.table_rows) v.table_rows += (size_t)first * (size_t)b->S;
    v.multi_off += first; /* the lists' offsets index the whole batch's ids */
    v.capacity -= first;
    v.n = n;
    return v;
}

/* ------------------------------------------------------------------------- */
/* shuffle */

/* splitmix64's finalizer: a bijective 64-bit mixer, so distinct (seed, epoch,
 * rank) combine into well-spread, distinct-looking generator seeds. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void mtl_shuffle(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch, int rank) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ULL);
    h = mix64(h ^ ((uint64_t)epoch + 0x632be59bd9b4e019ULL));
    h = mix64(h ^ ((uint64_t)(uint32_t)rank + 0x85ebca77c2b2ae63ULL));
    mtl_rng rng;
    mtl_rng_seed(&rng, h);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)mtl_rng_below(&rng, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
