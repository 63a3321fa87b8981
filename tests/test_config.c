/* Tests for src/config.c: defaults, INI files, the command line, the
 * override order, every class of rejection (asserting the message), the
 * predict command, --help/--version, cross-field validation and the usage
 * text. INI files are written into MTL_TEST_TMP. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mtl/config.h"
#include "mtl/optim.h"
#include "test_models.h"

/* ---- helpers ---- */

/* Write `text` to MTL_TEST_TMP/name and return the path (static buffer per slot). */
static const char *write_file(const char *name, const char *text) {
    static char paths[4][MTL_PATH_MAX];
    static int slot = 0;
    char *path = paths[slot++ % 4];
    snprintf(path, MTL_PATH_MAX, "%s/%s", MTL_TEST_TMP, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Parse a NULL-terminated argument list (argv[0] added). */
static int parse_args(mtl_config *cfg, mtl_error *err, const char *const *args) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"mtl_dist";
    for (int i = 0; args[i]; i++) argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    memset(err, 0, sizeof *err);
    return mtl_config_parse(cfg, argc, argv, err);
}
#define PARSE(cfg, err, ...) parse_args((cfg), (err), (const char *const[]){__VA_ARGS__, NULL})

/* Parsing must fail with a message containing `want`. */
#define EXPECT_FAIL(want, ...)                                                                     \
    do {                                                                                           \
        mtl_config c_;                                                                             \
        mtl_error e_;                                                                              \
        int rc_ = PARSE(&c_, &e_, __VA_ARGS__);                                                    \
        expect_msg(rc_, &e_, (want), __FILE__, __LINE__);                                          \
    } while (0)

static void expect_msg(int rc, const mtl_error *err, const char *want, const char *file, int line) {
    if (rc == MTL_ERR && strstr(err->msg, want)) return;
    print_error("rc %d, message \"%s\"; expected MTL_ERR and \"%s\"\n", rc, err->msg, want);
    _fail(file, line);
}

static void expect_ok(int rc, const mtl_error *err, const char *file, int line) {
    if (rc == MTL_OK) return;
    print_error("unexpected error: %s\n", err->msg);
    _fail(file, line);
}
#define EXPECT_OK(rc, err) expect_ok((rc), (err), __FILE__, __LINE__)

static void assert_units(const mtl_units *u, int n, const int *want) {
    assert_int_equal(u->n, n);
    for (int i = 0; i < n; i++) assert_int_equal(u->units[i], want[i]);
}

/* ---- tests ---- */

static void test_defaults(void **state) {
    (void)state;
    mtl_config c;
    mtl_config_defaults(&c);
    assert_int_equal(c.command, MTL_CMD_TRAIN);
    assert_ptr_equal(c.model, model_of(K_MMOE));
    assert_int_equal(c.embedding_dim, 4);
    assert_units(&c.bottom_units, 1, (const int[]){16});
    assert_units(&c.tower_units.list[0], 1, (const int[]){8});
    assert_units(&c.expert_units, 1, (const int[]){16});
    assert_int_equal(c.gate_units.list[0].n, 0);
    assert_int_equal(c.num_experts, 8);
    assert_int_equal(c.num_experts_specific, 4);
    assert_int_equal(c.num_experts_shared, 4);
    assert_int_equal(c.num_levels, 2);
    assert_int_equal(c.optimizer, MTL_OPT_ADAM);
    assert_true(c.lr == 0.01f && c.momentum == 0.0f);
    assert_int_equal(c.batch_size, 1024);
    assert_int_equal(c.epochs, 10);
    assert_true(c.l2_embedding == 1e-5f && c.l2_dnn == 0.0f && c.dropout == 0.0f);
    assert_int_equal(c.batch_norm, 0);
    assert_true(c.seed == 1024);
    assert_int_equal(c.early_stop_patience, 0);
    assert_string_equal(c.early_stop_metric, "valid_loss");
    assert_int_equal(c.loss_uncertainty, 0);
    assert_int_equal(c.keep_checkpoints, 3);
    assert_int_equal(c.threads, 1);
    assert_int_equal(c.data_order_global, 0);
    assert_string_equal(c.ctr_task, "");
    assert_string_equal(c.ctcvr_task, "");
    assert_string_equal(c.train_path, "");
    assert_int_equal(c.n_loss_weights, 0);
    assert_int_equal(c.n_task_types, 0);
    assert_true(c.max_steps == 0 && c.checkpoint_every_steps == 0);
    assert_true(c.checkpoint_every_seconds == 0.0);
    assert_int_equal(c.quiet, 0);
    assert_int_equal(c.skip_nonfinite_steps, 0);

    // parse with no arguments = the defaults, and resets a dirty struct
    mtl_config p;
    mtl_error e;
    memset(&p, 0x5a, sizeof p);
    char *argv[] = {(char *)"mtl_dist", NULL};
    EXPECT_OK(mtl_config_parse(&p, 1, argv, &e), &e);
    assert_memory_equal(&p, &c, sizeof c);
}

/* Per-task lists (--tower-units 32,32/16), --activation, and the model text a
 * checkpoint records: the lists come back from it unchanged. */
static void test_per_task_units(void **state) {
    (void)state;
    mtl_config c, back;
    mtl_error e = {{0}};
    mtl_config_defaults(&c);
    assert_int_equal(mtl_config_set(&c, "tower_units", "32,32/16", "--tower-units", &e), MTL_OK);
    assert_int_equal(c.tower_units.n_lists, 2);
    assert_units(&c.tower_units.list[0], 2, (const int[]){32, 32});
    assert_units(&c.tower_units.list[1], 1, (const int[]){16});
    assert_ptr_equal(mtl_task_units_at(&c.tower_units, 1), &c.tower_units.list[1]);
    assert_int_equal(mtl_config_set(&c, "gate_units", "none/4", "--gate-units", &e), MTL_OK);
    assert_int_equal(c.gate_units.list[0].n, 0);
    assert_units(&c.gate_units.list[1], 1, (const int[]){4});
    assert_int_equal(mtl_config_set(&c, "activation", "tanh", "--activation", &e), MTL_OK);
    assert_int_equal(c.activation, MTL_ACT_TANH);
    char text[8192];
    mtl_config_model_text(&c, text, sizeof text);
    assert_non_null(strstr(text, "tower_units = 32,32/16\n"));
    assert_non_null(strstr(text, "gate_units = none/4\n"));
    assert_non_null(strstr(text, "activation = tanh\n"));
    mtl_config_defaults(&back);
    assert_int_equal(mtl_config_apply_text(&back, text, "ckpt", &e), MTL_OK);
    assert_memory_equal(&back.tower_units, &c.tower_units, sizeof c.tower_units);
    assert_memory_equal(&back.gate_units, &c.gate_units, sizeof c.gate_units);
    assert_int_equal(back.activation, MTL_ACT_TANH);
    /* --resume compares models by their text; an older checkpoint's text
     * (no activation line) is the same model as the defaults' */
    char mine[8192];
    mtl_config_defaults(&back);
    assert_true(mtl_config_same_model(&back, "model = mmoe\ntower_units = 8\n", mine, sizeof mine));
    assert_false(mtl_config_same_model(&c, "model = mmoe\ntower_units = 8\n", mine, sizeof mine));
    assert_false(
        mtl_config_same_model(&back, "model = mmoe\nactivation = tanh\n", mine, sizeof mine));
    /* one list serves every task */
    assert_int_equal(mtl_config_set(&c, "tower_units", "8", "--tower-units", &e), MTL_OK);
    assert_int_equal(c.tower_units.n_lists, 1);
    assert_ptr_equal(mtl_task_units_at(&c.tower_units, 5), &c.tower_units.list[0]);
    expect_msg(mtl_config_set(&c, "tower_units", "32,x/16", "--tower-units", &e), &e,
               "--tower-units: '32,x': 'x' is not", __FILE__, __LINE__);
    expect_msg(mtl_config_set(&c, "tower_units", "32//16", "--tower-units", &e), &e,
               "--tower-units: '' must have at least 1 layer", __FILE__, __LINE__);
    expect_msg(mtl_config_set(&c, "activation", "gelu", "--activation", &e), &e,
               "--activation: 'gelu' is not an activation (relu, tanh, sigmoid)", __FILE__,
               __LINE__);
    /* --help lists every model of the list */
    for (int k = 0; mtl_models[k]; k++) {
        char want[64];
        snprintf(want, sizeof want, "\n  %s ", mtl_models[k]->name);
        assert_non_null(strstr(mtl_config_usage(), want));
    }
}

static void test_model_names(void **state) {
    (void)state;
    for (int k = 0; mtl_models[k]; k++)
        assert_ptr_equal(mtl_model_find(model_of(k)->name), model_of(k));
    assert_string_equal(model_of(K_SHARED_BOTTOM)->name, "shared_bottom");
    assert_string_equal(model_of(K_PLE)->name, "ple");
    assert_null(mtl_model_find("xgboost"));
    assert_null(mtl_model_find(""));
}

static void test_ini_parsing(void **state) {
    (void)state;
    const char *path = write_file("full.ini", "; a census run\n"
                                              "# both comment styles\n"
                                              "[train]\n"
                                              "model = ple\n"
                                              "\n"
                                              "[columns] ; mtl_prep's sections are skipped\n"
                                              "names = a, b, c\n"
                                              "categorical = a\n"
                                              "[task.income]\n"
                                              "column = c\n"
                                              "positive = >50K\n"
                                              "[train]  ; a section may come back\n"
                                              "train = data/train.h5\n"
                                              "valid=data/valid.h5   ; inline comment\n"
                                              "test = data/test.h5   # inline comment\n"
                                              "data-order = global\n"
                                              "[train]\n"
                                              "  embedding_dim = 8\n"
                                              "  bottom_units = 64, 32\n"
                                              "  tower_units = 16,8\n"
                                              "  expert_units = 32\n"
                                              "  gate_units = 8\n"
                                              "  num_experts_specific = 2\n"
                                              "  num_experts_shared = 3\n"
                                              "  num_levels = 3\n"
                                              "  batch_norm = yes\n"
                                              "  dropout = 0.25\n"
                                              "  task_types = binary, regression\n"
                                              "[train]\n"
                                              "optimizer = adagrad\n"
                                              "lr = 5e-3\n"
                                              "batch_size = 2048\n"
                                              "epochs = 3\n"
                                              "seed = 18446744073709551615\n"
                                              "l2_embedding = 0\n"
                                              "l2_dnn = 1e-4\n"
                                              "loss_weights = 1, 0.5\n"
                                              "loss_weighting = uncertainty\n"
                                              "early_stop_patience = 2\n"
                                              "early_stop_metric = auc:income\n"
                                              "skip_nonfinite_steps = on\n"
                                              "[train]\n"
                                              "metrics_out = m.jsonl\n"
                                              "checkpoint_dir = ckpt\n"
                                              "checkpoint_every_steps = 500\n"
                                              "checkpoint_every_seconds = 1.5\n"
                                              "keep_checkpoints = 5\n"
                                              "resume = latest\n"
                                              "threads = 2\n"
                                              "max_steps = 10000000000\n"
                                              "quiet = TRUE\n");
    mtl_config c;
    mtl_error e;
    mtl_config_defaults(&c);
    EXPECT_OK(mtl_config_load_ini(&c, path, &e), &e);
    assert_string_equal(c.config_path, path);
    assert_ptr_equal(c.model, model_of(K_PLE));
    assert_string_equal(c.train_path, "data/train.h5");
    assert_string_equal(c.valid_path, "data/valid.h5");
    assert_string_equal(c.test_path, "data/test.h5");
    assert_int_equal(c.data_order_global, 1);
    assert_int_equal(c.embedding_dim, 8);
    assert_units(&c.bottom_units, 2, (const int[]){64, 32});
    assert_units(&c.tower_units.list[0], 2, (const int[]){16, 8});
    assert_units(&c.expert_units, 1, (const int[]){32});
    assert_units(&c.gate_units.list[0], 1, (const int[]){8});
    assert_int_equal(c.num_experts_specific, 2);
    assert_int_equal(c.num_experts_shared, 3);
    assert_int_equal(c.num_levels, 3);
    assert_int_equal(c.batch_norm, 1);
    assert_true(c.dropout == 0.25f);
    assert_int_equal(c.n_task_types, 2);
    assert_int_equal(c.task_regression[0], 0);
    assert_int_equal(c.task_regression[1], 1);
    assert_int_equal(c.optimizer, MTL_OPT_ADAGRAD);
    assert_true(c.lr == 5e-3f);
    assert_int_equal(c.batch_size, 2048);
    assert_int_equal(c.epochs, 3);
    assert_true(c.seed == UINT64_MAX);
    assert_true(c.l2_embedding == 0.0f && c.l2_dnn == 1e-4f);
    assert_int_equal(c.n_loss_weights, 2);
    assert_true(c.loss_weights[0] == 1.0f && c.loss_weights[1] == 0.5f);
    assert_int_equal(c.loss_uncertainty, 1);
    assert_int_equal(c.early_stop_patience, 2);
    assert_string_equal(c.early_stop_metric, "auc:income");
    assert_int_equal(c.skip_nonfinite_steps, 1);
    assert_string_equal(c.metrics_out, "m.jsonl");
    assert_string_equal(c.checkpoint_dir, "ckpt");
    assert_true(c.checkpoint_every_steps == 500);
    assert_true(c.checkpoint_every_seconds == 1.5);
    assert_int_equal(c.keep_checkpoints, 5);
    assert_string_equal(c.resume, "latest");
    assert_int_equal(c.threads, 2);
    assert_true(c.max_steps == 10000000000LL);
    assert_int_equal(c.quiet, 1);
    EXPECT_OK(mtl_config_validate(&c, &e), &e);

    // CRLF line ends and an empty value (clears a path set before)
    const char *crlf = write_file("crlf.ini", "[train]\r\nepochs = 4\r\ntrain =\r\n");
    EXPECT_OK(mtl_config_load_ini(&c, crlf, &e), &e);
    assert_int_equal(c.epochs, 4);
    assert_string_equal(c.train_path, "");
}

static void test_cli_overrides_ini(void **state) {
    (void)state;
    const char *path = write_file("base.ini", "[train]\nlr = 0.5\nepochs = 7\nmodel = cgc\n"
                                              "train = from_file.h5\n");
    mtl_config c;
    mtl_error e;
    // --config last on the line is still applied first
    EXPECT_OK(PARSE(&c, &e, "--lr", "0.125", "--train=cli.h5", "--config", path), &e);
    assert_true(c.lr == 0.125f);
    assert_int_equal(c.epochs, 7);
    assert_ptr_equal(c.model, model_of(K_CGC));
    assert_string_equal(c.train_path, "cli.h5");
    assert_string_equal(c.config_path, path);
    // options apply in order: the last one wins
    EXPECT_OK(PARSE(&c, &e, "--config=" MTL_TEST_TMP "/base.ini", "--epochs", "1", "--epochs=2"),
              &e);
    assert_int_equal(c.epochs, 2);
    assert_true(c.lr == 0.5f);
}

static void test_cli_forms(void **state) {
    (void)state;
    mtl_config c;
    mtl_error e;
    // --key value, --key=value, '-' and '_' alike (even mixed)
    EXPECT_OK(PARSE(&c, &e, "--batch-size", "256", "--batch_size=512", "--embedding_dim", "6",
                    "--num-experts=3", "--l2_dnn", "0.001", "--early-stop_patience", "4",
                    "--checkpoint-every-seconds=60", "--seed", "7"),
              &e);
    assert_int_equal(c.batch_size, 512);
    assert_int_equal(c.embedding_dim, 6);
    assert_int_equal(c.num_experts, 3);
    assert_true(c.l2_dnn == 0.001f);
    assert_int_equal(c.early_stop_patience, 4);
    assert_true(c.checkpoint_every_seconds == 60.0);
    assert_true(c.seed == 7);
    // flags: bare = true, =value, and a following boolean word
    EXPECT_OK(PARSE(&c, &e, "--quiet", "--batch-norm", "--skip-nonfinite-steps"), &e);
    assert_true(c.quiet && c.batch_norm && c.skip_nonfinite_steps);
    EXPECT_OK(PARSE(&c, &e, "--quiet=false", "--batch-norm", "off", "--skip_nonfinite_steps=1"),
              &e);
    assert_true(!c.quiet && !c.batch_norm && c.skip_nonfinite_steps);
    // a bare flag followed by the command word: the word is the command
    EXPECT_OK(PARSE(&c, &e, "--quiet", "predict"), &e);
    assert_true(c.quiet && c.command == MTL_CMD_PREDICT);
    // values with spaces around numbers; negative numbers are values, not options
    EXPECT_OK(PARSE(&c, &e, "--lr", " 0.25 ", "--model", "shared_bottom", "--optimizer", "sgd",
                    "--momentum", "0.9", "--data-order", "local", "--loss-weighting", "fixed"),
              &e);
    assert_true(c.lr == 0.25f && c.momentum == 0.9f);
    assert_ptr_equal(c.model, model_of(K_SHARED_BOTTOM));
    assert_int_equal(c.optimizer, MTL_OPT_SGD);
    EXPECT_FAIL("--lr: '-1' must be > 0", "--lr", "-1");
}

static void test_lists(void **state) {
    (void)state;
    mtl_config c;
    mtl_error e;
    EXPECT_OK(PARSE(&c, &e, "--bottom-units", " 256 , 128,64 ", "--tower-units=32",
                    "--expert-units", "1,2,3,4,5,6,7,8", "--gate-units", "none"),
              &e);
    assert_units(&c.bottom_units, 3, (const int[]){256, 128, 64});
    assert_units(&c.tower_units.list[0], 1, (const int[]){32});
    assert_units(&c.expert_units, 8, (const int[]){1, 2, 3, 4, 5, 6, 7, 8});
    assert_int_equal(c.gate_units.list[0].n, 0);
    EXPECT_OK(PARSE(&c, &e, "--gate-units", "16,4"), &e);
    assert_units(&c.gate_units.list[0], 2, (const int[]){16, 4});
    EXPECT_OK(PARSE(&c, &e, "--gate-units", "16", "--gate-units="), &e); // "" = no layers
    assert_int_equal(c.gate_units.list[0].n, 0);
    EXPECT_OK(PARSE(&c, &e, "--loss-weights", "1,0.5,0,2e1", "--task-types",
                    "binary,binary,regression,binary"),
              &e);
    assert_int_equal(c.n_loss_weights, 4);
    assert_true(c.loss_weights[2] == 0.0f && c.loss_weights[3] == 20.0f);
    assert_int_equal(c.n_task_types, 4);
    assert_int_equal(c.task_regression[2], 1);
    EXPECT_OK(PARSE(&c, &e, "--loss-weights", "1,2", "--loss-weights", "none"), &e);
    assert_int_equal(c.n_loss_weights, 0);

    EXPECT_FAIL("--bottom-units: 'none' must have at least 1 layer", "--bottom-units", "none");
    EXPECT_FAIL("--tower-units: '' must have at least 1 layer", "--tower-units=");
    EXPECT_FAIL("--expert-units: '16,x': 'x' is not a number", "--expert-units", "16,x");
    EXPECT_FAIL("'16,,8': '' is not a number", "--bottom-units", "16,,8");
    EXPECT_FAIL("'16,0': 0 is out of range (1..1000000)", "--bottom-units", "16,0");
    EXPECT_FAIL("'8,1.5': '1.5' is not an integer", "--gate-units", "8,1.5");
    EXPECT_FAIL("'1,2,3,4,5,6,7,8,9' has more than 8 layers", "--bottom-units",
                "1,2,3,4,5,6,7,8,9");
    EXPECT_FAIL("--loss-weights: '1,-2': '-2' must be >= 0", "--loss-weights", "1,-2");
    EXPECT_FAIL("'1,nan': 'nan' is not a finite number", "--loss-weights", "1,nan");
    EXPECT_FAIL("has more than 16 weights", "--loss-weights", "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1");
    EXPECT_FAIL("--task-types: 'binary,ranking': 'ranking' is not a task type (binary, "
                "regression)",
                "--task-types", "binary,ranking");
}

static void test_rejections(void **state) {
    (void)state;
    // malformed numbers
    EXPECT_FAIL("--lr: 'abc' is not a number", "--lr", "abc");
    EXPECT_FAIL("--lr: '0.1x' is not a number", "--lr=0.1x");
    EXPECT_FAIL("--lr: '' is not a number", "--lr=");
    EXPECT_FAIL("--lr: 'inf' is not a finite number", "--lr", "inf");
    EXPECT_FAIL("--dropout: 'nan' is not a finite number", "--dropout", "nan");
    EXPECT_FAIL("--lr: '1e400' is not a finite number", "--lr", "1e400");
    EXPECT_FAIL("--lr: '1e39' is too large", "--lr", "1e39");
    EXPECT_FAIL("--epochs: '1.5' is not an integer", "--epochs", "1.5");
    EXPECT_FAIL("--epochs: '10 epochs' is not a number", "--epochs", "10 epochs");
    // out of range
    EXPECT_FAIL("--batch-size: 0 is out of range (1..100000000)", "--batch-size", "0");
    EXPECT_FAIL("--batch_size: 100000001 is out of range (1..100000000)", "--batch_size",
                "100000001");
    EXPECT_FAIL("--epochs: 99999999999999999999 is out of range", "--epochs",
                "99999999999999999999");
    EXPECT_FAIL("--seed: -1 is out of range (0..18446744073709551615)", "--seed", "-1");
    EXPECT_FAIL("--seed: 18446744073709551616 is out of range", "--seed", "18446744073709551616");
    EXPECT_FAIL("--max-steps: -1 is out of range", "--max-steps=-1");
    EXPECT_FAIL("--keep-checkpoints: 0 is out of range", "--keep-checkpoints", "0");
    EXPECT_FAIL("--threads: 0 is out of range", "--threads", "0");
    EXPECT_FAIL("--early-stop-patience: -1 is out of range", "--early-stop-patience", "-1");
    EXPECT_FAIL("--lr: '0' must be > 0", "--lr", "0");
    EXPECT_FAIL("--lr: '1e-50' must be > 0", "--lr", "1e-50"); // rounds to 0.0f
    EXPECT_FAIL("--dropout: '1' must be in [0, 1)", "--dropout", "1");
    EXPECT_FAIL("--momentum: '-0.1' must be in [0, 1)", "--momentum", "-0.1");
    EXPECT_FAIL("--l2-embedding: '-1e-5' must be >= 0", "--l2-embedding", "-1e-5");
    EXPECT_FAIL("--checkpoint-every-seconds: '-1' must be >= 0", "--checkpoint-every-seconds",
                "-1");
    // words
    EXPECT_FAIL("--model: 'xgboost' is not a model (shared_bottom, esmm, mmoe, cgc, ple", "--model",
                "xgboost");
    EXPECT_FAIL("--optimizer: 'rmsprop' is not an optimizer (adam, sgd, adagrad)", "--optimizer",
                "rmsprop");
    EXPECT_FAIL("--data-order: 'random' is not a data order (local, global)", "--data-order",
                "random");
    EXPECT_FAIL("--loss-weighting: 'gradnorm' is not a loss weighting (fixed, uncertainty)",
                "--loss-weighting", "gradnorm");
    EXPECT_FAIL("--quiet: 'maybe' is not a boolean", "--quiet=maybe");
    EXPECT_FAIL("--early-stop-metric: 'auc' is not valid_loss, auc:TASK or gauc:TASK",
                "--early-stop-metric", "auc");
    EXPECT_FAIL("--early-stop-metric: 'auc:' is not valid_loss, auc:TASK or gauc:TASK",
                "--early-stop-metric", "auc:");
    // options
    EXPECT_FAIL("--frobnicate: unknown option (see --help)", "--frobnicate", "3");
    EXPECT_FAIL("--frobnicate: unknown option (see --help)", "--frobnicate=3");
    EXPECT_FAIL("-x: unknown option (see --help)", "-x");
    EXPECT_FAIL("--lr: missing value", "--lr");
    EXPECT_FAIL("--lr: missing value", "--lr", "--epochs", "3");
    EXPECT_FAIL("'evaluate': unknown command (train, predict", "evaluate");
    EXPECT_FAIL("'extra': unexpected argument (see --help)", "train", "extra");
    EXPECT_FAIL("'train': unexpected argument", "predict", "train");
    // strings longer than their buffer
    char long_path[MTL_PATH_MAX + 10];
    memset(long_path, 'a', sizeof long_path - 1);
    long_path[sizeof long_path - 1] = '\0';
    EXPECT_FAIL("--train: value is too long (1033 characters, at most 1023)", "--train", long_path);
    EXPECT_FAIL("--ctr-task: value is too long", "--ctr-task",
                "a_task_name_that_is_longer_than_sixty_three_characters_xxxxxxxxxxxxxxx");
    // a valid value after an error is never reached: rc and message only
    EXPECT_FAIL("--epochs: 0 is out of range", "--epochs", "0", "--epochs", "3");
}

/* The names issue 4 gave: --patience is --early-stop-patience's short name
 * (both work, on the command line and in a file); --valid-split FRACTION. */
static void test_patience_valid_split(void **state) {
    (void)state;
    mtl_config c;
    mtl_error e;
    EXPECT_OK(PARSE(&c, &e, "--train", "t.h5", "--valid-split", "0.2", "--patience", "3"), &e);
    assert_int_equal(c.early_stop_patience, 3);
    assert_true(c.valid_split == 0.2);
    EXPECT_OK(mtl_config_validate(&c, &e), &e);
    EXPECT_OK(PARSE(&c, &e, "--patience=2", "--early-stop-patience", "5"), &e);
    assert_int_equal(c.early_stop_patience, 5); // one setting: the last one wins
    EXPECT_OK(PARSE(&c, &e, "--early-stop-patience", "5", "--patience=2"), &e);
    assert_int_equal(c.early_stop_patience, 2);
    EXPECT_FAIL("--patience: -1 is out of range", "--patience", "-1");
    EXPECT_FAIL("--valid-split: '1' must be in [0, 1)", "--valid-split", "1");
    EXPECT_FAIL("--valid-split: '-0.1' must be in [0, 1)", "--valid-split", "-0.1");
    EXPECT_FAIL("--valid-split: 'half' is not a number", "--valid-split", "half");
    EXPECT_OK(PARSE(&c, &e, "--valid-split", "0"), &e); // 0: none
    assert_true(c.valid_split == 0.0);
    // both given: an error naming both
    EXPECT_OK(PARSE(&c, &e, "--train", "t.h5", "--valid", "v.h5", "--valid-split", "0.1"), &e);
    expect_msg(mtl_config_validate(&c, &e), &e, "cannot be combined with --valid FILE", __FILE__,
               __LINE__);
    const char *path = write_file("patience.ini", "[train]\npatience = 4\nvalid_split = 0.25\n");
    EXPECT_OK(PARSE(&c, &e, "--config", path), &e);
    assert_int_equal(c.early_stop_patience, 4);
    assert_true(c.valid_split == 0.25);
}

/* One config per dataset for both tools: mtl_dist reads [train] and the
 * trained model's [train.MODEL], which the command line's --model picks;
 * mtl_prep's sections are skipped. */
static void test_shared_config(void **state) {
    (void)state;
    const char *path = write_file("shared.ini", "[columns]\n"
                                                "names = a, b, y1, y2\n"
                                                "categorical = a\n"
                                                "numeric = b\n"
                                                "[task.click]\n"
                                                "column = y1\n"
                                                "positive = 1\n"
                                                "negative = 0\n"
                                                "[train]\n"
                                                "epochs = 3\n"
                                                "lr = 0.02\n"
                                                "[train.esmm]\n"
                                                "ctr_task = click\n"
                                                "ctcvr_task = buy\n"
                                                "lr = 0.05\n"
                                                "[train.ple]\n"
                                                "num_levels = 3\n"
                                                "[task.buy]\n"
                                                "column = y2\n"
                                                "positive = 1\n"
                                                "negative = 0\n");
    mtl_config c;
    mtl_error e;
    // the default model (mmoe): [train] only
    EXPECT_OK(PARSE(&c, &e, "--config", path, "--train", "t.h5"), &e);
    assert_int_equal(c.epochs, 3);
    assert_true(c.lr == 0.02f);
    assert_string_equal(c.ctr_task, "");
    assert_int_equal(c.num_levels, 2);
    // --model esmm, after or before --config: [train.esmm] on top of [train]
    EXPECT_OK(PARSE(&c, &e, "--config", path, "--model", "esmm", "--train", "t.h5"), &e);
    assert_ptr_equal(c.model, model_of(K_ESMM));
    assert_string_equal(c.ctr_task, "click");
    assert_string_equal(c.ctcvr_task, "buy");
    assert_true(c.lr == 0.05f);
    assert_int_equal(c.num_levels, 2);
    EXPECT_OK(mtl_config_validate(&c, &e), &e);
    // the command line still wins over the model's section
    EXPECT_OK(PARSE(&c, &e, "--model=esmm", "--lr", "0.001", "--config", path), &e);
    assert_true(c.lr == 0.001f);
    EXPECT_OK(PARSE(&c, &e, "--config", path, "--model", "ple"), &e);
    assert_int_equal(c.num_levels, 3);
    assert_string_equal(c.ctr_task, "");
    // the model named in [train] picks the section too, unless --model overrides it
    const char *p2 = write_file("shared2.ini", "[train.esmm]\nctr_task = click\n"
                                               "[train]\nmodel = esmm\n");
    EXPECT_OK(PARSE(&c, &e, "--config", p2), &e);
    assert_ptr_equal(c.model, model_of(K_ESMM));
    assert_string_equal(c.ctr_task, "click");
    EXPECT_OK(PARSE(&c, &e, "--config", p2, "--model", "cgc"), &e);
    assert_ptr_equal(c.model, model_of(K_CGC));
    assert_string_equal(c.ctr_task, "");
    mtl_config_defaults(&c);
    EXPECT_OK(mtl_config_load_ini(&c, p2, &e), &e);
    assert_string_equal(c.ctr_task, "click");

    // the shipped dataset configs: every model's section parses, ESMM's names
    // its tasks, and the result validates with a training file
    const char *shipped[] = {MTL_SOURCE_DIR "/configs/census.ini",
                             MTL_SOURCE_DIR "/configs/adult.ini",
                             MTL_SOURCE_DIR "/configs/census_education.ini"};
    for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++) {
        for (int k = 0; mtl_models[k]; k++) {
            int rc = PARSE(&c, &e, "--config", shipped[i], "--model", model_of(k)->name, "--train",
                           "t.h5");
            if (rc == MTL_OK) rc = mtl_config_validate(&c, &e);
            if (rc != MTL_OK) {
                print_error("%s, model %s: %s\n", shipped[i], model_of(k)->name, e.msg);
                fail();
            }
            if (k == K_ESMM) assert_true(c.ctr_task[0] && c.ctcvr_task[0]);
        }
    }
}

