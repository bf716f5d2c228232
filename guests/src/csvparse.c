/* csvparse: benchmark kernel. Generates ROWS lines of a deterministic CSV in memory
 * ("id,age,score,label": integers, a decimal with 3 places, a short string), then parses it
 * field by field REPS times and prints column sums.
 *
 * Formatting and parsing are hand-written (as fast CSV readers do), not printf/strtod: the
 * kernel measures the code the compiler and runtime produce, not the speed of one libc's
 * strtod against another's (wasi-libc's musl-derived strtod is much slower than glibc's).
 *
 * Usage: csvparse [ROWS=200000] [REPS=1]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *put_uint(char *p, uint64_t v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

/* Parses an unsigned integer; *end is left on the first non-digit. */
static uint64_t get_uint(const char *p, const char **end) {
    uint64_t v = 0;
    while ((unsigned)(*p - '0') < 10) v = v * 10 + (uint64_t)(*p++ - '0');
    *end = p;
    return v;
}

int main(int argc, char **argv) {
    long rows = argc > 1 ? atol(argv[1]) : 200000;
    int reps = argc > 2 ? atoi(argv[2]) : 1;
    if (rows <= 0 || reps <= 0) {
        fprintf(stderr, "usage: csvparse [ROWS] [REPS]\n");
        return 1;
    }
    size_t cap = (size_t)rows * 48 + 64;
    char *csv = malloc(cap);
    if (!csv) {
        fprintf(stderr, "cannot allocate %zu bytes\n", cap);
        return 1;
    }
    static const char *const labels[] = {"placebo", "drug_a", "drug_b", "control"};
    char *w = csv;
    memcpy(w, "id,age,score,label\n", 19);
    w += 19;
    uint32_t x = 2463534242u;
    for (long i = 0; i < rows; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        uint32_t milli = x % 100000; /* score = milli / 1000, three decimals */
        w = put_uint(w, (uint64_t)i);
        *w++ = ',';
        w = put_uint(w, 18 + x % 70);
        *w++ = ',';
        w = put_uint(w, milli / 1000);
        *w++ = '.';
        *w++ = (char)('0' + milli / 100 % 10);
        *w++ = (char)('0' + milli / 10 % 10);
        *w++ = (char)('0' + milli % 10);
        *w++ = ',';
        const char *label = labels[x >> 30];
        size_t n = strlen(label);
        memcpy(w, label, n);
        w += n;
        *w++ = '\n';
    }
    size_t len = (size_t)(w - csv);

    uint64_t id_sum = 0, age_sum = 0, label_len = 0;
    double score_sum = 0.0;
    for (int r = 0; r < reps; r++) {
        const char *p = memchr(csv, '\n', len) + 1; /* skip the header */
        const char *end = csv + len;
        while (p < end) {
            id_sum += get_uint(p, &p);
            age_sum += get_uint(p + 1, &p);
            uint64_t whole = get_uint(p + 1, &p), frac = 0, scale = 1;
            if (*p == '.')
                for (p++; (unsigned)(*p - '0') < 10; p++) frac = frac * 10 + (uint64_t)(*p - '0'), scale *= 10;
            score_sum += (double)whole + (double)frac / (double)scale;
            const char *label = p + 1;
            const char *nl = memchr(label, '\n', (size_t)(end - label));
            label_len += (uint64_t)(nl - label);
            p = nl + 1;
        }
    }
    printf("bytes=%zu ids=%llu ages=%llu scores=%.3f labels=%llu\n", len, (unsigned long long)id_sum,
           (unsigned long long)age_sum, score_sum, (unsigned long long)label_len);
    return 0;
}
