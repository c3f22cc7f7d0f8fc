"""The op registry: one `OpDef` per op holds its signature, attribute validation, shape
rule, parameters, FLOP count and ONNX lowering. The NumPy semantics lives apart, in
`netc.runtime.reference`, registered under the same name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from netc.compiler.dims import Dim
from netc.compiler.ir import DType, Graph, Op, TensorType

if TYPE_CHECKING:
    from netc.compiler.builder import Builder
    from netc.compiler.lowering import LowerContext

REQUIRED: Any = object()


@dataclass(frozen=True)
class Arg:
    """One parameter of an op's surface signature.

    kind: tensor | int | float | bool | str | choice | ints | dim | act | init | dtype | any |
    kwargs. `variadic` collects the remaining positional arguments into a tuple; a `kwargs`
    argument collects the keyword arguments no other argument names, as {name: (value, span)}.
    """

    name: str
    kind: str
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    variadic: bool = False
    positive: bool = False
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and not self.variadic


@dataclass(frozen=True)
class Case:
    """A parity-test case: a network body using the given inputs. `{f}` in an input type
    stands for the float dtype under test; integer inputs draw from [0, int_high)."""

    expr: str
    inputs: dict[str, str]
    int_high: int = 5
    note: str = ""
    defs: str = ""  # top-level definitions (blocks) placed before the network, e.g. a step block


class OpDef:
    """Base class of registry entries. Subclasses set the class attributes and override
    `build` (surface call -> IR op), `infer` (shape rule), `lower` and, if it costs
    anything, `flops`."""

    name: ClassVar[str]
    signature: ClassVar[tuple[Arg, ...]] = ()
    doc: ClassVar[str] = ""
    activation: ClassVar[bool] = False  # usable as `act=` of dense/conv
    has_params: ClassVar[bool] = False
    seeded: ClassVar[bool] = False  # draws from a random stream named after the layer (so takes name=)
    internal: ClassVar[bool] = False  # made by the elaborator, not callable from .net files
    float_dtypes: ClassVar[tuple[DType, ...]] = (DType.f32, DType.f64)
    cases: ClassVar[tuple[Case, ...]] = ()
    # Step-polymorphic: extra leading axes of the inputs act as batch axes, so an op applied
    # to one step's slices [N, ...] computes the same, step by step, when applied to the whole
    # sequence [T, N, ...]. The hoisting pass moves such ops out of recurrence bodies.
    step_polymorphic: ClassVar[bool] = False

    def build(self, b: Builder, **args: Any) -> Any:
        """Default: inputs are the tensor arguments, attributes the rest."""
        tensors = [args.pop(a.name) for a in self.signature if a.kind == "tensor"]
        return b.emit(self.name, tensors, args)[0]

    def infer(self, attrs: dict[str, Any], inputs: Sequence[TensorType], b: Builder) -> list[TensorType]:
        raise NotImplementedError

    def infer_regions(self, attrs: dict[str, Any], inputs: Sequence[TensorType], regions: Sequence[Graph],
                      b: Builder) -> list[TensorType]:
        """Shape rule of an op that owns regions (a recurrence's step); they are already typed."""
        raise NotImplementedError

    def hoistable(self, op: Op, varying: Sequence[bool]) -> bool:
        """Whether `op` may be applied to whole sequences: a new leading (time) axis on the
        inputs flagged `varying` (the others stay as they are) gives the per-step results
        stacked on that axis. The default rule, for step-polymorphic ops that broadcast like
        NumPy: every varying input has the output's rank and no other input has more."""
        if not self.step_polymorphic or not op.outputs:
            return False
        rank = op.outputs[0].type.rank
        for value, var in zip(op.inputs, varying):
            if value is None:
                continue
            if (var and value.type.rank != rank) or (not var and value.type.rank > rank):
                return False
        return any(varying)

    def stochastic(self, op: Op) -> bool:
        """Whether `op`'s results are random draws. onnxruntime's generator and the
        reference's cannot agree value by value, so such results (and what is computed from
        them) are checked by `check_draw` and by structure instead of compared."""
        return False

    def check_draw(self, op: Op, inputs: Sequence[Any], outputs: Sequence[Any]) -> list[str]:
        """What is implausible about one draw of a stochastic op, given its input arrays:
        values outside the support, moments too far from the distribution's. Empty when
        nothing is. `netc verify` and the parity tests apply it to both implementations."""
        return []

    def flops(self, op: Op) -> Dim:
        return 0

    def lower(self, ctx: LowerContext, op: Op, inputs: list[str]) -> list[str]:
        raise NotImplementedError


@dataclass
class Registry:
    ops: dict[str, OpDef] = field(default_factory=dict)

    def register(self, cls: type[OpDef]) -> type[OpDef]:
        if cls.name in self.ops:
            raise RuntimeError(f"op {cls.name} registered twice")
        self.ops[cls.name] = cls()
        return cls

    def __getitem__(self, name: str) -> OpDef:
        return self.ops[name]

    def __contains__(self, name: str) -> bool:
        return name in self.ops


REGISTRY = Registry()
register = REGISTRY.register


def draws(op: Op) -> bool:
    """Whether `op` draws random numbers, itself or anywhere in its regions."""
    if REGISTRY[op.kind].stochastic(op):
        return True
    return any(REGISTRY[inner.kind].stochastic(inner) for region in op.regions for inner in region.walk())
