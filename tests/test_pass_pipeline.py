"""Every pass of the pipeline hands on what it does not change: a field added to `Graph`
(the least sizes of symbolic dims, say) must survive every pass, or checks made while
elaborating are silently lost."""

from __future__ import annotations

import dataclasses

import pytest

import netc
from netc.compiler.passes import PIPELINE

TEXT_CNN = """network TextCNN {
  input ids: i64[N, T]
  h = ids -> embed(100, 8) -> transpose(0, 2, 1) -> conv1d(4, kernel=5)
  output y = h -> global_maxpool -> dense(2)
}
"""


@pytest.mark.parametrize("run_pass", PIPELINE, ids=lambda p: p.__name__)
def test_pass_keeps_every_field_it_does_not_change(run_pass, tmp_path):
    path = tmp_path / "cnn.net"
    path.write_text(TEXT_CNN)
    graph = netc.check_file(path)[0]
    assert graph.min_sizes.minima.get("T") == 5  # made while elaborating
    after = run_pass(graph)
    for field in dataclasses.fields(graph):
        if field.name not in ("ops", "params", "param_values"):
            assert getattr(after, field.name) == getattr(graph, field.name), field.name