static void test_ini_rejections(void **state) {
    (void)state;
    mtl_config c;
    mtl_error e;
    mtl_config_defaults(&c);

    const char *p1 = write_file("run.ini", "# line 1\n"
                                           "[train]\n"
                                           "epochs = 3\n"
                                           "\n"
                                           "; line 5\n"
                                           "batch_size = 64\n"
                                           "lr = -1\n");
    expect_msg(mtl_config_load_ini(&c, p1, &e), &e, "run.ini:7: lr: '-1' must be > 0", __FILE__,
               __LINE__);
    const char *p2 = write_file("unknown.ini", "[train]\nepochs = 3\nfrobnicate = 1\n");
    expect_msg(mtl_config_load_ini(&c, p2, &e), &e, "unknown.ini:3: frobnicate: unknown key",
               __FILE__, __LINE__);
    const char *p3 = write_file("syntax.ini", "[train]\nepochs 3\nlr = -1\n");
    expect_msg(mtl_config_load_ini(&c, p3, &e), &e, "syntax.ini:2: syntax error", __FILE__,
               __LINE__);
    const char *p4 = write_file("nested.ini", "[train]\nconfig = other.ini\n");
    expect_msg(mtl_config_load_ini(&c, p4, &e), &e,
               "nested.ini:2: config: not allowed in a config file", __FILE__, __LINE__);
    const char *p5 = write_file("words.ini", "[train]\n\nmodel = xgboost\n");
    expect_msg(mtl_config_load_ini(&c, p5, &e), &e,
               "words.ini:3: model: 'xgboost' is not a model (shared_bottom, esmm, mmoe, cgc, "
               "ple",
               __FILE__, __LINE__);
    // a line inih would cut in two is refused rather than misread
    char text[400];
    snprintf(text, sizeof text, "[train]\nepochs = 2\ntrain = %0300d\n", 0);
    const char *p6 = write_file("long.ini", text);
    expect_msg(mtl_config_load_ini(&c, p6, &e), &e, "long.ini:3: line is too long", __FILE__,
               __LINE__);
    // sections: mtl_dist's own are [train] and [train.MODEL]; a key outside
    // any section, a section neither tool reads, a [train.X] that is not a
    // model, a model chosen in a model's section, and a bad key or value in
    // another model's section (checked though not applied) are all refused
    const struct {
        const char *file, *text, *want;
    } sections[] = {
        {"outside.ini", "; no section yet\nepochs = 2\n[train]\n",
         "outside.ini:2: epochs: outside a section (mtl_dist reads [train] and [train.MODEL])"},
        {"section.ini", "[train]\nepochs = 2\n[trian]\nlr = 0.1\n",
         "section.ini:4: [trian]: unknown section (mtl_dist reads [train] and [train.MODEL]"},
        {"notmodel.ini", "[train.xgboost]\nlr = 0.1\n",
         "notmodel.ini:2: [train.xgboost]: unknown section"},
        {"modelkey.ini", "[train.esmm]\nmodel = esmm\n",
         "modelkey.ini:2: model: not allowed in [train.esmm] (choose the model in [train] or "
         "with --model)"},
        {"othermodel.ini",
         "[train]\nmodel = mmoe\n[train.cgc]\nnum_experts_shared = 2\n"
         "num_expert = 3\n",
         "othermodel.ini:5: num_expert: unknown key"},
        {"othervalue.ini", "[train.ple]\nnum_levels = 0\n",
         "othervalue.ini:2: num_levels: 0 is out of range"},
        {"continued.ini", "[train]\nbottom_units = 64\n    32\n",
         "continued.ini:3: bottom_units: an indented line without '=' continues the value above"},
    };
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        mtl_config_defaults(&c);
        const char *path = write_file(sections[i].file, sections[i].text);
        expect_msg(mtl_config_load_ini(&c, path, &e), &e, sections[i].want, __FILE__, __LINE__);
    }
    // missing file, directory, and --config errors from the command line
    expect_msg(mtl_config_load_ini(&c, "x.ini", &e), &e,
               "x.ini: cannot open: No such file or directory", __FILE__, __LINE__);
    expect_msg(mtl_config_load_ini(&c, MTL_TEST_TMP, &e), &e, "cannot read: Is a directory",
               __FILE__, __LINE__);
    EXPECT_FAIL("x.ini: cannot open: No such file or directory", "--epochs", "3", "--config",
                "x.ini");
    EXPECT_FAIL("--config: missing value", "--config");
    EXPECT_FAIL("unknown.ini:3: frobnicate: unknown key", "--config", MTL_TEST_TMP "/unknown.ini");
}

