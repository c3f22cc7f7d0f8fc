"""Hints for keyword arguments a call does not know: the spellings other frameworks use
(PyTorch, Keras) for netc's own argument names, and close misspellings."""

from __future__ import annotations

from collections.abc import Iterable

from netc.dsl.errors import did_you_mean

# Another framework's name -> netc's. A hint is given only when the target is an argument
# of the call at hand, so one table serves every op and block.
ALIASES: dict[str, tuple[str, ...]] = {
    "activation": ("act",), "activations": ("act",), "nonlinearity": ("act",),
    "kernel_size": ("kernel",), "ksize": ("kernel",), "strides": ("stride",),
    "padding": ("pad",), "dilation_rate": ("dilation",), "dilations": ("dilation",),
    "use_bias": ("bias",), "out_channels": ("filters",), "out_features": ("units",),
    "num_units": ("units",), "hidden_size": ("hidden",), "num_layers": ("layers",),
    "num_embeddings": ("vocab",), "vocab_size": ("vocab",), "embedding_dim": ("dim",),
    "epsilon": ("eps",), "dropout": ("p",), "rate": ("p",), "keepdim": ("keepdims",),
    "keep_dims": ("keepdims",), "num_groups": ("groups",), "kernel_initializer": ("weight_init",),
    "bias_initializer": ("bias_init",),
    "output_padding": ("output_pad",), "scale_factor": ("scale",), "std": ("scale",),
    "dim": ("axis",),
}


def unknown_keyword_hint(key: str, names: Iterable[str]) -> str | None:
    """'did you mean ...' for the unknown keyword `key` among a call's argument `names`:
    a known alias first (`activation` -> `act`), else the closest spelling."""
    known = set(names)
    for target in ALIASES.get(key.lower(), ()):
        if target in known and target != key:
            return f"did you mean '{target}'? ('{key}' is spelled '{target}' in netc)"
    return did_you_mean(key, known)
