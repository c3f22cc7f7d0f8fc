"""Recurrent steps written in the user's words, as `.net` block sources: the cells the
benchmarks time against the built-in ones (`recognised_cells.py`, `recurrent_vs_torch.py`)."""

# A peephole LSTM with one projection split in four gates.
SPLIT = """
block peephole_lstm(state, x, hidden: int) {
  h, c = state
  i, f, g, o = split(dense(x, 4 * hidden) + dense(h, 4 * hidden, bias=false), 4)
  i = sigmoid(i + diag(c))
  f = sigmoid(f + diag(c))
  c2 = f * c + i * tanh(g)
  o = sigmoid(o + diag(c2))
  h2 = o * tanh(c2)
  return (h2, c2), h2
}
"""
# The same with one dense per gate and input (examples/peephole_lstm_lm.net's step).
PER_GATE = """
block peephole_lstm(state, x, hidden: int) {
  h, c = state
  i = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false) + diag(c))
  f = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false) + diag(c))
  c2 = f * c + i * tanh(dense(x, hidden) + dense(h, hidden, bias=false))
  o = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false) + diag(c2))
  h2 = o * tanh(c2)
  return (h2, c2), h2
}
"""
# A GRU, reset before, with the lectures' update convention.
GRU = """
block gru_step(h, x, hidden: int) {
  z = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false))
  r = sigmoid(dense(x, hidden) + dense(h, hidden, bias=false))
  hc = tanh(dense(x, hidden) + dense(r * h, hidden))
  h2 = (1 - z) * h + z * hc
  return h2, h2
}
"""
# An Elman step.
ELMAN = """
block elman_step(h, x, hidden: int) {
  return tanh(dense(x, hidden) + dense(h, hidden, bias=false))
}
"""
