"""Issue 11 item 5: thermodynamic-integration rules on the EXACT integrand of a 1000-sample Bayesian linear
regression (ground_truth.blr_expected_nll): error of Simpson in log β vs Clenshaw–Curtis in log β.

    PYTHONPATH=. python3 bench/defaults/ti_quadrature.py
"""
import numpy as np, math
from deepeft.bayes import blr_free_energy, blr_expected_nll
rng = np.random.default_rng(0)
n, d, sigma, s = 1000, 3, 0.5, 1.0
X = rng.standard_normal((n, d)); y = X @ np.array([1, -.5, .3]) + sigma * rng.standard_normal(n)
F = blr_free_energy(X, y, sigma, s)
E = lambda b: blr_expected_nll(X, y, sigma, s, b)
def simpson_logb(K, bmin):
    bs = np.geomspace(bmin, 1, K); lb = np.log(bs); h = lb[1]-lb[0]
    vals = np.array([E(b) for b in bs]); E0 = E(0.0)
    coef = np.ones(K); coef[1:-1:2] = 4; coef[2:-1:2] = 2
    return bs[0]/2*(E0+vals[0]) + h/3*np.sum(coef*bs*vals)
for K in [17, 33, 65]:
    for bmin in [1/(100*n), 1/(1e4*n)]:
        print(K, bmin, simpson_logb(K, bmin) - F)
def cc_weights(N):
    # Clenshaw–Curtis nodes/weights on [-1,1], N+1 points (Waldvogel 2006 / Trefethen's clencurt)
    theta = np.pi*np.arange(N+1)/N; x = np.cos(theta); w = np.zeros(N+1); v = np.ones(N-1)
    if N % 2 == 0:
        w[0] = w[N] = 1/(N**2-1)
        for k in range(1, N//2): v -= 2*np.cos(2*k*theta[1:-1])/(4*k*k-1)
        v -= np.cos(N*theta[1:-1])/(N**2-1)
    else:
        w[0] = w[N] = 1/N**2
        for k in range(1, (N-1)//2+1): v -= 2*np.cos(2*k*theta[1:-1])/(4*k*k-1)
    w[1:-1] = 2*v/N
    return x, w
def cc_logb(K, bmin):
    x, w = cc_weights(K-1)
    a, b = math.log(bmin), 0.0
    u = (a+b)/2 + (b-a)/2*x; bs = np.exp(u)
    vals = np.array([E(bb) for bb in bs])
    E0 = E(0.0)
    return bmin/2*(E0+E(bmin)) + (b-a)/2*np.sum(w*bs*vals)
for K in [9, 17, 33]:
    for bmin in [1/(100*n), 1/(1e4*n)]:
        print("CC", K, bmin, cc_logb(K, bmin) - F)
