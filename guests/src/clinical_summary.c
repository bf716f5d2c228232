/* clinical_summary: the demo analysis Vouch runs next to the data.
 *
 * Reads  /inputs/patients.csv  (header: patient_id,age,sex,bmi,systolic_bp,cholesterol,smoker,
 *                               treatment,outcome_score; columns are found by name)
 * Writes /outputs/summary.csv  one row per (treatment, group) with group in {all, smoker,
 *                              non_smoker}: n, mean and sample standard deviation (n-1) of
 *                              outcome_score, treatments in byte order of their names.
 * Prints a short report on stdout.
 *
 * Output is deterministic: fixed formatting ("%.4f"), sorted treatments, no clock, no randomness.
 * Exit codes: 0 ok, 1 input missing or malformed (the reason and line number on stderr),
 * 2 output could not be written.
 *
 * Usage: clinical_summary [INPUT_CSV [OUTPUT_CSV]]  (defaults above).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TREATMENTS 64
#define MAX_NAME 64
#define MAX_FIELDS 64
#define LINE_CAP 4096

enum { G_ALL, G_SMOKER, G_NON_SMOKER, G_COUNT };
static const char *const GROUP_NAMES[G_COUNT] = {"all", "smoker", "non_smoker"};

/* Welford's running mean and sum of squared deviations. */
struct stats {
    long n;
    double mean;
    double m2;
};

struct treatment {
    char name[MAX_NAME];
    struct stats g[G_COUNT];
};

static struct treatment treatments[MAX_TREATMENTS];
static int n_treatments;

static void stats_add(struct stats *s, double x) {
    s->n += 1;
    double d = x - s->mean;
    s->mean += d / (double)s->n;
    s->m2 += d * (x - s->mean);
}

static double stats_sd(const struct stats *s) {
    return s->n > 1 ? sqrt(s->m2 / (double)(s->n - 1)) : 0.0;
}

static struct treatment *treatment_get(const char *name, long line) {
    for (int i = 0; i < n_treatments; i++)
        if (strcmp(treatments[i].name, name) == 0) return &treatments[i];
    if (n_treatments == MAX_TREATMENTS) {
        fprintf(stderr, "line %ld: more than %d distinct treatments\n", line, MAX_TREATMENTS);
        exit(1);
    }
    if (strlen(name) == 0 || strlen(name) >= MAX_NAME) {
        fprintf(stderr, "line %ld: treatment name empty or longer than %d bytes\n", line, MAX_NAME - 1);
        exit(1);
    }
    struct treatment *t = &treatments[n_treatments++];
    strcpy(t->name, name);
    return t;
}

static int cmp_treatment(const void *a, const void *b) {
    return strcmp(((const struct treatment *)a)->name, ((const struct treatment *)b)->name);
}

/* Splits `line` in place at commas; strips a trailing '\r'. Returns the number of fields. */
static int split(char *line, char **fields) {
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == MAX_FIELDS) return -1;
        fields[n++] = p;
        char *comma = strchr(p, ',');
        if (!comma) break;
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

static int column(char **fields, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(fields[i], name) == 0) return i;
    fprintf(stderr, "header: missing column '%s'\n", name);
    exit(1);
}

static double parse_number(const char *s, const char *what, long line) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(v)) {
        fprintf(stderr, "line %ld: %s is not a number: '%s'\n", line, what, s);
        exit(1);
    }
    return v;
}

int main(int argc, char **argv) {
    const char *in_path = argc > 1 ? argv[1] : "/inputs/patients.csv";
    const char *out_path = argc > 2 ? argv[2] : "/outputs/summary.csv";

    FILE *in = fopen(in_path, "r");
    if (!in) {
        fprintf(stderr, "cannot open %s: %s\n", in_path, strerror(errno));
        return 1;
    }

    static char line[LINE_CAP];
    char *fields[MAX_FIELDS];
    if (!fgets(line, sizeof line, in)) {
        fprintf(stderr, "%s: empty file\n", in_path);
        return 1;
    }
    int ncols = split(line, fields);
    if (ncols < 0) {
        fprintf(stderr, "header: more than %d columns\n", MAX_FIELDS);
        return 1;
    }
    int c_smoker = column(fields, ncols, "smoker");
    int c_treatment = column(fields, ncols, "treatment");
    int c_outcome = column(fields, ncols, "outcome_score");

    long lineno = 1, patients = 0;
    while (fgets(line, sizeof line, in)) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(in)) {
            fprintf(stderr, "line %ld: longer than %d bytes\n", lineno, LINE_CAP - 2);
            return 1;
        }
        if (line[0] == '\n' || (line[0] == '\r' && line[1] == '\n') || line[0] == '\0') continue;
        int n = split(line, fields);
        if (n != ncols) {
            fprintf(stderr, "line %ld: expected %d fields, found %d\n", lineno, ncols, n);
            return 1;
        }
        double smoker = parse_number(fields[c_smoker], "smoker", lineno);
        if (smoker != 0.0 && smoker != 1.0) {
            fprintf(stderr, "line %ld: smoker must be 0 or 1, found '%s'\n", lineno, fields[c_smoker]);
            return 1;
        }
        double score = parse_number(fields[c_outcome], "outcome_score", lineno);
        struct treatment *t = treatment_get(fields[c_treatment], lineno);
        stats_add(&t->g[G_ALL], score);
        stats_add(&t->g[smoker == 1.0 ? G_SMOKER : G_NON_SMOKER], score);
        patients++;
    }
    if (ferror(in)) {
        fprintf(stderr, "%s: read error: %s\n", in_path, strerror(errno));
        return 1;
    }
    fclose(in);
    qsort(treatments, (size_t)n_treatments, sizeof treatments[0], cmp_treatment);

    FILE *out = fopen(out_path, "w");
    if (!out) {
        fprintf(stderr, "cannot create %s: %s\n", out_path, strerror(errno));
        return 2;
    }
    fprintf(out, "treatment,group,n,mean_outcome,sd_outcome\n");
    for (int i = 0; i < n_treatments; i++)
        for (int g = 0; g < G_COUNT; g++) {
            const struct stats *s = &treatments[i].g[g];
            fprintf(out, "%s,%s,%ld,%.4f,%.4f\n", treatments[i].name, GROUP_NAMES[g], s->n, s->mean,
                    stats_sd(s));
        }
    if (fclose(out) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", out_path, strerror(errno));
        return 2;
    }

    printf("clinical_summary: %ld patients, %d treatments\n", patients, n_treatments);
    printf("%-12s %6s %9s %8s %10s %10s\n", "treatment", "n", "mean", "sd", "smokers", "non-smokers");
    const struct treatment *placebo = NULL;
    for (int i = 0; i < n_treatments; i++) {
        const struct treatment *t = &treatments[i];
        if (strcmp(t->name, "placebo") == 0) placebo = t;
        printf("%-12s %6ld %9.3f %8.3f %10.3f %10.3f\n", t->name, t->g[G_ALL].n, t->g[G_ALL].mean,
               stats_sd(&t->g[G_ALL]), t->g[G_SMOKER].mean, t->g[G_NON_SMOKER].mean);
    }
    if (placebo)
        for (int i = 0; i < n_treatments; i++)
            if (&treatments[i] != placebo)
                printf("%s vs placebo: %+.3f\n", treatments[i].name,
                       treatments[i].g[G_ALL].mean - placebo->g[G_ALL].mean);
    printf("wrote %s\n", out_path);
    return 0;
}
