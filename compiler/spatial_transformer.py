"""`spatial_transformer(x, localisation, size=, mode=, padding_mode=, align_corners=)`:
Jaderberg et al.'s spatial transformer as one call. The localisation block (or layer) runs
on x [N, C, H, W] and returns theta [N, 2, 3] or [N, 6]; then

    grid_sample(x, affine_grid(theta, size), mode, padding_mode, align_corners)

with size = x's [H, W] unless given. The localisation's layers are named under the call's
label (`spatial_transformer0.dense0.weight`, or `<name>.dense0.weight` with name=). It is
an intrinsic rather than an op because its middle is a user's block, as `recur`'s step is;
what it emits are the ops `affine_grid` and `grid_sample`.
"""

from __future__ import annotations

from typing import Any

from netc.compiler.ir import Value
from netc.compiler.ops.registry import REGISTRY, Arg
from netc.compiler.ops.sampling import MODES, PADDING
from netc.compiler.values import BlockFn, Builtin, Intrinsic, describe
from netc.dsl.errors import NetcShapeError, NetcTypeError, Span


def _spatial_transformer(elab, span: Span, x: Any, localisation: Any, size: Any, mode: Any, padding_mode: Any,
                         align_corners: Any, name: Any, spans: dict[str, Span]) -> Value:
    fname = "spatial_transformer"
    if not isinstance(x, Value) or x.type.rank != 4:
        raise NetcShapeError(f"{fname} transforms an image [N, C, H, W]; got {describe(x)}", spans["x"],
                             ["reshape a flat image first: x -> reshape(N, 1, 28, 28)"])
    if not isinstance(localisation, BlockFn | Builtin):
        raise NetcTypeError(f"{fname}: 'localisation' must be a block (or layer) mapping x to theta [N, 2, 3] or "
                            f"[N, 6]; got {describe(localisation)}", spans["localisation"],
                            ["define `block loc(x) { ... -> dense(6, weight_init=zeros, "
                             "bias_init=[1, 0, 0, 0, 1, 0]) }` and pass its name"])
    if name is not None and (not isinstance(name, str) or not name.isidentifier()):
        raise NetcTypeError(f"a layer name must be an identifier string; got {describe(name)}", spans["name"])
    if size is None:
        size = [x.type.shape[2], x.type.shape[3]]
    elab.b.push_scope(fname, name)
    try:
        if isinstance(localisation, BlockFn):
            theta = elab._call_block(localisation, [(x, spans["x"])], {}, span, inline=True)
        else:
            theta = elab.call(localisation, [(x, spans["x"])], {}, span)
    finally:
        elab.b.pop_scope()
    t = theta.type if isinstance(theta, Value) else None
    if t is None or not ((t.rank == 3 and t.shape[1:] == (2, 3)) or (t.rank == 2 and t.shape[1] == 6)):
        raise NetcShapeError(f"{fname}: the localisation '{localisation.name}' returns {describe(theta)}; it must "
                             "return theta, a tensor [N, 2, 3] or [N, 6]", spans["localisation"],
                             ["end it in dense(6, weight_init=zeros, bias_init=[1, 0, 0, 0, 1, 0]) to start at the "
                              "identity"])
    grid = elab.call(Builtin(REGISTRY["affine_grid"]), [(theta, span)],
                     {"size": (size, spans["size"]), "align_corners": (align_corners, spans["align_corners"])}, span)
    return elab.call(Builtin(REGISTRY["grid_sample"]), [(x, spans["x"]), (grid, span)],
                     {"mode": (mode, spans["mode"]), "padding_mode": (padding_mode, spans["padding_mode"]),
                      "align_corners": (align_corners, spans["align_corners"])}, span)


_spatial_transformer.wants_spans = True  # type: ignore[attr-defined]

SPATIAL_TRANSFORMER = Intrinsic(
    "spatial_transformer",
    (Arg("x", "tensor"), Arg("localisation", "any"), Arg("size", "any", None), Arg("mode", "choice", "bilinear",
     choices=MODES), Arg("padding_mode", "choice", "zeros", choices=PADDING), Arg("align_corners", "bool", False),
     Arg("name", "any", None)),
    _spatial_transformer,
    "spatial transformer: theta = localisation(x) ([N, 2, 3] or [N, 6]), then grid_sample(x, affine_grid(theta, "
    "size)); size defaults to x's [H, W]. ONNX AffineGrid + GridSample",
)