static void test_predict_command(void **state) {
    (void)state;
    mtl_config c;
    mtl_error e;
    EXPECT_OK(
        PARSE(&c, &e, "predict", "--checkpoint", "m.h5", "--data", "d.h5", "--predict-out", "p.h5"),
        &e);
    assert_int_equal(c.command, MTL_CMD_PREDICT);
    assert_string_equal(c.checkpoint_path, "m.h5");
    assert_string_equal(c.data_path, "d.h5");
    assert_string_equal(c.predict_out, "p.h5");
    EXPECT_OK(mtl_config_validate(&c, &e), &e); // no --train needed to predict
    // the command word is the first non-option word, wherever it is
    EXPECT_OK(PARSE(&c, &e, "--checkpoint", "m.h5", "predict", "--data=d.h5"), &e);
    assert_int_equal(c.command, MTL_CMD_PREDICT);
    expect_msg(mtl_config_validate(&c, &e), &e, "predict needs --predict-out", __FILE__, __LINE__);
    EXPECT_OK(PARSE(&c, &e, "predict", "--data=d.h5", "--predict-out=p.h5"), &e);
    expect_msg(mtl_config_validate(&c, &e), &e, "predict needs --checkpoint", __FILE__, __LINE__);
    EXPECT_OK(PARSE(&c, &e, "predict", "--checkpoint=m.h5", "--predict-out=p.h5"), &e);
    expect_msg(mtl_config_validate(&c, &e), &e, "predict needs --data", __FILE__, __LINE__);
    EXPECT_OK(PARSE(&c, &e, "train", "--train", "t.h5"), &e);
    assert_int_equal(c.command, MTL_CMD_TRAIN);
    EXPECT_OK(mtl_config_validate(&c, &e), &e);
}

