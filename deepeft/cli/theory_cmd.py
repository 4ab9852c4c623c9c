"""``deepeft theory …``: predictions of the effective theory (no sampling)."""
from __future__ import annotations

import numpy as np

from .common import add_network_args, emit_json, inputs_from_args, spec_from_args


def register(sub) -> None:
    p = sub.add_parser("theory", help="effective-theory predictions (kernel, vertex, NTK, criticality)")
    tsub = p.add_subparsers(dest="theory_command", metavar="WHAT")

    c = tsub.add_parser("criticality", help="critical (C_b, C_W), universality class, asymptotics")
    c.add_argument("--activation", "-a", required=True)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_criticality)

    k = tsub.add_parser("kernel", help="per-layer K, K1, V/(nK²), Θ, χ for a network")
    add_network_args(k)
    k.add_argument("--order", choices=("infinite", "1/n"), default="1/n")
    k.add_argument("--vertex", choices=("auto", "full", "diagonal"), default="auto")
    k.add_argument("--json", action="store_true", help="full arrays as JSON")
    k.set_defaults(func=_kernel)

    a = tsub.add_parser("aspect-ratio", help="optimal depth-to-width ratio r* = (L/n)*")
    a.add_argument("--activation", "-a", required=True)
    a.add_argument("--output-width", type=int, default=1)
    a.add_argument("--skip", type=float, default=0.0, help="residual skip strength ξ (critical branch γ² = 1 − ξ²)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=_aspect)

    lr = tsub.add_parser("learning-rates", help="per-layer λ_b, λ_W from the equivalence principle")
    lr.add_argument("--activation", "-a", required=True)
    lr.add_argument("--depth", "-L", type=int, required=True)
    lr.add_argument("--lambda-b", type=float, default=1.0)
    lr.add_argument("--lambda-W", type=float, default=1.0)
    lr.add_argument("--json", action="store_true")
    lr.set_defaults(func=_rates)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _criticality(args) -> int:
    from ..theory import criticality, large_depth_asymptotics

    cp = criticality(args.activation)
    out = cp.to_dict()
    if cp.exists:
        asy = large_depth_asymptotics(args.activation, [10, 100, 1000])
        out["asymptotics"] = {k: v for k, v in asy.items()}
    if args.json:
        emit_json(out)
        return 0
    print(f"activation        {cp.activation}")
    print(f"class             {cp.universality_class}")
    if cp.exists:
        print(f"critical C_b      {cp.C_b:.10g}")
        print(f"critical C_W      {cp.C_W:.10g}")
        print(f"K*                {'any (marginal line)' if cp.K_star is None else f'{cp.K_star:.10g}'}")
    print(f"note              {cp.message}")
    for k, v in cp.constants.items():
        if isinstance(v, float):
            print(f"  {k:16s}{v:.8g}")
    return 0


def _kernel(args) -> int:
    from ..theory import predict

    spec = spec_from_args(args)
    x = inputs_from_args(args)
    obs = predict(spec, x, order=args.order, vertex=args.vertex)
    if args.json:
        emit_json(obs.to_dict())
        return 0
    print(f"# {spec.activation.name}  L={spec.depth}  widths={list(spec.widths)}  C_W={spec.C_W[-1]:.6g}  "
          f"C_b={spec.C_b[-1]:.6g}  param={spec.parameterization}  inputs={x.shape}")
    print("# input 0; V_norm = V/(n_{l-1} K²) = excess kurtosis/3;  kernel = K + K1/n")
    hdr = f"{'l':>4} {'K':>12} {'Theta':>12} {'chi_par':>9} {'chi_perp':>9}"
    if args.order == "1/n":
        hdr += f" {'K1':>11} {'kernel':>12} {'V_norm':>10}"
    print(hdr)
    for l in range(spec.depth):
        row = f"{l + 1:>4} {obs['K'][l, 0, 0]:>12.6g} {obs['Theta'][l, 0, 0]:>12.6g} {obs['chi_par'][l, 0]:>9.5f} {obs['chi_perp'][l, 0]:>9.5f}"
        if args.order == "1/n":
            row += f" {obs['K1'][l, 0, 0]:>11.5g} {obs['kernel'][l, 0, 0]:>12.6g} {obs['V_norm'][l, 0]:>10.5g}"
        print(row)
    return 0


def _aspect(args) -> int:
    from ..theory import optimal_aspect_ratio, residual_nu

    r = optimal_aspect_ratio(args.activation, args.output_width, args.skip)
    nu = residual_nu(args.activation, args.skip)
    if args.json:
        emit_json({"activation": args.activation, "output_width": args.output_width, "skip": args.skip,
                   "nu_eff": nu, "optimal_aspect_ratio": r})
    else:
        print(f"nu_eff = {nu:.6g}   r* = (L/n)* = {r:.6g}   e.g. width 256 → depth ≈ {r * 256:.1f}")
    return 0


def _rates(args) -> int:
    from ..theory import equivalence_learning_rates

    lb, lw = equivalence_learning_rates(args.activation, args.depth, args.lambda_b, args.lambda_W)
    if args.json:
        emit_json({"lambda_b": lb, "lambda_W": lw})
    else:
        print(f"{'l':>4} {'lambda_b':>12} {'lambda_W':>12}")
        for l, (b, w) in enumerate(zip(lb, lw), 1):
            print(f"{l:>4} {b:>12.6g} {w:>12.6g}")
    return 0
