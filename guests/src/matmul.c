/* matmul: benchmark kernel. Multiplies two N×N double matrices with deterministic contents
 * (naive i-k-j loop, REPS times) and prints a checksum of the result.
 *
 * Usage: matmul [N=256] [REPS=1]
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 256;
    int reps = argc > 2 ? atoi(argv[2]) : 1;
    if (n <= 0 || reps <= 0) {
        fprintf(stderr, "usage: matmul [N] [REPS]\n");
        return 1;
    }
    size_t nn = (size_t)n * (size_t)n;
    double *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "cannot allocate %d×%d matrices\n", n, n);
        return 1;
    }
    unsigned x = 12345;
    for (size_t i = 0; i < nn; i++) {
        x = x * 1103515245u + 12345u;
        a[i] = (double)((x >> 16) & 0x3ff) / 1024.0 - 0.5;
        x = x * 1103515245u + 12345u;
        b[i] = (double)((x >> 16) & 0x3ff) / 1024.0 - 0.5;
    }
    double checksum = 0.0;
    for (int r = 0; r < reps; r++) {
        for (size_t i = 0; i < nn; i++) c[i] = 0.0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++) {
                double aik = a[(size_t)i * n + k];
                const double *bk = b + (size_t)k * n;
                double *ci = c + (size_t)i * n;
                for (int j = 0; j < n; j++) ci[j] += aik * bk[j];
            }
        for (size_t i = 0; i < nn; i++) checksum += c[i] * (double)((i % 7) + 1);
        a[r % nn] += 1.0 / 1024.0; /* make each repetition depend on the previous one */
    }
    printf("%.6f\n", checksum);
    return 0;
}
