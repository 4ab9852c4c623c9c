"""Shared CLI flags: one way to describe a network and its inputs on the command line."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..core.errors import ParameterError
from ..core.jsonutil import to_jsonable
from ..core.spec import MLPSpec


class _Given(argparse.Action):
    """Store the value and remember that the user gave it (so a contradiction can be reported)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


def add_network_args(p: argparse.ArgumentParser, *, depth_default: int = 10, width_default: int = 64) -> None:
    g = p.add_argument_group("network (conventions: deepeft.conventions)")
    g.add_argument("--activation", "-a", default="relu", help="name (relu, tanh, gelu, silu, erf, leaky_relu:0.1, …)")
    g.add_argument("--depth", "-L", type=int, default=depth_default, action=_Given, help="number of weight layers L")
    g.add_argument("--width", "-n", type=int, default=width_default, help="hidden width n (all hidden layers)")
    g.add_argument("--widths", type=str, default=None, help="comma-separated hidden widths n_1,…,n_{L-1} (overrides --width)")
    g.add_argument("--output-width", type=int, default=1, help="n_L")
    g.add_argument("--C-W", dest="C_W", type=float, default=None, help="weight variance C_W (W ~ N(0, C_W/fan_in))")
    g.add_argument("--C-b", dest="C_b", type=float, default=None, help="bias variance C_b")
    g.add_argument("--W-std", dest="W_std", type=float, default=None, help="neural-tangents style: C_W = W_std²")
    g.add_argument("--b-std", dest="b_std", type=float, default=None, help="neural-tangents style: C_b = b_std²")
    g.add_argument("--critical", action="store_true", help="use the activation's critical (C_b, C_W) (default if no C_W/W_std given)")
    g.add_argument("--parameterization", choices=("ntk", "standard"), default="ntk")
    g.add_argument("--residual", nargs=2, type=float, metavar=("XI", "GAMMA"), default=None,
                   help="residual MLP z' = ξ z + γ (W σ(z) + b) on hidden layers")
    g.add_argument("--lambda-W", dest="lambda_W", type=float, default=None, help="NTK learning rate λ_W (all layers)")
    g.add_argument("--lambda-b", dest="lambda_b", type=float, default=None, help="NTK learning rate λ_b (all layers)")
    i = p.add_argument_group("inputs")
    i.add_argument("--inputs", default=None, help=".npy / .txt / .csv file with an (N, n_0) array")
    i.add_argument("--n-inputs", type=int, default=1, help="number of random inputs (if no --inputs)")
    i.add_argument("--input-dim", type=int, default=8, help="n_0 for generated inputs")
    i.add_argument("--input-seed", type=int, default=0, help="seed for generated inputs")


def spec_from_args(args) -> MLPSpec:
    from ..theory import critical_spec

    x_dim = inputs_from_args(args).shape[1]
    widths = [int(w) for w in args.widths.split(",")] if args.widths else args.width
    depth = len(widths) + 1 if isinstance(widths, list) else args.depth
    if isinstance(widths, list) and getattr(args, "depth_given", False) and args.depth != depth:
        raise ParameterError("--depth", args.depth, f"{depth} (1 + the {len(widths)} hidden widths of --widths), or omit "
                             "--depth: --widths fixes the depth")
    kw = dict(output_width=args.output_width, parameterization=args.parameterization,
              residual=tuple(args.residual) if args.residual else None)
    if args.lambda_W is not None:
        kw["lambda_W"] = args.lambda_W
    if args.lambda_b is not None:
        kw["lambda_b"] = args.lambda_b
    given = any(v is not None for v in (args.C_W, args.W_std))
    if args.critical or not given:
        if given or args.C_b is not None or args.b_std is not None:
            if args.critical:
                raise ParameterError("--critical", True, "not combined with --C-W/--C-b/--W-std/--b-std")
        return critical_spec(args.activation, depth, widths, x_dim, **kw)
    return MLPSpec.make(args.activation, depth, widths, x_dim, C_W=args.C_W, C_b=args.C_b,
                        W_std=args.W_std, b_std=args.b_std, **kw)


def inputs_from_args(args) -> np.ndarray:
    """Inputs from a file, or random Gaussian inputs rescaled so that |x|²/n_0 = 1 each."""
    if getattr(args, "_inputs_cache", None) is not None:
        return args._inputs_cache
    if args.inputs:
        try:
            x = np.load(args.inputs) if args.inputs.endswith(".npy") else np.loadtxt(args.inputs, delimiter="," if args.inputs.endswith(".csv") else None, ndmin=2)
        except (OSError, ValueError) as exc:
            raise ParameterError("--inputs", args.inputs, "a readable .npy/.txt/.csv file with an (N, n_0) array", str(exc)) from None
    else:
        if args.n_inputs < 1:
            raise ParameterError("--n-inputs", args.n_inputs, "an integer >= 1")
        if args.input_dim < 1:
            raise ParameterError("--input-dim", args.input_dim, "an integer >= 1")
        rng = np.random.default_rng(args.input_seed)
        x = rng.standard_normal((args.n_inputs, args.input_dim))
        x *= np.sqrt(args.input_dim) / np.linalg.norm(x, axis=1, keepdims=True)
    x = np.atleast_2d(np.asarray(x, dtype=float))
    args._inputs_cache = x
    return x


def emit_json(obj) -> None:
    json.dump(to_jsonable(obj), sys.stdout, indent=1, default=_default)
    sys.stdout.write("\n")


def _default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o).__name__)