static void test_help_version(void **state) {
    (void)state;
    mtl_config c;
    mtl_error e;
    EXPECT_OK(PARSE(&c, &e, "--help"), &e);
    assert_int_equal(c.command, MTL_CMD_HELP);
    EXPECT_OK(PARSE(&c, &e, "-h"), &e);
    assert_int_equal(c.command, MTL_CMD_HELP);
    EXPECT_OK(PARSE(&c, &e, "--version"), &e);
    assert_int_equal(c.command, MTL_CMD_VERSION);
    // help wins over an otherwise broken command line (and a missing config)
    EXPECT_OK(PARSE(&c, &e, "--frobnicate", "--lr", "abc", "--config", "x.ini", "--help"), &e);
    assert_int_equal(c.command, MTL_CMD_HELP);
    EXPECT_OK(PARSE(&c, &e, "predict", "--help"), &e);
    assert_int_equal(c.command, MTL_CMD_HELP);
    EXPECT_OK(mtl_config_validate(&c, &e), &e);
}

static void test_validate(void **state) {
    (void)state;
    mtl_config c;
    mtl_error e;
    mtl_config_defaults(&c);
    expect_msg(mtl_config_validate(&c, &e), &e, "no training data: give --train FILE", __FILE__,
               __LINE__);
    strcpy(c.train_path, "t.h5");
    EXPECT_OK(mtl_config_validate(&c, &e), &e);
    strcpy(c.predict_out, "p.h5"); /* predictions are of the test set */
    expect_msg(mtl_config_validate(&c, &e), &e, "--predict-out: writes the test set's predictions",
               __FILE__, __LINE__);
    strcpy(c.test_path, "test.h5");
    EXPECT_OK(mtl_config_validate(&c, &e), &e);
    c.predict_out[0] = c.test_path[0] = '\0';

    mtl_config b = c;
    b.model = model_of(K_ESMM);
    expect_msg(mtl_config_validate(&b, &e), &e, "esmm needs --ctr-task and --ctcvr-task", __FILE__,
               __LINE__);
    strcpy(b.ctr_task, "ctr");
    expect_msg(mtl_config_validate(&b, &e), &e, "esmm needs", __FILE__, __LINE__);
    strcpy(b.ctcvr_task, "ctr");
    expect_msg(mtl_config_validate(&b, &e), &e, "both 'ctr'", __FILE__, __LINE__);
    strcpy(b.ctcvr_task, "ctcvr");
    EXPECT_OK(mtl_config_validate(&b, &e), &e);

    b = c;
    strcpy(b.early_stop_metric, "accuracy");
    expect_msg(mtl_config_validate(&b, &e), &e,
               "early_stop_metric: 'accuracy' is not valid_loss, auc:TASK or gauc:TASK", __FILE__,
               __LINE__);
    strcpy(b.early_stop_metric, "auc:income");
    EXPECT_OK(mtl_config_validate(&b, &e), &e);
    b.early_stop_patience = 2;
    expect_msg(mtl_config_validate(&b, &e), &e,
               "needs a validation set (--valid FILE or --valid-split FRACTION)", __FILE__,
               __LINE__);
    strcpy(b.valid_path, "v.h5");
    EXPECT_OK(mtl_config_validate(&b, &e), &e);
    // --valid-split: the validation set is the training file's tail, so not
    // with --valid too; it serves early stopping
    b.valid_split = 0.2;
    expect_msg(mtl_config_validate(&b, &e), &e,
               "--valid-split: holds out part of --train as the validation set, so it cannot be "
               "combined with --valid FILE",
               __FILE__, __LINE__);
    b.valid_path[0] = '\0';
    EXPECT_OK(mtl_config_validate(&b, &e), &e);

    b = c;
    b.n_loss_weights = MTL_MAX_TASKS + 1;
    expect_msg(mtl_config_validate(&b, &e), &e, "loss_weights: 17 values (at most 16)", __FILE__,
               __LINE__);
    b.n_loss_weights = 2;
    b.n_task_types = 3;
    expect_msg(mtl_config_validate(&b, &e), &e, "loss_weights has 2 values but task_types has 3",
               __FILE__, __LINE__);

    b = c;
    b.tower_units.list[0].n = 0;
    expect_msg(mtl_config_validate(&b, &e), &e, "tower_units: 0 layers", __FILE__, __LINE__);

    b = c;
    strcpy(b.resume, "latest");
    expect_msg(mtl_config_validate(&b, &e), &e, "--resume latest needs --checkpoint-dir", __FILE__,
               __LINE__);
    b = c;
    b.checkpoint_every_steps = 100;
    expect_msg(mtl_config_validate(&b, &e), &e, "need --checkpoint-dir", __FILE__, __LINE__);
    strcpy(b.checkpoint_dir, "ckpt");
    EXPECT_OK(mtl_config_validate(&b, &e), &e);
}

