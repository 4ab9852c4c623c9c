"""Conventions used everywhere in deepeft (stated once; other docstrings refer here).

Architecture (PDLT, Roberts–Yaida–Hanin 2022, ch. 2–4)
---------------------------------------------------------
An MLP has input width ``n_0``, hidden widths ``n_1 … n_{L-1}`` (unequal widths allowed)
and output width ``n_L``; ``L`` is the *depth* (number of weight layers).  Preactivations::

    z^(1)_i   = b^(1)_i + Σ_j W^(1)_ij x_j
    z^(l+1)_i = b^(l+1)_i + Σ_j W^(l+1)_ij σ(z^(l)_j)          l = 1 … L-1

Initialisation ("C" variances, per layer)::

    b^(l) ~ N(0, C_b^(l)),   W^(l)_ij ~ N(0, C_W^(l) / n_{l-1}).

neural-tangents' ``W_std``/``b_std`` are accepted too: ``C_W = W_std**2``, ``C_b = b_std**2``.

Parameterisation.  ``'standard'``: the weights themselves carry the 1/n_{l-1} variance (PyTorch
style).  ``'ntk'``: weights are N(0, 1) and the forward pass multiplies by ``sqrt(C_W/n_{l-1})``
(biases by ``sqrt(C_b)``).  Both give the *same* distribution of networks at initialisation, hence
the same kernel and vertex.  They differ in gradients: with unit per-parameter learning rate the
'ntk' NTK equals PDLT's Θ with λ_W = C_W, λ_b = C_b (neural-tangents' convention), whereas the
'standard' NTK has λ_W = n_{l-1} (weights) and λ_b = 1 — which is why PDLT prescribes per-parameter
rates λ_W/n_{l-1} for standard-parameterised weights.

1/n bookkeeping.  Every O(1/n) object of layer l (the vertex V^(l), the kernel correction
K1^(l), NTK fluctuations) is normalised by the width of the layer *below*, n_{l-1}::

    E[z_i z_j]            = δ_ij (K^(l) + K1^(l)/n_{l-1}) + O(1/n²)
    E[z⁴]_connected(1 in) = 3 V^(l) / n_{l-1}

so the dimensionless non-Gaussianity is ``V/(n_{l-1} K²)`` (= excess kurtosis / 3).

Gaussian expectations ⟨F⟩_K are over z ~ N(0, K) for a single neuron carrying all sample indices.

NTK.  Θ^(l) is the frozen (infinite-width) NTK with learning-rate tensor λ: λ_b^(l) for the biases
of layer l and λ_W^(l)/n_{l-1} for its weights.  Loss convention for training dynamics: a *sum*
over samples and outputs, L = ½ Σ (z − y)² (neural-tangents averages: times differ by N·n_out).

Bayesian side (see ``deepeft.bayes``): average loss L_n; tempered localised posterior
p(w) ∝ exp(−nβ L_n(w) − γ/2 ‖w − w*‖²); λ̂ = nβ (E[L_n] − L_n(w*)).
"""
