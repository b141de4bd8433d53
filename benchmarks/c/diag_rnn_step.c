/* The step loop of meanfield.architectures.diagonal.network in plain C (d = 1, tanh): one fused pass per
 * step that applies the previous step's SGD update and then the forward/RTRL step. Compiled by bench_simulator.py with
 * cc -O3 -march=native -ffast-math; `restrict` lets gcc vectorise it, with glibc's vector tanh
 * (libmvec). Without `restrict` gcc keeps it scalar (about 5x slower here). */
#include <math.h>

double train_c(long n_units, long n_steps, const double *x, const double *y, double lr, double inv_sqrt_n,
               double *restrict c, double *restrict w, double *restrict b, double *restrict S,
               double *restrict Jw, double *restrict Jb) {
    double e_prev = 0.0, loss = 0.0;
    for (long k = 0; k < n_steps; ++k) {
        double lre = lr * e_prev, acc = 0.0, xk = x[k];
        for (long i = 0; i < n_units; ++i) {
            double g = lre * c[i];
            c[i] += lre * S[i];
            w[i] += g * Jw[i];
            b[i] += g * Jb[i];
            double z = w[i] * xk + b[i] * S[i];
            double s = tanh(z), ds = 1.0 - s * s;
            Jw[i] = ds * (xk + b[i] * Jw[i]);
            Jb[i] = ds * (S[i] + b[i] * Jb[i]);
            S[i] = s;
            acc += c[i] * s;
        }
        double e = y[k] - acc * inv_sqrt_n;
        e_prev = e;
        loss += 0.5 * e * e;
    }
    return loss;
}
