"""`netc bench --plot`: latency percentiles and throughput against batch size, as a picture
(matplotlib, the 'plot' extra; imported only when a plot is asked for)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from netc.dsl.errors import NetcInputError
from netc.files import atomic_write, check_output_path

if TYPE_CHECKING:
    from netc.runtime.bench import BenchResult

FORMATS = (".png", ".svg", ".pdf")


def check_plot_path(path: str | Path, *inputs: str | Path | None) -> Path:
    """Refuse a bad picture path, or a missing matplotlib, before the benchmark runs, so a
    mistake costs nothing."""
    from netc.tool_commands import require

    require("matplotlib", "bench --plot", "plot")
    out = Path(path)
    if out.suffix.lower() not in FORMATS:
        raise NetcInputError(f"--plot {path}: write a .png, .svg or .pdf picture")
    return check_output_path(out, *inputs)


def plot_bench(results: Sequence[BenchResult], batch_name: str | None, title: str, path: str | Path) -> Path:
    """Two panels: p50/p90/p99 latency (ms) and throughput (samples/s) per batch size."""
    out = check_plot_path(path)
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    batches = [r.batch if r.batch is not None else 1 for r in results]
    fig, (lat, thr) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for key, style in (("p50_ms", "o-"), ("p90_ms", "s--"), ("p99_ms", "^:")):
        lat.plot(batches, [getattr(r, key) for r in results], style, label=key.removesuffix("_ms"))
    lat.set(xlabel=f"batch ({batch_name})" if batch_name else "batch", ylabel="latency (ms)", title="latency")
    lat.legend()
    spread = [getattr(r, k) for r in results for k in ("p50_ms", "p99_ms")]
    if min(spread) > 0 and max(spread) / min(spread) > 50:  # tails far above the median
        lat.set_yscale("log")
    thr.plot(batches, [r.samples_per_s for r in results], "o-", color="tab:green")
    thr.set(xlabel=f"batch ({batch_name})" if batch_name else "batch", ylabel="samples / s", title="throughput")
    for ax in (lat, thr):
        if len(batches) > 1 and max(batches) / min(batches) >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.grid(True, alpha=0.3)
    provider = results[0].provider if results else "?"
    fig.suptitle(f"{title} on onnxruntime ({provider})")
    fmt = out.suffix.lower().lstrip(".")
    atomic_write(out, lambda tmp: fig.savefig(tmp, format=fmt, dpi=100))
    plt.close(fig)
    return out