static void test_set_api(void **state) {
    (void)state;
    mtl_config c;
    mtl_error e;
    mtl_config_defaults(&c);
    EXPECT_OK(mtl_config_set(&c, "batch-size", "77", NULL, &e), &e);
    assert_int_equal(c.batch_size, 77);
    EXPECT_OK(mtl_config_set(&c, "ctcvr_task", "purchase", "test", &e), &e);
    assert_string_equal(c.ctcvr_task, "purchase");
    expect_msg(mtl_config_set(&c, "frobnicate", "1", "here.ini:9: frobnicate", &e), &e,
               "here.ini:9: frobnicate: unknown key", __FILE__, __LINE__);
    expect_msg(mtl_config_set(&c, "epochs", "0", NULL, &e), &e,
               "epochs: 0 is out of range (1..1000000000)", __FILE__, __LINE__);
    assert_int_equal(c.epochs, 10); // untouched by the failed set
}

static void test_embedding_update(void **state) {
    (void)state;
    mtl_config c;
    mtl_error e;
    mtl_config_defaults(&c);
    assert_int_equal(c.embedding_update, MTL_EMBEDDING_AUTO);
    const char *names[] = {"auto", "dense", "sparse"};
    const int kinds[] = {MTL_EMBEDDING_AUTO, MTL_EMBEDDING_DENSE, MTL_EMBEDDING_SPARSE};
    for (int i = 0; i < 3; i++) {
        EXPECT_OK(PARSE(&c, &e, "--train", "x.h5", "--embedding-update", names[i]), &e);
        assert_int_equal(c.embedding_update, kinds[i]);
    }
    EXPECT_OK(mtl_config_set(&c, "embedding_update", " sparse ", "run.ini:3: embedding_update", &e),
              &e);
    assert_int_equal(c.embedding_update, MTL_EMBEDDING_SPARSE);
    EXPECT_FAIL("--embedding-update: 'lazy' is not an embedding update (auto, dense, sparse)",
                "--embedding-update", "lazy");
    assert_non_null(strstr(mtl_config_usage(), "--embedding-update MODE"));

    mtl_config_defaults(&c);
    assert_int_equal(c.embedding_sharding, MTL_SHARDING_AUTO);
    assert_true(c.shard_memory_share == 0.25f);
    assert_true(c.shard_min_rows == 1000);
    EXPECT_OK(PARSE(&c, &e, "--train", "x.h5", "--embedding-sharding", "row",
                    "--shard-memory-share", "0.5", "--shard-min-rows", "100000"),
              &e);
    assert_int_equal(c.embedding_sharding, MTL_SHARDING_ROW);
    assert_true(c.shard_memory_share == 0.5f);
    assert_true(c.shard_min_rows == 100000);
    EXPECT_FAIL("--shard-min-rows: 0 is out of range (1..9223372036854775807)", "--shard-min-rows",
                "0");
    EXPECT_FAIL("--embedding-sharding: 'column' is not an embedding sharding (auto, replicated, "
                "row)",
                "--embedding-sharding", "column");
    EXPECT_FAIL("--shard-memory-share: '0' must be in (0, 1]", "--shard-memory-share", "0");
    EXPECT_FAIL("--shard-memory-share: '1.5' must be in (0, 1]", "--shard-memory-share", "1.5");
}

