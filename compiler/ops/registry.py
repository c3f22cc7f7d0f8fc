"""The op registry: one `OpDef` per op holds its signature, attribute validation, shape
rule, parameters, FLOP count and ONNX lowering. The NumPy semantics lives apart, in
`netc.runtime.reference`, registered under the same name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from netc.compiler.dims import Dim
from netc.compiler.ir import DType, Op, TensorType

if TYPE_CHECKING:
    from netc.compiler.builder import Builder
    from netc.compiler.lowering import LowerContext

REQUIRED: Any = object()


@dataclass(frozen=True)
class Arg:
    """One parameter of an op's surface signature.

    kind: tensor | int | float | bool | str | choice | ints | dim | act | init | dtype | any.
    `variadic` collects the remaining positional arguments into a tuple.
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


class OpDef:
    """Base class of registry entries. Subclasses set the class attributes and override
    `build` (surface call -> IR op), `infer` (shape rule), `lower` and, if it costs
    anything, `flops`."""

    name: ClassVar[str]
    signature: ClassVar[tuple[Arg, ...]] = ()
    doc: ClassVar[str] = ""
    activation: ClassVar[bool] = False  # usable as `act=` of dense/conv
    has_params: ClassVar[bool] = False
    internal: ClassVar[bool] = False  # made by the elaborator, not callable from .net files
    float_dtypes: ClassVar[tuple[DType, ...]] = (DType.f32, DType.f64)
    cases: ClassVar[tuple[Case, ...]] = ()

    def build(self, b: Builder, **args: Any) -> Any:
        """Default: inputs are the tensor arguments, attributes the rest."""
        tensors = [args.pop(a.name) for a in self.signature if a.kind == "tensor"]
        return b.emit(self.name, tensors, args)[0]

    def infer(self, attrs: dict[str, Any], inputs: Sequence[TensorType], b: Builder) -> list[TensorType]:
        raise NotImplementedError

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