static void test_usage(void **state) {
    (void)state;
    const char *u = mtl_config_usage();
    // every key, as its command-line spelling, with the predict form
    const char *const opts[] = {
        "--config",
        "--train",
        "--valid",
        "--test",
        "--data ",
        "--checkpoint ",
        "--data-order",
        "--model",
        "--embedding-dim",
        "--bottom-units",
        "--tower-units",
        "--expert-units",
        "--gate-units",
        "--num-experts ",
        "--num-experts-specific",
        "--num-experts-shared",
        "--num-levels",
        "--batch-norm",
        "--dropout",
        "--ctr-task",
        "--ctcvr-task",
        "--task-types",
        "--loss-weights",
        "--loss-weighting",
        "--optimizer",
        "--lr ",
        "--momentum",
        "--l2-embedding",
        "--l2-dnn",
        "--batch-size",
        "--epochs",
        "--seed",
        "--early-stop-patience",
        "--patience",
        "--valid-split",
        "--early-stop-metric",
        "--skip-nonfinite-steps",
        "--metrics-out",
        "--predict-out",
        "--checkpoint-dir",
        "--resume",
        "--checkpoint-every-steps",
        "--checkpoint-every-seconds",
        "--keep-checkpoints",
        "--threads",
        "--max-steps",
        "--quiet",
        "--help",
        "--version",
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (!strstr(u, opts[i])) {
            print_error("usage lacks %s\n", opts[i]);
            fail();
        }
    }
    assert_non_null(strstr(u, "mtl_dist predict --checkpoint F.h5 --data F.h5 --predict-out P.h5"));
    assert_non_null(strstr(u, "(default mmoe)"));
    assert_non_null(strstr(u, "(default 1024)"));
    // every option the usage names is accepted by the parser (no stale entries)
    const char *p = u;
    while ((p = strstr(p, "--")) != NULL) {
        char opt[64];
        size_t n = 0;
        while (n < sizeof opt - 1 && (p[n] == '-' || p[n] == '_' || (p[n] >= 'a' && p[n] <= 'z') ||
                                      (p[n] >= '0' && p[n] <= '9'))) {
            opt[n] = p[n];
            n++;
        }
        opt[n] = '\0';
        p += n;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "--version") == 0 ||
            strcmp(opt, "--key") == 0 || strcmp(opt, "--flag") == 0 || n <= 2)
            continue;
        mtl_config c;
        mtl_error e;
        int rc = PARSE(&c, &e, opt);
        if (rc != MTL_OK && strstr(e.msg, "unknown option")) {
            print_error("usage names %s, which the parser does not know\n", opt);
            fail();
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_model_names),
        cmocka_unit_test(test_per_task_units),
        cmocka_unit_test(test_ini_parsing),
        cmocka_unit_test(test_cli_overrides_ini),
        cmocka_unit_test(test_cli_forms),
        cmocka_unit_test(test_patience_valid_split),
        cmocka_unit_test(test_shared_config),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_ini_rejections),
        cmocka_unit_test(test_predict_command),
        cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_set_api),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_embedding_update),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
